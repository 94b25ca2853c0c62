// Deciding, apart from doing: plan() compares one plugin's desired state with its observed
// container and returns the actions to take, each with its cause, the events to record
// and the status to write once they succeed. It is a pure function: no I/O, no clock
// (`now` is given), so every case is a golden-text test (test/controller/plan.test.ts).
import type { Plugin, PluginStatusUpdate } from '../db/plugin-store.js'
import { isManaged, LABELS, type ContainerSpec, type ImagePullPolicy, type ObservedContainer } from '../runtime/container-runtime.js'
import { changedFields } from '../spec/container-spec.js'
import { backoffDelayMs } from '../util/backoff.js'
import { formatDuration } from '../util/format-duration.js'

export type Action =
  | { kind: 'pull'; image: string; policy: ImagePullPolicy; cause: string }
  | { kind: 'create'; spec: ContainerSpec; cause: string }
  | { kind: 'start'; cause: string }
  | { kind: 'stop'; cause: string }
  | { kind: 'remove'; containerId: string; cause: string }
  | { kind: 'delete-row'; cause: string }

export interface PlannedEvent {
  type: string
  data: Record<string, unknown>
}

export interface Plan {
  actions: Action[]
  /** Phase to show while the actions run (installing, stopping, ...). */
  transitionPhase?: Plugin['status']
  /** Status to write once every action succeeded (only fields that differ are written). */
  status: PluginStatusUpdate
  events: PlannedEvent[]
  /** Look again after this long (crash-loop backoff, conflicts, the 10-minute reset). */
  requeueAfterMs?: number
}

export interface CrashLoopPolicy {
  /** First restart delay. Default 10 s. */
  initialDelayMs: number
  /** Cap. Default 5 min. */
  maxDelayMs: number
  /** Running this long resets restart_count. Default 10 min. */
  resetAfterMs: number
}

export const DEFAULT_CRASH_LOOP: CrashLoopPolicy = { initialDelayMs: 10_000, maxDelayMs: 300_000, resetAfterMs: 600_000 }

/** How long a plugin stuck on a conflict waits before the next look. */
export const CONFLICT_RETRY_MS = 30_000

export interface PlanInput {
  plugin: Plugin
  /** The container named forgehook-<name>, whoever made it. */
  container: ObservedContainer | undefined
  /** The container the plugin should have, or why none can be built (bad manifest). */
  wanted: { ok: true; spec: ContainerSpec; pullPolicy: ImagePullPolicy } | { ok: false; error: string }
  now: number
  crashLoop?: CrashLoopPolicy
  /** Restart the running container once (health checks failing, an operator's restart). */
  restartRequested?: string
  /**
   * The container under our name is one of ours, left by a plugin whose row no longer
   * exists (a database recreated while containers kept running): replace it, not a conflict.
   */
  containerOwnerGone?: boolean
}

/** The wait before restart number `restartCount` (1 for the first crash). */
export function crashLoopDelayMs(restartCount: number, policy: CrashLoopPolicy = DEFAULT_CRASH_LOOP): number {
  return backoffDelayMs(restartCount - 1, { initialMs: policy.initialDelayMs, maxMs: policy.maxDelayMs })
}

export function plan(input: PlanInput): Plan {
  const { plugin, container } = input
  if (plugin.deletionRequestedAt) return planUninstall(plugin, container)
  if (container && !belongsTo(container, plugin)) {
    if (!(input.containerOwnerGone && isManaged(container))) return planConflict(plugin, container)
    if (!input.wanted.ok) return planInvalidSpec(plugin, input.wanted.error)
    return planReplaceStale(input, container, input.wanted.spec, input.wanted.pullPolicy)
  }
  if (!input.wanted.ok) return planInvalidSpec(plugin, input.wanted.error)
  if (plugin.desiredState === 'stopped') return planStopped(input, input.wanted.spec, input.wanted.pullPolicy)
  return planRunning(input, input.wanted.spec, input.wanted.pullPolicy)
}

/** Ours: labelled as managed, for this very plugin. */
function belongsTo(container: ObservedContainer, plugin: Plugin): boolean {
  return isManaged(container) && container.labels[LABELS.pluginId] === plugin.id
}

