// forgectl's commands that follow the daemon: logs (-f), events (-f) and get --watch, run as
// child processes that are stopped (SIGTERM, as Ctrl-C) once what they should print arrived.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { containerNameFor } from '../../src/runtime/container-runtime.js'
import { declarePlugin, expectNoStackTrace, runForgectl, RunningForgectl, startTestDaemon, waitForPhase, type RunResult, type TestDaemon } from './forgectl-harness.js'

let server: TestDaemon
let env: Record<string, string>
const running: RunningForgectl[] = []

beforeAll(async () => {
  server = await startTestDaemon()
  env = { FORGE_URL: server.url }
})
afterEach(() => {
  for (const child of running.splice(0)) child.kill()
})
afterAll(async () => {
  await server?.stop()
})

async function forgectl(...args: string[]): Promise<RunResult> {
  const result = await runForgectl(args, env)
  expectNoStackTrace(result)
  return result
}

function follow(...args: string[]): RunningForgectl {
  const child = new RunningForgectl(args, env)
  running.push(child)
  return child
}

async function postAction(name: string, action: 'start' | 'stop'): Promise<void> {
  const response = await fetch(`${server.url}/api/v1/plugins/${name}/${action}`, { method: 'POST' })
  expect(response.status).toBe(200)
}

describe('forgectl logs', () => {
  test('prints the last --tail lines of the container output', async () => {
    await declarePlugin(server.url, 'logs-tail')
    server.runtime.writeLog(containerNameFor('logs-tail'), 'first\nsecond\nthird\n')
    const result = await forgectl('logs', 'logs-tail', '--tail', '2')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('second\nthird\n')
    expect((await forgectl('logs', 'logs-tail')).stdout).toBe('first\nsecond\nthird\n')
  })

  test('-f prints new lines as the container writes them, until stopped', async () => {
    await declarePlugin(server.url, 'logs-follow')
    server.runtime.writeLog(containerNameFor('logs-follow'), 'before\n')
    const logs = follow('logs', 'logs-follow', '-f', '--tail', '5')
    await logs.waitForOutput(/^before$/m, 'the existing line')
    server.runtime.writeLog(containerNameFor('logs-follow'), 'after one\nafter two\n')
    await logs.waitForOutput(/^after two$/m, 'the new lines')
    const result = await logs.stop()
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('before\nafter one\nafter two\n')
    expectNoStackTrace(result)
  })

  test('-f ends by itself when the container stops', async () => {
    await declarePlugin(server.url, 'logs-end')
    server.runtime.writeLog(containerNameFor('logs-end'), 'last words\n')
    const logs = follow('logs', 'logs-end', '-f')
    await logs.waitForOutput(/^last words$/m, 'the existing line')
    await postAction('logs-end', 'stop')
    const result = await logs.waitForExit()
    expect(result.code).toBe(0)
    expect(result.stderr).toBe('the container of logs-end stopped\n')
  })

  test('an unknown plugin exits 1 with one line', async () => {
    const result = await forgectl('logs', 'logs-nobody')
    expect(result.code).toBe(1)
    expect(result.stderr).toBe('forgectl: plugin logs-nobody not found\n')
  })
})

describe('forgectl events', () => {
  beforeAll(async () => {
    await declarePlugin(server.url, 'events-a')
    await declarePlugin(server.url, 'events-b')
  })

  test('lists the audit trail of all plugins, newest last', async () => {
    const result = await forgectl('events')
    expect(result.code).toBe(0)
    const [header, ...rows] = result.stdout.trimEnd().split('\n')
    expect(header).toMatch(/^TIME\s+TYPE\s+PLUGIN\s+DATA$/)
    expect(rows.some((row) => /\splugin:installed\s+events-a\s/.test(row))).toBe(true)
    expect(rows.some((row) => /\splugin:installed\s+events-b\s/.test(row))).toBe(true)
    const times = rows.map((row) => row.split(/\s+/)[0]!)
    expect([...times].sort()).toEqual(times)
    expect(rows.findIndex((row) => row.includes(' events-a '))).toBeLessThan(rows.findIndex((row) => row.includes(' events-b ')))
  })

  test('NAME shows only that plugin', async () => {
    const result = await forgectl('events', 'events-a')
    expect(result.code).toBe(0)
    const rows = result.stdout.trimEnd().split('\n').slice(1)
    expect(rows.length).toBeGreaterThan(0)
    for (const row of rows) expect(row).toMatch(/\sevents-a\s/)
  })

  test('-f prints events as they are recorded', async () => {
    const events = follow('events', 'events-b', '-f')
    await events.waitForOutput(/plugin:started\s+events-b/, 'the recorded events')
    await postAction('events-b', 'stop')
    await events.waitForOutput(/plugin:stopped\s+events-b/, 'the live stop event')
    const result = await events.stop()
    expect(result.code).toBe(0)
    expect(result.stdout).not.toMatch(/events-a/)
    expectNoStackTrace(result)
  })
})

describe('forgectl get --watch', () => {
  test('prints the table, then a plugin again when it changes', async () => {
    await declarePlugin(server.url, 'watch-me')
    const watch = follow('get', '--watch')
    await watch.waitForOutput(/^watch-me\s+running\s+running\s/m, 'the first table')
    expect(watch.stdout).toMatch(/^NAME\s+STATE\s+PHASE/)

    await postAction('watch-me', 'stop')
    await watch.waitForOutput(/^watch-me\s+stopped\s+stopped\s/m, 'the stopped row')
    const result = await watch.stop()
    expect(result.code).toBe(0)
    // The header is printed once; updates are rows.
    expect(result.stdout.match(/^NAME/gm)).toHaveLength(1)
    expectNoStackTrace(result)
    await waitForPhase(server.url, 'watch-me', 'stopped')
  })

  test('NAME watches only that plugin', async () => {
    await declarePlugin(server.url, 'watch-one')
    await declarePlugin(server.url, 'watch-other')
    const watch = follow('get', 'watch-one', '-w')
    await watch.waitForOutput(/^watch-one\s+running/m, 'the first row')
    await postAction('watch-other', 'stop')
    await postAction('watch-one', 'stop')
    await watch.waitForOutput(/^watch-one\s+stopped\s+stopped/m, 'the stopped row')
    const result = await watch.stop()
    expect(result.stdout).not.toContain('watch-other')
  })
})
