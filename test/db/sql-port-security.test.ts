// The embedded SQL port as an attacker on the same machine meets it: a password (SCRAM) before
// anything reaches the database, a session that no client can poison for the daemon, and a
// bound on how long one client transaction may hold the daemon's only session.
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PluginChange } from '../../src/db/change-feed.js'
import { openEmbeddedDatabase, type EmbeddedDatabase } from '../../src/db/embedded.js'
import { migrate } from '../../src/db/migrator.js'
import { PluginStore } from '../../src/db/plugin-store.js'
import { SQL_PASSWORD_FILE } from '../../src/db/sql-password.js'
import { sqlAccessHints } from '../../src/db/sql-access-hints.js'
import { silentLogger } from '../../src/logger.js'
import { eventually, migrationsDir, sampleManifest } from '../helpers/databases.js'

const execFileAsync = promisify(execFile)
const logger = silentLogger()

describe('the embedded SQL port asks for the password', () => {
  let dataDir: string
  let database: EmbeddedDatabase
  let port: number
  let password: string

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'ff-sql-auth-'))
    database = await openEmbeddedDatabase({ dataDir, sqlPort: 0, sqlPortEphemeral: true, logger })
    port = database.sqlAddress!.port!
    password = database.sqlPassword!.password
  })
  afterAll(async () => {
    await database?.close()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
  })

  const attempt = async (settings: pg.ClientConfig): Promise<string> => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', ...settings })
    client.on('error', () => undefined)
    try {
      await client.connect()
      return String((await client.query('SELECT 1 AS one')).rows[0].one)
    } catch (error) {
      return `${(error as { code?: string }).code ?? ''} ${(error as Error).message}`
    } finally {
      await client.end().catch(() => undefined)
    }
  }

  test('generates the password at the first start into a 0600 file of the data dir, and keeps it across restarts', async () => {
    const file = path.join(dataDir, SQL_PASSWORD_FILE)
    expect(database.sqlPassword?.file).toBe(file)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect((await readFile(file, 'utf8')).trim()).toBe(password)
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/)
  })

  test('node-postgres with the password connects (SCRAM-SHA-256); without it, with a wrong one or as another user it is refused', async () => {
    expect(await attempt({ password })).toBe('1')
    expect(await attempt({ password: `${password}x` })).toMatch(/^28P01 password authentication failed for user "postgres"/)
    expect(await attempt({ password: '' })).toMatch(/password|SASL/)
    expect(await attempt({ user: 'root', password })).toMatch(/^28000 role "root" does not exist.*-U postgres/)
  })

  test('psql with PGPASSWORD connects; psql without a password is refused before any SQL runs', async () => {
    const args = ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-w', '-Atc', 'SELECT 40 + 2']
    const good = await execFileAsync('psql', args, { env: { ...process.env, PGPASSWORD: password } })
    expect(good.stdout.trim()).toBe('42')
    const refused = await execFileAsync('psql', args, { env: { ...process.env, PGPASSWORD: 'not-the-password' } }).catch((error: { stderr: string }) => error)
    expect((refused as { stderr: string }).stderr).toContain('password authentication failed for user "postgres"')
    const none = await execFileAsync('psql', args, { env: { ...process.env, PGPASSWORD: '' } }).catch((error: { stderr: string }) => error)
    expect((none as { stderr: string }).stderr).toMatch(/no password supplied|password authentication failed/)
  })

  test('a client that sends SQL without authenticating gets no answer from the database, only an error', async () => {
    // A simple query where the StartupMessage should be: the server reads it as a start-up packet and refuses it.
    const answer = await rawExchange(port, simpleQuery("SELECT 'leak'"))
    expect(answer).not.toContain('leak')
    expect(answer).toMatch(/start-up packet|protocol/)
    // A StartupMessage, then a query before any password: the query is never run.
    const early = await rawExchange(port, Buffer.concat([startupMessage('postgres'), simpleQuery("SELECT 'early'")]))
    expect(early).not.toContain('early')
    expect(early).toContain('SCRAM-SHA-256')
  })

  test('the log names the password file and the psql command, never the password', () => {
    const hints = sqlAccessHints(database.sqlAddress!, database.sqlPassword!.file, dataDir)
    const text = JSON.stringify(hints)
    expect(text).not.toContain(password)
    expect(hints[0]!.message).toBe(`embedded database open for SQL clients (user postgres, password in ${path.join(dataDir, SQL_PASSWORD_FILE)}): PGPASSWORD=$(cat sql-password) psql -h 127.0.0.1 -p ${port} -U postgres`)
  })

  test('a reopened data dir keeps its password; SQL_PASSWORD replaces it', async () => {
    await database.close()
    database = await openEmbeddedDatabase({ dataDir, sqlPort: 0, sqlPortEphemeral: true, logger })
    port = database.sqlAddress!.port!
    expect(database.sqlPassword!.password).toBe(password)
    await database.close()
    database = await openEmbeddedDatabase({ dataDir, sqlPort: 0, sqlPortEphemeral: true, logger, sqlPassword: 'chosen-by-the-operator' })
    port = database.sqlAddress!.port!
    expect(database.sqlPassword).toEqual({ password: 'chosen-by-the-operator' })
    expect(await attempt({ password: 'chosen-by-the-operator' })).toBe('1')
    expect(await attempt({ password })).toMatch(/^28P01/)
  })

  test('a password file readable by others is narrowed to 0600; one that is not a regular file stops the start', async () => {
    await database.close()
    const file = path.join(dataDir, SQL_PASSWORD_FILE)
    await writeFile(file, 'hand-made-password\n', { mode: 0o644 })
    database = await openEmbeddedDatabase({ dataDir, sqlPort: 0, sqlPortEphemeral: true, logger })
    port = database.sqlAddress!.port!
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(await attempt({ password: 'hand-made-password' })).toBe('1')
    await database.close()
    await rm(file)
    await writeFile(file, '')
    await expect(openEmbeddedDatabase({ dataDir, sqlPort: 0, sqlPortEphemeral: true, logger })).rejects.toThrow(/holds no usable password/)
    await rm(file)
    database = await openEmbeddedDatabase({ dataDir, sqlPort: 0, sqlPortEphemeral: true, logger })
    port = database.sqlAddress!.port!
  })
})

