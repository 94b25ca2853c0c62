// migrations/007 and the task store: replicas and placement as spec (generation, revisions),
// the replica counts as status, plugin_tasks and the plugin_replicas drift report. The same
// tests on embedded Postgres and on a real server.
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { PluginChange } from '../../src/db/change-feed.js'
import { InvalidValueError, NotFoundError } from '../../src/db/errors.js'
import type { Plugin, PluginTask } from '../../src/db/plugin-store.js'
import { engines, eventually, openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'

const CREATED = new Date('2026-05-01T10:00:00.123Z')
const UPDATED = new Date('2026-05-01T10:00:05.456Z')

function task(pluginId: string, taskId: string, overrides: Partial<PluginTask> = {}): PluginTask {
  return {
    pluginId,
    taskId,
    slot: 1,
    nodeId: 'node-a-id',
    nodeName: 'node-a',
    nodeState: 'ready',
    nodeAddress: '10.213.0.10',
    state: 'running',
    desiredState: 'running',
    containerId: `container-${taskId}`,
    error: null,
    message: 'started',
    health: 'healthy',
    hostPort: 4100,
    image: 'flowforge/crypto:1@sha256:abc',
    createdAt: CREATED,
    updatedAt: UPDATED,
    ...overrides,
  }
}

describe.each(engines)('replicas, placement and tasks on %s Postgres', (engine) => {
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

  const create = (name: string, fields: Partial<Parameters<TestDatabase['store']['createPlugin']>[0]> = {}): Promise<Plugin> =>
    database.store.createPlugin({ forgehookId: name, source: 'api', manifest: sampleManifest(name), ...fields })

  test('a plugin runs one replica with no placement unless told otherwise, and keeps what it was told', async () => {
    const plain = await create('plain')
    expect(plain).toMatchObject({ replicas: 1, placement: {}, replicasDesired: null, replicasRunning: null })
    const placement = { constraints: ['node.labels.zone==a', 'node.role!=manager'], preferences: [{ spread: 'node.labels.zone' }], maxReplicasPerNode: 2 }
    const spread = await create('spread', { replicas: 3, placement })
    expect(await database.store.requirePlugin(spread.id)).toMatchObject({ replicas: 3, placement })
    // A row written in SQL gets the defaults too.
    await sql`INSERT INTO plugins (forgehook_id, manifest) VALUES ('from-sql', ${JSON.stringify(sampleManifest('s'))}::jsonb)`.execute(database.handle.db)
    expect(await database.store.requirePlugin('from-sql')).toMatchObject({ replicas: 1, placement: {} })
  })

  test('refuses replicas outside 1..100 and a placement that is not an object, in SQL as from the store', async () => {
    await expect(create('none', { replicas: 0 })).rejects.toThrow(/replicas must be from 1 to 100/)
    await expect(create('many', { replicas: 101 })).rejects.toBeInstanceOf(InvalidValueError)
    await expect(sql`INSERT INTO plugins (forgehook_id, manifest, placement) VALUES ('list', '{}'::jsonb, '[]'::jsonb)`.execute(database.handle.db)).rejects.toThrow(/plugins_placement_object/)
    expect(await database.store.listPlugins()).toEqual([])
  })

  test('a change of replicas or placement is a new generation, recorded as a revision with them', async () => {
    const plugin = await create('scaled')
    const scaled = await database.store.updateSpec(plugin.id, { replicas: 3 })
    expect(scaled.generation).toBe(2)
    const placed = await database.store.updateSpec(plugin.id, { placement: { constraints: ['node.labels.zone==b'] } })
    expect(placed.generation).toBe(3)
    // In SQL as well.
    await sql`UPDATE plugins SET replicas = 5 WHERE id = ${plugin.id}`.execute(database.handle.db)
    expect((await database.store.requirePlugin(plugin.id)).generation).toBe(4)
    const revisions = await database.store.revisions.list(plugin.id)
    expect(revisions.map((revision) => [revision.revision, revision.spec.replicas, revision.spec.placement])).toEqual([
      [4, 5, { constraints: ['node.labels.zone==b'] }],
      [3, 3, { constraints: ['node.labels.zone==b'] }],
      [2, 3, {}],
      [1, 1, {}],
    ])
    await eventually(() => (changes.filter((change) => change.id === plugin.id && change.spec && change.op === 'update').length >= 3 ? true : undefined), 5_000, 'a spec notification per change')
  })

  test('the replica counts are status: written alone or in a batch, no new generation, a status notification', async () => {
    const plugins = await Promise.all(Array.from({ length: 12 }, (_, index) => create(`counted-${index}`, { replicas: 3 })))
    // The inserts' own notifications arrive asynchronously on a server: let them in before counting.
    await eventually(() => (changes.filter((change) => change.op === 'insert' && plugins.some((plugin) => plugin.id === change.id)).length >= plugins.length ? true : undefined), 5_000, 'the insert notifications')
    changes.length = 0
    const queriesBefore = queries
    const written = await Promise.all(
      plugins.map((plugin, index) =>
        index % 2 === 0
          ? database.store.writeStatus(plugin.id, { replicasDesired: 3, replicasRunning: index % 4 === 0 ? 3 : 2 })
          : database.store.writeStatus(plugin.id, { status: 'running', replicasDesired: 3, replicasRunning: null }),
      ),
    )
    // Group-committed like any status write: the first alone, the rest together.
    expect(queries - queriesBefore).toBeLessThanOrEqual(3)
    for (const [index, plugin] of written.entries()) {
      expect(plugin).toMatchObject({ replicasDesired: 3, replicasRunning: index % 2 === 1 ? null : index % 4 === 0 ? 3 : 2, generation: 1 })
    }
    const stored = await database.store.requirePlugin(plugins[2]!.id)
    expect(stored).toMatchObject({ replicasDesired: 3, replicasRunning: 2, generation: 1 })
    await eventually(() => (changes.filter((change) => change.op === 'update' && !change.spec).length >= plugins.length ? true : undefined), 5_000, 'a status notification per row')
    expect(changes.filter((change) => change.spec)).toEqual([])
    expect(await database.store.revisions.list(plugins[0]!.id)).toHaveLength(1)
  })

  test('plugin_replicas is the drift report: what should run against what runs, on either runtime', async () => {
    const swarm = await create('swarm-short', { replicas: 3 })
    await database.store.writeStatus(swarm.id, { status: 'running', replicasDesired: 3, replicasRunning: 2 })
    const full = await create('swarm-full', { replicas: 2 })
    await database.store.writeStatus(full.id, { status: 'running', replicasDesired: 2, replicasRunning: 2 })
    const container = await create('docker-running')
    await database.store.writeStatus(container.id, { status: 'running', containerId: 'c1' })
    const failed = await create('docker-error')
    await database.store.writeStatus(failed.id, { status: 'error', error: 'image not found' })
    await create('stopped', { desiredState: 'stopped' })
    const view = await sql<{ forgehook_id: string; plugin_id: string; desired: number; running: number; status: string; error: string | null }>`SELECT * FROM plugin_replicas ORDER BY forgehook_id`.execute(database.handle.db)
    expect(view.rows).toEqual([
      { forgehook_id: 'docker-error', plugin_id: failed.id, desired: 1, running: 0, status: 'error', error: 'image not found' },
      { forgehook_id: 'docker-running', plugin_id: container.id, desired: 1, running: 1, status: 'running', error: null },
      { forgehook_id: 'stopped', plugin_id: expect.any(String), desired: 0, running: 0, status: 'installing', error: null },
      { forgehook_id: 'swarm-full', plugin_id: full.id, desired: 2, running: 2, status: 'running', error: null },
      { forgehook_id: 'swarm-short', plugin_id: swarm.id, desired: 3, running: 2, status: 'running', error: null },
    ])
    const drift = await sql<{ forgehook_id: string }>`SELECT forgehook_id FROM plugin_replicas WHERE running < desired ORDER BY forgehook_id`.execute(database.handle.db)
    expect(drift.rows.map((row) => row.forgehook_id)).toEqual(['docker-error', 'swarm-short'])
    // A plugin being deleted should run nothing.
    await database.store.requestDeletion(swarm.id)
    const deleting = await sql<{ desired: number }>`SELECT desired FROM plugin_replicas WHERE plugin_id = ${swarm.id}`.execute(database.handle.db)
    expect(deleting.rows).toEqual([{ desired: 0 }])
  })

  test('replaceTasks makes the rows exactly the tasks given: inserts, updates, deletes the rest', async () => {
    const plugin = await create('tasks')
    const other = await create('other')
    await database.store.tasks.replaceTasks(other.id, [task(other.id, 'o1')])
    const first = [task(plugin.id, 't1'), task(plugin.id, 't2', { slot: 2, nodeId: 'node-b-id', nodeName: 'node-b', hostPort: 4101, createdAt: null })]
    expect(await database.store.tasks.replaceTasks(plugin.id, first)).toBe(true)
    expect(await database.store.tasks.listTasks(plugin.id)).toEqual(first)

    // t1 failed, t2 is gone, t3 replaced it on another node.
    const second = [
      task(plugin.id, 't1', { state: 'failed', desiredState: 'shutdown', error: 'task: non-zero exit (1)', health: null, hostPort: null }),
      task(plugin.id, 't3', { slot: 2, nodeId: 'node-c-id', nodeName: 'node-c', nodeState: 'ready', state: 'starting', containerId: null, updatedAt: new Date(UPDATED.getTime() + 1000) }),
    ]
    expect(await database.store.tasks.replaceTasks(plugin.id, second)).toBe(true)
    expect(await database.store.tasks.listTasks(plugin.id)).toEqual(second)
    // The other plugin's tasks are untouched.
    expect(await database.store.tasks.listTasks(other.id)).toEqual([task(other.id, 'o1')])
    expect((await database.store.tasks.listAllTasks()).map((row) => row.taskId).sort()).toEqual(['o1', 't1', 't3'])

    // No tasks: no rows.
    expect(await database.store.tasks.replaceTasks(plugin.id, [])).toBe(true)
    expect(await database.store.tasks.listTasks(plugin.id)).toEqual([])
    expect(await database.store.tasks.replaceTasks(plugin.id, [])).toBe(false)
  })

  test('replaceTasks writes nothing when the rows already are the tasks given, in any order', async () => {
    const plugin = await create('same')
    const tasks = [task(plugin.id, 'a', { slot: 1 }), task(plugin.id, 'b', { slot: 2, createdAt: null })]
    await database.store.tasks.replaceTasks(plugin.id, tasks)
    const before = queries
    expect(await database.store.tasks.replaceTasks(plugin.id, [...tasks].reverse())).toBe(false)
    // One read, no transaction.
    expect(queries - before).toBe(1)
    // Any field that differs is a write.
    expect(await database.store.tasks.replaceTasks(plugin.id, [tasks[0]!, { ...tasks[1]!, message: 'preparing' }])).toBe(true)
    expect((await database.store.tasks.listTasks(plugin.id))[1]!.message).toBe('preparing')
  })

  test('replaceTasks refuses a task id given twice, and answers NotFound for a plugin that is gone', async () => {
    const plugin = await create('twice')
    await expect(database.store.tasks.replaceTasks(plugin.id, [task(plugin.id, 'x'), task(plugin.id, 'x')])).rejects.toBeInstanceOf(InvalidValueError)
    await expect(database.store.tasks.replaceTasks('00000000-0000-4000-8000-000000000000', [task('00000000-0000-4000-8000-000000000000', 'y')])).rejects.toBeInstanceOf(NotFoundError)
    expect(await database.store.tasks.listAllTasks()).toEqual([])
  })

  test('every task and node state of the Engine API is stored; another state is refused', async () => {
    const plugin = await create('states')
    const tasks = [task(plugin.id, 'a', { state: 'allocated', desiredState: 'running', nodeState: 'disconnected' }), task(plugin.id, 'r', { slot: 2, state: 'ready', nodeState: 'unknown' })]
    await database.store.tasks.replaceTasks(plugin.id, tasks)
    expect(await database.store.tasks.listTasks(plugin.id)).toEqual(tasks)
    await expect(database.store.tasks.replaceTasks(plugin.id, [task(plugin.id, 'x', { state: 'exploded' as PluginTask['state'] })])).rejects.toBeInstanceOf(InvalidValueError)
    expect(await database.store.tasks.listTasks(plugin.id)).toEqual(tasks)
  })

  test("a plugin's tasks go with its row, and writing them notifies nobody", async () => {
    const plugin = await create('cascade')
    await eventually(() => (changes.some((change) => change.id === plugin.id) ? true : undefined), 5_000, 'the insert notification')
    changes.length = 0
    await database.store.tasks.replaceTasks(plugin.id, [task(plugin.id, 'c1'), task(plugin.id, 'c2', { slot: 2 })])
    expect((await database.store.requirePlugin(plugin.id)).resourceVersion).toBe(plugin.resourceVersion)
    await database.store.deletePlugin(plugin.id)
    expect(await database.store.tasks.listAllTasks()).toEqual([])
    const rows = await sql<{ count: string }>`SELECT count(*)::text AS count FROM plugin_tasks`.execute(database.handle.db)
    expect(rows.rows[0]!.count).toBe('0')
    // Only the delete reached the change feed.
    await eventually(() => (changes.some((change) => change.op === 'delete') ? true : undefined), 5_000, 'the delete notification')
    expect(changes.map((change) => change.op)).toEqual(['delete'])
  })
})
