// A real Postgres server: start-up retries, a pool that survives lost connections, and the
// LISTEN connection that comes back by itself.
import { Kysely, PostgresDialect, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { PluginChange } from '../../src/db/change-feed.js'
import { runHotStatements } from '../../src/db/batched-statements.js'
import { DatabaseUnavailableError } from '../../src/db/errors.js'
import type { Database } from '../../src/db/schema.js'
import { createPool, LISTEN_APPLICATION_NAME, POOL_APPLICATION_NAME, poolForKysely, waitForPostgres } from '../../src/db/postgres.js'
import { adminQuery, eventually, openTestDatabase, postgresUrl, sampleManifest, type TestDatabase } from '../helpers/databases.js'
import { captureLogs } from '../helpers/log-capture.js'

describe('connecting at start-up', () => {
  test('retries an unreachable server with one log line per attempt, then gives up naming it', async () => {
    const logs = captureLogs()
    // Port 1 on loopback refuses at once. A fake clock: each sleep advances it.
    let now = 0
    const delays: number[] = []
    const connectionString = 'postgresql://ff:hunter2@127.0.0.1:1/flowforge'
    const pool = createPool({ connectionString, logger: logs.logger })
    const attempt = waitForPostgres(pool, {
      connectionString,
      logger: logs.logger,
      deadlineMs: 10_000,
      now: () => now,
      sleep: async (ms) => {
        delays.push(ms)
        now += ms
      },
    })
    await expect(attempt).rejects.toBeInstanceOf(DatabaseUnavailableError)
    await expect(attempt).rejects.toThrow(/could not connect to Postgres at postgresql:\/\/ff:\*\*\*@127\.0\.0\.1:1\/flowforge within 10 s \(\d+ attempts\): connection refused/)
    await pool.end()

    // Backoff grows (with a little jitter) and the waits add up to the deadline.
    expect(delays.length).toBeGreaterThanOrEqual(4)
    expect(delays[1]!).toBeGreaterThan(delays[0]!)
    expect(delays.reduce((sum, ms) => sum + ms, 0)).toBe(10_000)
    const retries = logs.messages().filter((message) => message.includes('is not reachable'))
    expect(retries).toHaveLength(delays.length)
    expect(retries[0]).toMatch(/^Postgres at postgresql:\/\/ff:\*\*\*@127\.0\.0\.1:1\/flowforge is not reachable \(attempt 1, retrying in \d+ ms\): connection refused/)
    expect(JSON.stringify(logs.lines)).not.toContain('hunter2')
  })
})

describe('the pool as Kysely uses it', () => {
  test('a connection that cannot be made is DatabaseUnavailableError, naming the server but not the password', async () => {
    const connectionString = 'postgresql://ff:hunter2@127.0.0.1:1/flowforge'
    const pool = createPool({ connectionString, logger: captureLogs().logger })
    const connecting = poolForKysely(pool, connectionString).connect()
    await expect(connecting).rejects.toBeInstanceOf(DatabaseUnavailableError)
    await expect(connecting).rejects.toThrow('cannot connect to Postgres at postgresql://ff:***@127.0.0.1:1/flowforge: connection refused')
    await pool.end()
  })
})

describe.runIf(postgresUrl)('a real Postgres server', () => {
  let database: TestDatabase
  const changes: PluginChange[] = []
  const resyncs: string[] = []

  beforeAll(async () => {
    database = await openTestDatabase('postgres', { listenHeartbeatMs: 200 })
    database.store.subscribe({ onChange: (change) => changes.push(change), onResync: (reason) => resyncs.push(reason) })
  })
  afterAll(async () => database?.close())

  function databaseName(): string {
    return new URL(database.connectionString!).pathname.slice(1)
  }

  test('a wrong password is reported as an authentication failure', async () => {
    const logs = captureLogs()
    const url = new URL(database.connectionString!)
    url.password = 'wrong-password'
    const pool = createPool({ connectionString: url.toString(), logger: logs.logger })
    const attempt = waitForPostgres(pool, { connectionString: url.toString(), logger: logs.logger, deadlineMs: 1, sleep: async () => undefined })
    await expect(attempt).rejects.toThrow(/authentication failed/)
    await pool.end()
    expect(JSON.stringify(logs.lines)).not.toContain('wrong-password')
  })

  test('a batched statement runs prepared, and unnamed once a pooler lost it (DEALLOCATE ALL between two on one connection)', async () => {
    const logs = captureLogs()
    const pool = createPool({ connectionString: database.connectionString!, max: 1, logger: logs.logger })
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: poolForKysely(pool, database.connectionString!) }) })
    try {
      const plugin = await database.store.createPlugin({ forgehookId: 'pooled', source: 'api', manifest: sampleManifest('pooled') })
      const write = (port: number) => runHotStatements(db, [{ kind: 'write', write: { pluginId: plugin.id, values: { host_port: port } }, events: [] }, { kind: 'read', pluginId: plugin.id }])
      await write(45_001)
      // The one connection holds it as a named statement now.
      const prepared = await sql<{ name: string }>`SELECT name FROM pg_prepared_statements`.execute(db)
      expect(prepared.rows.map((row) => row.name)).toContain('flowforge_hot_write')
      await sql`DEALLOCATE ALL`.execute(db)
      const [written] = await write(45_002)
      expect(written).toMatchObject({ kind: 'write', written: { row: { host_port: 45_002 } } })
      expect((await database.store.requirePlugin('pooled')).hostPort).toBe(45_002)
    } finally {
      await db.destroy()
    }
  })

  test('the pool survives its connections being killed by the server', async () => {
    await sql`SELECT 1`.execute(database.handle.db)
    const killed = await adminQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${databaseName()}' AND application_name = '${POOL_APPLICATION_NAME}'`,
    )
    expect(killed.rowCount).toBeGreaterThanOrEqual(1)
    // The killed idle client is dropped from the pool; the next query gets a new one.
    const result = await eventually(async () => {
      try {
        return (await sql<{ one: number }>`SELECT 1 AS one`.execute(database.handle.db)).rows[0]?.one
      } catch {
        return undefined
      }
    }, 5_000, 'a working query after the connections were killed')
    expect(result).toBe(1)
  })

  test('a connection checked out between two statements of a transaction, terminated by the server, fails that transaction and nothing else', async () => {
    // pg-pool listens for a client's 'error' only while it is idle: before the fix this
    // emitted 'error' with no listener and took the process (here, the test worker) down.
    const logs = captureLogs()
    const pool = createPool({ connectionString: database.connectionString!, logger: logs.logger })
    const client = await pool.connect()
    await client.query('BEGIN')
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid
    const terminated = await adminQuery(`SELECT pg_terminate_backend(${pid}) AS done`)
    expect(terminated.rows[0]?.done).toBe(true)
    await eventually(async () => (logs.messages().some((message) => message.includes('a Postgres connection failed')) ? true : undefined), 5_000, 'the failure logged')
    await expect(client.query('SELECT 1')).rejects.toThrow()
    client.release()
    // The dead client is not handed out again.
    expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one).toBe(1)
    expect(logs.messages().find((message) => message.includes('a Postgres connection failed'))).toMatch(/terminating connection due to administrator command/)
    await pool.end()
  })

  test('the LISTEN connection comes back after it is killed, asks for a resync, and hears changes again', async () => {
    await eventually(async () => {
      const listening = await adminQuery(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = '${databaseName()}' AND application_name = '${LISTEN_APPLICATION_NAME}'`,
      )
      return listening.rows[0].n > 0 ? true : undefined
    }, 5_000, 'the LISTEN connection')
    resyncs.length = 0
    const killed = await adminQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${databaseName()}' AND application_name = '${LISTEN_APPLICATION_NAME}'`,
    )
    expect(killed.rowCount).toBe(1)
    await eventually(() => (resyncs.length > 0 ? true : undefined), 10_000, 'a resync request')
    changes.length = 0
    await database.store.createPlugin({ forgehookId: 'after-reconnect', source: 'api', manifest: sampleManifest('x') })
    const change = await eventually(() => changes.find((candidate) => candidate.name === 'after-reconnect'), 5_000, 'the change')
    expect(change.op).toBe('insert')
  })
})
