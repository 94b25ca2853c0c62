// The spec folder holds files to the rules of the runtime that runs the plugins (RUNTIME):
// on docker a file asking for replicas is invalid, naming spec.replicas; on swarm it applies.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { RuntimeName } from '../../src/config.js'
import { EventBus } from '../../src/db/event-bus.js'
import { silentLogger } from '../../src/logger.js'
import { SpecFolder } from '../../src/sources/spec-folder.js'
import { systemClock } from '../../src/util/clock.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'

const SCALED = [
  'apiVersion: flowforge.io/v1',
  'kind: Plugin',
  'metadata:',
  '  name: scaled',
  'spec:',
  '  manifest: { name: Scaled, image: "flowforge/scaled:1", port: 8080 }',
  '  replicas: 3',
  '  placement: { preferences: [{ spread: node.labels.zone }] }',
  '',
].join('\n')

describe('the spec folder and the runtime', () => {
  let database: TestDatabase
  let dir: string
  let folder: SpecFolder | undefined

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => {
    await database?.close()
  })
  beforeEach(async () => {
    await database.reset()
    dir = await mkdtemp(path.join(tmpdir(), 'ff-specs-runtime-'))
    await writeFile(path.join(dir, 'scaled.yaml'), SCALED)
  })
  afterEach(async () => {
    await folder?.stop()
    folder = undefined
    await rm(dir, { recursive: true, force: true })
  })

  async function start(runtime?: RuntimeName): Promise<SpecFolder> {
    folder = new SpecFolder({ dir, store: database.store, events: new EventBus(), logger: silentLogger(), clock: systemClock, rescanIntervalMs: 600_000, awaitWriteFinishMs: 50, ...(runtime ? { runtime } : {}) })
    await folder.start()
    return folder
  }

  test('on the docker runtime (the default) the file is invalid, naming the fields where they are, and nothing is written', async () => {
    const started = await start()
    expect(started.list()).toEqual([
      expect.objectContaining({
        path: 'scaled.yaml',
        status: 'invalid',
        errors: [
          { field: 'spec.replicas', message: '3 replicas need RUNTIME=swarm; the docker runtime runs one container per plugin', line: 7, column: 3, document: 0 },
          { field: 'spec.placement', message: expect.stringContaining('placement needs RUNTIME=swarm'), line: 8, column: 3, document: 0 },
        ],
      }),
    ])
    expect(await database.store.getPlugin('scaled')).toBeUndefined()
  })

  test('on the swarm runtime the file applies with its replicas and placement', async () => {
    const started = await start('swarm')
    expect(started.list()).toEqual([expect.objectContaining({ path: 'scaled.yaml', status: 'ok' })])
    expect(await database.store.requirePlugin('scaled')).toMatchObject({ replicas: 3, placement: { preferences: [{ spread: 'node.labels.zone' }] }, source: 'file:scaled.yaml' })
  })
})
