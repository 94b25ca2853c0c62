// The embedded default: PostgreSQL compiled to WASM (PGlite), persisted in DATA_DIR,
// guarded by a lock file, and optionally served on the wire protocol.
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { Kysely } from 'kysely'
import type { Logger } from '../logger.js'
import { ChangeFanout, PLUGIN_CHANGES_CHANNEL, type ChangeFeed } from './change-feed.js'
import { acquireDataDirLock, type DataDirLock } from './data-dir-lock.js'
import { EmbeddedSqlServer } from './embedded-sql-server.js'
import { GatedPgliteDialect } from './pglite-dialect.js'
import type { Database } from './schema.js'
import { SessionGate } from './session-gate.js'
import { queryCounter } from './query-counter.js'
import { numericParsers } from './type-parsers.js'

export interface EmbeddedOptions {
  /** Folder for pgdata/ and the lock file; 'memory' keeps everything in memory (tests). */
  dataDir: string | 'memory'
  /** SQL port on 127.0.0.1; 0 = off. */
  sqlPort: number
  /** Listen on port 0 (a free one) instead: for tests. Default false. */
  sqlPortEphemeral?: boolean
  logger: Logger
  /** See EmbeddedSqlServerOptions. Default 60 s. */
  idleInTransactionTimeoutMs?: number
  /** Called once per query (benchmarks). */
  onQuery?: () => void
}

export interface EmbeddedDatabase {
  db: Kysely<Database>
  changes: ChangeFeed
  pglite: PGlite
  sqlAddress: { host: string; port: number } | undefined
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
    pglite = await PGlite.create(location, { parsers: numericParsers })
  } catch (error) {
    lock?.release()
    const reason = error instanceof Error ? error.message : String(error)
    throw new Error(`cannot open the embedded database in ${location}: ${reason}`)
  }

  const gate = new SessionGate()
  const fanout = new ChangeFanout(logger)
  const sqlServer = options.sqlPort === 0 && !options.sqlPortEphemeral ? undefined : new EmbeddedSqlServer({
    pglite,
    gate,
    logger,
    port: options.sqlPortEphemeral ? 0 : options.sqlPort,
    onNotification: (payload) => fanout.deliver(PLUGIN_CHANGES_CHANNEL, payload),
    idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs,
  })
  const db = new Kysely<Database>({ dialect: new GatedPgliteDialect(pglite, gate), ...queryCounter(options.onQuery) })
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
    const sqlAddress = await sqlServer?.start()
    return {
      db,
      pglite,
      sqlAddress,
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
