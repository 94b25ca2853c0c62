// GET /api/v1/plugins answered from the list cache: read-your-writes, invalidation by the
// change feed (status writes, plain SQL, resync), ETag/304, and the cache's own rules
// (src/api/list-cache.ts) tested deterministically with a hand-driven change source.
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { ListCache, type ChangeSource, type SerializedList } from '../../src/api/list-cache.js'
import type { ChangeFeed, ChangeListener } from '../../src/db/change-feed.js'
import { PluginStore } from '../../src/db/plugin-store.js'
import { LISTEN_APPLICATION_NAME, type PostgresChangeFeed } from '../../src/db/postgres.js'
import { silentLogger } from '../../src/logger.js'
import { adminQuery, engines, eventually, openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { FakeClock } from '../helpers/fake-clock.js'
import { apiHarness, pluginDocument, send, type ApiHarness, type PluginAnswer } from './api-harness.js'

interface ListAnswer {
  status: number
  etag: string | null
  items: PluginAnswer[]
}

async function list(api: ApiHarness, query = '', headers: Record<string, string> = {}): Promise<ListAnswer> {
  const response = await send(api.app, 'GET', `/api/v1/plugins${query}`, { headers })
  const text = await response.text()
  const items = response.status === 200 ? ((JSON.parse(text) as { items: PluginAnswer[] }).items) : []
  if (response.status === 304) expect(text).toBe('')
  return { status: response.status, etag: response.headers.get('etag'), items }
}

function phases(answer: ListAnswer): Record<string, string> {
  return Object.fromEntries(answer.items.map((plugin) => [plugin.metadata.name, plugin.status.phase]))
}

/** A feed that never delivers anything: only the API's own invalidation can keep lists current. */
function silentFeed(connected: boolean): ChangeFeed {
  return { subscribe: () => () => undefined, connected, close: async () => undefined }
}

describe.each(engines)('GET /api/v1/plugins from the list cache on %s Postgres', (engine) => {
  let database: TestDatabase
  let queries = 0
  let api: ApiHarness

  beforeAll(async () => {
    database = await openTestDatabase(engine, { sqlPortEphemeral: true, onQuery: () => void (queries += 1) })
  })
  afterAll(async () => {
    await database?.close()
  })
  beforeEach(async () => {
    await database.reset()
    // The Postgres feed connects in the background: nothing is cached before it listens.
    await eventually(() => (database.store.changeFeedConnected ? true : undefined), 10_000, 'the change feed')
    api = apiHarness(database)
  })

  /**
   * Lists until the same list again is served without a query. On Postgres the notifications
   * of earlier writes arrive after their answers and may drop the first list.
   */
  async function cachedList(harness: ApiHarness, query = ''): Promise<ListAnswer> {
    return eventually(async () => {
      const first = await list(harness, query)
      const before = queries
      const again = await list(harness, query)
      return queries === before && again.etag === first.etag ? again : undefined
    }, 5_000, 'a list served from the cache')
  }

  async function otherConnection(): Promise<pg.Client> {
    const client =
      engine === 'postgres'
        ? new pg.Client({ connectionString: database.connectionString })
        : new pg.Client({ host: '127.0.0.1', port: database.handle.sqlAddress!.port, user: 'postgres', database: 'postgres', password: database.handle.sqlPassword })
    client.on('error', () => undefined)
    await client.connect()
    return client
  }

  test('a list after a write answered by the API shows it, though no notification arrives', async () => {
    const store = new PluginStore(database.handle.db, silentFeed(true), silentLogger())
    const silent = apiHarness(database, { store })
    const write = async (method: string, path: string, body?: unknown, contentType?: string) => {
      await cachedList(silent)
      const response = await send(silent.app, method, path, { body, contentType })
      expect(response.status, `${method} ${path}`).toBeLessThan(300)
      return phases(await list(silent))
    }

    expect(await write('POST', '/api/v1/plugins', pluginDocument('alpha'))).toEqual({ alpha: 'installing' })
    expect(await write('PUT', '/api/v1/plugins/beta', pluginDocument('beta'))).toEqual({ alpha: 'installing', beta: 'installing' })
    await write('PUT', '/api/v1/plugins/beta', pluginDocument('beta', { state: 'stopped' }))
    expect((await list(silent, '?state=stopped')).items.map((plugin) => plugin.metadata.name)).toEqual(['beta'])
    await write('PATCH', '/api/v1/plugins/alpha', { spec: { config: { greeting: 'hi' } } }, 'application/merge-patch+json')
    expect((await list(silent)).items[0]?.spec.config).toEqual({ greeting: 'hi' })
    await write('POST', '/api/v1/plugins/alpha/stop')
    expect((await list(silent)).items[0]?.spec.state).toBe('stopped')
    await write('POST', '/api/v1/plugins/install', { manifest: { ...(pluginDocument('gamma').spec as { manifest: object }).manifest, id: 'gamma' }, autoStart: false })
    expect(await write('DELETE', '/api/v1/plugins/alpha')).toEqual({ alpha: 'uninstalling', beta: 'installing', gamma: 'installing' })
  })

  test('a status write through the store and a plain SQL UPDATE show up once their notification arrives', async () => {
    const created = await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('alpha') })
    const alpha = (await created.json()) as PluginAnswer
    expect(phases(await cachedList(api))).toEqual({ alpha: 'installing' })

    await database.store.writeStatus(alpha.metadata.uid, { status: 'running', healthStatus: 'healthy' })
    await eventually(async () => (phases(await list(api)).alpha === 'running' ? true : undefined), 5_000, 'the status write in the list')

    await cachedList(api)
    const client = await otherConnection()
    try {
      await client.query(`UPDATE plugins SET status = 'error', error = 'set by hand' WHERE forgehook_id = 'alpha'`)
    } finally {
      await client.end()
    }
    const shown = await eventually(async () => (await list(api)).items.find((plugin) => plugin.status.phase === 'error'), 5_000, 'the SQL update in the list')
    expect(shown.status.error).toBe('set by hand')
  })

  test('If-None-Match answers 304 while the list is unchanged and 200 with a new ETag once it changed', async () => {
    await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('alpha') })
    await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('beta', { state: 'stopped' }) })
    const all = await list(api)
    expect(all.status).toBe(200)
    expect(all.etag).toMatch(/^"[A-Za-z0-9_-]+"$/)
    for (const header of [all.etag!, `W/${all.etag!}`, `"stale", ${all.etag!}`, '*']) {
      const unchanged = await list(api, '', { 'if-none-match': header })
      expect(unchanged.status, header).toBe(304)
      expect(unchanged.etag).toBe(all.etag)
    }
    expect((await list(api, '', { 'if-none-match': '"stale"' })).status).toBe(200)
    const stopped = await list(api, '?state=stopped')
    expect(stopped.etag).not.toBe(all.etag)

    await send(api.app, 'PATCH', '/api/v1/plugins/alpha', { body: { spec: { config: { greeting: 'hi' } } }, contentType: 'application/merge-patch+json' })
    const changed = await list(api, '', { 'if-none-match': all.etag! })
    expect(changed.status).toBe(200)
    expect(changed.etag).not.toBe(all.etag)
    expect(changed.items[0]?.spec.config).toEqual({ greeting: 'hi' })
    // The ETag is a digest of the body: a list that alpha's change does not touch stays current.
    expect((await list(api, '?state=stopped', { 'if-none-match': stopped.etag! })).status).toBe(304)
  })

  test('one filter written in any order or repetition is one cache entry', async () => {
    await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('alpha') })
    const first = await list(api, '?status=pending,running&health=unknown')
    const before = queries
    const same = await list(api, '?health=unknown&status=running&status=pending,running')
    expect(queries).toBe(before)
    expect(same.etag).toBe(first.etag)
  })

  test('nothing is cached while the change feed is not connected', async () => {
    const store = new PluginStore(database.handle.db, silentFeed(false), silentLogger())
    const disconnected = apiHarness(database, { store })
    await send(disconnected.app, 'POST', '/api/v1/plugins', { body: pluginDocument('alpha') })
    await list(disconnected)
    const before = queries
    await database.store.writeStatus((await database.store.requirePlugin('alpha')).id, { status: 'stopped' })
    expect(phases(await list(disconnected))).toEqual({ alpha: 'stopped' })
    expect(queries).toBeGreaterThan(before + 1)
  })

  // The server's case alone: the embedded engine's change feed is in-process, with no
  // connection to lose (registered only there, so no run reports it as skipped).
  if (engine === 'postgres') test('after the LISTEN connection is lost and back, a cached list is read again', async () => {
    await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('alpha') })
    await cachedList(api)
    const feed = database.handle.changes as PostgresChangeFeed
    const reconnects = feed.reconnects
    const databaseName = new URL(database.connectionString!).pathname.slice(1)
    await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${databaseName}' AND application_name = '${LISTEN_APPLICATION_NAME}'`)
    await eventually(() => (feed.reconnects > reconnects && feed.connected ? true : undefined), 10_000, 'the LISTEN connection back')
    const before = queries
    await list(api)
    expect(queries, 'the resync dropped the cached list').toBeGreaterThan(before)
  })
})

