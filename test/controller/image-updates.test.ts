// imagePullPolicy Always and registry credentials on the in-memory runtime: a new push under
// the same tag is rolled out once, an unchanged image recreates nothing (also across a
// manager restart), each image is pulled at most once per IMAGE_POLL_INTERVAL, and a pull
// refused for credentials is recorded as such and retried until it works. (The real engine
// and a real registry: test/integration/registry.test.ts.)
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { Controller } from '../../src/controller/controller.js'
import { wantedImage } from '../../src/controller/image-digests.js'
import type { ObservedContainer } from '../../src/runtime/container-runtime.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { SPEC_FIELDS_LABEL } from '../../src/spec/container-spec.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { containerOf, manifest, startController, waitForConverged, waitForPlugin } from '../helpers/controller-harness.js'

const IMAGE = 'registry.example/team/app:1'
const POLL_MS = 150

describe('imagePullPolicy Always on the in-memory runtime', () => {
  let database: TestDatabase
  let runtime: FakeRuntime
  let controller: Controller | undefined

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => database?.close())
  beforeEach(async () => {
    await database.reset()
    runtime = new FakeRuntime()
  })
  afterEach(async () => {
    await controller?.stop()
    controller = undefined
  })

  const alwaysManifest = manifest({ image: IMAGE, imagePullPolicy: 'Always' })

  async function updatedEvents(name: string) {
    const page = await database.store.listEvents({ forgehookId: name, types: ['plugin:updated'], order: 'asc', limit: 100 })
    return page.items
  }

  function pullsOf(image: string): number {
    return runtime.mutatingCalls.filter((call) => call === `pull ${image}`).length
  }

  test('a new push under the tag is rolled out once, with the new digest in the status and the event; an unchanged image is pulled once per interval and recreates nothing', async () => {
    const first = runtime.pushImage(IMAGE)
    controller = await startController(database, runtime, { imagePollIntervalMs: POLL_MS })
    await database.store.createPlugin({ forgehookId: 'app', source: 'api', manifest: alwaysManifest })
    const installed = await waitForPlugin(database, 'app', (plugin) => plugin.status === 'running' && plugin.imageDigest !== null, 'running with a digest')
    expect(installed.imageDigest).toBe(first.digest)
    expect(await containerOf(runtime, 'app')).toMatchObject({ id: installed.containerId, imageId: first.imageId })

    // Unchanged: polled, never recreated; at most one pull per interval.
    runtime.resetCalls()
    const quietStarted = Date.now()
    await delay(POLL_MS * 6)
    const quietPulls = pullsOf(IMAGE)
    expect(quietPulls).toBeGreaterThanOrEqual(3)
    expect(quietPulls).toBeLessThanOrEqual(Math.floor((Date.now() - quietStarted) / POLL_MS) + 1)
    expect(runtime.mutatingCalls.filter((call) => !call.startsWith('pull '))).toEqual([])
    expect(await updatedEvents('app')).toEqual([])

    const second = runtime.pushImage(IMAGE)
    const updated = await waitForPlugin(database, 'app', (plugin) => plugin.imageDigest === second.digest && plugin.rollout?.phase === 'complete', 'the new digest rolled out')
    const container = await containerOf(runtime, 'app')
    expect(container).toMatchObject({ id: updated.containerId, imageId: second.imageId, state: 'running' })
    expect(updated.containerId).not.toBe(installed.containerId)
    expect(updated).toMatchObject({ status: 'running', error: null, observedGeneration: updated.generation, generation: 1 })

    // Once: later polls find the same image again.
    await delay(POLL_MS * 4)
    expect((await containerOf(runtime, 'app'))?.id).toBe(updated.containerId)
    const events = await updatedEvents('app')
    expect(events).toHaveLength(1)
    expect(events[0]?.data).toMatchObject({ changedFields: ['imageId'], imageDigest: second.digest, image: IMAGE, previousContainerId: installed.containerId })
  })

  test('a manager that restarts knows no digest yet and recreates nothing whose image did not change; the first poll records a missing digest', async () => {
    runtime.pushImage(IMAGE)
    controller = await startController(database, runtime, { imagePollIntervalMs: POLL_MS })
    await database.store.createPlugin({ forgehookId: 'steady', source: 'api', manifest: alwaysManifest })
    await waitForConverged(database, 'steady')
    // A push rolled out: the container now carries an imageId hash.
    const pushed = runtime.pushImage(IMAGE)
    const rolled = await waitForPlugin(database, 'steady', (plugin) => plugin.imageDigest === pushed.digest && plugin.rollout?.phase === 'complete', 'rolled out')
    expect((await containerOf(runtime, 'steady'))?.labels[SPEC_FIELDS_LABEL]).toContain('imageId=')
    await controller.stop()
    // As a row of a version before status.imageDigest: the first poll after the start fills it in.
    await database.store.writeStatus(rolled.id, { imageDigest: null })

    runtime.resetCalls()
    controller = await startController(database, runtime, { imagePollIntervalMs: POLL_MS })
    await delay(POLL_MS * 4)
    expect(pullsOf(IMAGE)).toBeGreaterThanOrEqual(1)
    expect(runtime.mutatingCalls.filter((call) => !call.startsWith('pull '))).toEqual([])
    expect((await containerOf(runtime, 'steady'))?.id).toBe(rolled.containerId)
    expect(await updatedEvents('steady')).toHaveLength(1)
    await waitForPlugin(database, 'steady', (plugin) => plugin.imageDigest === pushed.digest, 'the digest recorded again')
  })

  test('a push that fails is rolled back and held; a newer push under the tag is rolled out', async () => {
    const exitOnStart: Record<string, number> = {}
    runtime = new FakeRuntime({ exitOnStart })
    const good = runtime.pushImage(IMAGE)
    controller = await startController(database, runtime, { imagePollIntervalMs: POLL_MS })
    await database.store.createPlugin({ forgehookId: 'flaky', source: 'api', manifest: alwaysManifest })
    const installed = await waitForConverged(database, 'flaky')
    const bad = runtime.pushImage(IMAGE)
    exitOnStart[bad.imageId] = 3
    const rolledBack = await waitForPlugin(database, 'flaky', (plugin) => plugin.rollout?.phase === 'rolled-back', 'rolled back')
    expect(rolledBack.rollout).toMatchObject({ toImageId: bad.imageId, toImage: IMAGE })
    expect(await containerOf(runtime, 'flaky')).toMatchObject({ id: installed.containerId, imageId: good.imageId, state: 'running' })
    // Held: the polls find the failed image again and leave the old container alone.
    runtime.resetCalls()
    await delay(POLL_MS * 4)
    expect(runtime.mutatingCalls.filter((call) => !call.startsWith('pull '))).toEqual([])
    const fixed = runtime.pushImage(IMAGE)
    const updated = await waitForPlugin(database, 'flaky', (plugin) => plugin.imageDigest === fixed.digest && plugin.rollout?.phase === 'complete', 'the fix rolled out')
    expect(await containerOf(runtime, 'flaky')).toMatchObject({ id: updated.containerId, imageId: fixed.imageId, state: 'running' })
    expect(updated.error).toBeNull()
  })

  test('a pull refused for credentials reads "registry authentication failed for HOST", not "image not found", and converges once access is granted', async () => {
    runtime.pushImage(IMAGE)
    runtime.setAuthRequired(IMAGE, true)
    controller = await startController(database, runtime, { imagePollIntervalMs: 60_000 })
    await database.store.createPlugin({ forgehookId: 'private', source: 'api', manifest: alwaysManifest })
    const refused = await waitForPlugin(database, 'private', (plugin) => plugin.status === 'error', 'error recorded')
    expect(refused.error).toMatch(/^registry authentication failed for registry\.example \(/)
    expect(refused.error).not.toContain('image not found')
    const errors = await database.store.listEvents({ forgehookId: 'private', types: ['plugin:error'], limit: 10 })
    expect(errors.items[0]?.data).toMatchObject({ error: refused.error })
    // `docker login` (here: the registry lets us in): the retry with backoff converges.
    runtime.setAuthRequired(IMAGE, false)
    const fixed = await waitForConverged(database, 'private')
    expect(fixed).toMatchObject({ status: 'running', error: null })
  })

  test('an update a registry refuses leaves the old version serving and names the registry', async () => {
    runtime.pushImage(IMAGE)
    controller = await startController(database, runtime, { imagePollIntervalMs: 60_000 })
    await database.store.createPlugin({ forgehookId: 'locked', source: 'api', manifest: alwaysManifest })
    const before = await waitForConverged(database, 'locked')
    runtime.setAuthRequired(IMAGE, true)
    await database.store.updateSpec('locked', { environment: { LEVEL: 'debug' } })
    const failed = await waitForPlugin(database, 'locked', (plugin) => plugin.rollout?.phase === 'failed', 'rollout failed')
    expect(failed.rollout?.error).toMatch(/^registry authentication failed for registry\.example/)
    expect(failed).toMatchObject({ status: 'running', containerId: before.containerId })
  })
})

