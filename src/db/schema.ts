// Kysely table types, mirroring migrations/. BIGINT and NUMERIC columns are parsed to
// numbers by both engines (see type-parsers.ts); timestamps come back as Date.
import type { ColumnType, Generated, Selectable, Updateable } from 'kysely'

/** A JSONB column: written as a JSON string, read back parsed. */
export type Json<T> = ColumnType<T, string, string>
/** A timestamp the database fills in. */
export type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>

export type JsonObject = { [key: string]: unknown }

export const DESIRED_STATES = ['running', 'stopped'] as const
export type DesiredState = (typeof DESIRED_STATES)[number]

export const PLUGIN_PHASES = [
  'installing',
  'installed',
  'starting',
  'running',
  'stopping',
  'stopped',
  'uninstalling',
  'error',
] as const
export type PluginPhase = (typeof PLUGIN_PHASES)[number]

export const HEALTH_STATUSES = ['unknown', 'starting', 'healthy', 'unhealthy'] as const
export type HealthStatus = (typeof HEALTH_STATUSES)[number]

export interface PluginsTable {
  id: Generated<string>
  // spec
  forgehook_id: string
  manifest: Json<JsonObject>
  config: ColumnType<JsonObject, string | undefined, string>
  environment: ColumnType<Record<string, string>, string | undefined, string>
  desired_state: ColumnType<DesiredState, DesiredState | undefined, DesiredState>
  requested_host_port: number | null
  labels: ColumnType<Record<string, string>, string | undefined, string>
  source: ColumnType<string, string | undefined, string>
  deletion_requested_at: Date | null
  // status
  status: ColumnType<PluginPhase, PluginPhase | undefined, PluginPhase>
  container_id: string | null
  container_name: string | null
  host_port: number | null
  health_status: ColumnType<HealthStatus, HealthStatus | undefined, HealthStatus>
  last_health_check: Date | null
  error: string | null
  restart_count: Generated<number>
  observed_generation: Generated<number>
  installed_at: Date | null
  started_at: Date | null
  stopped_at: Date | null
  next_restart_at: Date | null
  // bookkeeping, kept by triggers
  generation: Generated<number>
  resource_version: Generated<number>
  created_at: Timestamp
  updated_at: Timestamp
}

export interface PluginEventsTable {
  id: Generated<number>
  plugin_id: string | null
  forgehook_id: string
  event_type: string
  data: ColumnType<JsonObject, string | undefined, string>
  timestamp: Timestamp
}

export interface PluginMetricsTable {
  id: Generated<number>
  plugin_id: string
  request_count: ColumnType<number, number | undefined, number>
  error_count: ColumnType<number, number | undefined, number>
  total_response_time_ms: ColumnType<number, number | undefined, number>
  avg_response_time_ms: number | null
  cpu_usage_percent: number | null
  memory_usage_mb: number | null
  recorded_at: Timestamp
}

export interface PluginDriftView {
  id: string
  forgehook_id: string
  desired_state: DesiredState
  status: PluginPhase
  health_status: HealthStatus
  generation: number
  observed_generation: number
  sync_state: 'deleting' | 'error' | 'pending' | 'converging' | 'converged'
  converged: boolean
  error: string | null
  updated_at: Date
}

export interface PluginTombstonesTable {
  plugin_id: string
  forgehook_id: string
  deleted_at: Timestamp
}

export interface SchemaMigrationsTable {
  name: string
  checksum: string
  applied_at: Timestamp
}

export interface Database {
  plugins: PluginsTable
  plugin_events: PluginEventsTable
  plugin_metrics: PluginMetricsTable
  plugin_drift: PluginDriftView
  plugin_tombstones: PluginTombstonesTable
  schema_migrations: SchemaMigrationsTable
}

export type PluginRow = Selectable<PluginsTable>
export type PluginRowUpdate = Updateable<PluginsTable>
