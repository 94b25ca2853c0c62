import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { toErrorResponse } from '../../src/api/errors.js'
import { DatabaseUnavailableError } from '../../src/db/errors.js'
import { PluginStore, type Plugin } from '../../src/db/plugin-store.js'
import type { Database } from '../../src/db/schema.js'
import { silentLogger } from '../../src/logger.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { captureLogs } from '../helpers/log-capture.js'
import { apiHarness, errorOf, pluginDocument, send, type ApiHarness, type ErrorAnswer, type PluginAnswer } from './api-harness.js'

let database: TestDatabase
let api: ApiHarness

beforeAll(async () => {
  database = await openTestDatabase('embedded')
})
afterAll(async () => {
  await database?.close()
})
beforeEach(async () => {
  await database.reset()
  api = apiHarness(database)
})

function expectErrorShape(body: ErrorAnswer, code: string): void {
  expect(Object.keys(body)).toEqual(['error'])
  expect(body.error).toEqual({ code, message: expect.any(String), details: expect.any(Array) })
}

describe('request errors', () => {
  test('malformed or empty JSON answers 400 on POST, PUT and PATCH', async () => {
    await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('echo') })
    const requests: [string, string, string][] = [
      ['POST', '/api/v1/plugins', 'application/json'],
      ['POST', '/api/v1/plugins/install', 'application/json'],
      ['PUT', '/api/v1/plugins/echo', 'application/json'],
      ['PATCH', '/api/v1/plugins/echo', 'application/merge-patch+json'],
    ]
    for (const [method, path, contentType] of requests) {
      for (const rawBody of ['{"metadata": ', '']) {
        const response = await send(api.app, method, path, { rawBody, contentType })
        expect(response.status, `${method} ${path} ${JSON.stringify(rawBody)}`).toBe(400)
        expectErrorShape(await errorOf(response), 'malformed_json')
      }
    }
  })

  test('a wrong Content-Type answers 415', async () => {
    const plain = await send(api.app, 'POST', '/api/v1/plugins', { rawBody: JSON.stringify(pluginDocument('echo')), contentType: 'text/plain' })
    expect(plain.status).toBe(415)
    expectErrorShape(await errorOf(plain), 'unsupported_media_type')
    const mergePatchOnPut = await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: pluginDocument('echo'), contentType: 'application/merge-patch+json' })
    expect(mergePatchOnPut.status).toBe(415)
    const none = await api.app.request('/api/v1/plugins', { method: 'POST', body: '{}' })
    expect(none.status).toBe(415)
    expect((await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('echo'), contentType: 'application/json; charset=utf-8' })).status).toBe(201)
  })

  test('a body over 1 MiB answers 413 before it is parsed', async () => {
    const document = pluginDocument('echo', { config: { blob: 'x'.repeat(1024 * 1024) } })
    const response = await send(api.app, 'POST', '/api/v1/plugins', { body: document })
    expect(response.status).toBe(413)
    expectErrorShape(await errorOf(response), 'payload_too_large')
    expect(await database.store.getPlugin('echo')).toBeUndefined()

    const declared = await api.app.request('/api/v1/plugins', { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(2 * 1024 * 1024) }, body: '{}' })
    expect(declared.status).toBe(413)
  })

  test('JSON nested more than 100 levels deep answers 400, not a stack overflow (500)', async () => {
    // document › spec › config › n arrays: 3 + n levels.
    const nestedBody = (name: string, arrays: number) =>
      JSON.stringify(pluginDocument(name, { config: { deep: 0 } })).replace('"deep":0', `"deep":${'['.repeat(arrays)}${']'.repeat(arrays)}`)
    expect((await send(api.app, 'POST', '/api/v1/plugins', { rawBody: nestedBody('edge', 97) })).status).toBe(201)
    for (const arrays of [98, 5_000, 500_000]) {
      const response = await send(api.app, 'PUT', '/api/v1/plugins/deep', { rawBody: nestedBody('deep', arrays) })
      expect(response.status, `${arrays} arrays`).toBe(400)
      expectErrorShape(await errorOf(response), 'too_deep')
    }
    const patch = await send(api.app, 'PATCH', '/api/v1/plugins/edge', { rawBody: `{"spec":{"config":${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}}}`, contentType: 'application/merge-patch+json' })
    expect(patch.status).toBe(400)
    expect(await database.store.getPlugin('deep')).toBeUndefined()
  })

  test('an unknown route answers 404 in the error shape', async () => {
    const response = await send(api.app, 'GET', '/api/v1/nothing')
    expect(response.status).toBe(404)
    expectErrorShape(await errorOf(response), 'not_found')
  })

  test('a malformed If-Match answers 400', async () => {
    await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('echo') })
    const response = await send(api.app, 'POST', '/api/v1/plugins/echo/stop', { headers: { 'if-match': 'not-a-tag' } })
    expect(response.status).toBe(400)
    expect((await errorOf(response)).error.details[0]?.field).toBe('If-Match')
  })
})

