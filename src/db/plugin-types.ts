// What the store hands out and takes in: plugins, events and metrics as the rest of the
// program sees them (camelCase, Dates), apart from the SQL that produces them.
import type { AssignedPort, DesiredState, HealthStatus, JsonObject, NetworkPolicy, NodeState, Placement, PluginPhase, PluginVolume, RolloutStatus, TaskState, UpdatePolicy } from './schema.js'

/** A plugin as the rest of the program sees it: one row, camelCase. */
export interface Plugin {
  id: string
  forgehookId: string
  // spec
  manifest: JsonObject
  config: JsonObject
  environment: Record<string, string>
  desiredState: DesiredState
  requestedHostPort: number | null
  labels: Record<string, string>
  source: string
  deletionRequestedAt: Date | null
  volumes: PluginVolume[]
  updatePolicy: UpdatePolicy
  /** Asked with the deletion: remove the plugin's named volumes too. */
  purgeVolumes: boolean
  /** An operator asked to retry a rolled-back generation (forgectl rollout retry). */
  rolloutRetryAt: Date | null
  network: NetworkPolicy
  /** spec.replicas: how many copies should run (1 unless the swarm runtime runs more). */
  replicas: number
  /** spec.placement: where the swarm runtime may run them; {} when none. */
  placement: Placement
  // status
  status: PluginPhase
  containerId: string | null
  containerName: string | null
  hostPort: number | null
  healthStatus: HealthStatus
  lastHealthCheck: Date | null
  error: string | null
  restartCount: number
  observedGeneration: number
  installedAt: Date | null
  startedAt: Date | null
  stoppedAt: Date | null
  /** Crash-loop backoff: when the next restart is due. */
  nextRestartAt: Date | null
  rollout: RolloutStatus | null
  /** The registry digest of the image the container runs, as the manager's last pull of it found it; null while unknown. */
  imageDigest: string | null
  /** The host ports of manifest.ports, as assigned. */
  extraPorts: AssignedPort[]
  /** Swarm runtime: the replicas its service asks for, and how many of its tasks run; null on the docker runtime (unknown). */
  replicasDesired: number | null
  replicasRunning: number | null
  // bookkeeping
  generation: number
  resourceVersion: number
  createdAt: Date
  updatedAt: Date
}

/** The desired-state half; every field but manifest may be left out on create. */
export interface PluginSpecFields {
  manifest: JsonObject
  config?: JsonObject
  environment?: Record<string, string>
  desiredState?: DesiredState
  requestedHostPort?: number | null
  labels?: Record<string, string>
  volumes?: PluginVolume[]
  updatePolicy?: UpdatePolicy
  network?: NetworkPolicy
  /** Default 1. */
  replicas?: number
  /** Default {}. */
  placement?: Placement
}

export interface NewPlugin extends PluginSpecFields {
  /** Normally generated; given when adopting a container that carries its plugin id. */
  id?: string
  forgehookId: string
  /** 'api', 'sql', 'file:<path>', 'adopted'. */
  source: string
}

export type PluginSpecPatch = Partial<PluginSpecFields> & { source?: string }

/** The observed half, written only by the reconciler. */
export interface PluginStatusUpdate {
  status?: PluginPhase
  containerId?: string | null
  containerName?: string | null
  hostPort?: number | null
  healthStatus?: HealthStatus
  lastHealthCheck?: Date | null
  error?: string | null
  restartCount?: number
  observedGeneration?: number
  installedAt?: Date | null
  startedAt?: Date | null
  stoppedAt?: Date | null
  nextRestartAt?: Date | null
  rollout?: RolloutStatus | null
  imageDigest?: string | null
  extraPorts?: AssignedPort[]
  replicasDesired?: number | null
  replicasRunning?: number | null
}

/**
 * Of a running plugin, what the periodic rounds (health probes, resource samples) read every
 * interval: five columns instead of the whole row. Rows with their specs, read and parsed
 * twice a round, were most of what an idle manager's rounds allocated and kept across young
 * collections into the old generation (docs/benchmarks.md, 4e).
 */
export type RunningPlugin = Pick<Plugin, 'id' | 'forgehookId' | 'hostPort' | 'healthStatus' | 'generation'>

export interface PluginFilter {
  status?: PluginPhase | PluginPhase[]
  health?: HealthStatus | HealthStatus[]
  desiredState?: DesiredState
}

export interface PluginEvent {
  id: number
  pluginId: string | null
  forgehookId: string
  type: string
  data: JsonObject
  timestamp: Date
}

export interface NewPluginEvent {
  pluginId: string | null
  forgehookId: string
  type: string
  data?: JsonObject
}

export interface EventQuery {
  pluginId?: string
  /** Also finds the history of a plugin that was uninstalled (plugin_id is NULL then). */
  forgehookId?: string
  types?: string[]
  since?: Date
  /** Default 100, at most 1000. */
  limit?: number
  /** From a previous page's nextCursor. */
  cursor?: string
  /** Newest first (default) or oldest first. */
  order?: 'desc' | 'asc'
}

export interface Page<T> {
  items: T[]
  /** Present when there may be more. */
  nextCursor?: string
}

export interface MetricsSample {
  requestCount?: number
  errorCount?: number
  totalResponseTimeMs?: number
  avgResponseTimeMs?: number | null
  cpuUsagePercent?: number | null
  memoryUsageMb?: number | null
  recordedAt?: Date
}

export interface PluginMetrics extends Required<Omit<MetricsSample, 'recordedAt'>> {
  id: number
  pluginId: string
  recordedAt: Date
}

/** One generation's spec, as plugin_revisions keeps it (values as the plugins row keeps them). */
export interface PluginRevision {
  pluginId: string
  revision: number
  forgehookId: string
  source: string
  spec: Required<PluginSpecFields>
  createdAt: Date
}

/** What is known of a deleted plugin. */
export interface PluginTombstone {
  pluginId: string
  forgehookId: string
  containerId: string | null
  containerName: string | null
  deletedAt: Date
}

/**
 * One Swarm task of a plugin's service as the swarm reconciler last observed it
 * (plugin_tasks; store.tasks.replaceTasks writes a plugin's tasks all at once).
 */
export interface PluginTask {
  pluginId: string
  /** Swarm's task id. */
  taskId: string
  /** The replica slot the task fills (replicated services); null when Swarm gives none. */
  slot: number | null
  nodeId: string | null
  nodeName: string | null
  /** The node's state when the task was observed. */
  nodeState: NodeState | null
  /** The node's address as the swarm manager reports it (where host-mode ports answer). */
  nodeAddress: string | null
  state: TaskState
  desiredState: TaskState
  containerId: string | null
  /** Swarm's error for a failed or rejected task. */
  error: string | null
  /** Swarm's status message ("started", "preparing", …). */
  message: string | null
  /** The container's health (healthy, unhealthy, starting), when it has a health check. */
  health: string | null
  /** The host port the task publishes the plugin's port on (host-mode publishing). */
  hostPort: number | null
  /** The image the task runs (as Swarm pinned it, with its digest when known). */
  image: string | null
  /** When Swarm created the task. */
  createdAt: Date | null
  /** When Swarm last changed the task. */
  updatedAt: Date
}
