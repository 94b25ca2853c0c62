// plugin_metrics read for the web console and the per-plugin /metrics series: the latest
// resource sample of many plugins in one statement, and one plugin's samples over a time
// range in buckets (so a 24 h chart is a few hundred points whatever the sample rate).
import { sql, type Kysely } from 'kysely'
import type { Database, HealthStatus, PluginPhase } from './schema.js'

/** The latest CPU and memory sample of a plugin (the resource sampler's rows; usage rows carry none). */
export interface LatestResourceSample {
  pluginId: string
  cpuUsagePercent: number | null
  memoryUsageMb: number | null
  recordedAt: Date
}

/**
 * The newest sample with a CPU or memory figure of each plugin in `pluginIds` (all plugins
 * when undefined), looked back at most `since`. One statement; the (plugin_id, recorded_at)
 * index makes it one short index scan per plugin.
 */
export async function latestResourceSamples(db: Kysely<Database>, options: { pluginIds?: string[]; since: Date }): Promise<Map<string, LatestResourceSample>> {
  if (options.pluginIds !== undefined && options.pluginIds.length === 0) return new Map()
  let query = db
    .selectFrom('plugin_metrics')
    .distinctOn('plugin_id')
    .select(['plugin_id', 'cpu_usage_percent', 'memory_usage_mb', 'recorded_at'])
    .where('recorded_at', '>=', options.since)
    .where((eb) => eb.or([eb('cpu_usage_percent', 'is not', null), eb('memory_usage_mb', 'is not', null)]))
    .orderBy('plugin_id')
    .orderBy('recorded_at', 'desc')
  if (options.pluginIds !== undefined) query = query.where('plugin_id', 'in', options.pluginIds)
  const rows = await query.execute()
  return new Map(
    rows.map((row) => [
      row.plugin_id,
      { pluginId: row.plugin_id, cpuUsagePercent: numberOrNull(row.cpu_usage_percent), memoryUsageMb: numberOrNull(row.memory_usage_mb), recordedAt: new Date(row.recorded_at) },
    ]),
  )
}

/** One bucket of a plugin's samples: resource figures averaged, usage counts summed. */
export interface MetricBucket {
  /** The bucket's start. */
  at: Date
  cpuUsagePercent: number | null
  memoryUsageMb: number | null
  requests: number
  errors: number
  /** Mean response time of the bucket's proxied requests; null without requests. */
  avgResponseTimeMs: number | null
}

/** `pluginId`'s samples since `since`, in buckets of `bucketSeconds`, oldest first. */
export async function metricBuckets(db: Kysely<Database>, pluginId: string, since: Date, bucketSeconds: number): Promise<MetricBucket[]> {
  const bucket = sql<Date>`to_timestamp(floor(extract(epoch from recorded_at) / ${bucketSeconds}) * ${bucketSeconds})`
  const rows = await db
    .selectFrom('plugin_metrics')
    .select([
      bucket.as('at'),
      sql<string | null>`avg(cpu_usage_percent)`.as('cpu'),
      sql<string | null>`avg(memory_usage_mb)`.as('memory'),
      sql<string>`coalesce(sum(request_count), 0)`.as('requests'),
      sql<string>`coalesce(sum(error_count), 0)`.as('errors'),
      sql<string>`coalesce(sum(total_response_time_ms), 0)`.as('total_ms'),
    ])
    .where('plugin_id', '=', pluginId)
    .where('recorded_at', '>=', since)
    .groupBy(sql`1`)
    .orderBy(sql`1`)
    .execute()
  return rows.map((row) => {
    const requests = Number(row.requests)
    return {
      at: new Date(row.at),
      cpuUsagePercent: numberOrNull(row.cpu),
      memoryUsageMb: numberOrNull(row.memory),
      requests,
      errors: Number(row.errors),
      avgResponseTimeMs: requests > 0 ? Number(row.total_ms) / requests : null,
    }
  })
}

function numberOrNull(value: string | number | null | undefined): number | null {
  return value === null || value === undefined ? null : Number(value)
}

/** What the per-plugin series of GET /metrics need of a plugin row: a few narrow columns. */
export interface PluginGauge {
  pluginId: string
  forgehookId: string
  phase: PluginPhase
  health: HealthStatus
  restartCount: number
  deleting: boolean
}

/** Every plugin's phase, health and restart count: one narrow statement, no JSON columns. */
export async function pluginGauges(db: Kysely<Database>): Promise<PluginGauge[]> {
  const rows = await db
    .selectFrom('plugins')
    .select(['id', 'forgehook_id', 'status', 'health_status', 'restart_count', 'deletion_requested_at'])
    .orderBy('forgehook_id')
    .execute()
  return rows.map((row) => ({
    pluginId: row.id,
    forgehookId: row.forgehook_id,
    phase: row.status,
    health: row.health_status,
    restartCount: Number(row.restart_count),
    deleting: row.deletion_requested_at !== null,
  }))
}
