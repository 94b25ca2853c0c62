// Retention of what otherwise grows for ever: audit events (plugin_events) and tombstones of
// deleted plugins (plugin_tombstones), both older than EVENT_RETENTION (default 90 days).
// Deleted in small batches, as plugin_metrics is (PluginStore.deleteMetricsBefore), so that
// no statement holds the database long; run by the leader once an hour.
import type { Kysely } from 'kysely'
import type { Logger } from '../logger.js'
import type { Clock } from '../util/clock.js'
import { Periodic } from '../util/periodic.js'
import type { Database } from './schema.js'

/** EVENT_RETENTION's default. */
export const DEFAULT_EVENT_RETENTION_MS = 90 * 24 * 3600 * 1000
const RETENTION_INTERVAL_MS = 3600 * 1000
const BATCH_SIZE = 1000

/** Deletes audit events recorded before `cutoff`, `batchSize` at a time; returns how many. */
export async function deleteEventsBefore(db: Kysely<Database>, cutoff: Date, batchSize = BATCH_SIZE): Promise<number> {
  let total = 0
  for (;;) {
    const result = await db
      .deleteFrom('plugin_events')
      .where('id', 'in', (eb) => eb.selectFrom('plugin_events').select('id').where('timestamp', '<', cutoff).orderBy('timestamp').limit(batchSize))
      .executeTakeFirst()
    const deleted = Number(result.numDeletedRows)
    total += deleted
    if (deleted < batchSize) return total
  }
}

/**
 * Deletes tombstones of plugins deleted before `cutoff`. A tombstone tells a manager that a
 * container left behind belongs to a deleted plugin (remove it, do not adopt it); one that
 * has outlived the retention has long done that job.
 */
export async function deleteTombstonesBefore(db: Kysely<Database>, cutoff: Date, batchSize = BATCH_SIZE): Promise<number> {
  let total = 0
  for (;;) {
    const result = await db
      .deleteFrom('plugin_tombstones')
      .where('plugin_id', 'in', (eb) => eb.selectFrom('plugin_tombstones').select('plugin_id').where('deleted_at', '<', cutoff).orderBy('deleted_at').limit(batchSize))
      .executeTakeFirst()
    const deleted = Number(result.numDeletedRows)
    total += deleted
    if (deleted < batchSize) return total
  }
}

export interface AuditRetentionOptions {
  db: Kysely<Database>
  clock: Clock
  logger: Logger
  /** EVENT_RETENTION. */
  retentionMs: number
  /** Default one hour. */
  intervalMs?: number
}

export class AuditRetention {
  private readonly periodic: Periodic

  constructor(private readonly options: AuditRetentionOptions) {
    this.periodic = new Periodic(
      { clock: options.clock, intervalMs: options.intervalMs ?? RETENTION_INTERVAL_MS, logger: options.logger, name: 'audit retention' },
      () => this.pruneOnce(),
    )
  }

  start(): void {
    this.periodic.start()
  }

  stop(): Promise<void> {
    return this.periodic.stop()
  }

  /** One round; public for tests. */
  async pruneOnce(): Promise<{ events: number; tombstones: number }> {
    const { db, clock, logger, retentionMs } = this.options
    const cutoff = new Date(clock.now() - retentionMs)
    const events = await deleteEventsBefore(db, cutoff)
    const tombstones = await deleteTombstonesBefore(db, cutoff)
    if (events > 0 || tombstones > 0) logger.info({ events, tombstones, before: cutoff.toISOString() }, 'deleted audit events and tombstones past EVENT_RETENTION')
    return { events, tombstones }
  }
}
