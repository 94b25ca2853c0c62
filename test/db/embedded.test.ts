// The embedded engine: the data-dir lock, and the SQL port that operators use with psql.
import { execFile } from 'node:child_process'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PluginChange } from '../../src/db/change-feed.js'
import { LOCK_FILE_NAME } from '../../src/db/data-dir-lock.js'
import { openEmbeddedDatabase, type EmbeddedDatabase } from '../../src/db/embedded.js'
import { DataDirLockedError } from '../../src/db/errors.js'
import { migrate } from '../../src/db/migrator.js'
import { PluginStore } from '../../src/db/plugin-store.js'
import { silentLogger } from '../../src/logger.js'
import { eventually, migrationsDir, sampleManifest } from '../helpers/databases.js'

const execFileAsync = promisify(execFile)
const logger = silentLogger()

describe('the embedded engine\'s memory settings', () => {
  test('runs with shared_buffers of 8 MB unless told otherwise, and keeps PGlite\'s own start parameters and synchronous commits', async () => {
    const database = await openEmbeddedDatabase({ dataDir: 'memory', sqlPort: 0, logger })
    try {
      const setting = async (name: string) => (await database.pglite.query<Record<string, string>>(`SHOW ${name}`)).rows[0]![name]
      expect(await setting('shared_buffers')).toBe('8MB')
      expect(await setting('synchronous_commit')).toBe('on')
      // PGlite's own start parameters are kept beside ours.
      expect(await setting('max_worker_processes')).toBe('0')
    } finally {
      await database.close()
    }
  })

  test('takes shared_buffers from EMBEDDED_SHARED_BUFFERS_MB', async () => {
    const database = await openEmbeddedDatabase({ dataDir: 'memory', sqlPort: 0, logger, sharedBuffersMiB: 32 })
    try {
      expect((await database.pglite.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0]!.shared_buffers).toBe('32MB')
    } finally {
      await database.close()
    }
  })
})

describe('the embedded data dir', () => {
  test('a second open of the same data dir is refused, naming the folder and the holder', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'ff-lock-'))
    const first = await openEmbeddedDatabase({ dataDir, sqlPort: 0, logger })
    try {
      const second = openEmbeddedDatabase({ dataDir, sqlPort: 0, logger })
      await expect(second).rejects.toBeInstanceOf(DataDirLockedError)
      await expect(second).rejects.toThrow(new RegExp(`data dir ${dataDir} is in use by another process \\(pid ${process.pid}`))
    } finally {
      await first.close()
    }
    // Closed cleanly: the lock is gone and the data is still there.
    const reopened = await openEmbeddedDatabase({ dataDir, sqlPort: 0, logger })
    await reopened.close()
  })

  test('a lock left by a dead process is taken over', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'ff-lock-'))
    // pid 2^22 + 1 is above Linux's pid_max: no such process.
    await writeFile(path.join(dataDir, LOCK_FILE_NAME), JSON.stringify({ pid: 4_194_305, createdAt: new Date().toISOString() }))
    const database = await openEmbeddedDatabase({ dataDir, sqlPort: 0, logger })
    await database.close()
  })

  test('keeps plugins across a close and reopen', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'ff-persist-'))
    const first = await openEmbeddedDatabase({ dataDir, sqlPort: 0, logger })
    await migrate(first.db, migrationsDir, logger)
    await new PluginStore(first.db, first.changes, logger).createPlugin({ forgehookId: 'kept', source: 'api', manifest: sampleManifest('kept') })
    await first.close()
    const second = await openEmbeddedDatabase({ dataDir, sqlPort: 0, logger })
    try {
      expect((await migrate(second.db, migrationsDir, logger)).applied).toEqual([])
      expect((await new PluginStore(second.db, second.changes, logger).requirePlugin('kept')).source).toBe('api')
    } finally {
      await second.close()
    }
  })
})

