// The docker runtime runs one container per plugin: a row written in SQL that asks for more
// replicas, or for a placement, is a terminal spec error naming the field, and nothing is
// created or changed for it (the API and the spec folder refuse such documents earlier).
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { Controller } from '../../src/controller/controller.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { containerOf, manifest, startController, TEST_IMAGE, waitForConverged, waitForPlugin } from '../helpers/controller-harness.js'

describe('replicas and placement on the docker runtime', () => {
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

  test('a row inserted in SQL with replicas 3 is an error saying why, and no container is created', async () => {
    controller = await startController(database, runtime)
    await sql`INSERT INTO plugins (forgehook_id, manifest, replicas) VALUES ('scaled', ${JSON.stringify(manifest())}::jsonb, 3)`.execute(database.handle.db)
    const refused = await waitForPlugin(database, 'scaled', (plugin) => plugin.status === 'error', 'refused')
    expect(refused.error).toBe('invalid spec: spec.replicas: 3 replicas need RUNTIME=swarm; the docker runtime runs one container per plugin')
    expect(refused.observedGeneration).toBe(refused.generation)
    expect(await containerOf(runtime, 'scaled')).toBeUndefined()
    expect(runtime.mutatingCalls.filter((call) => call.startsWith('create'))).toEqual([])
  })

  test('a running plugin given a placement in SQL is an error, its container left as it is; back to none, it converges again', async () => {
    controller = await startController(database, runtime)
    await database.store.createPlugin({ forgehookId: 'placed', source: 'api', manifest: manifest() })
    const running = await waitForConverged(database, 'placed')
    runtime.resetCalls()
    await sql`UPDATE plugins SET placement = '{"constraints": ["node.labels.zone==a"]}'::jsonb WHERE forgehook_id = 'placed'`.execute(database.handle.db)
    const refused = await waitForPlugin(database, 'placed', (plugin) => plugin.status === 'error', 'refused')
    expect(refused.error).toMatch(/^invalid spec: spec\.placement: placement needs RUNTIME=swarm/)
    expect(runtime.mutatingCalls).toEqual([])
    expect(await containerOf(runtime, 'placed')).toMatchObject({ id: running.containerId, state: 'running' })

    await sql`UPDATE plugins SET placement = '{}'::jsonb WHERE forgehook_id = 'placed'`.execute(database.handle.db)
    const again = await waitForPlugin(database, 'placed', (plugin) => plugin.status === 'running' && plugin.error === null, 'running again')
    expect(again.containerId).toBe(running.containerId)
  })
})
