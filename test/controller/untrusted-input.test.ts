// What the controller trusts: not a row written in SQL without the API's checks, not labels
// alone (a privileged container with our labels planted on it), and no label holds a secret.
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { Controller } from '../../src/controller/controller.js'
import { DECLARED_SPEC_LABEL, buildContainerSpec } from '../../src/spec/container-spec.js'
import { parseManifest } from '../../src/spec/manifest.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { containerNameFor } from '../../src/runtime/container-runtime.js'
import { eventually, openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { captureLogs } from '../helpers/log-capture.js'
import { containerOf, manifest, startController, TEST_IMAGE, waitForConverged, waitForPlugin } from '../helpers/controller-harness.js'

describe('what the controller trusts', () => {
  let database: TestDatabase
  let runtime: FakeRuntime
  let controller: Controller | undefined

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => database?.close())
  beforeEach(async () => {
    await database.reset()
    runtime = new FakeRuntime({ images: [TEST_IMAGE] })
  })
  afterEach(async () => {
    await controller?.stop()
    controller = undefined
  })

  test('a row written in SQL with a forbidden manifest field is an error naming the field; its running container is left as it is', async () => {
    controller = await startController(database, runtime)
    await database.store.createPlugin({ forgehookId: 'sneaky', source: 'api', manifest: manifest() })
    const running = await waitForConverged(database, 'sneaky')
    runtime.resetCalls()
    await sql`UPDATE plugins SET manifest = manifest || '{"privileged": true}'::jsonb WHERE forgehook_id = 'sneaky'`.execute(database.handle.db)
    const refused = await waitForPlugin(database, 'sneaky', (plugin) => plugin.status === 'error', 'refused')
    expect(refused.error).toMatch(/^invalid spec: spec\.manifest\.privileged: "privileged" is not allowed/)
    expect(runtime.mutatingCalls).toEqual([])
    expect(await containerOf(runtime, 'sneaky')).toMatchObject({ id: running.containerId, state: 'running' })
  })

  test('a row written in SQL with a bad environment name or a host port outside HOST_PORT_RANGE is refused the same way', async () => {
    controller = await startController(database, runtime)
    await database.store.createPlugin({ forgehookId: 'bad-env', source: 'sql', manifest: manifest(), environment: { 'NOT A NAME': 'x' } })
    await database.store.createPlugin({ forgehookId: 'far-port', source: 'sql', manifest: manifest(), requestedHostPort: 22 })
    expect((await waitForPlugin(database, 'bad-env', (plugin) => plugin.status === 'error', 'refused')).error).toContain('spec.environment')
    expect((await waitForPlugin(database, 'far-port', (plugin) => plugin.status === 'error', 'refused')).error).toContain('spec.hostPort: must be within HOST_PORT_RANGE 4100-4199')
    expect(await containerOf(runtime, 'bad-env')).toBeUndefined()
    expect(await containerOf(runtime, 'far-port')).toBeUndefined()
  })

  test('a privileged container carrying our labels and the right hash is foreign: reported, never started, stopped or removed', async () => {
    const plugin = await database.store.createPlugin({ forgehookId: 'planted', source: 'api', manifest: manifest() })
    const row = (await database.store.writeStatus(plugin.id, { hostPort: 4120 }))!
    const parsed = parseManifest(row.manifest)
    if (!parsed.ok) throw new Error(parsed.error)
    const spec = buildContainerSpec(row, parsed.manifest, 4120, { hostIp: '127.0.0.1', instance: 'test' })
    const plantedId = runtime.addForeign({ name: spec.name, image: TEST_IMAGE, labels: spec.labels, state: 'exited', hostPort: 4120, unsafe: ['privileged mode'] })
    controller = await startController(database, runtime)
    const reported = await waitForPlugin(database, 'planted', (candidate) => candidate.status === 'error', 'reported')
    expect(reported.error).toMatch(/held by a container with privileged mode .* which no FlowForge spec produces/)
    // Uninstalling the plugin deletes its row and leaves the planted container alone.
    await database.store.requestDeletion('planted')
    await eventually(async () => ((await database.store.getPlugin('planted')) ? undefined : true), 5_000, 'row deleted')
    expect(runtime.mutatingCalls.filter((call) => call.includes(plantedId))).toEqual([])
    expect((await runtime.inspect(plantedId))?.state).toBe('exited')
  })

  test('an orphan with such settings is not adopted, whatever its labels say', async () => {
    const log = captureLogs('warn')
    runtime.addForeign({ name: containerNameFor('privileged-orphan'), image: TEST_IMAGE, state: 'running', unsafe: ['host mounts'] })
    controller = await startController(database, runtime, { container: { hostIp: '127.0.0.1', instance: 'default' }, logger: log.logger })
    expect(await database.store.getPlugin('privileged-orphan')).toBeUndefined()
    expect(log.messages()).toContain('not adopting forgehook-privileged-orphan: it has host mounts, which no FlowForge spec produces; it is treated as foreign and left alone')
  })

  test('the declared-spec label holds no secret; an adopted container gets its secrets back from its own environment', async () => {
    const pluginId = '66666666-6666-4666-8666-666666666666'
    const declared = { id: pluginId, forgehookId: 'keeper', manifest: manifest(), config: { db: { password: 'config-s3cret' } }, environment: { API_TOKEN: 'env-s3cret', MODE: 'x' }, labels: {}, requestedHostPort: null, volumes: [] }
    const parsed = parseManifest(declared.manifest)
    if (!parsed.ok) throw new Error(parsed.error)
    const spec = buildContainerSpec(declared as never, parsed.manifest, 4121, { hostIp: '127.0.0.1', instance: 'test' })
    expect(Object.values(spec.labels).join(' ')).not.toMatch(/s3cret/)
    expect(JSON.parse(spec.labels[DECLARED_SPEC_LABEL]!)).toMatchObject({ environment: { API_TOKEN: '***', MODE: 'x' }, config: { db: { password: '***' } } })
    const containerId = await runtime.create(spec)
    await runtime.start(containerId)
    controller = await startController(database, runtime)
    const adopted = await waitForConverged(database, 'keeper')
    expect(adopted).toMatchObject({ id: pluginId, source: 'adopted', containerId, environment: { API_TOKEN: 'env-s3cret', MODE: 'x' }, config: { db: { password: 'config-s3cret' } } })
    // The same spec as the container's: nothing is recreated.
    expect((await containerOf(runtime, 'keeper'))?.id).toBe(containerId)
  })
})
