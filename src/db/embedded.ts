// The embedded default: PostgreSQL compiled to WASM (PGlite), persisted in DATA_DIR,
// guarded by a lock file, and optionally served on the wire protocol.
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { Kysely } from 'kysely'
import type { Logger } from '../logger.js'
import { ChangeFanout, PLUGIN_CHANGES_CHANNEL, type ChangeFeed } from './change-feed.js'
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js'
import { EmbeddedSqlServer, type SqlServerAddress } from './embedded-sql-server.js'
import { GatedPgliteDialect } from './pglite-dialect.js'
import { PgliteStatements } from './prepared-statements.js'
import { applyWasmTier, pgliteStartParams } from './pglite-memory.js'
import type { Database } from './schema.js'
import { scramVerifier } from './scram.js'
import { SessionGate } from './session-gate.js'
import { resolveSqlPassword, type SqlPassword } from './sql-password.js'
import { SqlSessionState } from './sql-session-state.js'
import { queryCounter } from './query-counter.js'
import { numericParsers } from './type-parsers.js'

export interface EmbeddedOptions {
  /** Folder for pgdata/ and the lock file; 'memory' keeps everything in memory (tests). */
  dataDir: string | 'memory'
  /** SQL port on 127.0.0.1; 0 = off. */
  sqlPort: number
  /** Listen on port 0 (a free one) instead: for tests. Default false. */
  sqlPortEphemeral?: boolean
  /** SQL_PASSWORD; otherwise the password file in dataDir (generated at the first start). */
  sqlPassword?: string
  /** SQL_SOCKET_DIR: also serve a Unix socket there (mode 0600, no password). */
  sqlSocketDir?: string
  logger: Logger
  /** See EmbeddedSqlServerOptions. Default 60 s. */
  idleInTransactionTimeoutMs?: number
  /** SQL_TRANSACTION_TIMEOUT; see EmbeddedSqlServerOptions. Default 60 s. */
  sqlTransactionTimeoutMs?: number
  /** Called once per query (benchmarks). */
  onQuery?: () => void
  /** EMBEDDED_SHARED_BUFFERS_MB: Postgres' shared_buffers in MiB. Default 8 (Postgres' own is 128); see pglite-memory.ts. */
  sharedBuffersMiB?: number
  /** EMBEDDED_WASM_OPTIMIZE: V8 also recompiles hot WASM with TurboFan (30-70 MiB more). Default false: Liftoff only. */
  wasmOptimize?: boolean
}

export interface EmbeddedDatabase {
  db: Kysely<Database>
  changes: ChangeFeed
  pglite: PGlite
  /** Where SQL clients connect, when the SQL port or socket is on. */
  sqlAddress: SqlServerAddress | undefined
  /** The SQL port's password and the file it is kept in, when the port is on. */
  sqlPassword: SqlPassword | undefined
  close(): Promise<void>
}

export async function openEmbeddedDatabase(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const { logger } = options
  const inMemory = options.dataDir === 'memory'
  let lock: DataDirLock | undefined
  if (!inMemory) {
    mkdirSync(options.dataDir, { recursive: true })
    lock = acquireDataDirLock(options.dataDir)
  }
  const location = inMemory ? 'memory://' : path.join(options.dataDir, 'pgdata')
  let pglite: PGlite
  try {
    applyWasmTier(options.wasmOptimize ?? false)
    pglite = await PGlite.create(location, { parsers: numericParsers, startParams: pgliteStartParams(options.sharedBuffersMiB) })
  } catch (error) {
    lock?.release()
    const reason = error instanceof Error ? error.message : String(error)
    throw new Error(`cannot open the embedded database in ${location}: ${reason}`)
  }

  const gate = new SessionGate()
  const sessions = new SqlSessionState(pglite, logger)
  const fanout = new ChangeFanout(logger)
  const tcpPort = options.sqlPortEphemeral ? 0 : options.sqlPort === 0 ? undefined : options.sqlPort
  const serving = tcpPort !== undefined || options.sqlSocketDir !== undefined
  let sqlPassword: SqlPassword | undefined
  let sqlServer: EmbeddedSqlServer | undefined
  try {
    sqlPassword = serving ? await resolveSqlPassword(options.dataDir, options.sqlPassword) : undefined
  } catch (error) {
    await pglite.close()
    lock?.release()
    throw error
  }
  if (sqlPassword) {
    sqlServer = new EmbeddedSqlServer({
      pglite,
      gate,
      sessions,
      logger,
      verifier: scramVerifier(sqlPassword.password),
      port: tcpPort,
      socketDir: options.sqlSocketDir,
      socketPort: options.sqlPort === 0 ? undefined : options.sqlPort,
      onNotification: (payload) => fanout.deliver(PLUGIN_CHANGES_CHANNEL, payload),
      idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs,
      transactionTimeoutMs: options.sqlTransactionTimeoutMs,
    })
  }
  const statements = new PgliteStatements(pglite, () => sessions.clientTurns)
  const db = new Kysely<Database>({ dialect: new GatedPgliteDialect(pglite, gate, statements), ...queryCounter(options.onQuery) })
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await sqlServer?.stop()
    await db.destroy()
    lock?.release()
  }

  try {
    // In-process LISTEN sees the NOTIFYs of our own statements; those of SQL-port clients
    // arrive through the server (see embedded-sql-server.ts).
    await gate.run(() => pglite.listen(PLUGIN_CHANGES_CHANNEL, (payload) => fanout.deliver(PLUGIN_CHANGES_CHANNEL, payload)))
    // Whatever an earlier run's clients left in the database's defaults (ALTER ROLE … SET),
    // the daemon runs with its own settings.
    await gate.run(() => sessions.pinDaemonSettings())
    const sqlAddress = await sqlServer?.start()
    return {
      db,
      pglite,
      sqlAddress,
      sqlPassword,
      changes: {
        subscribe: (listener) => fanout.subscribe(listener),
        // In-process LISTEN cannot be lost; it ends with the database.
        get connected() {
          return !closed
        },
        close: async () => undefined,
      },
      close,
    }
  } catch (error) {
    await close()
    throw error
  }
}