function planUninstall(plugin: Plugin, container: ObservedContainer | undefined): Plan {
  const actions: Action[] = []
  // A container that is not ours is left alone even when its namesake plugin goes.
  if (container && belongsTo(container, plugin)) {
    if (container.state === 'running') actions.push({ kind: 'stop', cause: 'the plugin is being uninstalled' })
    actions.push({ kind: 'remove', containerId: container.id, cause: 'the plugin is being uninstalled' })
  }
  actions.push({ kind: 'delete-row', cause: 'deletion was requested' })
  return {
    actions,
    transitionPhase: 'uninstalling',
    status: {},
    events: [{ type: 'plugin:uninstalled', data: { containerId: container && belongsTo(container, plugin) ? container.id : null } }],
  }
}

function planReplaceStale(input: PlanInput, stale: ObservedContainer, spec: ContainerSpec, pullPolicy: ImagePullPolicy): Plan {
  const cause = `container ${stale.id.slice(0, 12)} belongs to a deleted plugin (${stale.labels[LABELS.pluginId] ?? 'no id'})`
  const running = input.plugin.desiredState === 'running'
  const actions: Action[] = [{ kind: 'pull', image: spec.image, policy: pullPolicy, cause: `image for ${spec.name}` }]
  if (stale.state === 'running') actions.push({ kind: 'stop', cause })
  actions.push({ kind: 'remove', containerId: stale.id, cause }, { kind: 'create', spec, cause })
  if (running) actions.push({ kind: 'start', cause: 'desired state is running' })
  const events: PlannedEvent[] = [{ type: 'plugin:installed', data: { image: spec.image, hostPort: spec.hostPort, replacedContainerId: stale.id } }]
  if (running) events.push({ type: 'plugin:started', data: { hostPort: spec.hostPort } })
  return {
    actions,
    transitionPhase: 'installing',
    status: { status: running ? 'running' : 'stopped', error: null, nextRestartAt: null, restartCount: 0 },
    events,
  }
}

function planConflict(plugin: Plugin, container: ObservedContainer): Plan {
  return withError(plugin, nameConflictMessage(container), { requeueAfterMs: CONFLICT_RETRY_MS })
}

/** The error of a plugin whose container name is held by a container that is not its own. */
export function nameConflictMessage(container: ObservedContainer): string {
  const owner = isManaged(container)
    ? `a FlowForge container of another plugin id (${container.labels[LABELS.pluginId] ?? 'unknown'})`
    : 'a container not managed by FlowForge'
  return `container name ${container.name} is held by ${owner} (id ${container.id.slice(0, 12)}); remove or rename it — FlowForge will not touch it`
}

function planInvalidSpec(plugin: Plugin, error: string): Plan {
  // Terminal: nothing to retry until the spec changes (a new generation enqueues it again).
  // The container, if any, keeps running on its last good spec.
  return withError(plugin, error, {})
}

function withError(plugin: Plugin, error: string, extra: Pick<Plan, 'requeueAfterMs'>): Plan {
  const events = plugin.error === error ? [] : [{ type: 'plugin:error', data: { error } }]
  return { actions: [], status: { status: 'error', error }, events, ...extra }
}

function planStopped(input: PlanInput, spec: ContainerSpec, pullPolicy: ImagePullPolicy): Plan {
  const { plugin, container } = input
  const status: PluginStatusUpdate = { status: 'stopped', error: null, nextRestartAt: null }
  if (!container && plugin.containerId === null) {
    // Declared stopped from the start: install it (image checked, container created) so
    // that a later start is quick, but do not start it.
    return {
      actions: [
        { kind: 'pull', image: spec.image, policy: pullPolicy, cause: `image for ${spec.name}` },
        { kind: 'create', spec, cause: 'the plugin has no container yet' },
      ],
      transitionPhase: 'installing',
      status,
      events: [{ type: 'plugin:installed', data: { image: spec.image, hostPort: spec.hostPort } }],
    }
  }
  if (!container || container.state !== 'running') {
    // A stopped plugin keeps its container and port; one removed behind our back is not
    // recreated until the plugin should run again.
    return { actions: [], status: { ...status, containerId: container?.id ?? null }, events: [] }
  }
  const fields = changedFields(container.labels, spec)
  return {
    actions: [{ kind: 'stop', cause: 'desired state is stopped' }],
    transitionPhase: 'stopping',
    status,
    events: [{ type: 'plugin:stopped', data: fields.length > 0 ? { pendingChanges: fields } : {} }],
  }
}

