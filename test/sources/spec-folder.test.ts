// The spec folder on a real temporary folder (chokidar watching it) and the embedded
// database. Deletion is only requested here: no controller runs to remove rows.
import { mkdir, mkdtemp, open, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { SpecFileReport } from '../../src/sources/spec-file-report.js'
import { EventBus, type BusEvent } from '../../src/db/event-bus.js'
import { DatabaseUnavailableError } from '../../src/db/errors.js'
import type { Plugin, PluginStore } from '../../src/db/plugin-store.js'
import { SpecFolder } from '../../src/sources/spec-folder.js'
import { MAX_SPEC_FILE_BYTES } from '../../src/spec/parse-yaml.js'
import { systemClock, type Clock } from '../../src/util/clock.js'
import { eventually, openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'
import { FakeClock } from '../helpers/fake-clock.js'
import { captureLogs, type CapturedLog } from '../helpers/log-capture.js'

const WAIT_MS = 5_000

function specYaml(name: string, options: { port?: number | string; environment?: Record<string, string>; comment?: string } = {}): string {
  return [
    ...(options.comment ? [`# ${options.comment}`] : []),
    'apiVersion: flowforge.io/v1',
    'kind: Plugin',
    'metadata:',
    `  name: ${name}`,
    '  labels: { team: payments }',
    'spec:',
    '  state: running',
    '  manifest:',
    `    name: Plugin ${name}`,
    `    image: flowforge/${name}:1.0.0`,
    `    port: ${options.port ?? 8080}`,
    '    healthCheck: { path: /health, intervalSeconds: 30 }',
    ...(options.environment ? ['  environment:', ...Object.entries(options.environment).map(([key, value]) => `    ${key}: "${value}"`)] : []),
    '',
  ].join('\n')
}

describe('spec folder', () => {
  let database: TestDatabase
  let dir: string
  let outsideDir: string
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
    dir = await mkdtemp(path.join(tmpdir(), 'ff-specs-'))
    outsideDir = await mkdtemp(path.join(tmpdir(), 'ff-outside-'))
    busEvents = []
    logs = captureLogs('info')
  })
  afterEach(async () => {
    await folder?.stop()
    folder = undefined
    // Nothing may fail unexpectedly (the chain's catch-all logs at error level).
    expect(logs.lines.filter((line) => Number(line.level) >= 50)).toEqual([])
    await rm(dir, { recursive: true, force: true })
    await rm(outsideDir, { recursive: true, force: true })
  })

  async function startFolder(options: { clock?: Clock; store?: PluginStore } = {}): Promise<SpecFolder> {
    const events = new EventBus()
    events.subscribe((event) => busEvents.push(event))
    // On the system clock the periodic rescan is left to its long interval: tests call rescan().
    const { clock = systemClock, store = database.store } = options
    folder = new SpecFolder({ dir, store, events, logger: logs.logger, clock, rescanIntervalMs: 600_000, awaitWriteFinishMs: 100 })
    await folder.start()
    return folder
  }

  const spec = (file: string, text: string) => writeFile(path.join(dir, file), text)
  const plugin = (name: string) => database.store.getPlugin(name)
  const reportOf = (file: string): SpecFileReport | undefined => folder?.list().find((report) => report.path === file)

  function pluginWhere(name: string, check: (found: Plugin) => boolean, what: string): Promise<Plugin> {
    return eventually(
      async () => {
        const found = await plugin(name)
        return found && check(found) ? found : undefined
      },
      WAIT_MS,
      what,
    )
  }

  function reportWhere(file: string, check: (report: SpecFileReport) => boolean, what: string): Promise<SpecFileReport> {
    return eventually(
      () => {
        const report = reportOf(file)
        return report && check(report) ? report : undefined
      },
      WAIT_MS,
      what,
    )
  }

  test('follows a folder moved in and removed again', async () => {
    await startFolder()
    const staging = path.join(outsideDir, 'team')
    await mkdir(staging)
    await writeFile(path.join(staging, 'one.yaml'), specYaml('team-one'))
    await writeFile(path.join(staging, 'two.yml'), specYaml('team-two'))
    await rename(staging, path.join(dir, 'team'))
    await pluginWhere('team-one', (found) => found.source === 'file:team/one.yaml', 'team-one from the moved folder')
    await pluginWhere('team-two', (found) => found.source === 'file:team/two.yml', 'team-two from the moved folder')

    await rm(path.join(dir, 'team'), { recursive: true })
    await pluginWhere('team-one', (found) => found.deletionRequestedAt !== null, 'deletion of team-one')
    await pluginWhere('team-two', (found) => found.deletionRequestedAt !== null, 'deletion of team-two')
    expect(folder!.list()).toEqual([])
  })

  test('applies the files present at start, in nested folders, with a file source', async () => {
    await mkdir(path.join(dir, 'team'))
    await spec('team/crypto.yaml', specYaml('crypto-service', { environment: { LOG_LEVEL: 'info' } }))
    await spec('mailer.YML', specYaml('mailer'))
    await spec('notes.txt', specYaml('not-a-spec'))
    await spec('.hidden.yaml', specYaml('hidden'))
    await startFolder()

    const crypto = await plugin('crypto-service')
    expect(crypto).toMatchObject({ source: 'file:team/crypto.yaml', labels: { team: 'payments' }, environment: { LOG_LEVEL: 'info' }, desiredState: 'running' })
    expect(crypto!.manifest).toMatchObject({ image: 'flowforge/crypto-service:1.0.0', port: 8080 })
    expect((await plugin('mailer'))?.source).toBe('file:mailer.YML')
    expect(await plugin('not-a-spec')).toBeUndefined()
    expect(await plugin('hidden')).toBeUndefined()
    expect(folder!.list()).toEqual([
      { path: 'mailer.YML', status: 'ok', plugins: ['mailer'], errors: [], checkedAt: expect.any(String) },
      { path: 'team/crypto.yaml', status: 'ok', plugins: ['crypto-service'], errors: [], checkedAt: expect.any(String) },
    ])
  })

  test('applies a file added while running', async () => {
    await startFolder()
    await spec('late.yaml', specYaml('late-comer'))
    const created = await pluginWhere('late-comer', () => true, 'the new file to be applied')
    expect(created.source).toBe('file:late.yaml')
  })

  test('applies a partially written file once, with its complete content', async () => {
    await startFolder()
    const text = specYaml('slow-writer', { port: 9001, environment: { MODE: 'complete' } })
    const handle = await open(path.join(dir, 'slow.yaml'), 'w')
    await handle.write(text.slice(0, Math.floor(text.length / 2)))
    await new Promise((resolve) => setTimeout(resolve, 40))
    await handle.write(text.slice(Math.floor(text.length / 2)))
    await handle.close()

    const applied = await pluginWhere('slow-writer', () => true, 'the finished file to be applied')
    expect(applied.environment).toEqual({ MODE: 'complete' })
    expect(applied.manifest.port).toBe(9001)
    expect(applied.generation).toBe(1)
    await reportWhere('slow.yaml', (report) => report.status === 'ok', 'the report')
    expect(busEvents).toEqual([])
  })

  test('picks up rename-replace saves, again and again', async () => {
    await spec('editor.yaml', specYaml('edited', { port: 8080 }))
    await startFolder()
    for (const port of [9090, 9191]) {
      await spec('editor.yaml.tmp', specYaml('edited', { port }))
      await rename(path.join(dir, 'editor.yaml.tmp'), path.join(dir, 'editor.yaml'))
      const saved = await pluginWhere('edited', (found) => found.manifest.port === port, `port ${port} after a rename-replace save`)
      expect(saved.source).toBe('file:editor.yaml')
      expect(saved.deletionRequestedAt).toBeNull()
    }
    expect(folder!.list().map((report) => report.path)).toEqual(['editor.yaml'])
  })

  test('writes nothing when the content, or only its formatting, is unchanged', async () => {
    await spec('steady.yaml', specYaml('steady'))
    await startFolder()
    const before = (await plugin('steady'))!
    const firstCheck = reportOf('steady.yaml')!.checkedAt

    await spec('steady.yaml', specYaml('steady'))
    await reportWhere('steady.yaml', (report) => report.checkedAt !== firstCheck, 'the same content to be read again')
    await folder!.rescan()
    await spec('steady.yaml', specYaml('steady', { comment: 'only a comment is new' }))
    await folder!.rescan()
    await new Promise((resolve) => setTimeout(resolve, 300))
    await folder!.rescan()

    const after = (await plugin('steady'))!
    expect(after.resourceVersion).toBe(before.resourceVersion)
    expect(after.generation).toBe(1)
  })

  test('requests deletion of the plugins of a deleted file, and only those', async () => {
    await spec('doomed.yaml', `${specYaml('doomed-a')}---\n${specYaml('doomed-b')}`)
    await spec('survivor.yaml', specYaml('survivor'))
    await database.store.createPlugin({ forgehookId: 'by-api', source: 'api', manifest: sampleManifest('by-api') })
    await startFolder()

    await unlink(path.join(dir, 'doomed.yaml'))
    await pluginWhere('doomed-a', (found) => found.deletionRequestedAt !== null, 'deletion of doomed-a')
    await pluginWhere('doomed-b', (found) => found.deletionRequestedAt !== null, 'deletion of doomed-b')
    expect((await plugin('survivor'))!.deletionRequestedAt).toBeNull()
    expect((await plugin('by-api'))!.deletionRequestedAt).toBeNull()
    await eventually(() => (reportOf('doomed.yaml') === undefined ? true : undefined), WAIT_MS, 'the report to disappear')
  })

  test('requests deletion at start for files removed while the manager was stopped', async () => {
    await spec('kept.yaml', specYaml('kept'))
    await database.store.createPlugin({ forgehookId: 'orphan', source: 'file:gone.yaml', manifest: sampleManifest('orphan') })
    await startFolder()
    expect((await plugin('orphan'))!.deletionRequestedAt).not.toBeNull()
    expect((await plugin('kept'))!.deletionRequestedAt).toBeNull()
  })

  test('keeps the last good spec while a file is invalid, reports where, and applies it once valid again', async () => {
    await spec('flaky.yaml', specYaml('flaky', { port: 8080 }))
    await startFolder()
    const good = (await plugin('flaky'))!

    await spec('flaky.yaml', specYaml('flaky', { port: '"not a port"' }))
    const invalid = await reportWhere('flaky.yaml', (report) => report.status === 'invalid', 'the invalid report')
    expect(invalid.plugins).toEqual(['flaky'])
    expect(invalid.errors).toEqual([{ field: 'spec.manifest.port', line: 11, column: 5, document: 0, message: expect.stringMatching(/number/) }])
    const kept = (await plugin('flaky'))!
    expect(kept.resourceVersion).toBe(good.resourceVersion)
    expect(kept.deletionRequestedAt).toBeNull()

    // Told once: a log line, a live event, an audit event on the plugin.
    expect(busEvents).toEqual([expect.objectContaining({ type: 'spec:invalid', id: null, data: { file: 'flaky.yaml', errors: invalid.errors } })])
    expect(logs.lines.filter((line) => line.level === 40 && String(line.msg).includes('flaky.yaml'))).toHaveLength(1)
    const audit = await database.store.listEvents({ forgehookId: 'flaky', types: ['spec:invalid'] })
    expect(audit.items).toEqual([expect.objectContaining({ pluginId: good.id, data: { file: 'flaky.yaml', errors: invalid.errors } })])
    await folder!.rescan()
    expect(busEvents).toHaveLength(1)

    await spec('flaky.yaml', `this: is: not yaml\n`)
    await reportWhere('flaky.yaml', (report) => report.errors.some((error) => error.line === 1 && error.field === undefined), 'the YAML error')
    expect((await plugin('flaky'))!.deletionRequestedAt).toBeNull()

    await spec('flaky.yaml', specYaml('flaky', { port: 9090 }))
    await reportWhere('flaky.yaml', (report) => report.status === 'ok' && report.errors.length === 0, 'the report to be ok again')
    expect((await plugin('flaky'))!.manifest.port).toBe(9090)
  })

  test('gives a name claimed by two files to the first, and to the other only once the plugin is gone', async () => {
    await spec('a.yaml', specYaml('shared', { port: 1111 }))
    await spec('b.yaml', specYaml('shared', { port: 2222 }))
    await startFolder()

    const owned = (await plugin('shared'))!
    expect(owned).toMatchObject({ source: 'file:a.yaml', manifest: expect.objectContaining({ port: 1111 }) })
    expect(reportOf('a.yaml')!.status).toBe('ok')
    expect(reportOf('b.yaml')).toMatchObject({
      status: 'conflict',
      plugins: ['shared'],
      errors: [{ message: 'plugin "shared" is owned by file:a.yaml; not applied', field: 'metadata.name', document: 0 }],
    })
    expect(busEvents.map((event) => event.type)).toEqual(['spec:conflict'])

    // The owner goes: the plugin is uninstalled, not handed to b.yaml in the same step.
    await unlink(path.join(dir, 'a.yaml'))
    const deleting = await pluginWhere('shared', (found) => found.deletionRequestedAt !== null, 'deletion of shared')
    expect(deleting.source).toBe('file:a.yaml')
    await folder!.rescan()
    expect((await plugin('shared'))!.source).toBe('file:a.yaml')
    expect(reportOf('b.yaml')!.status).toBe('conflict')
    expect(busEvents.map((event) => event.type)).toEqual(['spec:conflict'])

    // Once the controller has removed the row, the next rescan creates it from b.yaml.
    await database.store.deletePlugin(deleting.id)
    await folder!.rescan()
    const handedOver = (await plugin('shared'))!
    expect(handedOver).toMatchObject({ source: 'file:b.yaml', deletionRequestedAt: null, manifest: expect.objectContaining({ port: 2222 }) })
    expect(reportOf('b.yaml')).toMatchObject({ status: 'ok', errors: [] })
  })

  test('does not touch a plugin created through the API, and reports the conflict', async () => {
    const byApi = await database.store.createPlugin({ forgehookId: 'api-owned', source: 'api', manifest: sampleManifest('api-owned') })
    await spec('claim.yaml', `${specYaml('api-owned', { port: 7000 })}---\n${specYaml('free-name')}`)
    await startFolder()

    const after = (await plugin('api-owned'))!
    expect(after).toMatchObject({ source: 'api', resourceVersion: byApi.resourceVersion, manifest: sampleManifest('api-owned') })
    expect(reportOf('claim.yaml')).toMatchObject({
      status: 'conflict',
      plugins: ['api-owned', 'free-name'],
      errors: [{ message: 'plugin "api-owned" is owned by api; not applied', field: 'metadata.name', document: 0 }],
    })
    expect((await plugin('free-name'))?.source).toBe('file:claim.yaml')
    const audit = await database.store.listEvents({ forgehookId: 'api-owned', types: ['spec:conflict'] })
    expect(audit.items).toEqual([expect.objectContaining({ pluginId: byApi.id })])
  })

  test('a periodic rescan applies a file once the plugin that blocked it is gone', async () => {
    const byApi = await database.store.createPlugin({ forgehookId: 'blocked', source: 'api', manifest: sampleManifest('blocked') })
    await spec('blocked.yaml', specYaml('blocked'))
    const clock = new FakeClock()
    await startFolder({ clock })
    expect(reportOf('blocked.yaml')!.status).toBe('conflict')

    // Nothing in the folder changes, so no watch event: only the timer brings the next look.
    await database.store.deletePlugin(byApi.id)
    clock.advance(600_000)
    const created = await pluginWhere('blocked', () => true, 'the periodic rescan to create the plugin')
    expect(created.source).toBe('file:blocked.yaml')
    await reportWhere('blocked.yaml', (report) => report.status === 'ok', 'the report to be ok')
  })

  test('retries a file at the next rescan when the database failed', async () => {
    // The real store, with one failing insert.
    const store = Object.create(database.store) as PluginStore
    let failures = 1
    store.createPlugin = async (input) => {
      if (failures-- > 0) throw new DatabaseUnavailableError('the database is unreachable')
      return database.store.createPlugin(input)
    }
    await spec('retry.yaml', specYaml('retried'))
    await startFolder({ store })
    expect(await plugin('retried')).toBeUndefined()
    expect(reportOf('retry.yaml')!.errors).toEqual([{ message: expect.stringMatching(/not applied: the database is unreachable/) }])
    expect(logs.lines.some((line) => line.level === 40 && String(line.msg).includes('could not apply spec file retry.yaml'))).toBe(true)

    await folder!.rescan()
    expect((await plugin('retried'))?.source).toBe('file:retry.yaml')
    expect(reportOf('retry.yaml')).toMatchObject({ status: 'ok', errors: [] })
  })

  test('refuses a file over 1 MiB without parsing it', async () => {
    const padding = `# ${'x'.repeat(MAX_SPEC_FILE_BYTES)}\n`
    await spec('huge.yaml', `${specYaml('too-big')}${padding}`)
    await startFolder()
    expect(await plugin('too-big')).toBeUndefined()
    expect(reportOf('huge.yaml')).toMatchObject({ status: 'refused', plugins: [], errors: [{ message: expect.stringMatching(/1 MiB/) }] })
    expect(busEvents).toEqual([expect.objectContaining({ type: 'spec:refused', forgehookId: null, data: expect.objectContaining({ file: 'huge.yaml' }) })])
  })

  test('ignores a symlink leading outside the folder', async () => {
    await writeFile(path.join(outsideDir, 'secret.yaml'), specYaml('from-outside'))
    await symlink(path.join(outsideDir, 'secret.yaml'), path.join(dir, 'linked.yaml'))
    await startFolder()
    expect(await plugin('from-outside')).toBeUndefined()
    expect(reportOf('linked.yaml')).toMatchObject({ status: 'refused', errors: [{ message: expect.stringMatching(/outside the spec folder/) }] })
  })

  test('requests deletion of a document removed from a still valid file, but not when the file breaks', async () => {
    await spec('multi.yaml', `${specYaml('first')}---\n${specYaml('second')}---\n${specYaml('third')}`)
    await startFolder()

    await spec('multi.yaml', `${specYaml('first')}---\n${specYaml('third')}`)
    await pluginWhere('second', (found) => found.deletionRequestedAt !== null, 'deletion of the removed document')
    expect((await plugin('first'))!.deletionRequestedAt).toBeNull()
    expect((await plugin('third'))!.deletionRequestedAt).toBeNull()

    // third's document is gone too, but the file has an error: nothing is deleted.
    await spec('multi.yaml', `${specYaml('first')}---\nfoo: [1, 2\n`)
    await reportWhere('multi.yaml', (report) => report.status === 'invalid', 'the invalid report')
    await folder!.rescan()
    expect((await plugin('third'))!.deletionRequestedAt).toBeNull()
    expect((await plugin('first'))!.deletionRequestedAt).toBeNull()
  })
})
