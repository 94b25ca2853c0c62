// How many plugins there are in each phase and health, for GET /metrics: one grouped query
// of a few rows, never the rows themselves (the API caches it between changes).
import type { Kysely } from 'kysely'
import type { Database, HealthStatus, PluginPhase } from './schema.js'

export interface PluginCount {
  phase: PluginPhase
  health: HealthStatus
  count: number
}

export async function countPlugins(db: Kysely<Database>): Promise<PluginCount[]> {
  const rows = await db
    .selectFrom('plugins')
    .select((eb) => ['status', 'health_status', eb.fn.countAll<string | number>().as('count')])
    .groupBy(['status', 'health_status'])
    .execute()
  return rows.map((row) => ({ phase: row.status, health: row.health_status, count: Number(row.count) }))
}