describe('which image an Always plugin should run', () => {
  const hashed = { [SPEC_FIELDS_LABEL]: 'image=aa,imageId=bb' }
  function container(imageId: string | undefined, labels: Record<string, string> = {}, image = IMAGE): ObservedContainer {
    return { id: 'c1', name: 'forgehook-app', image, ...(imageId ? { imageId } : {}), state: 'running', labels }
  }
  const noDigests = () => undefined

  test('nothing pulled and no container: nothing to compare', () => {
    expect(wantedImage(IMAGE, undefined, undefined, noDigests)).toEqual({})
  })

  test('nothing pulled yet (a restart): the container is taken to run the wanted image', () => {
    expect(wantedImage(IMAGE, undefined, container('sha256:old', hashed), noDigests)).toEqual({ imageId: 'sha256:old' })
    expect(wantedImage(IMAGE, undefined, container('sha256:old'), noDigests)).toEqual({})
  })

  test('the pull found the image the container runs: no drift, with or without its hash', () => {
    const latest = { imageId: 'sha256:same', digest: 'sha256:d1' }
    expect(wantedImage(IMAGE, latest, container('sha256:same'), noDigests)).toEqual({ imageDigest: 'sha256:d1' })
    expect(wantedImage(IMAGE, latest, container('sha256:same', hashed), noDigests)).toEqual({ imageId: 'sha256:same', imageDigest: 'sha256:d1' })
  })

  test('the pull found another image: its id is wanted, so the container has drifted', () => {
    const latest = { imageId: 'sha256:new', digest: 'sha256:d2' }
    expect(wantedImage(IMAGE, latest, container('sha256:old'), noDigests)).toEqual({ imageId: 'sha256:new', imageDigest: 'sha256:d2' })
    expect(wantedImage(IMAGE, latest, container('sha256:old', hashed), noDigests)).toEqual({ imageId: 'sha256:new', imageDigest: 'sha256:d2' })
  })

  test('a container of another tag (or none): the image change is the drift, no imageId', () => {
    const latest = { imageId: 'sha256:new', digest: 'sha256:d2' }
    expect(wantedImage(IMAGE, latest, container('sha256:x', hashed, 'registry.example/team/app:0'), noDigests)).toEqual({ imageDigest: 'sha256:d2' })
    expect(wantedImage(IMAGE, latest, undefined, noDigests)).toEqual({ imageDigest: 'sha256:d2' })
  })
})

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
