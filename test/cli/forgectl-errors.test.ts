// How forgectl fails: usage (exit 2), an unreachable or misconfigured daemon, a missing or
// wrong token (exit 1), always one readable line and never a stack trace; and --help everywhere.
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { expectNoStackTrace, runForgectl, startTestDaemon, type RunResult, type TestDaemon } from './forgectl-harness.js'

const COMMANDS = ['apply', 'diff', 'get', 'describe', 'delete', 'start', 'stop', 'restart', 'logs', 'events', 'schema', 'serve', 'migrate']

async function forgectl(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const result = await runForgectl(args, env)
  expectNoStackTrace(result)
  return result
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('forgectl --help', () => {
  test('lists every command', async () => {
    const result = await forgectl(['--help'])
    expect(result.code).toBe(0)
    for (const command of COMMANDS) expect(result.stdout).toMatch(new RegExp(`^  ${command}\\s+\\S`, 'm'))
    expect(result.stdout).toContain('FORGE_URL')
  })

  test.each(COMMANDS)('%s --help and -h print its usage and exit 0, without a daemon', async (command) => {
    for (const flag of ['--help', '-h']) {
      const result = await forgectl([command, flag], { FORGE_URL: 'http://127.0.0.1:9' })
      expect(result.code).toBe(0)
      expect(result.stdout).toMatch(new RegExp(`^Usage: forgectl ${command}\\b`))
      expect(result.stderr).toBe('')
    }
  })
})

describe('usage errors exit 2', () => {
  test.each([
    [['frobnicate'], 'forgectl: unknown command "frobnicate"'],
    [['get', '--bogus'], "forgectl: unknown option '--bogus'\nRun 'forgectl get --help' for usage."],
    [['apply', '-f'], "forgectl: option '-f, --filename <value>' argument missing\nRun 'forgectl apply --help' for usage."],
    [['apply'], "forgectl: apply needs -f FILE|DIR\nRun 'forgectl apply --help' for usage."],
    [['describe'], "forgectl: describe needs a plugin NAME\nRun 'forgectl describe --help' for usage."],
    [['logs', 'a', 'b'], `forgectl: unexpected argument "b" for logs\nRun 'forgectl logs --help' for usage.`],
    [['get', '-o', 'xml'], "forgectl: --output must be one of table, wide, json, yaml, got \"xml\"\nRun 'forgectl get --help' for usage."],
    [['logs', 'a', '--tail', 'many'], "forgectl: --tail must be a whole number from 0 to 1000, got \"many\"\nRun 'forgectl logs --help' for usage."],
    [['apply', '-f', 'x.yaml', '--timeout', 'soon'], "forgectl: --timeout must be a positive duration such as 30s, 2m or 500ms, got \"soon\"\nRun 'forgectl apply --help' for usage."],
    [['serve', 'extra'], `forgectl: unexpected argument "extra" for serve\nRun 'forgectl serve --help' for usage.`],
  ])('forgectl %j', async (args, message) => {
    const result = await forgectl(args, { FORGE_URL: 'http://127.0.0.1:9' })
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr.startsWith(message)).toBe(true)
  })
})

describe('an unreachable or misconfigured daemon', () => {
  test('a closed port exits 1 with one line naming the URL', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`
    for (const args of [['get'], ['describe', 'x'], ['logs', 'x', '-f'], ['events', '-f'], ['get', '--watch']]) {
      const result = await forgectl(args, { FORGE_URL: url })
      expect(result.code).toBe(1)
      expect(result.stderr).toBe(`forgectl: cannot reach the FlowForge API at ${url} (connection refused): is the daemon running? set FORGE_URL\n`)
    }
  })

  test('FORGE_URL that is not an http URL exits 1 with one line', async () => {
    const result = await forgectl(['get'], { FORGE_URL: 'ftp://example.com' })
    expect(result.code).toBe(1)
    expect(result.stderr).toBe('forgectl: invalid configuration: FORGE_URL must be an http:// or https:// URL (not ftp:), got "ftp://example.com"\n')
  })

  test('something else answering at FORGE_URL is named as such', async () => {
    // Answers once the request arrived (reading it, so the socket can close afterwards).
    const server = net.createServer((socket) =>
      socket.once('data', () => socket.end('HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 5\r\nconnection: close\r\n\r\noops!')).resume(),
    )
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
      const result = await forgectl(['get'], { FORGE_URL: url })
      expect(result.code).toBe(1)
      expect(result.stderr).toBe(`forgectl: HTTP 502 Bad Gateway from ${url}, which does not look like the FlowForge API\n`)
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})

describe('a daemon with FORGE_API_TOKEN', () => {
  const token = 'cli-test-token-0123456789'
  let server: TestDaemon

  beforeAll(async () => {
    server = await startTestDaemon({ FORGE_API_TOKEN: token, API_BIND_ADDRESS: '127.0.0.1' })
  })
  afterAll(async () => {
    await server?.stop()
  })

  test('without a token, or with a wrong one, forgectl exits 1 with one "unauthorized" line', async () => {
    const missing = await forgectl(['get'], { FORGE_URL: server.url })
    expect(missing.code).toBe(1)
    expect(missing.stderr).toBe(
      "forgectl: unauthorized: an Authorization: Bearer <token> header is required (set FORGE_API_TOKEN to the daemon's token)\n",
    )
    const wrong = await forgectl(['events', '-f'], { FORGE_URL: server.url, FORGE_API_TOKEN: 'not-the-token-at-all' })
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toBe("forgectl: unauthorized: the bearer token is not valid (set FORGE_API_TOKEN to the daemon's token)\n")
    expect(wrong.stdout + wrong.stderr).not.toContain(token)
  })

  test('with the token every command works', async () => {
    const response = await fetch(`${server.url}/api/v1/plugins/guarded`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name: 'guarded' }, spec: { manifest: { image: 'flowforge/test:1', port: 8080 } } }),
    })
    expect(response.status).toBe(201)
    const env = { FORGE_URL: server.url, FORGE_API_TOKEN: token }
    const get = await forgectl(['get', 'guarded'], env)
    expect(get.code).toBe(0)
    expect(get.stdout).toMatch(/^guarded\s+running/m)
    expect((await forgectl(['events', 'guarded'], env)).code).toBe(0)
  })
})