describe('ListCache', () => {
  const text = new TextDecoder()
  const bodyOf = (list: SerializedList) => text.decode(list.body)

  class HandDrivenSource implements ChangeSource {
    changeFeedConnected = true
    readonly listeners = new Set<ChangeListener>()
    subscribe(listener: ChangeListener): () => void {
      this.listeners.add(listener)
      return () => this.listeners.delete(listener)
    }
    change(): void {
      for (const listener of this.listeners) listener.onChange({ op: 'update', id: 'id', name: 'alpha', generation: 1, resourceVersion: 2, spec: false })
    }
    resync(): void {
      for (const listener of this.listeners) listener.onResync('the LISTEN connection was re-established')
    }
  }

  /** A render function that counts its calls. */
  function renderer(json: string) {
    const render = async () => {
      render.calls += 1
      return json
    }
    render.calls = 0
    return render
  }

  /** A render that answers when told to. */
  function pendingRender() {
    let answer: (json: string) => void = () => undefined
    const result = new Promise<string>((resolve) => (answer = resolve))
    return { render: () => result, answer }
  }

  let source: HandDrivenSource
  let clock: FakeClock
  let cache: ListCache

  beforeEach(() => {
    source = new HandDrivenSource()
    clock = new FakeClock()
    cache = new ListCache(source, { clock })
  })

  test('keeps a body until the feed reports a change', async () => {
    const render = renderer('{"items":[1]}')
    await cache.read('all', render)
    expect(bodyOf(await cache.read('all', render))).toBe('{"items":[1]}')
    expect(render.calls).toBe(1)
    source.change()
    await cache.read('all', render)
    expect(render.calls).toBe(2)
  })

  test('a resync of the feed drops every body', async () => {
    const all = renderer('{"items":[1,2]}')
    const stopped = renderer('{"items":[2]}')
    await cache.read('all', all)
    await cache.read('stopped', stopped)
    expect(cache.size).toBe(2)
    source.resync()
    expect(cache.size).toBe(0)
    await cache.read('all', all)
    await cache.read('stopped', stopped)
    expect([all.calls, stopped.calls]).toEqual([2, 2])
  })

  test('a query that started before an invalidation is answered but not kept', async () => {
    const before = pendingRender()
    const reading = cache.read('all', before.render)
    source.change()
    before.answer('{"items":["old"]}')
    expect(bodyOf(await reading)).toBe('{"items":["old"]}')
    expect(cache.size).toBe(0)
    const after = renderer('{"items":["new"]}')
    expect(bodyOf(await cache.read('all', after))).toBe('{"items":["new"]}')
    expect(after.calls).toBe(1)
  })

  test('concurrent reads share one query, but a read after an invalidation starts its own', async () => {
    const first = pendingRender()
    const reading = cache.read('all', first.render)
    const joining = renderer('{"items":["joined"]}')
    const joined = cache.read('all', joining)
    cache.invalidate()
    const fresh = renderer('{"items":["new"]}')
    const afterInvalidation = cache.read('all', fresh)
    first.answer('{"items":["old"]}')
    expect(bodyOf(await joined)).toBe('{"items":["old"]}')
    expect(joining.calls).toBe(0)
    expect(bodyOf(await afterInvalidation)).toBe('{"items":["new"]}')
    expect(bodyOf(await reading)).toBe('{"items":["old"]}')
    // The newer query's body is the one kept.
    expect(bodyOf(await cache.read('all', renderer('unused')))).toBe('{"items":["new"]}')
  })

  test('caches nothing while the feed is not connected, nor a body whose query started before it connected', async () => {
    source.changeFeedConnected = false
    const render = renderer('{"items":[]}')
    await cache.read('all', render)
    await cache.read('all', render)
    expect(render.calls).toBe(2)

    const pending = pendingRender()
    const reading = cache.read('all', pending.render)
    source.changeFeedConnected = true
    pending.answer('{"items":[]}')
    await reading
    expect(cache.size).toBe(0)
  })

  test('a failed query is not kept, and every read that joined it gets the error', async () => {
    const failing = async () => {
      throw new Error('database gone')
    }
    await expect(Promise.all([cache.read('all', failing), cache.read('all', failing)])).rejects.toThrow('database gone')
    expect(cache.size).toBe(0)
    expect(bodyOf(await cache.read('all', renderer('{"items":[]}')))).toBe('{"items":[]}')
  })

  test('keeps at most maxEntries bodies, dropping the least recently used', async () => {
    cache = new ListCache(source, { clock, maxEntries: 2 })
    const renders = { a: renderer('"a"'), b: renderer('"b"'), c: renderer('"c"') }
    await cache.read('a', renders.a)
    await cache.read('b', renders.b)
    await cache.read('a', renders.a)
    await cache.read('c', renders.c)
    expect(cache.size).toBe(2)
    await cache.read('a', renders.a)
    await cache.read('b', renders.b)
    expect([renders.a.calls, renders.b.calls, renders.c.calls]).toEqual([1, 2, 1])
  })

  test('reads a body again once it is maxAgeMs old', async () => {
    cache = new ListCache(source, { clock, maxAgeMs: 1_000 })
    const render = renderer('{"items":[]}')
    await cache.read('all', render)
    clock.advance(999)
    await cache.read('all', render)
    expect(render.calls).toBe(1)
    clock.advance(1)
    await cache.read('all', render)
    expect(render.calls).toBe(2)
  })

  test('equal bodies have equal ETags and different bodies different ones', async () => {
    const first = await cache.read('a', renderer('{"items":[1]}'))
    const same = await cache.read('b', renderer('{"items":[1]}'))
    const other = await cache.read('c', renderer('{"items":[2]}'))
    expect(same.etag).toBe(first.etag)
    expect(other.etag).not.toBe(first.etag)
  })

  test('after close it stops listening and caches nothing', async () => {
    cache.close()
    expect(source.listeners.size).toBe(0)
    const render = renderer('{"items":[]}')
    await cache.read('all', render)
    await cache.read('all', render)
    expect(render.calls).toBe(2)
  })
})
