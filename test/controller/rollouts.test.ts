// Updates end to end on the in-memory runtime: the old container keeps serving until the
// new one is proven, a bad one is rolled back, start-first moves the port, volumes survive,
// and the states a manager killed mid-update leaves are resolved. (The real engine: the
// same promises in test/integration/rollouts.test.ts and the fault suite.)
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { Controller } from '../../src/controller/controller.js'
import type { Plugin } from '../../src/db/plugin-store.js'
import { LABELS, rolloutNamesFor } from '../../src/runtime/container-runtime.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { buildContainerSpec } from '../../src/spec/container-spec.js'
import { parseManifest } from '../../src/spec/manifest.js'
import { eventually, openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { containerOf, eventTypes, manifest, startController, TEST_IMAGE, waitForConverged, waitForPlugin } from '../helpers/controller-harness.js'

const BROKEN_IMAGE = 'flowforge/broken:1'

describe('rollouts on the in-memory runtime', () => {
  let database: TestDatabase
  let runtime: FakeRuntime
  let controller: Controller | undefined

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => database?.close())
  beforeEach(async () => {
    await database.reset()
    runtime = new FakeRuntime({ images: [TEST_IMAGE, 'flowforge/test:2', BROKEN_IMAGE], exitOnStart: { [BROKEN_IMAGE]: 3 } })
  })
  afterEach(async () => {
    await controller?.stop()
    controller = undefined
  })

  async function running(name: string, extra: Partial<Parameters<TestDatabase['store']['createPlugin']>[0]> = {}): Promise<Plugin> {
    await database.store.createPlugin({ forgehookId: name, source: 'api', manifest: manifest(), ...extra })
    return waitForConverged(database, name)
  }

  /** Every container of the plugin's names: its own and a rollout's. */
  async function namesOf(name: string): Promise<string[]> {
    const names = rolloutNamesFor(name)
    const found = await Promise.all([names.main, names.next, names.previous].map((containerName) => runtime.inspect(containerName)))
    return found.filter((container) => container !== undefined).map((container) => container!.name)
  }

  test('a typo in the image tag leaves the old container serving; the status names the image; a fix converges', async () => {
    controller = await startController(database, runtime)
    const before = await running('typo')
    runtime.resetCalls()
    await database.store.updateSpec('typo', { manifest: manifest({ image: 'flowforge/test:nope' }) })
    const failed = await waitForPlugin(database, 'typo', (plugin) => plugin.rollout?.phase === 'failed', 'rollout failed')
    expect(failed.rollout).toMatchObject({ phase: 'failed', toImage: 'flowforge/test:nope', fromImage: TEST_IMAGE, error: expect.stringContaining('image not found: flowforge/test:nope') })
    expect(failed).toMatchObject({ status: 'running', observedGeneration: 1, generation: 2, containerId: before.containerId })
    expect(failed.error).toContain('the previous version keeps running')
    expect((await containerOf(runtime, 'typo'))).toMatchObject({ id: before.containerId, state: 'running', image: TEST_IMAGE })
    // Retried with backoff, and nothing of the old container was touched meanwhile.
    await eventually(() => (controller!.queue.failures(before.id) >= 2 ? true : undefined), 5_000, 'retried')
    expect(runtime.mutatingCalls.filter((call) => call.includes(before.containerId!))).toEqual([])
    await database.store.updateSpec('typo', { manifest: manifest({ image: 'flowforge/test:2' }) })
    const fixed = await waitForConverged(database, 'typo')
    expect(fixed.rollout?.phase).toBe('complete')
    expect((await containerOf(runtime, 'typo'))?.image).toBe('flowforge/test:2')
    expect(await namesOf('typo')).toEqual(['forgehook-typo'])
  })

  test('a new version that exits at start is rolled back: the old container serves again and that generation is not retried', async () => {
    controller = await startController(database, runtime)
    const before = await running('regress')
    await database.store.updateSpec('regress', { manifest: manifest({ image: BROKEN_IMAGE }) })
    const rolledBack = await waitForPlugin(database, 'regress', (plugin) => plugin.rollout?.phase === 'rolled-back', 'rolled back')
    expect(rolledBack).toMatchObject({ status: 'running', containerId: before.containerId, observedGeneration: 1, generation: 2 })
    expect(rolledBack.rollout?.error).toBe('the new container exited with code 3')
    expect(await containerOf(runtime, 'regress')).toMatchObject({ id: before.containerId, state: 'running', image: TEST_IMAGE })
    expect(await namesOf('regress')).toEqual(['forgehook-regress'])
    const event = (await database.store.listEvents({ forgehookId: 'regress', types: ['plugin:rolled-back'] })).items[0]
    expect(event?.data).toMatchObject({ reason: 'the new container exited with code 3', exitCode: 3, failedImage: BROKEN_IMAGE, restoredImage: TEST_IMAGE })
    // Not retried by itself: a resync changes nothing.
    runtime.resetCalls()
    controller.requestResync('test')
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(runtime.mutatingCalls.filter((call) => call.startsWith('create'))).toEqual([])
    // An operator's retry rolls it out again (and it is rolled back again).
    await database.store.requestRolloutRetry('regress')
    await eventually(async () => ((await eventTypes(database, 'regress')).filter((type) => type === 'plugin:rolled-back').length === 2 ? true : undefined), 30_000, 'second rollback')
    expect(await containerOf(runtime, 'regress')).toMatchObject({ id: before.containerId, state: 'running' })
  })

  test('StartFirst: the new container runs beside the old one, the host port moves, then the old one goes', async () => {
    controller = await startController(database, runtime)
    const before = await running('beside', { manifest: manifest() })
    await database.store.updateSpec('beside', { manifest: manifest({ image: 'flowforge/test:2' }), updatePolicy: { strategy: 'StartFirst' } })
    const after = await waitForConverged(database, 'beside')
    expect(after.hostPort).not.toBe(before.hostPort)
    expect(after.rollout).toMatchObject({ phase: 'complete', strategy: 'StartFirst', fromHostPort: before.hostPort, toHostPort: after.hostPort })
    expect(await containerOf(runtime, 'beside')).toMatchObject({ image: 'flowforge/test:2', state: 'running', hostPort: after.hostPort })
    expect(await runtime.inspect(before.containerId!)).toBeUndefined()
    expect(await namesOf('beside')).toEqual(['forgehook-beside'])
    const updated = (await database.store.listEvents({ forgehookId: 'beside', types: ['plugin:updated'] })).items[0]
    expect(updated?.data).toMatchObject({ strategy: 'StartFirst', hostPort: { from: before.hostPort, to: after.hostPort } })
    // The old container was stopped only after the new one was running.
    const calls = runtime.mutatingCalls
    const newId = after.containerId!
    expect(calls.indexOf(`start ${newId}`)).toBeLessThan(calls.indexOf(`stop ${before.containerId}`))
  })

  test('StartFirst: a new version that exits is discarded; the old one was never stopped', async () => {
    controller = await startController(database, runtime)
    const before = await running('careful')
    await database.store.updateSpec('careful', { manifest: manifest({ image: BROKEN_IMAGE }), updatePolicy: { strategy: 'StartFirst' } })
    const rolledBack = await waitForPlugin(database, 'careful', (plugin) => plugin.rollout?.phase === 'rolled-back', 'rolled back')
    expect(rolledBack).toMatchObject({ hostPort: before.hostPort, containerId: before.containerId })
    expect(runtime.mutatingCalls).not.toContain(`stop ${before.containerId}`)
    expect(await namesOf('careful')).toEqual(['forgehook-careful'])
  })

  test('named volumes are created labelled as ours, mounted again by the new container, kept by uninstall and removed by purge', async () => {
    controller = await startController(database, runtime)
    await running('keeper', { volumes: [{ name: 'data', mountPath: '/data' }] })
    const labels = (await runtime.listVolumes({ [LABELS.forgehookId]: 'keeper' }))[0]?.labels
    expect(labels).toMatchObject({ [LABELS.managed]: 'true', [LABELS.instance]: 'test', [LABELS.forgehookId]: 'keeper', 'io.flowforge.volume': 'data' })
    await database.store.updateSpec('keeper', { manifest: manifest({ image: 'flowforge/test:2' }) })
    await waitForPlugin(database, 'keeper', (plugin) => plugin.observedGeneration === 2 && plugin.rollout?.phase === 'complete', 'updated')
    expect((await containerOf(runtime, 'keeper'))?.mounts).toContainEqual({ type: 'volume', name: 'forgehook-keeper-data', destination: '/data', readOnly: false })
    await database.store.requestDeletion('keeper')
    await eventually(async () => ((await database.store.getPlugin('keeper')) ? undefined : true), 5_000, 'uninstalled')
    expect(runtime.hasVolume('forgehook-keeper-data')).toBe(true)
    await running('keeper', { volumes: [{ name: 'data', mountPath: '/data' }] })
    await database.store.requestDeletion('keeper', { purgeVolumes: true })
    await eventually(async () => ((await database.store.getPlugin('keeper')) ? undefined : true), 5_000, 'purged')
    expect(runtime.hasVolume('forgehook-keeper-data')).toBe(false)
    expect(await eventTypes(database, 'keeper')).toContain('plugin:volumes-purged')
  })

  test('an anonymous volume of the old container (an image VOLUME) is mounted in the new one and never deleted by an update', async () => {
    runtime = new FakeRuntime({ images: [TEST_IMAGE, 'flowforge/test:2'], imageVolumes: { [TEST_IMAGE]: ['/cache'], 'flowforge/test:2': ['/cache'] } })
    controller = await startController(database, runtime)
    const before = await running('anon')
    const volume = (await runtime.inspect(before.containerId!))?.mounts?.find((mount) => mount.destination === '/cache')?.name
    expect(volume).toMatch(/^[0-9a-f]{64}$/)
    await database.store.updateSpec('anon', { manifest: manifest({ image: 'flowforge/test:2' }) })
    await waitForConverged(database, 'anon')
    expect((await containerOf(runtime, 'anon'))?.mounts).toEqual([{ type: 'volume', name: volume, destination: '/cache', readOnly: false }])
    expect(runtime.hasVolume(volume!)).toBe(true)
  })

  test('a volume of that name that is not the plugin\'s is never mounted: the plugin reports it', async () => {
    runtime.addForeignVolume('forgehook-squat-data', { owner: 'someone' })
    controller = await startController(database, runtime)
    await database.store.createPlugin({ forgehookId: 'squat', source: 'api', manifest: manifest(), volumes: [{ name: 'data', mountPath: '/data' }] })
    const plugin = await waitForPlugin(database, 'squat', (row) => row.status === 'error', 'reported')
    expect(plugin.error).toBe('volume forgehook-squat-data exists and is not this plugin\'s (it was not made by FlowForge); rename the volume in spec.volumes or remove that volume')
    expect(await containerOf(runtime, 'squat')).toBeUndefined()
  })

  test('a manager that stopped between the renames of a switch: the next one puts the new container in place and finishes', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'halfway', source: 'api', manifest: manifest({ image: 'flowforge/test:2' }) })
    const row = (await database.store.writeStatus(plugin.id, { hostPort: 4150, status: 'running' }))!
    const parsed = parseManifest(row.manifest)
    const oldParsed = parseManifest(manifest())
    if (!parsed.ok || !oldParsed.ok) throw new Error('bad fixture')
    // What the killed manager left: the old one renamed away (stopped), the new one still under its temporary name.
    const oldSpec = buildContainerSpec({ ...row, manifest: manifest() }, oldParsed.manifest, 4150, { hostIp: '127.0.0.1', instance: 'test' })
    const oldId = await runtime.create(oldSpec, { name: 'forgehook-halfway_previous' })
    const newId = await runtime.create(buildContainerSpec(row, parsed.manifest, 4150, { hostIp: '127.0.0.1', instance: 'test' }), { name: 'forgehook-halfway_next' })
    controller = await startController(database, runtime)
    const converged = await waitForConverged(database, 'halfway')
    expect(converged.containerId).toBe(newId)
    expect(await containerOf(runtime, 'halfway')).toMatchObject({ id: newId, state: 'running', image: 'flowforge/test:2' })
    expect(await runtime.inspect(oldId)).toBeUndefined()
    expect(await namesOf('halfway')).toEqual(['forgehook-halfway'])
  })
})