describe('the embedded SQL port', () => {
  let database: EmbeddedDatabase
  let store: PluginStore
  let port: number
  let password: string
  const changes: PluginChange[] = []
  const clients: pg.Client[] = []

  beforeAll(async () => {
    database = await openEmbeddedDatabase({ dataDir: 'memory', sqlPort: 0, sqlPortEphemeral: true, logger, idleInTransactionTimeoutMs: 1_500 })
    await migrate(database.db, migrationsDir, logger)
    store = new PluginStore(database.db, database.changes, logger)
    store.subscribe({ onChange: (change) => changes.push(change), onResync: () => undefined })
    port = database.sqlAddress!.port!
    password = database.sqlPassword!.password
  })
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)))
    await database?.close()
  })

  async function connect(): Promise<pg.Client> {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', password })
    client.on('error', () => undefined)
    await client.connect()
    clients.push(client)
    return client
  }

  test('listens on 127.0.0.1 only', () => {
    expect(database.sqlAddress?.host).toBe('127.0.0.1')
  })

  test('psql lists the three tables', async () => {
    const { stdout } = await execFileAsync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-c', '\\dt'], {
      env: { ...process.env, PGPASSWORD: password },
    })
    expect(stdout).toMatch(/plugins\s+\| table/)
    expect(stdout).toMatch(/plugin_events\s+\| table/)
    expect(stdout).toMatch(/plugin_metrics\s+\| table/)
  })

  test('an UPDATE over the SQL port reaches the change feed within 2 s', async () => {
    const plugin = await store.createPlugin({ forgehookId: 'wire', source: 'api', manifest: sampleManifest('wire') })
    const client = await connect()
    const notifications: string[] = []
    client.on('notification', (message) => notifications.push(message.channel))
    await client.query(`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'wire'`)
    const change = await eventually(
      () => changes.find((candidate) => candidate.name === 'wire' && candidate.op === 'update'),
      2_000,
      'the notification of the SQL-port update',
    )
    expect(change).toMatchObject({ id: plugin.id, generation: 2, spec: true })
    // The psql user did not LISTEN: the daemon's notifications are not shown to them.
    expect(notifications).toEqual([])
    expect((await store.requirePlugin('wire')).desiredState).toBe('stopped')
  })

  test('an open SQL-port transaction is never seen half-done by the daemon', async () => {
    await store.createPlugin({ forgehookId: 'txn', source: 'api', manifest: sampleManifest('txn') })
    const client = await connect()
    await client.query('BEGIN')
    await client.query(`UPDATE plugins SET config = '{"step": 1}' WHERE forgehook_id = 'txn'`)
    let daemonRead: Record<string, unknown> | undefined
    const reading = store.requirePlugin('txn').then((plugin) => (daemonRead = plugin.config))
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(daemonRead).toBeUndefined()
    await client.query(`UPDATE plugins SET config = '{"step": 2}' WHERE forgehook_id = 'txn'`)
    await client.query('COMMIT')
    await reading
    expect(daemonRead).toEqual({ step: 2 })
  })

  test('a rolled-back SQL-port transaction leaves the row as it was', async () => {
    await store.createPlugin({ forgehookId: 'rollback', source: 'api', manifest: sampleManifest('rb') })
    const client = await connect()
    await client.query('BEGIN')
    await client.query(`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'rollback'`)
    await client.query('ROLLBACK')
    expect((await store.requirePlugin('rollback')).desiredState).toBe('running')
  })

  test('parameterised queries of several clients and the daemon interleave correctly', async () => {
    const sqlClients = await Promise.all([connect(), connect(), connect()])
    const queries = sqlClients.map(async (client, index) => {
      for (let round = 0; round < 20; round++) {
        const value = `${index}-${round}`
        const result = await client.query('SELECT $1::text AS value, $2::int AS n', [value, round])
        expect(result.rows[0]).toEqual({ value, n: round })
      }
    })
    const creates = Array.from({ length: 20 }, async (_, round) => {
      const name = `mix-${round}`
      expect((await store.createPlugin({ forgehookId: name, source: 'api', manifest: sampleManifest(name) })).forgehookId).toBe(name)
    })
    const work = [...queries, ...creates]
    await Promise.all(work)
    expect((await store.listPlugins()).filter((plugin) => plugin.forgehookId.startsWith('mix-'))).toHaveLength(20)
  })

  test('a client that disconnects inside a transaction has it rolled back', async () => {
    await store.createPlugin({ forgehookId: 'dropped', source: 'api', manifest: sampleManifest('dropped') })
    const client = await connect()
    await client.query('BEGIN')
    await client.query(`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'dropped'`)
    await client.end()
    expect((await store.requirePlugin('dropped')).desiredState).toBe('running')
  })

  test('a client idle inside a transaction is disconnected so the daemon can go on', async () => {
    await store.createPlugin({ forgehookId: 'idle', source: 'api', manifest: sampleManifest('idle') })
    const client = await connect()
    await client.query('BEGIN')
    await client.query(`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'idle'`)
    const started = Date.now()
    // Waits for the 1.5 s idle-in-transaction timeout, then sees the rolled-back row.
    expect((await store.requirePlugin('idle')).desiredState).toBe('running')
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000)
    await expect(client.query('SELECT 1')).rejects.toThrow()
  })
})