describe('server errors', () => {
  test('an unexpected error answers 500 "internal error" without details, and is logged', async () => {
    const logs = captureLogs('warn')
    class BrokenStore extends PluginStore {
      override async listPlugins(): Promise<Plugin[]> {
        throw new Error('relation "plugins" is broken at /srv/secret/path')
      }
    }
    const broken = apiHarness(database, { store: new BrokenStore(database.handle.db, database.handle.changes, silentLogger()), logger: logs.logger })
    const response = await send(broken.app, 'GET', '/api/v1/plugins')
    expect(response.status).toBe(500)
    const text = await response.text()
    expect(JSON.parse(text)).toEqual({ error: { code: 'internal_error', message: 'internal error', details: [] } })
    expect(text).not.toContain('/srv/secret/path')
    expect(text).not.toContain('at ')
    expect(logs.lines).toEqual([expect.objectContaining({ msg: 'request failed', path: '/api/v1/plugins', err: expect.objectContaining({ message: expect.stringContaining('broken') }) })])
  })

  test("an unexpected error's stack and cause are in its log line and never in the answer", async () => {
    const logs = captureLogs('warn')
    class BuggyStore extends PluginStore {
      override async listPlugins(): Promise<Plugin[]> {
        throw new TypeError("Cannot read properties of undefined (reading 'rows')", { cause: new Error('the driver answered nothing') })
      }
    }
    const buggy = apiHarness(database, { store: new BuggyStore(database.handle.db, database.handle.changes, silentLogger()), logger: logs.logger })
    const response = await send(buggy.app, 'GET', '/api/v1/plugins')
    expect(response.status).toBe(500)
    const text = await response.text()
    expect(JSON.parse(text)).toEqual({ error: { code: 'internal_error', message: 'internal error', details: [] } })
    expect(text).not.toMatch(/stack|TypeError|driver answered/)
    expect(logs.lines[0]?.err).toMatchObject({
      type: 'TypeError',
      stack: expect.stringContaining('errors-and-auth.test.ts'),
      cause: { message: 'the driver answered nothing', stack: expect.any(String) },
    })
  })

  test('answers 503 while the database handle is closed', async () => {
    const closing = await openTestDatabase('embedded')
    const closed = apiHarness(closing)
    await closing.close()
    const response = await send(closed.app, 'GET', '/api/v1/plugins')
    expect(response.status).toBe(503)
    expectErrorShape(await errorOf(response), 'unavailable')
    expect(response.headers.get('retry-after')).toBe('5')
  })

  test('answers 503 when the Postgres server refuses connections', async () => {
    // Port 1 on the loopback: nothing listens, the connection is refused at once.
    const pool = new pg.Pool({ host: '127.0.0.1', port: 1, user: 'nobody', database: 'nothing', connectionTimeoutMillis: 2_000 })
    pool.on('error', () => undefined)
    const unreachable = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
    const store = new PluginStore(unreachable, database.handle.changes, silentLogger())
    const refused = apiHarness(database, { store })
    try {
      for (const [method, path, body] of [['GET', '/api/v1/plugins/echo', undefined], ['POST', '/api/v1/plugins', pluginDocument('echo')]] as const) {
        const response = await send(refused.app, method, path, { body })
        expect(response.status, `${method} ${path}`).toBe(503)
      }
    } finally {
      await unreachable.destroy()
    }
  })

  test('maps connection-level errors to 503 and statement errors to 500', () => {
    const withCode = (message: string, code: string) => Object.assign(new Error(message), { code })
    const unreachable = [
      new DatabaseUnavailableError('gone'),
      withCode('terminating connection due to administrator command', '57P01'),
      withCode('the database system is starting up', '57P03'),
      withCode('connection failure', '08006'),
      withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      withCode('read ECONNRESET', 'ECONNRESET'),
      new Error('Connection terminated unexpectedly'),
      new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], 'connect failed'),
    ]
    for (const error of unreachable) expect(toErrorResponse(error).status, error.message).toBe(503)
    expect(toErrorResponse(withCode('syntax error', '42601')).status).toBe(500)
    expect(toErrorResponse('a string').status).toBe(500)
  })
})

describe('bearer token', () => {
  const token = 'a-long-enough-test-token-123'
  let secured: ApiHarness
  beforeEach(() => {
    secured = apiHarness(database, { apiToken: token })
  })

  test('every /api and /plugins route needs the token (401 with WWW-Authenticate)', async () => {
    const requests: [string, string][] = [
      ['GET', '/api/v1/plugins'],
      ['POST', '/api/v1/plugins'],
      ['GET', '/api/v1/events'],
      ['GET', '/api/v1/openapi.json'],
      ['GET', '/api/v1/nothing'],
      ['GET', '/plugins/echo/anything'],
    ]
    const wrongHeaders: Record<string, string>[] = [{}, { authorization: `Bearer ${token}x` }, { authorization: `Bearer ${token.slice(1)}` }, { authorization: `Basic ${token}` }]
    for (const headers of wrongHeaders) {
      for (const [method, path] of requests) {
        const response = await send(secured.app, method, path, { headers })
        expect(response.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401)
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/)
        expectErrorShape(await errorOf(response), 'unauthorized')
      }
    }
  })

  test('the right token passes', async () => {
    const response = await send(secured.app, 'POST', '/api/v1/plugins', { body: pluginDocument('echo'), headers: { authorization: `Bearer ${token}` } })
    expect(response.status).toBe(201)
    expect((await send(secured.app, 'GET', '/api/v1/plugins/echo', { headers: { authorization: `bearer ${token}` } })).status).toBe(200)
  })

  test('/healthz, /readyz and /metrics stay open', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      expect((await send(secured.app, 'GET', path)).status, path).not.toBe(401)
    }
  })

  test('without a configured token nothing is asked', async () => {
    expect((await send(api.app, 'GET', '/api/v1/plugins')).status).toBe(200)
  })
})

