// Secrets stay secret in every API answer: by key name in the environment and at any depth of
// config, by the look of the value, and by value (a copy of a secret under a harmless name);
// sent back as *** they keep the stored value; a write cannot make a hidden value show.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, pluginDocument, send, type ApiHarness, type PluginAnswer } from './api-harness.js'

const SECRET = 'hunter2-s3cr3t-value'
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----'
const mergePatch = 'application/merge-patch+json'

describe('secrets in API answers', () => {
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

  const secretSpec = () => ({
    environment: {
      DB_PASSWORD: SECRET,
      DATABASE_URL: `postgres://app:${SECRET}@db:5432/app`,
      PASSWD: 'plain-passwd',
      PRIVATE_KEY_PEM: PEM,
      CREDENTIALS: 'user:pw',
      LICENSE: 'licensed-to-acme',
      GREETING: SECRET,
      PUBLIC_URL: 'https://example.com/app',
      MODE: 'fast',
    },
    config: {
      rounds: 12,
      database: { host: 'db', password: SECRET, url: `mysql://root:${SECRET}@db/app` },
      credentials: { user: 'svc', token: 'tkn' },
      apiKey: 'k-123',
      note: SECRET,
      servers: [{ name: 'a', dsn: 'x' }],
    },
  })

  async function get(name: string): Promise<PluginAnswer & { spec: { config: Record<string, unknown> } }> {
    return (await (await send(api.app, 'GET', `/api/v1/plugins/${name}`)).json()) as PluginAnswer & { spec: { config: Record<string, unknown> } }
  }

  test('environment and config are redacted by name, by look and by value; other values show', async () => {
    const created = await send(api.app, 'PUT', '/api/v1/plugins/vault', { body: pluginDocument('vault', secretSpec(), {}) })
    expect(created.status).toBe(201)
    const text = await created.text()
    for (const value of [SECRET, 'plain-passwd', 'MIIEow', 'user:pw', 'tkn', 'k-123']) expect(text).not.toContain(value)
    const plugin = await get('vault')
    expect(plugin.spec.environment).toEqual({
      DB_PASSWORD: '***',
      DATABASE_URL: '***',
      PASSWD: '***',
      PRIVATE_KEY_PEM: '***',
      CREDENTIALS: '***',
      LICENSE: 'licensed-to-acme',
      GREETING: '***',
      PUBLIC_URL: 'https://example.com/app',
      MODE: 'fast',
    })
    expect(plugin.spec.config).toEqual({
      rounds: 12,
      database: { host: 'db', password: '***', url: '***' },
      credentials: '***',
      apiKey: '***',
      note: '***',
      servers: [{ name: 'a', dsn: '***' }],
    })
    const listed = await (await send(api.app, 'GET', '/api/v1/plugins')).text()
    expect(listed).not.toContain(SECRET)
    // The store keeps the real values (the container gets them).
    const stored = await database.store.requirePlugin('vault')
    expect(stored.environment.GREETING).toBe(SECRET)
    expect((stored.config.database as Record<string, unknown>).password).toBe(SECRET)
  })

  test('a document read and written back (*** and all) keeps every stored secret, in the environment and in config', async () => {
    await send(api.app, 'PUT', '/api/v1/plugins/vault', { body: pluginDocument('vault', secretSpec()) })
    const before = await database.store.requirePlugin('vault')
    const read = await get('vault')
    const document = { apiVersion: read.apiVersion, kind: read.kind, metadata: { name: 'vault' }, spec: { ...read.spec, config: { ...read.spec.config, rounds: 13 } } }
    const written = await send(api.app, 'PUT', '/api/v1/plugins/vault', { body: document })
    expect(written.status, await written.clone().text()).toBe(200)
    const after = await database.store.requirePlugin('vault')
    expect(after.environment).toEqual(before.environment)
    expect(after.config).toEqual({ ...before.config, rounds: 13 })
  })

  test('a new plugin cannot be given *** for a secret it has no value for', async () => {
    const answer = await send(api.app, 'PUT', '/api/v1/plugins/fresh', { body: pluginDocument('fresh', { config: { password: '***' } }) })
    expect(answer.status).toBe(422)
    expect(await answer.json()).toMatchObject({ error: { details: [{ field: 'spec.config.password' }] } })
  })

  test('a merge patch that sets manifest.secrets to null does not make the next GET show the value; sending the value does', async () => {
    await send(api.app, 'PUT', '/api/v1/plugins/licensed', {
      body: pluginDocument('licensed', { environment: { LICENSE: 'l-777', MODE: 'fast' } }),
    })
    await send(api.app, 'PATCH', '/api/v1/plugins/licensed', { body: { spec: { manifest: { secrets: ['LICENSE'] } } }, contentType: mergePatch })
    expect((await get('licensed')).spec.environment.LICENSE).toBe('***')

    const unhide = await send(api.app, 'PATCH', '/api/v1/plugins/licensed', { body: { spec: { manifest: { secrets: null } } }, contentType: mergePatch })
    expect(unhide.status).toBe(422)
    expect(await unhide.json()).toMatchObject({ error: { details: [{ field: 'spec.environment.LICENSE' }] } })
    expect((await get('licensed')).spec.environment.LICENSE).toBe('***')
    // A PUT sending *** back with the list emptied is the same request.
    const read = await get('licensed')
    const put = await send(api.app, 'PUT', '/api/v1/plugins/licensed', {
      body: { apiVersion: read.apiVersion, kind: read.kind, metadata: { name: 'licensed' }, spec: { ...read.spec, manifest: { ...read.spec.manifest, secrets: [] } } },
    })
    expect(put.status).toBe(422)
    expect((await get('licensed')).spec.environment.LICENSE).toBe('***')

    // Whoever sends the value with the change knows it: shown.
    const shown = await send(api.app, 'PATCH', '/api/v1/plugins/licensed', { body: { spec: { manifest: { secrets: null }, environment: { LICENSE: 'l-777' } } }, contentType: mergePatch })
    expect(shown.status).toBe(200)
    expect((await get('licensed')).spec.environment.LICENSE).toBe('l-777')
  })

  test('removing the secret a copy equals does not reveal the copy', async () => {
    await send(api.app, 'PUT', '/api/v1/plugins/copies', { body: pluginDocument('copies', { environment: { DB_PASSWORD: SECRET, GREETING: SECRET } }) })
    const removed = await send(api.app, 'PATCH', '/api/v1/plugins/copies', { body: { spec: { environment: { DB_PASSWORD: null } } }, contentType: mergePatch })
    expect(removed.status).toBe(422)
    expect(await removed.json()).toMatchObject({ error: { details: [{ field: 'spec.environment.GREETING' }] } })
    expect((await get('copies')).spec.environment).toEqual({ DB_PASSWORD: '***', GREETING: '***' })
  })

  test('a status error that quotes a secret value shows *** in its place', async () => {
    await send(api.app, 'PUT', '/api/v1/plugins/failing', { body: pluginDocument('failing', { environment: { API_TOKEN: SECRET } }) })
    const plugin = await database.store.requirePlugin('failing')
    await database.store.writeStatus(plugin.id, { status: 'error', error: `container exited: bad token ${SECRET}` })
    const answer = await get('failing')
    expect(answer.status.error).toBe('container exited: bad token ***')
  })
})