describe('the embedded SQL port on a Unix socket', () => {
  test('is created 0600 and lets the daemon\'s user in without a password; removed at close', async () => {
    const socketDir = await mkdtemp(path.join(tmpdir(), 'ff-sql-socket-'))
    const database = await openEmbeddedDatabase({ dataDir: 'memory', sqlPort: 5999, sqlSocketDir: socketDir, sqlPortEphemeral: false, logger })
    try {
      const socketPath = path.join(socketDir, '.s.PGSQL.5999')
      expect(database.sqlAddress).toMatchObject({ socketPath, port: 5999 })
      expect((await stat(socketPath)).mode & 0o777).toBe(0o600)
      const { stdout } = await execFileAsync('psql', ['-h', socketDir, '-p', '5999', '-U', 'postgres', '-d', 'postgres', '-w', '-Atc', 'SELECT 7'], {
        env: { ...process.env, PGPASSWORD: '' },
      })
      expect(stdout.trim()).toBe('7')
    } finally {
      await database.close()
    }
    await expect(stat(path.join(socketDir, '.s.PGSQL.5999'))).rejects.toThrow(/ENOENT/)
    await rm(socketDir, { recursive: true, force: true })
  })
})

describe('an SQL client cannot poison the daemon\'s session', () => {
  let database: EmbeddedDatabase
  let store: PluginStore
  let port: number
  let password: string
  const changes: PluginChange[] = []
  const clients: pg.Client[] = []

  beforeAll(async () => {
    database = await openEmbeddedDatabase({ dataDir: 'memory', sqlPort: 0, sqlPortEphemeral: true, logger, sqlTransactionTimeoutMs: 1_500 })
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

  test('after SET session_replication_role = replica, the daemon\'s writes still bump the generation and notify; the client keeps its setting', async () => {
    const plugin = await store.createPlugin({ forgehookId: 'replica', source: 'api', manifest: sampleManifest('replica') })
    const client = await connect()
    await client.query('SET session_replication_role = replica')
    const updated = await store.updateSpec('replica', { desiredState: 'stopped' })
    expect(updated.generation).toBe(plugin.generation + 1)
    await eventually(() => changes.find((change) => change.name === 'replica' && change.generation === updated.generation), 2_000, 'the daemon write notified')
    expect((await client.query('SHOW session_replication_role')).rows[0].session_replication_role).toBe('replica')
  })

  test('after SET default_transaction_read_only = on, the daemon still writes; the client\'s own writes are read-only as it asked', async () => {
    await store.createPlugin({ forgehookId: 'readonly', source: 'api', manifest: sampleManifest('readonly') })
    const client = await connect()
    await client.query('SET default_transaction_read_only = on')
    expect((await store.updateSpec('readonly', { desiredState: 'stopped' })).desiredState).toBe('stopped')
    await expect(client.query(`UPDATE plugins SET desired_state = 'running' WHERE forgehook_id = 'readonly'`)).rejects.toThrow(/read-only/)
  })

  test('ALTER SYSTEM and ALTER ROLE defaults (reloaded), UNLISTEN *, another search_path and a temporary table named plugins do not reach the daemon', async () => {
    const client = await connect()
    await client.query('ALTER ROLE postgres SET default_transaction_read_only = on')
    await client.query('ALTER SYSTEM SET default_transaction_read_only = on')
    await client.query('ALTER SYSTEM SET session_replication_role = replica')
    await client.query('SELECT pg_reload_conf()')
    await client.query('UNLISTEN *')
    await client.query('SET search_path = pg_catalog')
    await client.query(`SET TimeZone = 'Asia/Kolkata'`)
    await client.query('CREATE TEMP TABLE plugins (forgehook_id text)')
    try {
      const plugin = await store.createPlugin({ forgehookId: 'shadowed', source: 'api', manifest: sampleManifest('shadowed') })
      await eventually(() => changes.find((change) => change.name === 'shadowed'), 2_000, 'the create notified after UNLISTEN *')
      expect((await store.requirePlugin('shadowed')).createdAt.getTime()).toBe(plugin.createdAt.getTime())
      expect((await store.listPlugins()).map((each) => each.forgehookId)).toContain('shadowed')
    } finally {
      await client.query('ALTER ROLE postgres RESET default_transaction_read_only')
      await client.query('ALTER SYSTEM RESET ALL')
      await client.query('SELECT pg_reload_conf()')
    }
  })

  test('a client that replaces the daemon\'s prepared statements under their names does not reach its reads and writes; quotes and backslashes in a value stay text', async () => {
    const plugin = await store.createPlugin({ forgehookId: 'prepared', source: 'api', manifest: sampleManifest('prepared') })
    await store.createPlugin({ forgehookId: 'bystander', source: 'api', manifest: sampleManifest('bystander') })
    const client = await connect()
    await client.query('SELECT 1')
    await store.writeStatus(plugin.id, { healthStatus: 'starting' })
    const { rows } = await client.query<{ name: string }>(`SELECT name FROM pg_prepared_statements WHERE name LIKE 'flowforge_hot_%'`)
    expect(rows.length, 'the daemon prepared its batched statements in the shared session').toBeGreaterThan(0)
    await client.query('DEALLOCATE ALL')
    // Same names, same parameters: were the daemon to run these, every plugin would show "poisoned".
    for (const { name } of rows) {
      const parameters = name.startsWith('flowforge_hot_write') ? '(jsonb, jsonb)' : '(jsonb)'
      await client.query(`PREPARE ${name}${parameters} AS UPDATE plugins SET error = 'poisoned' RETURNING 'r'::text AS hot_kind, plugins.*, NULL::jsonb AS hot_events`)
    }
    const hostile = `it's a \\ "test" $$ E'\\'); UPDATE plugins SET error = 'poisoned'; --`
    const [written, read] = await Promise.all([store.writeStatus(plugin.id, { error: hostile }), store.getPlugin(plugin.id)])
    expect(written?.error).toBe(hostile)
    expect(read?.forgehookId).toBe('prepared')
    expect((await store.requirePlugin('prepared')).error).toBe(hostile)
    const poisoned = await client.query(`SELECT forgehook_id FROM plugins WHERE error = 'poisoned'`)
    expect(poisoned.rows).toEqual([])
  })

  test('a client that keeps a transaction open by sending a statement every 200 ms is ended at the bound and rolled back; the daemon goes on', async () => {
    await store.createPlugin({ forgehookId: 'hog', source: 'api', manifest: sampleManifest('hog') })
    const client = await connect()
    await client.query('BEGIN')
    await client.query(`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'hog'`)
    // The daemon's read waits behind the open transaction, then sees it rolled back.
    const daemonRead = store.requirePlugin('hog')
    let clientError: Error | undefined
    for (let sent = 0; sent < 50 && clientError === undefined; sent++) {
      await new Promise((resolve) => setTimeout(resolve, 200))
      await client.query('SELECT 1').catch((error: Error) => (clientError = error))
    }
    expect(clientError, 'the client was disconnected').toBeDefined()
    expect((await daemonRead).desiredState).toBe('running')
  })
})

/** Sends `bytes` on a fresh connection and returns what came back, as text, until the server closes. */
function rawExchange(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => (received += chunk.toString('latin1')))
    socket.on('close', () => resolve(received))
    socket.on('error', reject)
    socket.write(bytes)
    setTimeout(() => socket.destroy(), 2_000).unref()
  })
}

function startupMessage(user: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0postgres\0\0`)
  const packet = Buffer.alloc(8 + body.length)
  packet.writeInt32BE(packet.length, 0)
  packet.writeInt32BE(0x0003_0000, 4)
  body.copy(packet, 8)
  return packet
}

function simpleQuery(sqlText: string): Buffer {
  const body = Buffer.from(`${sqlText}\0`)
  const message = Buffer.alloc(5 + body.length)
  message[0] = 0x51
  message.writeInt32BE(4 + body.length, 1)
  body.copy(message, 5)
  return message
}
