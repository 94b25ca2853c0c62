// spec.replicas and spec.placement through the API on each runtime (RUNTIME), and what the
// plugin document shows of the swarm runtime's status: replica counts and tasks.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { PluginTask } from '../../src/db/plugin-store.js'
import { apiPluginSchema } from '../../src/spec/api-plugin.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, errorOf, pluginDocument, send, type PluginAnswer } from './api-harness.js'

let database: TestDatabase

beforeAll(async () => {
  database = await openTestDatabase('embedded')
})
afterAll(async () => {
  await database?.close()
})
beforeEach(async () => {
  await database.reset()
})

const PLACEMENT = { constraints: ['node.labels.zone==a'], preferences: [{ spread: 'node.labels.zone' }], maxReplicasPerNode: 1 }
const REPLICAS_MESSAGE = '3 replicas need RUNTIME=swarm; the docker runtime runs one container per plugin'

describe('on the docker runtime (the default)', () => {
  test('POST, PUT and PATCH refuse more than one replica and a placement with 422, naming the field and why; nothing is written', async () => {
    const { app } = apiHarness(database)
    const posted = await send(app, 'POST', '/api/v1/plugins', { body: pluginDocument('scaled', { replicas: 3 }) })
    expect(posted.status).toBe(422)
    expect((await errorOf(posted)).error).toMatchObject({ code: 'invalid', details: [{ field: 'spec.replicas', message: REPLICAS_MESSAGE }] })

    const put = await send(app, 'PUT', '/api/v1/plugins/scaled', { body: pluginDocument('scaled', { placement: PLACEMENT }) })
    expect(put.status).toBe(422)
    expect((await errorOf(put)).error.details).toEqual([{ field: 'spec.placement', message: expect.stringContaining('placement needs RUNTIME=swarm') }])
    expect(await database.store.getPlugin('scaled')).toBeUndefined()

    expect((await send(app, 'PUT', '/api/v1/plugins/scaled', { body: pluginDocument('scaled', { replicas: 1 }) })).status).toBe(201)
    const patched = await send(app, 'PATCH', '/api/v1/plugins/scaled', { body: { spec: { replicas: 3 } }, contentType: 'application/merge-patch+json' })
    expect(patched.status).toBe(422)
    expect((await errorOf(patched)).error.details).toEqual([{ field: 'spec.replicas', message: REPLICAS_MESSAGE }])
    expect(await database.store.requirePlugin('scaled')).toMatchObject({ replicas: 1, placement: {}, generation: 1 })
  })

  test('a plugin shows no replica counts and no tasks, and its document has neither field', async () => {
    const { app } = apiHarness(database)
    const created = (await (await send(app, 'POST', '/api/v1/plugins', { body: pluginDocument('single') })).json()) as PluginAnswer
    expect(Object.keys(created.spec)).not.toContain('replicas')
    expect(Object.keys(created.status)).not.toContain('replicas')
    expect(Object.keys(created.status)).not.toContain('tasks')
  })
})

describe('on the swarm runtime', () => {
  test('replicas and placement are stored, answered and changed like any spec field', async () => {
    const { app } = apiHarness(database, { runtimeName: 'swarm' })
    const created = await send(app, 'POST', '/api/v1/plugins', { body: pluginDocument('scaled', { replicas: 3, placement: PLACEMENT }) })
    expect(created.status).toBe(201)
    const answer = (await created.json()) as PluginAnswer & { spec: { replicas?: number; placement?: unknown } }
    expect(answer.spec).toMatchObject({ replicas: 3, placement: PLACEMENT })
    expect(apiPluginSchema.safeParse(answer).success).toBe(true)

    const patched = await send(app, 'PATCH', '/api/v1/plugins/scaled', { body: { spec: { replicas: 5, placement: null } }, contentType: 'application/merge-patch+json' })
    expect(patched.status).toBe(200)
    expect(await database.store.requirePlugin('scaled')).toMatchObject({ replicas: 5, placement: {}, generation: 2 })
    // The same document again is no change.
    const again = await send(app, 'PUT', '/api/v1/plugins/scaled', { body: pluginDocument('scaled', { replicas: 5 }) })
    expect(again.status).toBe(200)
    expect((await database.store.requirePlugin('scaled')).generation).toBe(2)
    // Bounds hold on every runtime.
    const tooMany = await send(app, 'PUT', '/api/v1/plugins/scaled', { body: pluginDocument('scaled', { replicas: 101 }) })
    expect(tooMany.status).toBe(422)
    expect((await errorOf(tooMany)).error.details).toEqual([{ field: 'spec.replicas', message: 'Too big: expected number to be <=100' }])
  })

  test('GET of one plugin shows its replica counts and tasks, redacted like its error; the list shows the counts only', async () => {
    const { app } = apiHarness(database, { runtimeName: 'swarm' })
    await send(app, 'POST', '/api/v1/plugins', { body: pluginDocument('tasked', { replicas: 2, environment: { API_TOKEN: 'hunter2hunter2' } }) })
    const plugin = await database.store.requirePlugin('tasked')
    await database.store.writeStatus(plugin.id, { status: 'running', replicasDesired: 2, replicasRunning: 1 })
    const updatedAt = new Date('2026-05-01T10:00:05.000Z')
    const base: PluginTask = {
      pluginId: plugin.id, taskId: 'task-1', slot: 1, nodeId: 'n1', nodeName: 'node-1', nodeState: 'ready', nodeAddress: '10.0.0.1', state: 'running', desiredState: 'running',
      containerId: 'c1', error: null, message: 'started', health: 'healthy', hostPort: 4100, image: 'flowforge/test:1', createdAt: null, updatedAt,
    }
    await database.store.tasks.replaceTasks(plugin.id, [
      base,
      { ...base, taskId: 'task-2', slot: 2, nodeId: 'n2', nodeName: 'node-2', nodeState: 'down', state: 'failed', desiredState: 'shutdown', containerId: null, error: 'exited: token hunter2hunter2 refused', health: null, hostPort: null },
    ])
    const one = (await (await send(app, 'GET', '/api/v1/plugins/tasked')).json()) as PluginAnswer
    expect(apiPluginSchema.safeParse(one).success).toBe(true)
    expect(one.status.replicas).toEqual({ desired: 2, running: 1 })
    expect(one.status.tasks).toEqual([
      { taskId: 'task-1', slot: 1, nodeId: 'n1', nodeName: 'node-1', nodeState: 'ready', state: 'running', desiredState: 'running', containerId: 'c1', error: null, message: 'started', health: 'healthy', hostPort: 4100, image: 'flowforge/test:1', createdAt: null, updatedAt: updatedAt.toISOString() },
      expect.objectContaining({ taskId: 'task-2', state: 'failed', nodeState: 'down', error: 'exited: token *** refused' }),
    ])
    const list = (await (await send(app, 'GET', '/api/v1/plugins')).json()) as { items: PluginAnswer[] }
    expect(list.items[0]!.status.replicas).toEqual({ desired: 2, running: 1 })
    expect(Object.keys(list.items[0]!.status)).not.toContain('tasks')
  })
})

test("the guide's install body has no replicas: it installs one copy", async () => {
  const { app } = apiHarness(database)
  const response = await send(app, 'POST', '/api/v1/plugins/install', { body: { manifest: { id: 'guide', image: 'flowforge/test:1', port: 8080 }, replicas: 2 } })
  // The guide's body has manifest, config, environment and autoStart; anything else is not read.
  expect(response.status).toBe(201)
  expect((await database.store.requirePlugin('guide')).replicas).toBe(1)
})
