// Server text with terminal control sequences in it (a label value, a manifest name, a
// status error, container output) reaches forgectl's output inert: no ESC, BEL, C1 or bidi
// control is written to the operator's terminal; each shows as ^[ or <U+…> instead.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { terminalSafe } from '../../src/cli/terminal-text.js'
import { IMAGE, runForgectl, startTestDaemon, type TestDaemon } from './forgectl-harness.js'

/** Clears the screen, retitles the window, rings the bell, and reverses the line after it. */
const HOSTILE = '\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eevil\r'

describe('forgectl prints server text without terminal control characters', () => {
  let daemon: TestDaemon

  beforeAll(async () => {
    daemon = await startTestDaemon()
    const answer = await fetch(`${daemon.url}/api/v1/plugins/hostile`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        apiVersion: 'flowforge.io/v1',
        kind: 'Plugin',
        metadata: { name: 'hostile', labels: { team: HOSTILE.slice(0, 60) } },
        spec: { manifest: { name: `Hostile ${HOSTILE}`, image: IMAGE, port: 8080 }, environment: { MOTD: HOSTILE } },
      }),
    })
    expect(answer.status).toBe(201)
    const plugin = await daemon.daemon.store.requirePlugin('hostile')
    await daemon.daemon.store.writeStatus(plugin.id, { status: 'error', error: `exited: ${HOSTILE}` })
    await daemon.daemon.store.logEvent({ pluginId: plugin.id, forgehookId: 'hostile', type: 'operator:note', data: { text: HOSTILE } })
  })
  afterAll(async () => {
    await daemon?.stop()
  })

  const unsafe = (text: string) => [...text].filter((character) => /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/.test(character))

  test.each([
    [['get']],
    [['get', 'hostile', '-o', 'yaml']],
    [['get', 'hostile', '-o', 'json']],
    [['describe', 'hostile']],
    [['events', 'hostile']],
  ])('forgectl %j', async (args) => {
    const result = await runForgectl(args, { FORGE_URL: daemon.url })
    expect(result.code, result.stderr).toBe(0)
    expect(unsafe(result.stdout + result.stderr)).toEqual([])
  })

  test('forgectl describe shows the sequences as visible text', async () => {
    const result = await runForgectl(['describe', 'hostile'], { FORGE_URL: daemon.url })
    expect(result.stdout).toContain('^[[2J^[]0;pwned^G<U+009B>31m<U+202E>evil')
  })

  test('forgectl logs: a container writing escape sequences cannot drive the terminal', async () => {
    const container = await daemon.runtime.inspect('forgehook-hostile')
    expect(container, 'the plugin has a container').toBeDefined()
    daemon.runtime.writeLog(container!.id, `line one\r\n${HOSTILE}\n`)
    const result = await runForgectl(['logs', 'hostile'], { FORGE_URL: daemon.url })
    expect(result.stdout).toContain('line one\n^[[2J')
    expect(unsafe(result.stdout + result.stderr)).toEqual([])
  })

  test('the rule: CRLF line ends stay line ends, tab and newline stay, everything else is shown', () => {
    expect(terminalSafe('a\r\nb\tc\n')).toBe('a\nb\tc\n')
    expect(terminalSafe('\x1b[31mred\x1b[0m')).toBe('^[[31mred^[[0m')
    expect(terminalSafe('\x00\x7f\x85\u2066')).toBe('^@^?<U+0085><U+2066>')
    expect(terminalSafe('plain text, ünïcode and emoji 🙂')).toBe('plain text, ünïcode and emoji 🙂')
  })
})