describe('secrets', () => {
  const realValues = ['sk-live-123456', 'hunter2-password', 'whsec-987']
  const environment = { API_KEY: realValues[0]!, DB_PASSWORD: realValues[1]!, WEBHOOK: realValues[2]!, MODE: 'fast' }
  const manifest = { name: 'Echo', image: 'flowforge/test:1', port: 8080, secrets: ['WEBHOOK'] }
  const withSecrets = () => pluginDocument('echo', { manifest, environment })

  function expectNoSecret(text: string, what: string): void {
    for (const value of realValues) expect(text, what).not.toContain(value)
  }

  test('never appear in any answer', async () => {
    const answers: [string, Response][] = []
    const record = async (what: string, response: Promise<Response>) => void answers.push([what, await response])
    await record('POST', send(api.app, 'POST', '/api/v1/plugins', { body: withSecrets() }))
    await record('GET one', send(api.app, 'GET', '/api/v1/plugins/echo'))
    await record('GET list', send(api.app, 'GET', '/api/v1/plugins'))
    await record('PATCH', send(api.app, 'PATCH', '/api/v1/plugins/echo', { body: { spec: { config: { a: 1 } } } }))
    await record('PUT', send(api.app, 'PUT', '/api/v1/plugins/echo', { body: withSecrets() }))
    await record('stop', send(api.app, 'POST', '/api/v1/plugins/echo/stop'))
    await record('events', send(api.app, 'GET', '/api/v1/events'))
    await record('install', send(api.app, 'POST', '/api/v1/plugins/install', { body: { manifest: { ...manifest, id: 'other' }, environment } }))
    await record('DELETE', send(api.app, 'DELETE', '/api/v1/plugins/echo'))
    for (const [what, response] of answers) {
      expect(response.status, what).toBeLessThan(300)
      expectNoSecret(await response.text(), what)
    }
    const shown = (await (await send(api.app, 'GET', '/api/v1/plugins/other')).json()) as PluginAnswer
    expect(shown.spec.environment).toEqual({ API_KEY: '***', DB_PASSWORD: '***', WEBHOOK: '***', MODE: 'fast' })
  })

  test('a read-modify-write that sends *** back keeps the stored values (PUT and PATCH)', async () => {
    await send(api.app, 'POST', '/api/v1/plugins', { body: withSecrets() })
    const read = (await (await send(api.app, 'GET', '/api/v1/plugins/echo')).json()) as PluginAnswer
    const written = { apiVersion: read.apiVersion, kind: read.kind, metadata: { name: read.metadata.name }, spec: { ...read.spec, environment: { ...read.spec.environment, MODE: 'slow' } } }
    expect((await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: written })).status).toBe(200)
    expect((await database.store.requirePlugin('echo')).environment).toEqual({ ...environment, MODE: 'slow' })

    const patched = await send(api.app, 'PATCH', '/api/v1/plugins/echo', { body: { spec: { environment: { API_KEY: '***', DB_PASSWORD: 'new-password' } } }, contentType: 'application/merge-patch+json' })
    expect(patched.status).toBe(200)
    expect((await database.store.requirePlugin('echo')).environment).toEqual({ ...environment, MODE: 'slow', DB_PASSWORD: 'new-password' })
  })

  test('writing back a whole answer, status and server metadata included, changes nothing', async () => {
    await send(api.app, 'POST', '/api/v1/plugins', { body: withSecrets() })
    const read = await send(api.app, 'GET', '/api/v1/plugins/echo')
    const answer = (await read.json()) as PluginAnswer
    const written = await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: answer, headers: { 'if-match': read.headers.get('etag')! } })
    expect(written.status).toBe(200)
    expect((await written.json()) as PluginAnswer).toEqual(answer)
    expect((await database.store.requirePlugin('echo')).environment).toEqual(environment)
  })

  test('*** for a secret the plugin does not have yet is refused (422)', async () => {
    await send(api.app, 'POST', '/api/v1/plugins', { body: withSecrets() })
    const response = await send(api.app, 'PATCH', '/api/v1/plugins/echo', { body: { spec: { environment: { NEW_TOKEN: '***' } } }, contentType: 'application/merge-patch+json' })
    expect(response.status).toBe(422)
    expect((await errorOf(response)).error.details[0]?.field).toBe('spec.environment.NEW_TOKEN')
  })
})