function planRunning(input: PlanInput, spec: ContainerSpec, pullPolicy: ImagePullPolicy): Plan {
  const { plugin, container, now } = input
  if (!container) return planCreate(plugin, spec, pullPolicy)
  const fields = changedFields(container.labels, spec)
  if (fields.length > 0) return planRecreate(plugin, container, spec, pullPolicy, fields)
  if (container.state === 'running' && input.restartRequested) return planRestart(container, input.restartRequested)
  if (container.state === 'running') return planKeepRunning(input, container)
  if (crashedBehindOurBack(plugin, container)) return planCrash(input, container)
  const nextRestart = plugin.nextRestartAt?.getTime()
  if (nextRestart !== undefined && nextRestart > now) {
    // Crash-loop backoff: the restart is not due yet.
    return { actions: [], status: {}, events: [], requeueAfterMs: nextRestart - now }
  }
  const cause =
    container.state === 'created'
      ? 'the container was created but never started'
      : plugin.restartCount > 0
        ? `restart ${plugin.restartCount} after a crash (backoff elapsed)`
        : 'desired state is running'
  return {
    actions: [{ kind: 'start', cause }],
    transitionPhase: 'starting',
    status: { status: 'running', error: null, nextRestartAt: null, containerId: container.id },
    events: [{ type: 'plugin:started', data: { containerId: container.id, restartCount: plugin.restartCount } }],
    ...resetLater(plugin, input),
  }
}

function planCreate(plugin: Plugin, spec: ContainerSpec, pullPolicy: ImagePullPolicy): Plan {
  // We had a container and it is gone: someone removed it behind our back.
  const recovered = plugin.containerId !== null
  const cause = recovered ? `container ${plugin.containerId!.slice(0, 12)} is missing` : 'the plugin has no container yet'
  const events: PlannedEvent[] = recovered
    ? [{ type: 'plugin:recovered', data: { previousContainerId: plugin.containerId, image: spec.image, hostPort: spec.hostPort } }]
    : [{ type: 'plugin:installed', data: { image: spec.image, hostPort: spec.hostPort } }]
  events.push({ type: 'plugin:started', data: { hostPort: spec.hostPort } })
  return {
    actions: [
      { kind: 'pull', image: spec.image, policy: pullPolicy, cause: `image for ${spec.name}` },
      { kind: 'create', spec, cause },
      { kind: 'start', cause: 'desired state is running' },
    ],
    transitionPhase: 'installing',
    status: { status: 'running', error: null, nextRestartAt: null, restartCount: 0 },
    events,
  }
}

function planRecreate(plugin: Plugin, container: ObservedContainer, spec: ContainerSpec, pullPolicy: ImagePullPolicy, fields: string[]): Plan {
  const cause = `spec changed: ${fields.join(', ')}`
  const actions: Action[] = [{ kind: 'pull', image: spec.image, policy: pullPolicy, cause: `image for ${spec.name}` }]
  if (container.state === 'running') actions.push({ kind: 'stop', cause })
  actions.push(
    { kind: 'remove', containerId: container.id, cause },
    { kind: 'create', spec, cause },
    { kind: 'start', cause: 'desired state is running' },
  )
  return {
    actions,
    transitionPhase: 'installing',
    status: { status: 'running', error: null, nextRestartAt: null, restartCount: 0 },
    events: [{ type: 'plugin:updated', data: { changedFields: fields, previousContainerId: container.id, image: spec.image, hostPort: spec.hostPort } }],
  }
}

function planKeepRunning(input: PlanInput, container: ObservedContainer): Plan {
  const { plugin } = input
  const status: PluginStatusUpdate = { status: 'running', error: null, nextRestartAt: null, containerId: container.id }
  // Adopted, or found running after our own restart: record when it started.
  if (plugin.status !== 'running' && container.startedAt) status.startedAt = container.startedAt
  // Still in a transition phase: the reconcile that started it ended (a manager killed, a
  // failed status write) before recording it, so its events were never written either.
  const events: PlannedEvent[] =
    plugin.status === 'installing' || plugin.status === 'starting'
      ? [{ type: 'plugin:started', data: { containerId: container.id, recordedLate: `found running in phase ${plugin.status}: started by a reconcile that ended before recording it` } }]
      : []
  const policy = input.crashLoop ?? DEFAULT_CRASH_LOOP
  const sinceStart = container.startedAt ? input.now - container.startedAt.getTime() : 0
  if (plugin.restartCount > 0 && container.startedAt && sinceStart >= policy.resetAfterMs) {
    return { actions: [], status: { ...status, restartCount: 0 }, events }
  }
  return { actions: [], status, events, ...resetLater(plugin, input, container.startedAt) }
}

