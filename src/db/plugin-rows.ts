// Between rows and the types of plugin-types.ts: column mapping, cursors, and Postgres
// errors turned into the store's typed errors. Pure functions; the SQL is in plugin-store.ts.
import type { Selectable } from 'kysely'
import { isUuid } from '../util/uuid.js'
import { AlreadyExistsError, InvalidValueError } from './errors.js'
import type { PluginEventsTable, PluginMetricsTable, PluginRow, PluginRowUpdate } from './schema.js'
import type { NewPluginEvent, Plugin, PluginEvent, PluginMetrics, PluginSpecFields, PluginStatusUpdate } from './plugin-types.js'

export function whereIdOrName(idOrName: string): 'id' | 'forgehook_id' {
  return isUuid(idOrName) ? 'id' : 'forgehook_id'
}

export function toArray<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value]
}

export function specColumns(spec: Partial<PluginSpecFields>): PluginRowUpdate {
  const values: PluginRowUpdate = {}
  if (spec.manifest !== undefined) values.manifest = JSON.stringify(spec.manifest)
  if (spec.config !== undefined) values.config = JSON.stringify(spec.config)
  if (spec.environment !== undefined) values.environment = JSON.stringify(spec.environment)
  if (spec.desiredState !== undefined) values.desired_state = spec.desiredState
  if (spec.requestedHostPort !== undefined) values.requested_host_port = spec.requestedHostPort
  if (spec.labels !== undefined) values.labels = JSON.stringify(spec.labels)
  if (spec.volumes !== undefined) values.volumes = JSON.stringify(spec.volumes)
  if (spec.updatePolicy !== undefined) values.update_policy = JSON.stringify(spec.updatePolicy)
  if (spec.network !== undefined) values.network = JSON.stringify(spec.network)
  if (spec.replicas !== undefined) values.replicas = spec.replicas
  if (spec.placement !== undefined) values.placement = JSON.stringify(spec.placement)
  return values
}

const STATUS_COLUMNS = {
  status: 'status',
  containerId: 'container_id',
  containerName: 'container_name',
  hostPort: 'host_port',
  healthStatus: 'health_status',
  lastHealthCheck: 'last_health_check',
  error: 'error',
  restartCount: 'restart_count',
  observedGeneration: 'observed_generation',
  installedAt: 'installed_at',
  startedAt: 'started_at',
  stoppedAt: 'stopped_at',
  nextRestartAt: 'next_restart_at',
  rollout: 'rollout',
  imageDigest: 'image_digest',
  extraPorts: 'extra_ports',
  replicasDesired: 'replicas_desired',
  replicasRunning: 'replicas_running',
} as const satisfies Record<keyof PluginStatusUpdate, keyof PluginRow>

export function statusColumns(update: PluginStatusUpdate): PluginRowUpdate {
  const values: Record<string, unknown> = {}
  for (const [field, column] of Object.entries(STATUS_COLUMNS)) {
    const value = update[field as keyof PluginStatusUpdate]
    if (value === undefined) continue
    // JSONB: written as text (a plain object would be sent as a composite by pg).
    values[column] = (field === 'rollout' || field === 'extraPorts') && value !== null ? JSON.stringify(value) : value
  }
  return values as PluginRowUpdate
}

export function toPlugin(row: PluginRow): Plugin {
  return {
    id: row.id,
    forgehookId: row.forgehook_id,
    manifest: row.manifest,
    config: row.config,
    environment: row.environment,
    desiredState: row.desired_state,
    requestedHostPort: row.requested_host_port,
    labels: row.labels,
    source: row.source,
    deletionRequestedAt: row.deletion_requested_at,
    volumes: row.volumes ?? [],
    updatePolicy: row.update_policy ?? {},
    purgeVolumes: row.purge_volumes ?? false,
    rolloutRetryAt: row.rollout_retry_at ?? null,
    network: row.network ?? {},
    replicas: row.replicas ?? 1,
    placement: row.placement ?? {},
    status: row.status,
    containerId: row.container_id,
    containerName: row.container_name,
    hostPort: row.host_port,
    healthStatus: row.health_status,
    lastHealthCheck: row.last_health_check,
    error: row.error,
    restartCount: row.restart_count,
    observedGeneration: row.observed_generation,
    installedAt: row.installed_at,
    startedAt: row.started_at,
    stoppedAt: row.stopped_at,
    nextRestartAt: row.next_restart_at,
    rollout: row.rollout ?? null,
    imageDigest: row.image_digest ?? null,
    extraPorts: row.extra_ports ?? [],
    replicasDesired: row.replicas_desired ?? null,
    replicasRunning: row.replicas_running ?? null,
    generation: row.generation,
    resourceVersion: row.resource_version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

export function eventRow(event: NewPluginEvent) {
  return { plugin_id: event.pluginId, forgehook_id: event.forgehookId, event_type: event.type, data: JSON.stringify(event.data ?? {}) }
}

export function toEvent(row: Selectable<PluginEventsTable>): PluginEvent {
  return {
    id: row.id,
    pluginId: row.plugin_id,
    forgehookId: row.forgehook_id,
    type: row.event_type,
    data: row.data,
    timestamp: row.timestamp,
  }
}

export function toMetrics(row: Selectable<PluginMetricsTable>): PluginMetrics {
  return {
    id: row.id,
    pluginId: row.plugin_id,
    requestCount: row.request_count,
    errorCount: row.error_count,
    totalResponseTimeMs: row.total_response_time_ms,
    avgResponseTimeMs: row.avg_response_time_ms,
    cpuUsagePercent: row.cpu_usage_percent,
    memoryUsageMb: row.memory_usage_mb,
    recordedAt: row.recorded_at,
  }
}

export function encodeCursor(id: number): string {
  return Buffer.from(`e:${id}`).toString('base64url')
}

export function decodeCursor(cursor: string): number {
  const match = /^e:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!match) throw new InvalidValueError(`invalid cursor "${cursor}"`, 'cursor')
  return Number(match[1])
}

const CONSTRAINT_MESSAGES: Record<string, { field: string; message: string }> = {
  plugins_forgehook_id_dns_label: {
    field: 'forgehookId',
    message: 'the plugin name must be a DNS label: lower-case letters, digits and "-", at most 63 characters',
  },
  idx_plugins_host_port: { field: 'hostPort', message: 'that host port is already assigned to another plugin' },
  plugins_container_name_key: { field: 'containerName', message: 'that container name belongs to another plugin' },
  plugins_desired_state_check: { field: 'desiredState', message: 'desired state must be "running" or "stopped"' },
  plugins_requested_host_port_range: { field: 'hostPort', message: 'host port must be from 1 to 65535' },
  plugins_host_port_range: { field: 'hostPort', message: 'host port must be from 1 to 65535' },
  plugins_replicas_range: { field: 'replicas', message: 'replicas must be from 1 to 100' },
}

/** Maps Postgres constraint errors (same codes on pg and PGlite) to typed errors. */
export function translateError(error: unknown, what: string): unknown {
  const pgError = error as { code?: string; constraint?: string; message?: string }
  if (pgError.code === '23505' && pgError.constraint === 'plugins_forgehook_id_key') return new AlreadyExistsError(what)
  const known = pgError.constraint ? CONSTRAINT_MESSAGES[pgError.constraint] : undefined
  if (known && (pgError.code === '23505' || pgError.code === '23514')) return new InvalidValueError(known.message, known.field)
  if (pgError.code === '23514' || pgError.code === '23502' || pgError.code === '22P02') {
    return new InvalidValueError(`${what}: ${pgError.message}`)
  }
  return error
}
