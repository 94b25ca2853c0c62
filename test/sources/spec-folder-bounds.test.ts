// What one spec file can cost the daemon: a file of thousands of bad documents is one report
// of bounded size, and audit rows that carry only their own plugin's errors; a file with more
// documents than SPECS_MAX_DOCUMENTS is refused unread.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { EventBus, type BusEvent } from '../../src/db/event-bus.js'
import { MAX_REPORTED_ERRORS } from '../../src/sources/spec-file-report.js'
import { SpecFolder } from '../../src/sources/spec-folder.js'
import { MAX_SPEC_FILE_BYTES } from '../../src/spec/parse-yaml.js'
import { systemClock } from '../../src/util/clock.js'
import { eventually, openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { captureLogs, type CapturedLog } from '../helpers/log-capture.js'

/** A document that names a plugin and has `badFields` unknown fields (one error each). */
function badDocument(name: string, badFields: number): string {
  const extra = Array.from({ length: badFields }, (_, index) => `  bad${index}: 1\n`).join('')
  return `apiVersion: flowforge.io/v1\nkind: Plugin\nmetadata:\n  name: ${name}\nspec:\n  manifest: { image: x/y:1, port: 80 }\n${extra}`
}

describe('spec folder bounds', () => {
  let database: TestDatabase
  let dir: string
  let folder: SpecFolder | undefined
  let busEvents: BusEvent[]
  let logs: CapturedLog

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => {
    await database?.close()
  })
  beforeEach(async () => {
    await database.reset()
    dir = await mkdtemp(path.join(tmpdir(), 'ff-spec-bounds-'))
    busEvents = []
    logs = captureLogs('info')
  })
  afterEach(async () => {
    await folder?.stop()
    folder = undefined
    await rm(dir, { recursive: true, force: true })
  })

  async function startFolder(maxDocuments?: number): Promise<SpecFolder> {
    const events = new EventBus()
    events.subscribe((event) => busEvents.push(event))
    folder = new SpecFolder({
      dir,
      store: database.store,
      events,
      logger: logs.logger,
      clock: systemClock,
      rescanIntervalMs: 600_000,
      awaitWriteFinishMs: 50,
      hostPorts: { range: { from: 4100, to: 4999 }, allowAny: false },
      ...(maxDocuments ? { maxDocuments } : {}),
    })
    await folder.start()
    return folder
  }

  test('a file of 400 bad documents is one report of 50 errors and the count of the rest; each plugin\'s audit row holds only its own errors', async () => {
    // 400 documents of 5 errors each: 2,000 errors in all.
    const text = Array.from({ length: 400 }, (_, index) => badDocument(`bad-${index}`, 5)).join('---\n')
    await writeFile(path.join(dir, 'many.yaml'), text)
    const specs = await startFolder()
    const report = specs.list().find((candidate) => candidate.path === 'many.yaml')!
    expect(report.status).toBe('invalid')
    expect(report.errors).toHaveLength(MAX_REPORTED_ERRORS)
    expect(report.moreErrors).toBe(2_000 - MAX_REPORTED_ERRORS)
    expect(report.plugins).toHaveLength(400)

    const live = busEvents.filter((event) => event.type === 'spec:invalid')
    expect(live).toHaveLength(1)
    expect(JSON.stringify(live[0]!.data).length).toBeLessThan(20_000)
    const audit = await eventually(async () => {
      const page = await database.store.listEvents({ types: ['spec:invalid'], limit: 1000 })
      return page.items.length === 400 ? page.items : undefined
    }, 5_000, 'one spec:invalid row per plugin')
    for (const event of audit) {
      const errors = event.data.errors as { document: number }[]
      expect(errors, event.forgehookId).toHaveLength(5)
      expect(new Set(errors.map((error) => error.document)).size).toBe(1)
    }
    // All 400 rows together are about what one row with every error used to be.
    expect(audit.reduce((bytes, event) => bytes + JSON.stringify(event.data).length, 0)).toBeLessThan(800_000)
  })

  test('a 1 MiB file of 9,600 bad documents is refused unread (SPECS_MAX_DOCUMENTS): one report, no audit rows, the daemon stays small', async () => {
    const documents: string[] = []
    let size = 0
    for (let index = 0; size < MAX_SPEC_FILE_BYTES - 200 && index < 9_600; index++) {
      const document = `metadata: { name: p${index} }\nspec: 1\n`
      documents.push(document)
      size += document.length + 4
    }
    expect(documents.length).toBeGreaterThan(9_000)
    await writeFile(path.join(dir, 'bomb.yaml'), documents.join('---\n'))
    const heapBefore = process.memoryUsage().heapUsed
    const specs = await startFolder()
    const report = specs.list().find((candidate) => candidate.path === 'bomb.yaml')!
    expect(report).toMatchObject({ status: 'refused', errors: [{ message: expect.stringMatching(/more than 500 YAML documents \(SPECS_MAX_DOCUMENTS\)/) }] })
    expect(busEvents.filter((event) => event.type.startsWith('spec:'))).toHaveLength(1)
    expect((await database.store.listEvents({ limit: 1000 })).items).toEqual([])
    // Was about 12 GB of events (each of 9,600 carrying every error); now well under 100 MB.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(100 * 1024 * 1024)
  })

  test('SPECS_MAX_DOCUMENTS is honoured: a file of exactly that many documents is read, one more is refused', async () => {
    const valid = (count: number) =>
      Array.from({ length: count }, (_, index) => `apiVersion: flowforge.io/v1\nkind: Plugin\nmetadata: { name: ok-${index} }\nspec:\n  manifest: { image: x/y:1, port: 80 }\n`).join('---\n')
    await writeFile(path.join(dir, 'three.yaml'), valid(3))
    await writeFile(path.join(dir, 'four.yaml'), valid(4))
    const specs = await startFolder(3)
    expect(specs.list().map(({ path: file, status }) => [file, status])).toEqual([
      ['four.yaml', 'refused'],
      ['three.yaml', 'ok'],
    ])
    expect((await database.store.listPlugins()).map((plugin) => plugin.forgehookId).sort()).toEqual(['ok-0', 'ok-1', 'ok-2'])
  })

  test('a document asking for a host port outside HOST_PORT_RANGE is invalid, at its line; the others of the file apply', async () => {
    const document = (name: string, hostPort: number) =>
      `apiVersion: flowforge.io/v1\nkind: Plugin\nmetadata: { name: ${name} }\nspec:\n  hostPort: ${hostPort}\n  manifest: { image: x/y:1, port: 80 }\n`
    await writeFile(path.join(dir, 'ports.yaml'), `${document('inside', 4100)}---\n${document('docker', 2375)}`)
    const specs = await startFolder()
    const report = specs.list()[0]!
    expect(report.status).toBe('invalid')
    expect(report.errors).toEqual([{ field: 'spec.hostPort', message: expect.stringContaining('HOST_PORT_RANGE 4100-4999'), document: 1, line: 12, column: 3 }])
    expect((await database.store.listPlugins()).map((plugin) => plugin.forgehookId)).toEqual(['inside'])
  })
})
