// Work per request that does not grow with what a client asks for: /metrics answered from
// memory, logs read a bounded tail with a bounded number at once, and host ports inside
// HOST_PORT_RANGE; and what does not grow for ever: audit events and tombstones past
// EVENT_RETENTION.
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { AuditRetention } from '../../src/db/audit-retention.js'
import { countPlugins } from '../../src/db/plugin-counts.js'
import { silentLogger } from '../../src/logger.js'
import type { ContainerRuntime } from '../../src/runtime/container-runtime.js'
import { eventually, openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'
import { FakeClock } from '../helpers/fake-clock.js'
import { apiHarness, pluginDocument, send } from './api-harness.js'

describe('bounded work per request', () => {
  let database: TestDatabase
  let queries: string[] = []

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => {
    await database?.close()
  })
  beforeEach(async () => {
    await database.reset()
    queries = []
  })

  test('/metrics reads no plugin row: one grouped count after a change, none while nothing changes', async () => {
    const counted: string[] = []
    const api = apiHarness(database, {
      countPlugins: () => {
        counted.push('count')
        return countPlugins(database.handle.db)
      },
      // Any listing of full rows on a scrape would show here.
      store: new Proxy(database.store, {
        get(target, property, receiver) {
          if (property === 'listPlugins') queries.push('listPlugins')
          const value = Reflect.get(target, property, receiver) as unknown
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
        },
      }),
    })
    for (const name of ['a', 'b', 'c']) await database.store.createPlugin({ forgehookId: name, source: 'api', manifest: sampleManifest(name) })
    const first = await (await send(api.app, 'GET', '/metrics')).text()
    expect(first).toContain('flowforge_plugins{phase="installing"} 3')
    for (let scrape = 0; scrape < 20; scrape++) await (await send(api.app, 'GET', '/metrics')).text()
    expect(counted).toHaveLength(1)
    expect(queries).toEqual([])
    // A change is seen at the next scrape (after the 2 s floor between counts).
    const stopped = await database.store.requirePlugin('a')
    await database.store.writeStatus(stopped.id, { status: 'stopped' })
    const after = await eventually(
      async () => {
        const text = await (await send(api.app, 'GET', '/metrics')).text()
        return text.includes('flowforge_plugins{phase="stopped"} 1') ? text : undefined
      },
      5_000,
      'the status change in /metrics',
    )
    expect(after).toContain('flowforge_plugins{phase="installing"} 2')
    expect(counted.length).toBeLessThanOrEqual(3)
    expect(queries).toEqual([])
  })

  test('spec.hostPort must be inside HOST_PORT_RANGE, unless ALLOW_ANY_HOST_PORT', async () => {
    const api = apiHarness(database)
    const outside = await send(api.app, 'PUT', '/api/v1/plugins/ssh', { body: pluginDocument('ssh', { hostPort: 22 }) })
    expect(outside.status).toBe(422)
    expect(await outside.json()).toMatchObject({ error: { details: [{ field: 'spec.hostPort', message: expect.stringContaining('HOST_PORT_RANGE 4100-4999') }] } })
    expect((await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('pg', { hostPort: 5432 }) })).status).toBe(422)
    expect((await send(api.app, 'PUT', '/api/v1/plugins/inside', { body: pluginDocument('inside', { hostPort: 4105 }) })).status).toBe(201)
    const patched = await send(api.app, 'PATCH', '/api/v1/plugins/inside', { body: { spec: { hostPort: 4000 } }, contentType: 'application/merge-patch+json' })
    expect(patched.status).toBe(422)
    expect((await database.store.requirePlugin('inside')).requestedHostPort).toBe(4105)
    expect(await database.store.getPlugin('ssh')).toBeUndefined()

    const anyPort = apiHarness(database, { hostPorts: { range: { from: 4100, to: 4999 }, allowAny: true } })
    expect((await send(anyPort.app, 'PUT', '/api/v1/plugins/ssh', { body: pluginDocument('ssh', { hostPort: 2222 }) })).status).toBe(201)
  })

  test('logs: tail at most 1,000, default 100; at most 4 reads at once, the fifth a 503', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'chatty', source: 'api', manifest: sampleManifest('chatty') })
    await database.store.writeStatus(plugin.id, { status: 'running', containerId: 'c-chatty' })
    const tails: number[] = []
    let release: () => void = () => undefined
    const held = new Promise<void>((resolve) => (release = resolve))
    const runtime = {
      logs: async (_containerId: string, options: { tail: number }) => {
        tails.push(options.tail)
        await held
        return 'line\n'
      },
    } as unknown as ContainerRuntime
    const api = apiHarness(database, { runtime })
    expect((await send(api.app, 'GET', '/api/v1/plugins/chatty/logs?tail=1001')).status).toBe(400)
    const reading = Array.from({ length: 4 }, () => send(api.app, 'GET', '/api/v1/plugins/chatty/logs'))
    await eventually(() => (tails.length === 4 ? true : undefined), 2_000, 'four reads in flight')
    const fifth = await send(api.app, 'GET', '/api/v1/plugins/chatty/logs?tail=1000')
    expect(fifth.status).toBe(503)
    expect(await fifth.json()).toMatchObject({ error: { code: 'too_many_log_reads' } })
    release()
    for (const answer of await Promise.all(reading)) expect(answer.status).toBe(200)
    expect(tails).toEqual([100, 100, 100, 100])
    expect((await send(api.app, 'GET', '/api/v1/plugins/chatty/logs?tail=1000')).status).toBe(200)
    expect(tails.at(-1)).toBe(1000)
  })

  test('audit events and tombstones older than EVENT_RETENTION are deleted in batches; newer ones stay', async () => {
    const clock = new FakeClock(Date.parse('2027-06-01T00:00:00Z'))
    const day = 24 * 3600 * 1000
    const old = new Date(clock.now() - 91 * day)
    const recent = new Date(clock.now() - 89 * day)
    await sql`INSERT INTO plugin_events (forgehook_id, event_type, data, "timestamp")
      SELECT 'gone-' || n, 'plugin:installed', '{}', ${old} FROM generate_series(1, 2500) AS n`.execute(database.handle.db)
    await sql`INSERT INTO plugin_events (forgehook_id, event_type, data, "timestamp") VALUES ('kept', 'plugin:installed', '{}', ${recent})`.execute(database.handle.db)
    await sql`INSERT INTO plugin_tombstones (plugin_id, forgehook_id, deleted_at) VALUES (gen_random_uuid(), 'old', ${old}), (gen_random_uuid(), 'new', ${recent})`.execute(database.handle.db)
    const retention = new AuditRetention({ db: database.handle.db, clock, logger: silentLogger(), retentionMs: 90 * day })
    expect(await retention.pruneOnce()).toEqual({ events: 2500, tombstones: 1 })
    const events = await database.store.listEvents({ limit: 1000 })
    expect(events.items.map((event) => event.forgehookId)).toEqual(['kept'])
    const tombstones = await sql<{ forgehook_id: string }>`SELECT forgehook_id FROM plugin_tombstones`.execute(database.handle.db)
    expect(tombstones.rows.map((row) => row.forgehook_id)).toEqual(['new'])
    expect(await retention.pruneOnce()).toEqual({ events: 0, tombstones: 0 })
  })
})
