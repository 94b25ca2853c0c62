// What a plugin's service is doing, from its tasks and the nodes they run on: the status
// written to the row, the task rows (plugin_tasks), and the events of what changed since
// the last look (a task failed, a slot moved to another node, a node was lost, Swarm rolled
// an update back). Pure: the reconciler gathers the facts and writes the result.
import type { NewPluginEvent, Plugin, PluginStatusUpdate, PluginTask } from '../db/plugin-store.js'
import type { HealthStatus, NodeState, PluginPhase, RolloutStatus } from '../db/schema.js'
import { LABELS } from '../runtime/container-runtime.js'
import { ENDED_TASK_STATES, type ObservedNode, type ObservedService, type ObservedTask, type TaskState } from './service-runtime.js'

/** One row of plugin_tasks, as the reconciler writes it (the plugin id is the caller's). */
export type TaskRecord = Omit<PluginTask, 'pluginId'>

export interface ServiceObservation {
  plugin: Plugin
  service: ObservedService
  /** This service's tasks, every one Swarm still keeps (its task history included). */
  tasks: ObservedTask[]
  nodes: ReadonlyMap<string, ObservedNode>
  /** The task rows written at the last look. */
  previous: readonly TaskRecord[]
  /** The hash of the spec the row declares now. */
  wantedHash: string
  /** The replicas the row declares now (0 while stopped). */
  wantedReplicas: number
  now: Date
}

export interface ServiceStatus {
  status: PluginStatusUpdate & { replicasDesired: number; replicasRunning: number }
  tasks: TaskRecord[]
  events: NewPluginEvent[]
  /** Swarm rolled back the spec the row declares: do not send it again until it changes or a retry is asked. */
  rolledBack: boolean
}

/**
 * Swarm's UpdateStatus states in which the service's tasks are still being replaced. Paused
 * (an update, or a rollback, stopped by a task's failure) is not among them: Swarm replaces
 * no more tasks until the next update, but keeps the replicas running.
 */
const UPDATE_IN_PROGRESS: ReadonlySet<string> = new Set(['updating', 'rollback_started'])

/** How many tasks a row keeps per slot: the current one and the last that ended. */
const ENDED_TASKS_KEPT_PER_SLOT = 1

export function observeService(input: ServiceObservation): ServiceStatus {
  const { plugin, service, nodes, now } = input
  const records = taskRecords(input.tasks, nodes)
  const current = records.filter((task) => task.desiredState === 'running' || task.desiredState === 'ready' || task.desiredState === 'accepted')
  const running = current.filter((task) => task.state === 'running' && task.nodeState !== 'down').length
  const desired = input.wantedReplicas
  const rolledBack = isRollbackOf(plugin, service, input.wantedHash)
  const failing = lastFailure(records)
  const phase = phaseOf(plugin, running, desired, current, failing, records)
  const rollout = rolloutOf(plugin, service, input.wantedHash, rolledBack, now)
  const error = errorOf(running, desired, current, failing, rolledBack ? service.updateStatus?.message : undefined)
  const health: HealthStatus = desired === 0 ? 'unknown' : running === desired ? 'healthy' : running === 0 ? 'unhealthy' : 'unhealthy'
  const hostPort = current.find((task) => task.hostPort !== null)?.hostPort ?? (service.ports[0]?.publishedPort || null)
  const status: ServiceStatus['status'] = {
    status: phase,
    containerId: current.find((task) => task.state === 'running')?.containerId ?? null,
    containerName: service.name,
    hostPort,
    healthStatus: health,
    error,
    replicasDesired: desired,
    replicasRunning: running,
    restartCount: restartsOf(records),
    ...(rollout !== undefined ? { rollout } : {}),
    ...(phase === 'running' && plugin.startedAt === null ? { startedAt: now } : {}),
    ...(phase === 'stopped' && plugin.status !== 'stopped' ? { stoppedAt: now } : {}),
  }
  // Observed once the service carries the wanted spec and no update or rollback is under way.
  // A rollback that ended, or paused, on the wanted spec counts: Swarm undid an update that
  // changed nothing we declare (a restart's forced update whose new task failed), and the
  // replicas run that spec.
  if (!rolledBack && service.labels[LABELS.specHash] === input.wantedHash && !UPDATE_IN_PROGRESS.has(service.updateStatus?.state ?? 'completed')) {
    status.observedGeneration = plugin.generation
  }
  return { status, tasks: kept(records), events: eventsOf(input, records, rolledBack), rolledBack }
}