function planRestart(container: ObservedContainer, reason: string): Plan {
  return {
    actions: [
      { kind: 'stop', cause: reason },
      { kind: 'start', cause: reason },
    ],
    transitionPhase: 'starting',
    status: { status: 'running', error: null, containerId: container.id },
    events: [{ type: 'plugin:restarted', data: { containerId: container.id, reason } }],
  }
}

/** After a restart, come back when the 10-minute mark is reached to reset the count. */
function resetLater(plugin: Plugin, input: PlanInput, startedAt?: Date): Pick<Plan, 'requeueAfterMs'> {
  if (plugin.restartCount === 0) return {}
  const policy = input.crashLoop ?? DEFAULT_CRASH_LOOP
  const started = startedAt?.getTime() ?? input.now
  return { requeueAfterMs: Math.max(1, started + policy.resetAfterMs - input.now) }
}

/** It exited while we meant it to run, and we have not recorded that crash yet. */
function crashedBehindOurBack(plugin: Plugin, container: ObservedContainer): boolean {
  if (container.state !== 'exited' && container.state !== 'dead') return false
  if (plugin.status !== 'running' && plugin.status !== 'starting') return false
  // 'starting' with a restart due, on a container last started before that restart was
  // scheduled: the restart's own start failed (the engine unreachable, say) and the exit
  // is the crash already counted. Counting it again doubled the backoff on every retry
  // through a Docker outage (restart 3 in 40 s after one minute without dockerd).
  const restartDue = plugin.status === 'starting' ? plugin.nextRestartAt?.getTime() : undefined
  const lastStarted = container.startedAt?.getTime()
  return !(restartDue !== undefined && lastStarted !== undefined && lastStarted < restartDue)
}

function planCrash(input: PlanInput, container: ObservedContainer): Plan {
  const { plugin, now } = input
  const restartCount = plugin.restartCount + 1
  const delayMs = crashLoopDelayMs(restartCount, input.crashLoop)
  const exit = container.oomKilled ? `was killed for running out of memory (exit code ${container.exitCode ?? 'unknown'})` : `exited with code ${container.exitCode ?? 'unknown'}`
  const error = `container ${exit}; restart ${restartCount} in ${formatDuration(delayMs)}`
  return {
    actions: [],
    status: { status: 'error', error, restartCount, nextRestartAt: new Date(now + delayMs), containerId: container.id },
    events: [
      {
        type: 'plugin:crashed',
        data: { containerId: container.id, exitCode: container.exitCode ?? null, oomKilled: container.oomKilled ?? false, restartCount, restartInMs: delayMs },
      },
    ],
    requeueAfterMs: delayMs,
  }
}

/** For a plugin row that is gone: remove its container, if we made one. */
export function planOrphanRemoval(container: ObservedContainer | undefined): Action[] {
  if (!container || !isManaged(container)) return []
  const actions: Action[] = []
  if (container.state === 'running') actions.push({ kind: 'stop', cause: 'its plugin was deleted' })
  actions.push({ kind: 'remove', containerId: container.id, cause: 'its plugin was deleted' })
  return actions
}

/** One readable line per action, for logs and golden tests. */
export function describePlan(planned: Plan | Action[]): string {
  const actions = Array.isArray(planned) ? planned : planned.actions
  const lines = actions.map((action) => `${describeAction(action)}  # ${action.cause}`)
  if (!Array.isArray(planned)) {
    const status = Object.entries(planned.status)
      .map(([field, value]) => `${field}=${value instanceof Date ? value.toISOString() : JSON.stringify(value)}`)
      .join(' ')
    if (status) lines.push(`status ${status}`)
    for (const event of planned.events) lines.push(`event ${event.type} ${JSON.stringify(event.data)}`)
    if (planned.requeueAfterMs !== undefined) lines.push(`requeue after ${planned.requeueAfterMs} ms`)
  }
  return lines.join('\n')
}

function describeAction(action: Action): string {
  switch (action.kind) {
    case 'pull':
      return `pull ${action.image} (${action.policy})`
    case 'create':
      return `create ${action.spec.name} image=${action.spec.image} port=${action.spec.hostIp}:${action.spec.hostPort}->${action.spec.containerPort}`
    case 'remove':
      return `remove ${action.containerId.slice(0, 12)}`
    default:
      return action.kind
  }
}
