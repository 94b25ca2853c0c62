// The control loop end to end on the in-memory runtime and the embedded database: what an
// operator would see in the rows, the events and the containers.
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { Controller } from '../../src/controller/controller.js'
import { containerNameFor, LABELS } from '../../src/runtime/container-runtime.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { buildContainerSpec } from '../../src/spec/container-spec.js'
import { parseManifest } from '../../src/spec/manifest.js'
import { eventually, openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { captureLogs } from '../helpers/log-capture.js'
import {
  containerOf,
  eventTypes,
  fakeRuntime,
  manifest,
  startController,
  TEST_IMAGE,
  waitForConverged,
  waitForPlugin,
} from '../helpers/controller-harness.js'

describe('the controller on the in-memory runtime', () => {
  let database: TestDatabase
  let runtime: FakeRuntime
  let controller: Controller | undefined

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => database?.close())
  beforeEach(async () => {
    await database.reset()
    runtime = fakeRuntime()
  })
  afterEach(async () => {
    await controller?.stop()
    controller = undefined
  })

  async function install(name: string, extra: Partial<Parameters<TestDatabase['store']['createPlugin']>[0]> = {}) {
    return database.store.createPlugin({ forgehookId: name, source: 'api', manifest: manifest(), ...extra })
  }

  test('installs a new plugin: container running on an allocated port, status and events recorded', async () => {
    controller = await startController(database, runtime)
    const created = await install('alpha')
    const plugin = await waitForConverged(database, 'alpha')
    expect(plugin).toMatchObject({ status: 'running', hostPort: 4100, containerName: 'forgehook-alpha', error: null, observedGeneration: 1 })
    expect(plugin.installedAt).toBeInstanceOf(Date)
    expect(plugin.startedAt).toBeInstanceOf(Date)
    const container = await containerOf(runtime, 'alpha')
    expect(container).toMatchObject({ id: plugin.containerId, state: 'running', hostPort: 4100 })
    expect(container?.labels[LABELS.pluginId]).toBe(created.id)
    expect(await eventTypes(database, 'alpha')).toEqual(['plugin:installed', 'plugin:started'])
  })

  test('a new plugin converges on a create and a start; its one inspect follows once the queue is idle; the echoes of our own events cost nothing', async () => {
    const calls: string[] = []
    // Every call the controller makes, whatever it is, by method name.
    const counted = new Proxy(runtime, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver)
        if (typeof value !== 'function' || typeof property !== 'string') return value
        return (...args: unknown[]) => {
          calls.push(property)
          return value.apply(target, args)
        }
      },
    })
    controller = await startController(database, counted)
    calls.length = 0
    await install('counted')
    await waitForConverged(database, 'counted')
    // Recorded running without an inspect: the create and the start's answer told all of it.
    expect([...calls].sort()).toEqual(['create', 'start'])
    // Let the create and start events arrive and be handled, and the idle queue's settling run.
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect(calls.sort()).toEqual(['create', 'inspect', 'start'])
  })

  test("once the queue is idle, a started container's entry is settled by one inspect: the engine's own start time", async () => {
    controller = await startController(database, runtime)
    await install('settled')
    const plugin = await waitForConverged(database, 'settled')
    const inspected = await runtime.inspect(plugin.containerId!)
    await eventually(() => (controller!.cache.get('forgehook-settled')?.provisional ? undefined : true), 5_000, 'the settling')
    expect(controller.cache.get('forgehook-settled')).toMatchObject({ container: { id: plugin.containerId, state: 'running', startedAt: inspected!.startedAt }, detailed: true })
  })

  test('a missing image is pulled when create finds none, then created', async () => {
    runtime = new FakeRuntime({ images: [], pullable: [TEST_IMAGE] })
    controller = await startController(database, runtime)
    await install('pulled')
    await waitForConverged(database, 'pulled')
    expect(runtime.mutatingCalls.filter((call) => call.startsWith('pull') || call.startsWith('create'))).toEqual([
      'create forgehook-pulled',
      `pull ${TEST_IMAGE}`,
      'create forgehook-pulled',
    ])
  })

  test('gives every plugin its own port and config as FORGEHOOK_CONFIG', async () => {
    controller = await startController(database, runtime)
    await install('one', { config: { rounds: 12 }, environment: { LOG_LEVEL: 'debug' } })
    await install('two', { requestedHostPort: 4150 })
    const one = await waitForConverged(database, 'one')
    const two = await waitForConverged(database, 'two')
    expect([one.hostPort, two.hostPort]).toEqual([4100, 4150])
  })

  test('stops, keeps the container and port, and starts again', async () => {
    controller = await startController(database, runtime)
    await install('toggle')
    const running = await waitForConverged(database, 'toggle')
    await database.store.updateSpec('toggle', { desiredState: 'stopped' })
    const stopped = await waitForConverged(database, 'toggle')
    expect(stopped).toMatchObject({ status: 'stopped', containerId: running.containerId, hostPort: running.hostPort })
    expect(stopped.stoppedAt).toBeInstanceOf(Date)
    expect((await containerOf(runtime, 'toggle'))?.state).toBe('exited')
    await database.store.updateSpec('toggle', { desiredState: 'running' })
    const again = await waitForConverged(database, 'toggle')
    expect(again.containerId).toBe(running.containerId)
    expect(await eventTypes(database, 'toggle')).toEqual(['plugin:installed', 'plugin:started', 'plugin:stopped', 'plugin:started'])
  })

  test('a plain SQL UPDATE of desired_state stops the plugin', async () => {
    controller = await startController(database, runtime)
    await install('by-sql')
    await waitForConverged(database, 'by-sql')
    await sql`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'by-sql'`.execute(database.handle.db)
    await waitForPlugin(database, 'by-sql', (plugin) => plugin.status === 'stopped', 'stopped')
    expect((await containerOf(runtime, 'by-sql'))?.state).toBe('exited')
  })

  test('an image change recreates the container on the same port and records which fields changed', async () => {
    controller = await startController(database, runtime)
    await install('upgrade')
    const before = await waitForConverged(database, 'upgrade')
    await database.store.updateSpec('upgrade', { manifest: manifest({ image: 'flowforge/test:2' }) })
    const after = await waitForPlugin(database, 'upgrade', (plugin) => plugin.observedGeneration === 2 && plugin.status === 'running', 'upgraded')
    expect(after.containerId).not.toBe(before.containerId)
    expect(after.hostPort).toBe(before.hostPort)
    expect((await containerOf(runtime, 'upgrade'))?.image).toBe('flowforge/test:2')
    const updated = (await database.store.listEvents({ forgehookId: 'upgrade', types: ['plugin:updated'] })).items[0]
    expect(updated?.data).toMatchObject({ changedFields: ['image'], previousContainerId: before.containerId })
  })

  test('a crashed container is recorded as an error with its exit code, then restarted after backoff', async () => {
    controller = await startController(database, runtime)
    await install('crashy')
    const running = await waitForConverged(database, 'crashy')
    runtime.crash(running.containerId!, 137)
    const crashed = await waitForPlugin(database, 'crashy', (plugin) => plugin.status === 'error', 'crash recorded')
    expect(crashed.error).toBe('container exited with code 137; restart 1 in 300 ms')
    expect(crashed.restartCount).toBe(1)
    expect(crashed.nextRestartAt).toBeInstanceOf(Date)
    const restarted = await waitForPlugin(database, 'crashy', (plugin) => plugin.status === 'running', 'restarted')
    expect(restarted).toMatchObject({ restartCount: 1, containerId: running.containerId, error: null, nextRestartAt: null })
    expect(await eventTypes(database, 'crashy')).toEqual(['plugin:installed', 'plugin:started', 'plugin:crashed', 'plugin:started'])
  })

  test('a container that dies as the engine goes away: the die event\'s exit code records the crash, the backoff runs during the outage, and it starts once the engine is back', async () => {
    controller = await startController(database, runtime)
    await install('engine-gone')
    const running = await waitForConverged(database, 'engine-gone')
    // dockerd's SIGTERM: it answers no more, then stops its containers (kill, die, stop events).
    runtime.shutDown(143)
    const crashed = await waitForPlugin(database, 'engine-gone', (plugin) => plugin.status === 'error', 'crash recorded while the engine is unreachable')
    expect(crashed.error).toBe('container exited with code 143; restart 1 in 300 ms')
    await new Promise((resolve) => setTimeout(resolve, 500))
    runtime.setReachable(true)
    const restarted = await waitForPlugin(database, 'engine-gone', (plugin) => plugin.status === 'running' && plugin.nextRestartAt === null, 'started after the outage')
    // Counted once: the restart that failed during the outage is not another crash.
    expect(restarted).toMatchObject({ restartCount: 1, containerId: running.containerId, error: null })
  })

  test('a container removed behind our back is recreated once', async () => {
    controller = await startController(database, runtime)
    await install('removed')
    const before = await waitForConverged(database, 'removed')
    runtime.removeBehindBack(before.containerId!)
    const after = await waitForPlugin(database, 'removed', (plugin) => plugin.containerId !== before.containerId && plugin.status === 'running', 'recreated')
    expect((await containerOf(runtime, 'removed'))?.id).toBe(after.containerId)
    expect(runtime.mutatingCalls.filter((call) => call === 'create forgehook-removed')).toHaveLength(2)
    expect(await eventTypes(database, 'removed')).toContain('plugin:recovered')
  })

  test('uninstall removes the container and the row and keeps the events', async () => {
    controller = await startController(database, runtime)
    await install('doomed')
    await waitForConverged(database, 'doomed')
    await database.store.requestDeletion('doomed')
    await eventually(async () => ((await database.store.getPlugin('doomed')) ? undefined : true), 5_000, 'row deleted')
    expect(await containerOf(runtime, 'doomed')).toBeUndefined()
    expect(await eventTypes(database, 'doomed')).toEqual(['plugin:installed', 'plugin:started', 'plugin:uninstalled'])
  })

  test('a row deleted in plain SQL has its container removed', async () => {
    controller = await startController(database, runtime)
    await install('sql-deleted')
    await waitForConverged(database, 'sql-deleted')
    await sql`DELETE FROM plugins WHERE forgehook_id = 'sql-deleted'`.execute(database.handle.db)
    await eventually(async () => ((await containerOf(runtime, 'sql-deleted')) ? undefined : true), 5_000, 'container removed')
    expect(await eventTypes(database, 'sql-deleted')).toContain('plugin:uninstalled')
  })

  test('a foreign container holding the name is reported and never touched', async () => {
    controller = await startController(database, runtime)
    // Added after start: at start, an unknown forgehook-* container would be adopted instead.
    const foreignId = runtime.addForeign({ name: 'forgehook-taken', image: 'nginx:latest', state: 'running' })
    await install('taken')
    const plugin = await waitForPlugin(database, 'taken', (row) => row.status === 'error', 'conflict reported')
    expect(plugin.error).toMatch(/^container name forgehook-taken is held by a container not managed by FlowForge/)
    expect((await runtime.inspect(foreignId))?.state).toBe('running')
    // The cache does not know of it (a foreign container sends us no events), so one create
    // is tried and refused by the engine as a name conflict; nothing is done to the container.
    expect(runtime.mutatingCalls.filter((call) => call.includes(foreignId))).toEqual([])
    expect((await runtime.listByNamePrefix()).filter((container) => container.name === 'forgehook-taken').map((container) => container.id)).toEqual([foreignId])
    expect(await eventTypes(database, 'taken')).toEqual(['plugin:error'])
  })

  test('a missing image is the plugin\'s error, retried until the image appears', async () => {
    controller = await startController(database, runtime)
    await install('later', { manifest: manifest({ image: 'flowforge/not-yet:1' }) })
    const failing = await waitForPlugin(database, 'later', (plugin) => plugin.status === 'error', 'image error')
    expect(failing.error).toMatch(/^image not found: flowforge\/not-yet:1/)
    await eventually(() => (controller!.queue.failures(failing.id) >= 2 ? true : undefined), 5_000, 'retries with backoff')
    runtime.addImage('flowforge/not-yet:1')
    await waitForPlugin(database, 'later', (plugin) => plugin.status === 'running', 'running once the image exists', 10_000)
  })

  test('the retry delay a failed reconcile logs is the backoff the queue scheduled: 50, 100, 200, 400 ms, capped', async () => {
    const log = captureLogs('warn')
    controller = await startController(database, runtime, { logger: log.logger })
    await install('later', { manifest: manifest({ image: 'flowforge/not-yet:1' }) })
    const failed = await eventually(() => {
      const lines = log.lines.filter((line) => String(line.msg).startsWith('reconcile of '))
      return lines.length >= 5 ? lines : undefined
    }, 10_000, 'five failed reconciles logged')
    // retryBaseMs 50, retryMaxMs 400 in the harness; the first retry waits the base delay.
    expect(failed.slice(0, 5).map((line) => line.retryInMs)).toEqual([50, 100, 200, 400, 400])
    expect(failed.slice(0, 5).map((line) => String(line.msg).replace(/.*; /, ''))).toEqual([
      'retrying in 50 ms',
      'retrying in 100 ms',
      'retrying in 200 ms',
      'retrying in 400 ms',
      'retrying in 400 ms',
    ])
  })

  test('an invalid manifest written in SQL is an error, not retried, and leaves the container alone', async () => {
    controller = await startController(database, runtime)
    await install('broken')
    const running = await waitForConverged(database, 'broken')
    await sql`UPDATE plugins SET manifest = '{"image": "UPPER CASE", "port": 8080}' WHERE forgehook_id = 'broken'`.execute(database.handle.db)
    const broken = await waitForPlugin(database, 'broken', (plugin) => plugin.status === 'error', 'error recorded')
    expect(broken.error).toMatch(/^invalid manifest: image: must be a Docker image reference/)
    expect(broken.observedGeneration).toBe(broken.generation)
    expect(controller.queue.failures(broken.id)).toBe(0)
    expect((await containerOf(runtime, 'broken'))).toMatchObject({ id: running.containerId, state: 'running' })
  })

  test('two plugins requesting one host port: the second reports the first', async () => {
    controller = await startController(database, runtime)
    await install('first', { requestedHostPort: 4180 })
    await waitForConverged(database, 'first')
    await install('second', { requestedHostPort: 4180 })
    const second = await waitForPlugin(database, 'second', (plugin) => plugin.status === 'error', 'port conflict')
    expect(second.error).toBe('requested host port 4180 is already assigned to plugin first')
  })

  test('an allocated port taken outside FlowForge is given up for another', async () => {
    runtime.occupyPort(4100)
    controller = await startController(database, runtime)
    await install('elsewhere')
    const plugin = await waitForPlugin(database, 'elsewhere', (row) => row.status === 'running', 'running on another port')
    expect(plugin.hostPort).toBe(4101)
  })

  test('a resync of converged plugins makes no Docker call but one list', async () => {
    controller = await startController(database, runtime)
    for (const name of ['r1', 'r2', 'r3']) await install(name)
    for (const name of ['r1', 'r2', 'r3']) await waitForConverged(database, name)
    await eventually(() => (controller!.snapshot().processing === 0 && controller!.queue.len() === 0 ? true : undefined))
    runtime.resetCalls()
    const resyncsBefore = controller.snapshot().resyncs
    controller.requestResync('test')
    await eventually(() => (controller!.snapshot().resyncs > resyncsBefore ? true : undefined))
    expect(runtime.listCalls).toBe(1)
    expect(runtime.inspectCalls).toBe(0)
    expect(runtime.mutatingCalls).toEqual([])
    expect(controller.queue.len()).toBe(0)
  })

  test('a restarted manager finds everything in place and changes nothing', async () => {
    controller = await startController(database, runtime)
    for (const name of ['keep-a', 'keep-b']) await install(name)
    const before = await Promise.all(['keep-a', 'keep-b'].map((name) => waitForConverged(database, name)))
    await controller.stop()
    runtime.resetCalls()
    controller = await startController(database, runtime)
    await eventually(() => (controller!.snapshot().processing === 0 && controller!.queue.len() === 0 ? true : undefined))
    expect(runtime.mutatingCalls).toEqual([])
    const after = await Promise.all(['keep-a', 'keep-b'].map((name) => database.store.requirePlugin(name)))
    expect(after.map((plugin) => plugin.containerId)).toEqual(before.map((plugin) => plugin.containerId))
  })

  test('at start, an orphaned managed container is adopted with its plugin id and spec, not recreated', async () => {
    const pluginId = '33333333-3333-4333-8333-333333333333'
    const declared = {
      id: pluginId,
      forgehookId: 'orphan',
      manifest: manifest(),
      config: { a: 1 },
      environment: { MODE: 'x' },
      labels: { team: 'ops' },
      requestedHostPort: null,
      hostPort: 4120,
    }
    const parsed = parseManifest(declared.manifest)
    if (!parsed.ok) throw new Error(parsed.error)
    const spec = buildContainerSpec(declared as never, parsed.manifest, 4120, { hostIp: '127.0.0.1', instance: 'test' })
    const containerId = await runtime.create(spec)
    await runtime.start(containerId)
    runtime.resetCalls()

    controller = await startController(database, runtime)
    const adopted = await waitForConverged(database, 'orphan')
    expect(adopted).toMatchObject({ id: pluginId, source: 'adopted', containerId, hostPort: 4120, config: { a: 1 }, labels: { team: 'ops' } })
    expect(runtime.mutatingCalls).toEqual([])
    expect(await eventTypes(database, 'orphan')).toEqual(['plugin:adopted'])
  })

  test('an orphan that declared volumes, an update policy and network isolation is adopted with them: its volume stays mounted, nothing recreated', async () => {
    const declared = {
      id: '44444444-4444-4444-8444-444444444444',
      forgehookId: 'orphan-vol',
      manifest: manifest(),
      config: {},
      environment: {},
      labels: {},
      requestedHostPort: null,
      hostPort: 4121,
      volumes: [{ name: 'data', mountPath: '/data' }],
      updatePolicy: { strategy: 'StartFirst', healthyTimeoutSeconds: 7 },
      network: { isolated: true },
      replicas: 1,
      placement: {},
    }
    const parsed = parseManifest(declared.manifest)
    if (!parsed.ok) throw new Error(parsed.error)
    const spec = buildContainerSpec(declared as never, parsed.manifest, 4121, { hostIp: '127.0.0.1', instance: 'test' })
    expect(spec.volumes).toHaveLength(1)
    const containerId = await runtime.create(spec)
    await runtime.start(containerId)
    runtime.resetCalls()

    controller = await startController(database, runtime)
    const adopted = await waitForConverged(database, 'orphan-vol')
    expect(adopted).toMatchObject({
      id: declared.id,
      containerId,
      volumes: declared.volumes,
      updatePolicy: declared.updatePolicy,
      network: declared.network,
      replicas: 1,
      placement: {},
    })
    expect(runtime.mutatingCalls).toEqual([])
  })

  test('the default installation adopts an unlabelled forgehook-* container as it is: ours, running, not recreated', async () => {
    const legacyId = runtime.addForeign({ name: 'forgehook-legacy', image: TEST_IMAGE, state: 'running', hostPort: 4140, containerPort: 8080 })
    controller = await startController(database, runtime, { container: { hostIp: '127.0.0.1', instance: 'default' } })
    const adopted = await waitForConverged(database, 'legacy')
    expect(adopted).toMatchObject({ source: 'adopted', status: 'running', error: null, containerId: legacyId, hostPort: 4140, manifest: { name: 'legacy', image: TEST_IMAGE, port: 8080 } })
    expect(runtime.mutatingCalls.filter((call) => call.includes(legacyId))).toEqual([])
    expect(await eventTypes(database, 'legacy')).toEqual(['plugin:adopted'])
  })

  test('an adopted container is ours: deleting the plugin removes it, and a restart does not adopt it again', async () => {
    const legacyId = runtime.addForeign({ name: 'forgehook-legacy', image: TEST_IMAGE, state: 'running', hostPort: 4141, containerPort: 8080 })
    const defaultInstance = { container: { hostIp: '127.0.0.1', instance: 'default' } }
    controller = await startController(database, runtime, defaultInstance)
    await waitForConverged(database, 'legacy')
    await database.store.requestDeletion('legacy')
    await eventually(async () => ((await runtime.inspect(legacyId)) ? undefined : true), 5_000, 'adopted container removed')
    await controller.stop()
    controller = await startController(database, runtime, defaultInstance)
    expect(await database.store.getPlugin('legacy')).toBeUndefined()
  })

  test('an adopted plugin deleted in SQL while the manager was down: its container is removed at the next start, not adopted again', async () => {
    const legacyId = runtime.addForeign({ name: 'forgehook-legacy', image: TEST_IMAGE, state: 'running', hostPort: 4142, containerPort: 8080 })
    const defaultInstance = { container: { hostIp: '127.0.0.1', instance: 'default' } }
    controller = await startController(database, runtime, defaultInstance)
    await waitForConverged(database, 'legacy')
    await controller.stop()
    await sql`DELETE FROM plugins WHERE forgehook_id = 'legacy'`.execute(database.handle.db)
    controller = await startController(database, runtime, defaultInstance)
    await eventually(async () => ((await runtime.inspect(legacyId)) ? undefined : true), 5_000, 'adopted container removed')
    expect(await database.store.getPlugin('legacy')).toBeUndefined()
    expect((await database.store.listEvents({ forgehookId: 'legacy', types: ['plugin:uninstalled'] })).items).toHaveLength(1)
  })

  test('a named installation leaves unlabelled containers and other installations\' containers alone', async () => {
    runtime.addForeign({ name: 'forgehook-legacy2', image: TEST_IMAGE, state: 'running' })
    runtime.addForeign({
      name: 'forgehook-theirs',
      image: TEST_IMAGE,
      state: 'running',
      labels: { [LABELS.managed]: 'true', [LABELS.instance]: 'other', [LABELS.pluginId]: '44444444-4444-4444-8444-444444444444' },
    })
    controller = await startController(database, runtime)
    expect(await database.store.listPlugins()).toEqual([])
    expect(runtime.mutatingCalls).toEqual([])
  })

  test('a fresh database with old containers: a new row of the same name replaces our stale container', async () => {
    // A container this installation made for a plugin id the (recreated) database never had.
    const oldRow = { id: '55555555-5555-4555-8555-555555555555', forgehookId: 'reborn', manifest: manifest(), config: {}, environment: {}, labels: {}, requestedHostPort: null }
    const parsed = parseManifest(oldRow.manifest)
    if (!parsed.ok) throw new Error(parsed.error)
    const staleId = await runtime.create(buildContainerSpec(oldRow as never, parsed.manifest, 4190, { hostIp: '127.0.0.1', instance: 'test' }))
    await runtime.start(staleId)
    // The spec folder writes its row before the controller has looked at Docker.
    await install('reborn')
    controller = await startController(database, runtime)
    const plugin = await waitForConverged(database, 'reborn')
    expect(plugin.containerId).not.toBe(staleId)
    expect(await runtime.inspect(staleId)).toBeUndefined()
    expect((await containerOf(runtime, 'reborn'))?.labels[LABELS.pluginId]).toBe(plugin.id)
  })

  test('at start, the container of a plugin deleted while the manager was down is removed, not adopted', async () => {
    controller = await startController(database, runtime)
    const plugin = await install('gone-while-down')
    await waitForConverged(database, 'gone-while-down')
    await controller.stop()
    await sql`DELETE FROM plugins WHERE id = ${plugin.id}`.execute(database.handle.db)
    controller = await startController(database, runtime)
    await eventually(async () => ((await containerOf(runtime, 'gone-while-down')) ? undefined : true), 5_000, 'container removed')
    expect(await database.store.getPlugin('gone-while-down')).toBeUndefined()
  })

  test('a container created but not started by a crashed manager is started, not replaced', async () => {
    const plugin = await install('half-done')
    const row = await database.store.writeStatus(plugin.id, { hostPort: 4130 })
    const parsed = parseManifest(row!.manifest)
    if (!parsed.ok) throw new Error(parsed.error)
    const containerId = await runtime.create(buildContainerSpec(row!, parsed.manifest, 4130, { hostIp: '127.0.0.1', instance: 'test' }))
    runtime.resetCalls()
    controller = await startController(database, runtime)
    const converged = await waitForConverged(database, 'half-done')
    expect(converged.containerId).toBe(containerId)
    expect(runtime.mutatingCalls).toEqual([`start ${containerId}`])
  })

  test('a requested restart restarts the running container once without recreating it', async () => {
    controller = await startController(database, runtime)
    const plugin = await install('bounce')
    const running = await waitForConverged(database, 'bounce')
    runtime.resetCalls()
    controller.requestRestart(plugin.id, 'health check failed 3 times')
    await eventually(async () => ((await eventTypes(database, 'bounce')).includes('plugin:restarted') ? true : undefined))
    expect(runtime.mutatingCalls).toEqual([`stop ${running.containerId}`, `start ${running.containerId}`])
  })

  test('status is not rewritten when nothing changed', async () => {
    controller = await startController(database, runtime)
    const plugin = await install('quiet')
    const converged = await waitForConverged(database, 'quiet')
    controller.queue.add(plugin.id)
    await eventually(() => (controller!.snapshot().processing === 0 && controller!.queue.len() === 0 ? true : undefined))
    expect((await database.store.requirePlugin('quiet')).resourceVersion).toBe(converged.resourceVersion)
  })

  test('concurrent workers allocate distinct host ports without losing races to each other', async () => {
    const names = Array.from({ length: 24 }, (_, index) => `port-${index}`)
    for (const name of names) await install(name)
    controller = await startController(database, runtime, { workers: 8 })
    const converged = await Promise.all(names.map((name) => waitForConverged(database, name, 10_000)))
    const ports = converged.map((plugin) => plugin.hostPort)
    expect(new Set(ports).size).toBe(names.length)
    // Each allocation found a free port on the first try: no reconcile failed and retried.
    expect(controller.snapshot().reconcileErrors).toBe(0)
  })

  test('never creates two containers for one plugin under concurrent triggers', async () => {
    controller = await startController(database, runtime, { workers: 8 })
    const plugin = await install('racy')
    for (let index = 0; index < 20; index++) controller.queue.add(plugin.id)
    runtime.simulateReconnect('test')
    await waitForConverged(database, 'racy')
    await eventually(() => (controller!.snapshot().processing === 0 && controller!.queue.len() === 0 ? true : undefined))
    expect(runtime.mutatingCalls.filter((call) => call === `create ${containerNameFor('racy')}`)).toHaveLength(1)
  })
})