function taskRecords(tasks: readonly ObservedTask[], nodes: ReadonlyMap<string, ObservedNode>): TaskRecord[] {
  return tasks.map((task) => {
    const node = task.nodeId ? nodes.get(task.nodeId) : undefined
    return {
      taskId: task.id,
      slot: task.slot ?? null,
      nodeId: task.nodeId ?? null,
      nodeName: node?.hostname ?? null,
      nodeState: (node ? node.state : task.nodeId ? 'unknown' : null) as NodeState | null,
      nodeAddress: node?.address ?? null,
      state: task.state,
      desiredState: task.desiredState,
      containerId: task.containerId ?? null,
      error: task.error ?? null,
      message: task.message ?? null,
      // Swarm calls a task running only once the container's health check passed (when it has one).
      health: task.state === 'running' ? 'healthy' : task.state === 'starting' ? 'starting' : task.state === 'failed' ? 'unhealthy' : null,
      hostPort: task.hostPorts[0] ?? null,
      image: task.image ?? null,
      createdAt: task.createdAt ?? null,
      updatedAt: task.updatedAt ?? task.createdAt ?? new Date(0),
    }
  })
}

/** The current tasks, and per slot the newest that ended: a bounded history. */
function kept(records: TaskRecord[]): TaskRecord[] {
  const bySlot = new Map<number | null, TaskRecord[]>()
  for (const record of records) {
    if (!ENDED_TASK_STATES.has(record.state as TaskState) || record.desiredState === 'running') continue
    const list = bySlot.get(record.slot) ?? []
    list.push(record)
    bySlot.set(record.slot, list)
  }
  const endedKept = new Set<string>()
  for (const list of bySlot.values()) {
    list.sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime())
    for (const record of list.slice(0, ENDED_TASKS_KEPT_PER_SLOT)) endedKept.add(record.taskId)
  }
  return records
    .filter((record) => !ENDED_TASK_STATES.has(record.state as TaskState) || record.desiredState === 'running' || endedKept.has(record.taskId))
    .sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0) || b.updatedAt.getTime() - a.updatedAt.getTime())
}

function phaseOf(plugin: Plugin, running: number, desired: number, current: TaskRecord[], failing: TaskRecord | undefined, all: TaskRecord[]): PluginPhase {
  if (plugin.deletionRequestedAt) return 'uninstalling'
  // Scaled to 0: stopped once no task is left that has not ended (on a node that is still there).
  if (desired === 0) return all.some((task) => !ENDED_TASK_STATES.has(task.state as TaskState) && task.nodeState !== 'down') ? 'stopping' : 'stopped'
  // Never "running" with no task running: it is starting, or failing to.
  if (running > 0) return 'running'
  if (failing && current.every((task) => task.state !== 'starting' && task.state !== 'running')) return 'error'
  return 'starting'
}

function errorOf(running: number, desired: number, current: TaskRecord[], failing: TaskRecord | undefined, rollbackMessage: string | undefined): string | null {
  if (rollbackMessage) return `Swarm rolled the update back: ${rollbackMessage}`
  if (desired === 0 || running >= desired) return null
  const pending = current.find((task) => task.state === 'pending' && task.error !== null)
  const why = failing ? `task ${failing.taskId.slice(0, 12)}${failing.nodeName ? ` on ${failing.nodeName}` : ''} ${failing.state}: ${failing.error ?? failing.message ?? 'no reason given'}` : pending ? `a task cannot be placed: ${pending.error}` : undefined
  return why ? `${running}/${desired} replicas running; ${why}` : null
}

/** The newest task that failed or was rejected, if it is newer than every running one. */
function lastFailure(records: TaskRecord[]): TaskRecord | undefined {
  const failed = records.filter((task) => task.state === 'failed' || task.state === 'rejected').sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime())[0]
  if (!failed) return undefined
  const newerRunning = records.some((task) => task.state === 'running' && task.slot === failed.slot && task.updatedAt >= failed.updatedAt)
  return newerRunning ? undefined : failed
}

/** Restarts as Swarm counts them: tasks of a slot beyond its first that ended failed. */
function restartsOf(records: TaskRecord[]): number {
  return records.filter((task) => task.state === 'failed').length
}

/**
 * Swarm rolled back the update to the spec the row declares: its update status says
 * rollback, the service runs another spec than the wanted one, and the update we started
 * was for this generation (Swarm drops the failed spec on a rollback: PreviousSpec is
 * emptied, so our own rollout record says what was rolled back).
 */
export function isRollbackOf(plugin: Plugin, service: ObservedService, wantedHash: string): boolean {
  const state = service.updateStatus?.state ?? ''
  if (!state.startsWith('rollback') || service.labels[LABELS.specHash] === wantedHash) return false
  if (service.previousLabels?.[LABELS.specHash] === wantedHash) return true
  return plugin.rollout?.generation === plugin.generation
}

