// The store suite: the same tests on embedded Postgres (PGlite) and on a real server.
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { PluginChange } from '../../src/db/change-feed.js'
import { AlreadyExistsError, ConflictError, InvalidValueError, NotFoundError } from '../../src/db/errors.js'
import { engines, eventually, inCi, openTestDatabase, postgresUrl, sampleManifest, type TestDatabase } from '../helpers/databases.js'

test('a Postgres server is configured when running under CI', () => {
  // Under CI the store suite must also run on a real server: a missing one is a failure.
  if (inCi) expect(postgresUrl, 'TEST_DATABASE_URL must be set when CI=true').toBeTruthy()
  else expect(engines).toContain('embedded')
})

describe.each(engines)('plugin store on %s Postgres', (engine) => {
  let database: TestDatabase
  const changes: PluginChange[] = []
  let unsubscribe: () => void

  beforeAll(async () => {
    database = await openTestDatabase(engine)
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

  test('creates a plugin with spec defaults and an initial status', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'crypto-service', source: 'api', manifest: sampleManifest('crypto') })
    expect(plugin.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(plugin).toMatchObject({
      forgehookId: 'crypto-service',
      source: 'api',
      desiredState: 'running',
      config: {},
      environment: {},
      labels: {},
      status: 'installing',
      healthStatus: 'unknown',
      generation: 1,
      observedGeneration: 0,
      restartCount: 0,
      hostPort: null,
      deletionRequestedAt: null,
    })
    expect(plugin.manifest).toEqual(sampleManifest('crypto'))
    expect(typeof plugin.resourceVersion).toBe('number')
    expect(plugin.createdAt).toBeInstanceOf(Date)
  })

  test('refuses a second plugin with the same name', async () => {
    await database.store.createPlugin({ forgehookId: 'dup', source: 'api', manifest: sampleManifest('dup') })
    await expect(database.store.createPlugin({ forgehookId: 'dup', source: 'sql', manifest: sampleManifest('dup') })).rejects.toBeInstanceOf(
      AlreadyExistsError,
    )
  })

  test('refuses a name that is not a DNS label, naming the rule', async () => {
    const attempt = database.store.createPlugin({ forgehookId: '../etc', source: 'api', manifest: sampleManifest('x') })
    await expect(attempt).rejects.toBeInstanceOf(InvalidValueError)
    await expect(attempt).rejects.toThrow(/DNS label/)
    expect(await database.store.listPlugins()).toHaveLength(0)
  })

  test('finds a plugin by uuid and by name, and reports a missing one', async () => {
    const created = await database.store.createPlugin({ forgehookId: 'finder', source: 'api', manifest: sampleManifest('finder') })
    expect((await database.store.getPlugin(created.id))?.forgehookId).toBe('finder')
    expect((await database.store.getPlugin('finder'))?.id).toBe(created.id)
    expect(await database.store.getPlugin('nobody')).toBeUndefined()
    await expect(database.store.requirePlugin('nobody')).rejects.toBeInstanceOf(NotFoundError)
  })

  test('lists plugins filtered by status, health and desired state', async () => {
    const a = await database.store.createPlugin({ forgehookId: 'a', source: 'api', manifest: sampleManifest('a') })
    const b = await database.store.createPlugin({ forgehookId: 'b', source: 'api', manifest: sampleManifest('b'), desiredState: 'stopped' })
    await database.store.createPlugin({ forgehookId: 'c', source: 'api', manifest: sampleManifest('c') })
    await database.store.writeStatus(a.id, { status: 'running', healthStatus: 'healthy' })
    await database.store.writeStatus(b.id, { status: 'stopped', healthStatus: 'unhealthy' })

    const names = (list: { forgehookId: string }[]) => list.map((plugin) => plugin.forgehookId)
    expect(names(await database.store.listPlugins())).toEqual(['a', 'b', 'c'])
    expect(names(await database.store.listPlugins({ status: 'running' }))).toEqual(['a'])
    expect(names(await database.store.listPlugins({ status: ['running', 'installing'] }))).toEqual(['a', 'c'])
    expect(names(await database.store.listPlugins({ health: 'unhealthy' }))).toEqual(['b'])
    expect(names(await database.store.listPlugins({ desiredState: 'stopped' }))).toEqual(['b'])
  })

  test('the periodic rounds read running plugins narrowly, and manifests only of the generations asked for', async () => {
    const a = await database.store.createPlugin({ forgehookId: 'run-a', source: 'api', manifest: sampleManifest('run-a') })
    const b = await database.store.createPlugin({ forgehookId: 'run-b', source: 'api', manifest: sampleManifest('run-b') })
    await database.store.createPlugin({ forgehookId: 'run-c', source: 'api', manifest: sampleManifest('run-c') })
    await database.store.writeStatus(b.id, { status: 'running', hostPort: 4711, healthStatus: 'healthy' })
    await database.store.writeStatus(a.id, { status: 'running', hostPort: null })

    expect(await database.store.listRunningPlugins()).toEqual([
      { id: a.id, forgehookId: 'run-a', hostPort: null, healthStatus: 'unknown', generation: 1 },
      { id: b.id, forgehookId: 'run-b', hostPort: 4711, healthStatus: 'healthy', generation: 1 },
    ])

    const changed = await database.store.updateSpec('run-b', { manifest: { ...sampleManifest('run-b'), healthCheck: { path: '/ready' } } })
    const manifests = await database.store.manifestsOf([b.id, '00000000-0000-4000-8000-000000000000'])
    expect([...manifests.keys()]).toEqual([b.id])
    expect(manifests.get(b.id)).toEqual({ generation: changed.generation, manifest: changed.manifest })
    expect(await database.store.manifestsOf([])).toEqual(new Map())
  })

  test('a spec change bumps generation; a status write does not', async () => {
    const created = await database.store.createPlugin({ forgehookId: 'gen', source: 'api', manifest: sampleManifest('gen') })
    const statusWritten = await database.store.writeStatus(created.id, { status: 'running', observedGeneration: 1 })
    expect(statusWritten?.generation).toBe(1)
    expect(statusWritten!.resourceVersion).toBeGreaterThan(created.resourceVersion)

    const stopped = await database.store.updateSpec('gen', { desiredState: 'stopped' })
    expect(stopped.generation).toBe(2)
    expect(stopped.observedGeneration).toBe(1)
    expect(stopped.status).toBe('running')

    const sameAgain = await database.store.updateSpec('gen', { desiredState: 'stopped' })
    expect(sameAgain.generation).toBe(2)

    const newConfig = await database.store.updateSpec(created.id, { config: { rounds: 12 }, labels: { team: 'payments' } })
    expect(newConfig.generation).toBe(3)
    expect(newConfig.config).toEqual({ rounds: 12 })
    expect(newConfig.labels).toEqual({ team: 'payments' })
  })

  test('a plain SQL update of a spec column bumps generation and resource version', async () => {
    const created = await database.store.createPlugin({ forgehookId: 'by-sql', source: 'api', manifest: sampleManifest('sql') })
    await sql`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'by-sql'`.execute(database.handle.db)
    const after = await database.store.requirePlugin('by-sql')
    expect(after.generation).toBe(2)
    expect(after.resourceVersion).toBeGreaterThan(created.resourceVersion)
    expect(after.updatedAt.getTime()).toBeGreaterThanOrEqual(created.updatedAt.getTime())
  })

  test('generation cannot be set by hand', async () => {
    await database.store.createPlugin({ forgehookId: 'fixed', source: 'api', manifest: sampleManifest('fixed') })
    await sql`UPDATE plugins SET generation = 99 WHERE forgehook_id = 'fixed'`.execute(database.handle.db)
    expect((await database.store.requirePlugin('fixed')).generation).toBe(1)
  })

  test('an update with a stale resource version is refused with a conflict', async () => {
    const created = await database.store.createPlugin({ forgehookId: 'occ', source: 'api', manifest: sampleManifest('occ') })
    const first = await database.store.updateSpec('occ', { config: { a: 1 } }, { expectedResourceVersion: created.resourceVersion })
    expect(first.config).toEqual({ a: 1 })
    const stale = database.store.updateSpec('occ', { config: { a: 2 } }, { expectedResourceVersion: created.resourceVersion })
    await expect(stale).rejects.toBeInstanceOf(ConflictError)
    await expect(stale).rejects.toThrow(new RegExp(`current is ${first.resourceVersion}`))
    expect((await database.store.requirePlugin('occ')).config).toEqual({ a: 1 })
  })

  test('updating a plugin that does not exist is a not-found error', async () => {
    await expect(database.store.updateSpec('ghost', { desiredState: 'stopped' })).rejects.toBeInstanceOf(NotFoundError)
  })

  test('writes status columns and leaves the spec alone', async () => {
    const created = await database.store.createPlugin({ forgehookId: 'status', source: 'api', manifest: sampleManifest('status') })
    const startedAt = new Date('2026-01-02T03:04:05Z')
    const written = await database.store.writeStatus(created.id, {
      status: 'running',
      containerId: 'abc123',
      containerName: 'forgehook-status',
      hostPort: 4101,
      healthStatus: 'healthy',
      startedAt,
      restartCount: 2,
      observedGeneration: 1,
      error: null,
    })
    expect(written).toMatchObject({
      status: 'running',
      containerId: 'abc123',
      containerName: 'forgehook-status',
      hostPort: 4101,
      healthStatus: 'healthy',
      restartCount: 2,
      observedGeneration: 1,
      desiredState: 'running',
      generation: 1,
    })
    expect(written?.startedAt?.toISOString()).toBe(startedAt.toISOString())
    expect(await database.store.writeStatus('00000000-0000-4000-8000-000000000000', { status: 'error' })).toBeUndefined()
  })

  test('two plugins cannot be assigned the same host port', async () => {
    const a = await database.store.createPlugin({ forgehookId: 'port-a', source: 'api', manifest: sampleManifest('a') })
    const b = await database.store.createPlugin({ forgehookId: 'port-b', source: 'api', manifest: sampleManifest('b') })
    await database.store.writeStatus(a.id, { hostPort: 4200 })
    await expect(database.store.writeStatus(b.id, { hostPort: 4200 })).rejects.toThrow(/already assigned/)
    expect((await database.store.requirePlugin('port-b')).hostPort).toBeNull()
  })

  test('deletion is requested once and keeps its first timestamp', async () => {
    await database.store.createPlugin({ forgehookId: 'bye', source: 'api', manifest: sampleManifest('bye') })
    const first = await database.store.requestDeletion('bye')
    expect(first.deletionRequestedAt).toBeInstanceOf(Date)
    const second = await database.store.requestDeletion('bye')
    expect(second.deletionRequestedAt?.getTime()).toBe(first.deletionRequestedAt?.getTime())
    await expect(database.store.requestDeletion('nobody')).rejects.toBeInstanceOf(NotFoundError)
  })

  test('keeps the audit trail after uninstall, and drops the metrics', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'history', source: 'api', manifest: sampleManifest('h') })
    await database.store.logEvent({ pluginId: plugin.id, forgehookId: plugin.forgehookId, type: 'plugin:installed' })
    await database.store.logEvent({ pluginId: plugin.id, forgehookId: plugin.forgehookId, type: 'plugin:started', data: { port: 4100 } })
    await database.store.recordMetrics(plugin.id, { requestCount: 5, cpuUsagePercent: 1.5, memoryUsageMb: 12.25 })
    expect(await database.store.listMetrics(plugin.id)).toHaveLength(1)

    expect(await database.store.deletePlugin(plugin.id)).toBe(true)
    expect(await database.store.deletePlugin(plugin.id)).toBe(false)

    const history = await database.store.listEvents({ forgehookId: 'history', order: 'asc' })
    expect(history.items.map((event) => event.type)).toEqual(['plugin:installed', 'plugin:started'])
    expect(history.items.every((event) => event.pluginId === null)).toBe(true)
    expect(history.items[1]?.data).toEqual({ port: 4100 })
    expect(await database.store.listMetrics(plugin.id)).toHaveLength(0)
  })

  test('every deleted plugin leaves a tombstone, also when deleted in plain SQL', async () => {
    const viaStore = await database.store.createPlugin({ forgehookId: 'tomb-a', source: 'api', manifest: sampleManifest('a') })
    const viaSql = await database.store.createPlugin({ forgehookId: 'tomb-b', source: 'sql', manifest: sampleManifest('b') })
    await database.store.deletePlugin(viaStore.id)
    await sql`DELETE FROM plugins WHERE forgehook_id = 'tomb-b'`.execute(database.handle.db)
    expect(await database.store.deletedPluginIds([viaStore.id, viaSql.id, '00000000-0000-4000-8000-000000000000'])).toEqual(
      new Set([viaStore.id, viaSql.id]),
    )
  })

  test('an event written in SQL without forgehook_id gets it from the plugin', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'sql-event', source: 'api', manifest: sampleManifest('e') })
    await sql`INSERT INTO plugin_events (plugin_id, event_type) VALUES (${plugin.id}, 'note')`.execute(database.handle.db)
    const page = await database.store.listEvents({ pluginId: plugin.id })
    expect(page.items[0]).toMatchObject({ forgehookId: 'sql-event', type: 'note', data: {} })
  })

  test('a failed event write is logged and does not throw', async () => {
    // plugin_id references nothing: the insert fails on the foreign key.
    const result = await database.store.logEvent({
      pluginId: '00000000-0000-4000-8000-000000000000',
      forgehookId: 'ghost',
      type: 'plugin:started',
    })
    expect(result).toBeUndefined()
    expect((await database.store.listEvents()).items).toHaveLength(0)
  })

  test('pages through events newest first with a cursor, filtered by type and time', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'pages', source: 'api', manifest: sampleManifest('p') })
    for (let index = 0; index < 7; index++) {
      await database.store.logEvent({ pluginId: plugin.id, forgehookId: 'pages', type: index % 2 ? 'plugin:stopped' : 'plugin:started', data: { index } })
    }
    const first = await database.store.listEvents({ pluginId: plugin.id, limit: 3 })
    expect(first.items.map((event) => event.data.index)).toEqual([6, 5, 4])
    expect(first.nextCursor).toBeDefined()
    const second = await database.store.listEvents({ pluginId: plugin.id, limit: 3, cursor: first.nextCursor })
    expect(second.items.map((event) => event.data.index)).toEqual([3, 2, 1])
    const third = await database.store.listEvents({ pluginId: plugin.id, limit: 3, cursor: second.nextCursor })
    expect(third.items.map((event) => event.data.index)).toEqual([0])
    expect(third.nextCursor).toBeUndefined()

    const stops = await database.store.listEvents({ types: ['plugin:stopped'] })
    expect(stops.items.map((event) => event.data.index)).toEqual([5, 3, 1])
    expect((await database.store.listEvents({ since: new Date(Date.now() + 60_000) })).items).toHaveLength(0)
    await expect(database.store.listEvents({ cursor: 'not-a-cursor' })).rejects.toBeInstanceOf(InvalidValueError)
  })

  test('records metrics and deletes old ones in batches', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'metrics', source: 'api', manifest: sampleManifest('m') })
    const old = new Date(Date.now() - 8 * 24 * 3600_000)
    for (let index = 0; index < 5; index++) {
      await database.store.recordMetrics(plugin.id, { requestCount: index, recordedAt: old })
    }
    await database.store.recordMetrics(plugin.id, {
      requestCount: 10,
      errorCount: 1,
      totalResponseTimeMs: 250,
      avgResponseTimeMs: 25,
      cpuUsagePercent: 3.5,
      memoryUsageMb: 64.5,
    })
    const deleted = await database.store.deleteMetricsBefore(new Date(Date.now() - 7 * 24 * 3600_000), 2)
    expect(deleted).toBe(5)
    const left = await database.store.listMetrics(plugin.id)
    expect(left).toHaveLength(1)
    expect(left[0]).toMatchObject({
      requestCount: 10,
      errorCount: 1,
      totalResponseTimeMs: 250,
      avgResponseTimeMs: 25,
      cpuUsagePercent: 3.5,
      memoryUsageMb: 64.5,
    })
  })

  test('the drift view shows desired against observed state', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'drift', source: 'api', manifest: sampleManifest('d') })
    const drift = async () =>
      database.handle.db.selectFrom('plugin_drift').selectAll().where('forgehook_id', '=', 'drift').executeTakeFirstOrThrow()
    expect(await drift()).toMatchObject({ sync_state: 'pending', converged: false, generation: 1, observed_generation: 0 })
    await database.store.writeStatus(plugin.id, { status: 'running', observedGeneration: 1 })
    expect(await drift()).toMatchObject({ sync_state: 'converged', converged: true })
    await database.store.updateSpec('drift', { desiredState: 'stopped' })
    expect(await drift()).toMatchObject({ sync_state: 'pending', desired_state: 'stopped', status: 'running' })
    await database.store.writeStatus(plugin.id, { status: 'error', error: 'boom', observedGeneration: 2 })
    expect(await drift()).toMatchObject({ sync_state: 'error', error: 'boom' })
    await database.store.requestDeletion('drift')
    expect(await drift()).toMatchObject({ sync_state: 'deleting' })
  })

  test('every committed write reaches subscribers, whoever made it', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'notify', source: 'api', manifest: sampleManifest('n') })
    await database.store.writeStatus(plugin.id, { status: 'running' })
    await sql`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'notify'`.execute(database.handle.db)
    await database.store.deletePlugin(plugin.id)
    const seen = await eventually(() => (changes.length >= 4 ? changes.slice() : undefined), 5_000, 'four notifications')
    expect(seen.map((change) => [change.op, change.name, change.spec])).toEqual([
      ['insert', 'notify', true],
      ['update', 'notify', false],
      ['update', 'notify', true],
      ['delete', 'notify', true],
    ])
    expect(seen.every((change) => change.id === plugin.id)).toBe(true)
    expect(seen[2]?.generation).toBe(2)
  })

  test('a rolled-back write notifies nobody', async () => {
    await database.handle.db
      .transaction()
      .execute(async (trx) => {
        await trx.insertInto('plugins').values({ forgehook_id: 'rolled-back', manifest: JSON.stringify(sampleManifest('r')) }).execute()
        throw new Error('roll back')
      })
      .catch(() => undefined)
    await database.store.createPlugin({ forgehookId: 'kept', source: 'api', manifest: sampleManifest('k') })
    await eventually(() => (changes.some((change) => change.name === 'kept') ? true : undefined))
    expect(changes.map((change) => change.name)).toEqual(['kept'])
  })
})
