// Group commit in the store: many workers' reads and status writes at once, on embedded
// Postgres and a real server. What a caller sees must not depend on who shared its statement.
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { PluginChange } from '../../src/db/change-feed.js'
import { EventBus } from '../../src/db/event-bus.js'
import { PluginStore, type Plugin } from '../../src/db/plugin-store.js'
import { StatementBatcher } from '../../src/db/statement-batcher.js'
import { silentLogger } from '../../src/logger.js'
import { engines, eventually, openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'

const PLUGINS = 40

describe.each(engines)('batched store statements on %s Postgres', (engine) => {
  let database: TestDatabase
  const changes: PluginChange[] = []
  let unsubscribe: () => void
  let queries = 0

  beforeAll(async () => {
    database = await openTestDatabase(engine, { onQuery: () => (queries += 1) })
    unsubscribe = database.store.subscribe({ onChange: (change) => changes.push(change), onResync: () => undefined })
  })
  afterAll(async () => {
    unsubscribe?.()
    await database?.close()
  })
  beforeEach(async () => {
    await database.reset()
    changes.length = 0
  })

  async function createMany(prefix: string): Promise<Plugin[]> {
    const created: Plugin[] = []
    for (let index = 0; index < PLUGINS; index++) created.push(await database.store.createPlugin({ forgehookId: `${prefix}-${index}`, source: 'api', manifest: sampleManifest(`${prefix}${index}`) }))
    return created
  }

  test('concurrent reads by id each get their own row, and a missing one nothing', async () => {
    const plugins = await createMany('read')
    const missing = '00000000-0000-4000-8000-000000000000'
    const read = await Promise.all([...plugins.map((plugin) => database.store.getPlugin(plugin.id)), database.store.getPlugin(missing)])
    expect(read.slice(0, PLUGINS).map((plugin) => plugin?.forgehookId)).toEqual(plugins.map((plugin) => plugin.forgehookId))
    expect(read[PLUGINS]).toBeUndefined()
  })

  test('concurrent status writes with different columns each write their own, and every row notifies', async () => {
    const plugins = await createMany('write')
    const startedAt = new Date('2026-03-04T05:06:07Z')
    const queriesBefore = queries
    const written = await Promise.all(
      plugins.map((plugin, index) =>
        index % 2 === 0
          ? database.store.writeStatus(plugin.id, { status: 'running', containerId: `c${index}`, hostPort: 7000 + index, startedAt, observedGeneration: 1 })
          : database.store.writeStatus(plugin.id, { status: 'error', error: `broken ${index}` }),
      ),
    )
    // The first goes alone; the rest wait for it and share statements.
    expect(queries - queriesBefore).toBeLessThanOrEqual(3)
    for (const [index, plugin] of written.entries()) {
      if (index % 2 === 0) expect(plugin).toMatchObject({ status: 'running', containerId: `c${index}`, hostPort: 7000 + index, observedGeneration: 1, error: null })
      else expect(plugin).toMatchObject({ status: 'error', error: `broken ${index}`, hostPort: null })
      expect(plugin?.generation).toBe(1)
    }
    expect(written[0]?.startedAt?.toISOString()).toBe(startedAt.toISOString())
    const stored = await database.store.listPlugins()
    expect(stored.filter((plugin) => plugin.status === 'running')).toHaveLength(PLUGINS / 2)
    await eventually(() => (changes.filter((change) => change.op === 'update' && !change.spec).length >= PLUGINS ? true : undefined), 5_000, 'a notification per row')
  })

  test('reads, status writes and status with events asked at once share statements, each answered as asked', async () => {
    const plugins = await createMany('mixed')
    const published: string[] = []
    const bus = new EventBus()
    bus.subscribe((event) => published.push(`${event.forgehookId}:${event.type}`))
    const store = new PluginStore(database.handle.db, database.handle.changes, silentLogger(), bus)
    const queriesBefore = queries
    const answers = await Promise.all(
      plugins.map((plugin, index) => {
        if (index % 3 === 0) return store.getPlugin(plugin.id)
        if (index % 3 === 1) return store.writeStatus(plugin.id, { status: 'starting', containerId: `m${index}` })
        return store.writeStatusWithEvents(plugin.id, { status: 'running', observedGeneration: 1 }, [{ pluginId: plugin.id, forgehookId: plugin.forgehookId, type: 'plugin:started' }])
      }),
    )
    // The first goes alone; the rest, of all three kinds, wait for it and go out together.
    expect(queries - queriesBefore).toBeLessThanOrEqual(3)
    for (const [index, answer] of answers.entries()) {
      if (index % 3 === 0) expect(answer).toMatchObject({ id: plugins[index]!.id, status: 'installing' })
      if (index % 3 === 1) expect(answer).toMatchObject({ id: plugins[index]!.id, status: 'starting', containerId: `m${index}` })
    }
    const running = (await store.listPlugins({ status: 'running' })).map((plugin) => plugin.forgehookId).sort()
    const expected = plugins.filter((_, index) => index % 3 === 2).map((plugin) => plugin.forgehookId).sort()
    expect(running).toEqual(expected)
    expect(published.sort()).toEqual(expected.map((name) => `${name}:plugin:started`).sort())
    const events = await store.listEvents({ types: ['plugin:started'], limit: 1000 })
    expect(events.items.map((event) => event.forgehookId).sort()).toEqual(expected)
    expect(events.items.every((event) => event.timestamp instanceof Date && !Number.isNaN(event.timestamp.getTime()))).toBe(true)
  })

  test('a host port taken in a batch fails only the plugin that asked for it', async () => {
    const plugins = await createMany('port')
    await database.store.writeStatus(plugins[0]!.id, { hostPort: 7100 })
    const results = await Promise.allSettled(plugins.slice(1).map((plugin, index) => database.store.writeStatus(plugin.id, { hostPort: index === 5 ? 7100 : 7200 + index })))
    const failed = results.flatMap((result, index) => (result.status === 'rejected' ? [{ index, reason: String(result.reason) }] : []))
    expect(failed).toEqual([{ index: 5, reason: expect.stringMatching(/already assigned/) }])
    expect((await database.store.getPlugin(plugins[6]!.id))?.hostPort).toBeNull()
    expect((await database.store.getPlugin(plugins[7]!.id))?.hostPort).toBe(7206)
  })

  test('concurrent status-with-events writes record every event with its status, in order', async () => {
    const plugins = await createMany('record')
    await Promise.all(
      plugins.map((plugin, index) =>
        database.store.writeStatusWithEvents(plugin.id, { status: 'running', containerId: `r${index}`, observedGeneration: 1 }, [
          { pluginId: plugin.id, forgehookId: plugin.forgehookId, type: 'plugin:created', data: { index } },
          { pluginId: plugin.id, forgehookId: plugin.forgehookId, type: 'plugin:started', data: { index } },
        ]),
      ),
    )
    const stored = await database.store.listPlugins()
    expect(stored.every((plugin) => plugin.status === 'running' && plugin.containerId?.startsWith('r'))).toBe(true)
    for (const plugin of plugins) {
      const events = await database.store.listEvents({ pluginId: plugin.id, order: 'asc' })
      expect(events.items.map((event) => event.type)).toEqual(['plugin:created', 'plugin:started'])
    }
  })

  test('a plugin deleted before its write fails alone: the others of its batch are written with their events', async () => {
    const plugins = await createMany('gone')
    const gone = plugins[3]!
    await database.store.deletePlugin(gone.id)
    await Promise.all(
      plugins.map((plugin) =>
        database.store.writeStatusWithEvents(plugin.id, { status: 'running', observedGeneration: 1 }, [{ pluginId: plugin.id, forgehookId: plugin.forgehookId, type: 'plugin:started' }]),
      ),
    )
    expect(await database.store.listPlugins({ status: 'running' })).toHaveLength(PLUGINS - 1)
    const events = await database.store.listEvents({ types: ['plugin:started'], limit: 1000 })
    expect(events.items).toHaveLength(PLUGINS - 1)
    // Its own event names a row that is gone: refused by the foreign key and logged, as unbatched.
    expect(events.items.some((event) => event.forgehookId === gone.forgehookId)).toBe(false)
  })
})

describe.skipIf(!engines.includes('postgres'))('batched store statements and other sessions on a Postgres server', () => {
  let database: TestDatabase

  beforeAll(async () => {
    database = await openTestDatabase('postgres')
  })
  afterAll(async () => {
    await database?.close()
  })

  test('a row another session holds locked delays only its own write, not the batch it came with', async () => {
    const plugins: Plugin[] = []
    for (let index = 0; index < 10; index++) plugins.push(await database.store.createPlugin({ forgehookId: `locked-${index}`, source: 'api', manifest: sampleManifest(`locked${index}`) }))
    const locker = new pg.Client({ connectionString: database.connectionString })
    await locker.connect()
    try {
      await locker.query('BEGIN')
      await locker.query('SELECT id FROM plugins WHERE id = $1 FOR UPDATE', [plugins[0]!.id])
      // The locked row's write goes first; the others arrive while it is in flight.
      const lockedWrite = database.store.writeStatus(plugins[0]!.id, { status: 'running' })
      const started = Date.now()
      const others = await Promise.all(plugins.slice(1).map((plugin) => database.store.writeStatus(plugin.id, { status: 'running' })))
      expect(Date.now() - started).toBeLessThan(2_000)
      expect(others.every((plugin) => plugin?.status === 'running')).toBe(true)
      const settled = await Promise.race([lockedWrite.then(() => 'written'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 300))])
      expect(settled).toBe('waiting')
      await locker.query('COMMIT')
      expect((await lockedWrite)?.status).toBe('running')
    } finally {
      await locker.end()
    }
  })
})

describe('the statement batcher', () => {
  test('callers the last statement answered reach the next one: workers that go on asking share every statement', async () => {
    const sizes: number[] = []
    const batcher = new StatementBatcher<number, number>({
      maxBatch: 64,
      many: async (requests) => {
        sizes.push(requests.length)
        await new Promise((resolve) => setTimeout(resolve, 2))
        return requests.map((request) => request * 2)
      },
      one: async (request) => request * 2,
    })
    // Eight workers, three requests each, with a few awaits between them as a reconcile has.
    const worker = async (id: number) => {
      const answers: number[] = []
      for (let step = 0; step < 3; step++) {
        answers.push(await batcher.submit(id * 10 + step))
        for (let hop = 0; hop < 5; hop++) await Promise.resolve()
      }
      return answers
    }
    const answers = await Promise.all(Array.from({ length: 8 }, (_, id) => worker(id)))
    expect(answers[3]).toEqual([60, 62, 64])
    // Without the turn before each statement the answered callers miss it: 4 and 4, alternating.
    expect(sizes).toEqual([8, 8, 8])
  })
})
