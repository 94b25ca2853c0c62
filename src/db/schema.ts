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

export const UPDATE_STRATEGIES = ['Recreate', 'StartFirst'] as const
export type UpdateStrategy = (typeof UPDATE_STRATEGIES)[number]

/** A named volume of the plugin (spec.volumes): Docker volume forgehook-<plugin>-<name>. */
export interface PluginVolume {
  name: string
  mountPath: string
  readOnly?: boolean
}

/** spec.network: which networks the plugin's container joins. */
export interface NetworkPolicy {
  /** Off the installation network (flowforge-<MANAGER_INSTANCE>): no other plugin can reach it by name. Default false. */
  isolated?: boolean
}

/** spec.placement: where a Swarm service's tasks may run (the swarm runtime only; the docker runtime refuses a non-empty one). */
export interface Placement {
  /** Swarm constraints, all of which must hold: `node.labels.zone==a`, `node.role!=manager`. */
  constraints?: string[]
  /** Spread the tasks evenly over the values of a node label (`node.labels.zone`), in order. */
  preferences?: { spread: string }[]
  /** At most this many tasks of the plugin on one node. Default: no limit. */
  maxReplicasPerNode?: number
}

export const TASK_STATES = ['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running', 'complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove'] as const
/** A Swarm task's state (and desired state), as the Engine API's TaskState names them. */
export type TaskState = (typeof TASK_STATES)[number]

export const NODE_STATES = ['ready', 'down', 'disconnected', 'unknown'] as const
/** A Swarm node's state as the manager last saw it (the Engine API's NodeState). */
export type NodeState = (typeof NODE_STATES)[number]

/** A published extra port (manifest.ports) with the host port assigned to it. */
export interface AssignedPort {
  name: string
  containerPort: number
  protocol: 'tcp' | 'udp'
  hostPort: number
}

/** spec.update: how a spec change reaches the running container. */
export interface UpdatePolicy {
  /** Recreate (default): the new container replaces the old on its port. StartFirst: beside it, on a new port. */
  strategy?: UpdateStrategy
  /** How long the new container has to run (and become healthy) before it is rolled back. Default 60. */
  healthyTimeoutSeconds?: number
}

export const ROLLOUT_PHASES = ['progressing', 'verifying', 'draining', 'complete', 'failed', 'rolled-back'] as const
export type RolloutPhase = (typeof ROLLOUT_PHASES)[number]

/** status.rollout: the update in progress, or the last one. Times are ISO strings. */
export interface RolloutStatus {
  /**
   * progressing: the new container is being prepared, the old one untouched; verifying: the
   * new one runs and must become healthy; draining: the proxy moved to the new one (start
   * first), the old one finishes its requests; complete; failed: it could not be prepared
   * (the old one serves, retried with backoff); rolled-back: the new one failed, the old
   * one serves again, not retried until the spec changes or a retry is asked.
   */
  phase: RolloutPhase
  strategy: UpdateStrategy
  /** The generation being rolled out. */
  generation: number
  fromImage: string | null
  toImage: string
  /** imagePullPolicy Always: the image id rolled out (a push under the same tag is a rollout of its own). */
  toImageId?: string
  startedAt: string
  /** When the new container took over (Recreate: started; StartFirst: given the traffic). */
  switchedAt?: string
  finishedAt?: string
  error?: string
  /** StartFirst: the port the new container runs on beside the old one's. */
  toHostPort?: number
  fromHostPort?: number
}

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
  volumes: ColumnType<PluginVolume[], string | undefined, string>
  update_policy: ColumnType<UpdatePolicy, string | undefined, string>
  purge_volumes: ColumnType<boolean, boolean | undefined, boolean>
  rollout_retry_at: Date | null
  network: ColumnType<NetworkPolicy, string | undefined, string>
  replicas: ColumnType<number, number | undefined, number>
  placement: ColumnType<Placement, string | undefined, string>
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
  rollout: ColumnType<RolloutStatus | null, string | null | undefined, string | null>
  image_digest: string | null
  extra_ports: ColumnType<AssignedPort[], string | undefined, string>
  /** The swarm runtime's replica counts; NULL on the docker runtime. */
  replicas_desired: number | null
  replicas_running: number | null
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
  rollout_phase: RolloutPhase | null
  rollout_error: string | null
}

export interface PluginTombstonesTable {
  plugin_id: string
  forgehook_id: string
  deleted_at: Timestamp
  container_id: string | null
  container_name: string | null
}

export interface PluginRevisionsTable {
  plugin_id: string
  revision: number
  forgehook_id: string
  source: string
  manifest: Json<JsonObject>
  config: Json<JsonObject>
  environment: Json<Record<string, string>>
  desired_state: DesiredState
  requested_host_port: number | null
  labels: Json<Record<string, string>>
  volumes: Json<PluginVolume[]>
  update_policy: Json<UpdatePolicy>
  network: Json<NetworkPolicy>
  replicas: number
  placement: Json<Placement>
  created_at: Timestamp
}

/** One Swarm task of a plugin's service, as the swarm reconciler last observed it (migrations/007). */
export interface PluginTasksTable {
  plugin_id: string
  task_id: string
  slot: number | null
  node_id: string | null
  node_name: string | null
  node_state: string | null
  /** migrations/008 */
  node_address: string | null
  state: string
  desired_state: string
  container_id: string | null
  error: string | null
  message: string | null
  health: string | null
  host_port: number | null
  image: string | null
  created_at: Date | null
  updated_at: Date
}

/** plugin_replicas: desired against running replicas of every plugin (the drift report: WHERE running < desired). */
export interface PluginReplicasView {
  forgehook_id: string
  plugin_id: string
  desired: number
  running: number
  status: PluginPhase
  error: string | null
}

export interface FlowforgeSettingsTable {
  key: string
  value: string
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
  plugin_revisions: PluginRevisionsTable
  plugin_tasks: PluginTasksTable
  plugin_replicas: PluginReplicasView
  flowforge_settings: FlowforgeSettingsTable
  schema_migrations: SchemaMigrationsTable
}

export type PluginRow = Selectable<PluginsTable>
export type PluginRowUpdate = Updateable<PluginsTable>
