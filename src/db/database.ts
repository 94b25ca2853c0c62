// Opens the configured engine: a Postgres server, or the embedded default.
import { Kysely, PostgresDialect, sql } from 'kysely'
import { queryCounter } from './query-counter.js'
import type { Config } from '../config.js'
import { describeDatabase } from '../config.js'
import type { Logger } from '../logger.js'
import type { ChangeFeed } from './change-feed.js'
import type { SqlServerAddress } from './embedded-sql-server.js'
import { openEmbeddedDatabase } from './embedded.js'
import { createPool, poolForKysely, PostgresChangeFeed, waitForPostgres } from './postgres.js'
import type { Database } from './schema.js'

export interface DatabaseHandle {
  readonly engine: 'postgres' | 'embedded'
  readonly db: Kysely<Database>
  readonly changes: ChangeFeed
  /** Where the data lives, password redacted: for logs and /readyz. */
  readonly description: string
  /** Embedded mode: where psql can connect, when the SQL port (or socket) is on. */
  readonly sqlAddress?: SqlServerAddress
  /** Embedded mode, SQL port on: the file holding its password (none when SQL_PASSWORD gave it). */
  readonly sqlPasswordFile?: string
  /** Embedded mode, SQL port on: the password itself, for tests and tools in this process. Never log it. */
  readonly sqlPassword?: string
  /** Throws when the database does not answer. */
  ping(): Promise<void>
  close(): Promise<void>
}

export interface OpenDatabaseOptions {
  /** Embedded only: serve SQL on a free port instead of the configured one (tests). */
  sqlPortEphemeral?: boolean
  /** Postgres only: LISTEN heartbeat (default 10 s), shorter in tests. */
  listenHeartbeatMs?: number
  /** Called once per query the store sends (benchmarks count database round trips). */
  onQuery?: () => void
}

export async function openDatabase(config: Config, logger: Logger, options: OpenDatabaseOptions = {}): Promise<DatabaseHandle> {
  const description = describeDatabase(config.database)
  if (config.database.kind === 'embedded') {
    const embedded = await openEmbeddedDatabase({
      dataDir: config.database.dataDir,
      sqlPort: config.database.sqlPort,
      sqlPortEphemeral: options.sqlPortEphemeral,
      sqlPassword: config.database.sqlPassword,
      sqlSocketDir: config.database.sqlSocketDir,
      sqlTransactionTimeoutMs: config.database.sqlTransactionTimeoutMs,
      sharedBuffersMiB: config.database.sharedBuffersMiB,
      wasmOptimize: config.database.wasmOptimize,
      logger,
      onQuery: options.onQuery,
    })
    return {
      engine: 'embedded',
      db: embedded.db,
      changes: embedded.changes,
      description,
      sqlAddress: embedded.sqlAddress,
      ...(embedded.sqlPassword?.file !== undefined ? { sqlPasswordFile: embedded.sqlPassword.file } : {}),
      ...(embedded.sqlPassword !== undefined ? { sqlPassword: embedded.sqlPassword.password } : {}),
      ping: () => ping(embedded.db),
      close: () => embedded.close(),
    }
  }

  const { connectionString } = config.database
  const pool = createPool({
    connectionString,
    max: config.dbPoolMax,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    logger,
    managerId: config.controller.managerId,
  })
  try {
    await waitForPostgres(pool, { connectionString, logger, deadlineMs: config.dbConnectDeadlineMs })
  } catch (error) {
    await pool.end()
    throw error
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: poolForKysely(pool, connectionString) }), ...queryCounter(options.onQuery) })
  const changes = new PostgresChangeFeed({ connectionString, logger, heartbeatMs: options.listenHeartbeatMs, managerId: config.controller.managerId })
  changes.start()
  return {
    engine: 'postgres',
    db,
    changes,
    description,
    ping: () => ping(db),
    close: async () => {
      await changes.close()
      await db.destroy()
    },
  }
}

async function ping(db: Kysely<Database>): Promise<void> {
  await sql`SELECT 1`.execute(db)
}