function rolloutOf(plugin: Plugin, service: ObservedService, wantedHash: string, rolledBack: boolean, now: Date): RolloutStatus | undefined {
  const update = service.updateStatus
  const previous = plugin.rollout
  if (!update) return undefined
  const base: RolloutStatus = previous?.generation === plugin.generation
    ? previous
    : { phase: 'progressing', strategy: plugin.updatePolicy?.strategy ?? 'Recreate', generation: plugin.generation, fromImage: null, toImage: service.image, startedAt: (update.startedAt ?? now).toISOString() }
  if (rolledBack) {
    if (base.phase === 'rolled-back') return undefined
    return { ...base, phase: 'rolled-back', ...(update.message ? { error: update.message } : {}), finishedAt: (update.completedAt ?? now).toISOString() }
  }
  if (service.labels[LABELS.specHash] !== wantedHash) return undefined
  const phase = ROLLOUT_PHASE_OF[update.state]
  if (phase === undefined || base.phase === phase) return undefined
  return {
    ...base,
    phase,
    // Paused: why, as Swarm says it (a task that failed or ended early); the next update or restart goes on from there.
    ...(phase === 'failed' && update.message ? { error: `Swarm paused the ${update.state === 'paused' ? 'update' : 'rollback'}: ${update.message}` } : {}),
    ...(phase === 'complete' || phase === 'failed' ? { finishedAt: (update.completedAt ?? now).toISOString() } : {}),
  }
}

/** The rollout phase an update state means, for a service that carries the wanted spec. */
const ROLLOUT_PHASE_OF: Record<string, RolloutStatus['phase'] | undefined> = {
  updating: 'verifying',
  completed: 'complete',
  // A rollback that ended on the wanted spec: an update that changed nothing we declare was undone.
  rollback_completed: 'complete',
  paused: 'failed',
  rollback_paused: 'failed',
}

function eventsOf(input: ServiceObservation, records: TaskRecord[], rolledBack: boolean): NewPluginEvent[] {
  const { plugin, service } = input
  const event = (type: string, data: Record<string, unknown>): NewPluginEvent => ({ pluginId: plugin.id, forgehookId: plugin.forgehookId, type, data: data as NewPluginEvent['data'] })
  const previous = new Map(input.previous.map((task) => [task.taskId, task]))
  const events: NewPluginEvent[] = []
  for (const task of records) {
    const before = previous.get(task.taskId)
    if ((task.state === 'failed' || task.state === 'rejected') && before?.state !== task.state && (before !== undefined || isRecent(task, input.now))) {
      events.push(event('plugin:task-failed', { taskId: task.taskId, slot: task.slot, node: task.nodeName, state: task.state, error: task.error ?? task.message }))
    }
  }
  // A node that was ready and is down now: its tasks are lost until Swarm places them elsewhere.
  const downNodes = new Set<string>()
  for (const before of input.previous) {
    const node = before.nodeId ? input.nodes.get(before.nodeId) : undefined
    if (before.nodeState === 'ready' && node && node.state !== 'ready' && before.desiredState === 'running' && !downNodes.has(node.id)) {
      downNodes.add(node.id)
      events.push(event('plugin:node-down', { node: node.hostname, nodeId: node.id, state: node.state, taskId: before.taskId, slot: before.slot }))
    }
  }
  // A slot whose new task runs on another node than its task that was running at the last
  // look, because that node went down, was drained or left: moved. (Swarm may already have
  // marked the old task for shutdown by then, so its desired state is not looked at. A new
  // task of a rolling update, or a restart after a crash, is not a move.)
  const runningBefore = new Map<number | null, TaskRecord>()
  for (const task of input.previous) if (task.state === 'running') runningBefore.set(task.slot, task)
  for (const task of records) {
    // A replacement starts with desired state ready (while the old one stops), then running;
    // it is told once, at the first look that finds it placed on a node.
    if (task.desiredState !== 'running' && task.desiredState !== 'ready') continue
    if (task.nodeId === null || (previous.get(task.taskId)?.nodeId ?? null) !== null) continue
    const before = runningBefore.get(task.slot)
    if (!before || before.nodeId === task.nodeId) continue
    const fromNode = before.nodeId ? input.nodes.get(before.nodeId) : undefined
    const reason = fromNode === undefined ? 'its node left the swarm' : fromNode.state !== 'ready' ? `node ${fromNode.hostname} is ${fromNode.state}` : fromNode.availability !== 'active' ? `node ${fromNode.hostname} is ${fromNode.availability === 'drain' ? 'drained' : fromNode.availability}` : undefined
    if (reason === undefined) continue
    events.push(event('plugin:task-rescheduled', { slot: task.slot, fromNode: before.nodeName, toNode: task.nodeName, fromTaskId: before.taskId, toTaskId: task.taskId, reason }))
  }
  if (rolledBack && plugin.rollout?.phase !== 'rolled-back') {
    events.push(event('plugin:rolled-back', { reason: service.updateStatus?.message ?? 'Swarm rolled the update back', generation: plugin.generation, restoredImage: service.image, by: 'swarm' }))
  }
  return events
}

function isRecent(task: TaskRecord, now: Date): boolean {
  return now.getTime() - task.updatedAt.getTime() < 60_000
}
