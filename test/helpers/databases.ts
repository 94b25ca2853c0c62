// Test databases: the embedded engine always; a real Postgres server when TEST_DATABASE_URL
// is set. Under CI=true a missing server is a failing test, never a silent skip.
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import pg from 'pg'
import { sql } from 'kysely'
import { loadConfig, packageRoot, type Config } from '../../src/config.js'
import { openDatabase, type DatabaseHandle, type OpenDatabaseOptions } from '../../src/db/database.js'
import { migrate } from '../../src/db/migrator.js'
import { PluginStore } from '../../src/db/plugin-store.js'
import { silentLogger, type Logger } from '../../src/logger.js'

export type EngineName = 'embedded' | 'postgres'

export const postgresUrl = process.env.TEST_DATABASE_URL
export const inCi = process.env.CI === 'true'
export const engines: EngineName[] = postgresUrl ? ['embedded', 'postgres'] : ['embedded']
export const migrationsDir = path.join(packageRoot(), 'migrations')

export interface TestDatabase {
  engine: EngineName
  handle: DatabaseHandle
  store: PluginStore
  config: Config
  /** Postgres only: the connection string of this test's own database. */
  connectionString?: string
  /** Empties the plugin tables between tests. */
  reset(): Promise<void>
  close(): Promise<void>
}

export interface TestDatabaseOptions extends OpenDatabaseOptions {
  migrate?: boolean
  logger?: Logger
  /** Embedded: a folder instead of memory. */
  dataDir?: string
}

/** A fresh database: an in-memory PGlite, or a new database on the test server. */
export async function openTestDatabase(engine: EngineName, options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const logger = options.logger ?? silentLogger()
  let config: Config
  let connectionString: string | undefined
  let dropDatabase = async () => undefined as void
  if (engine === 'embedded') {
    config = { ...loadConfig({}), database: { kind: 'embedded', dataDir: options.dataDir ?? 'memory', sqlPort: 0 } }
  } else {
    const created = await createServerDatabase()
    connectionString = created.connectionString
    dropDatabase = created.drop
    config = { ...loadConfig({ DATABASE_URL: connectionString, DB_CONNECT_DEADLINE: '10s' }) }
  }
  const handle = await openDatabase(config, logger, options)
  if (options.migrate !== false) await migrate(handle.db, migrationsDir, logger)
  const store = new PluginStore(handle.db, handle.changes, logger)
  return {
    engine,
    handle,
    store,
    config,
    connectionString,
    reset: async () => {
      await sql`TRUNCATE plugin_metrics, plugin_events, plugin_tombstones, plugins RESTART IDENTITY CASCADE`.execute(handle.db)
    },
    close: async () => {
      await handle.close()
      await dropDatabase()
    },
  }
}

/** A new, empty database on the TEST_DATABASE_URL server, dropped again by `drop`. */
export async function createServerDatabase(): Promise<{ connectionString: string; drop: () => Promise<void> }> {
  if (!postgresUrl) throw new Error('TEST_DATABASE_URL is not set')
  const name = `ff_test_${randomBytes(6).toString('hex')}`
  await adminQuery(`CREATE DATABASE ${name}`)
  const url = new URL(postgresUrl)
  url.pathname = `/${name}`
  return {
    connectionString: url.toString(),
    drop: async () => {
      // WITH (FORCE) refuses (42501, "must be a member of the role whose process is being
      // terminated") while an autovacuum worker is in the database: a process of no role,
      // which a role without pg_signal_backend may not terminate. It gives way within moments.
      for (let attempt = 1; ; attempt += 1) {
        try {
          await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
          return
        } catch (error) {
          if ((error as { code?: string }).code !== '42501' || attempt >= 20) throw error
          await new Promise((resolve) => setTimeout(resolve, 250))
        }
      }
    },
  }
}

export async function adminQuery(text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 5_000 })
  await client.connect()
  try {
    return await client.query(text)
  } finally {
    await client.end()
  }
}

/** A spec good enough for the store: the manifest of a plugin called `name`. */
export function sampleManifest(name: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: `Plugin ${name}`, version: '1.0.0', image: `flowforge/${name}:1.0.0`, port: 8080, ...overrides }
}

/** Waits until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, timeoutMs = 5_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
