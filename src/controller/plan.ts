// Deciding, apart from doing: plan() compares one plugin's desired state with its observed
// container and returns the actions to take, each with its cause, the events to record
// and the status to write once they succeed. It is a pure function: no I/O, no clock
// (`now` is given), so every case is a golden-text test (test/controller/plan.test.ts).
// Updates of a running plugin are plan-rollout.ts; what happens when an action fails is
// plan-recovery.ts. Both are pure too.
import type { Plugin, PluginStatusUpdate, PluginTombstone } from '../db/plugin-store.js'
import { containerNameFor, isManaged, LABELS, rolloutNamesFor, volumeNameFor, type ContainerSpec, type ImagePullPolicy, type ObservedContainer } from '../runtime/container-runtime.js'
import { changedFields } from '../spec/container-spec.js'
import { anonymousVolumesOf, stopAndRemove, volumesToEnsure } from './container-actions.js'
import { isHeld, planRollout, rolledBackError, ROLLOUT_IN_PROGRESS } from './plan-rollout.js'
import { planSteady } from './plan-steady.js'
import { CONFLICT_RETRY_MS, type Action, type Plan, type PlanInput, type PlannedEvent } from './plan-types.js'

export { crashLoopDelayMs } from './plan-steady.js'

export function plan(input: PlanInput): Plan {
  return withPhaseAudit(input.plugin, decide(input))
}

function decide(input: PlanInput): Plan {
  const { plugin, container } = input
  if (plugin.deletionRequestedAt) return planUninstall(input)
  // No host port: nothing can be created or started; a running container keeps running.
  if (input.portProblem !== undefined) return withError(plugin, input.portProblem, { requeueAfterMs: CONFLICT_RETRY_MS })
  if (container && !ownedBy(container, plugin)) {
    if (!(input.containerOwnerGone && isManaged(container) && !hasUnsafeSettings(container))) return planConflict(plugin, container)
    if (!input.wanted.ok) return planInvalidSpec(plugin, input.wanted.error)
    return planReplaceStale(input, container, input.wanted.spec, input.wanted.pullPolicy)
  }
  if (!input.wanted.ok) return planInvalidSpec(plugin, input.wanted.error)
  // A rollout's containers without the plugin's own (a manager stopped between renames).
  const renamed = container ? undefined : planRenameIntoPlace(input)
  if (renamed) return renamed
  if (plugin.desiredState === 'stopped') return planStopped(input, input.wanted.spec, input.wanted.pullPolicy)
  return planRunning(input, input.wanted.spec, input.wanted.pullPolicy)
}

/**
 * A phase change that no event of the plan describes (an error recorded again, a stopped
 * plugin found without its container) gets its own plugin:phase event.
 */
function withPhaseAudit(plugin: Plugin, planned: Plan): Plan {
  const to = planned.status.status
  if (planned.events.length > 0 || planned.deleteRow || to === undefined || to === plugin.status) return planned
  return { ...planned, events: [{ type: 'plugin:phase', data: { from: plugin.status, to } }] }
}

/** Ours: labelled as managed, for this very plugin. */
export function belongsTo(container: ObservedContainer, plugin: Plugin): boolean {
  return isManaged(container) && container.labels[LABELS.pluginId] === plugin.id
}

/**
 * Ours to change and remove: made by us for this plugin, or adopted by it (a container
 * without our labels that the adoption recorded as the plugin's: once adopted, it is ours).
 */
export function ownedBy(container: ObservedContainer, plugin: Plugin): boolean {
  // Labels can be planted: a container with settings no spec of ours produces is never ours.
  if (hasUnsafeSettings(container)) return false
  // An unlabelled container the row records as its own: only adoption writes that (we create
  // none without labels), and it stays ours when a file or the API takes the plugin over.
  return belongsTo(container, plugin) || (!isManaged(container) && plugin.containerId === container.id)
}

/** Privileged mode, added capabilities, host mounts or namespaces: nothing a plugin spec can ask for. */
export function hasUnsafeSettings(container: ObservedContainer): boolean {
  return (container.unsafe ?? []).length > 0
}

/**
 * An adopted container whose spec nobody has changed since (generation 1): what it runs
 * (its environment, its command) is not known, so it is kept as it is, never recreated
 * from a guessed spec. The first spec change replaces it with a container of ours.
 */
function adoptedAsIs(container: ObservedContainer, plugin: Plugin): boolean {
  return !isManaged(container) && plugin.generation === 1
}

function planUninstall(input: PlanInput): Plan {
  const { plugin, container } = input
  const cause = 'the plugin is being uninstalled'
  const actions: Action[] = []
  for (const companion of [input.rollout?.next, input.rollout?.previous]) {
    if (companion && ownedBy(companion, plugin)) actions.push(...stopAndRemove(companion, `${cause} (a rollout's container)`))
  }
  // A container that is not ours is left alone even when its namesake plugin goes.
  const ours = container && ownedBy(container, plugin) ? container : undefined
  if (ours) actions.push(...stopAndRemove(ours, cause, { anonymousVolumes: plugin.purgeVolumes }))
  const events: PlannedEvent[] = [{ type: 'plugin:uninstalled', data: { containerId: ours?.id ?? null } }]
  // An image VOLUME carried over by an update is mounted by name since: `docker rm -v` keeps it.
  const carried = ours ? anonymousVolumesOf(ours, { volumes: [] }).map((volume) => volume.source) : []
  if (plugin.purgeVolumes && plugin.volumes.length + carried.length > 0) {
    const names = [...plugin.volumes.map((volume) => volumeNameFor(plugin.forgehookId, volume.name)), ...carried]
    actions.push({ kind: 'remove-volumes', names, cause: 'deleted with purge: its named volumes go too' })
    events.push({ type: 'plugin:volumes-purged', data: { volumes: names } })
  }
  return { actions, transitionPhase: 'uninstalling', status: {}, events, deleteRow: { cause: 'deletion was requested' } }
}

/**
 * The plugin's own container is missing but a rollout's is there: the manager stopped
 * between two renames. The new container takes the name when the switch had begun (or the
 * old one is gone); otherwise the old one gets it back.
 */
function planRenameIntoPlace(input: PlanInput): Plan | undefined {
  const { plugin } = input
  const next = input.rollout?.next && ownedBy(input.rollout.next, plugin) ? input.rollout.next : undefined
  const previous = input.rollout?.previous && ownedBy(input.rollout.previous, plugin) ? input.rollout.previous : undefined
  const chosen = next ?? previous
  if (!chosen) return undefined
  const cause = next && previous
    ? 'the switch had begun: the new container takes the name'
    : next
      ? 'the old container is gone: the new one takes the name'
      : 'the rollback had begun: the old container takes its name back'
  return {
    actions: [{ kind: 'rename', containerId: chosen.id, name: rolloutNamesFor(plugin.forgehookId).main, cause }],
    status: {},
    events: [],
    leavesGenerationUnobserved: true,
    requeueAfterMs: 0,
  }
}

function planReplaceStale(input: PlanInput, stale: ObservedContainer, spec: ContainerSpec, pullPolicy: ImagePullPolicy): Plan {
  const cause = `container ${stale.id.slice(0, 12)} belongs to a deleted plugin (${stale.labels[LABELS.pluginId] ?? 'no id'})`
  const running = input.plugin.desiredState === 'running'
  const { pull, create } = pullAndCreate(input.plugin, spec, pullPolicy, cause)
  const actions: Action[] = [...pull, ...stopAndRemove(stale, cause), create]
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
  if (hasUnsafeSettings(container)) {
    return `container name ${container.name} is held by a container with ${container.unsafe!.join(', ')} (id ${container.id.slice(0, 12)}), which no FlowForge spec produces: it is treated as foreign, whatever its labels say — remove or rename it; FlowForge will not touch it`
  }
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

/** A problem recorded on the plugin: status error, one plugin:error event when the error is new. */
export function withError(plugin: Plugin, error: string, extra: Pick<Plan, 'requeueAfterMs'>): Plan {
  const events = plugin.error === error ? [] : [{ type: 'plugin:error', data: { error } }]
  return { actions: [], status: { status: 'error', error }, events, ...extra }
}

function planStopped(input: PlanInput, spec: ContainerSpec, pullPolicy: ImagePullPolicy): Plan {
  const { plugin, container } = input
  const status: PluginStatusUpdate = { status: 'stopped', error: null, nextRestartAt: null }
  // Stopped in the middle of a rollout: the container under the plugin's name stays, the rest goes.
  const leftovers = [input.rollout?.next, input.rollout?.previous].filter((companion): companion is ObservedContainer => companion !== undefined && ownedBy(companion, plugin))
  if (leftovers.length > 0) {
    return {
      actions: leftovers.flatMap((companion) => stopAndRemove(companion, 'desired state is stopped: the rollout ends here')),
      status: {},
      events: [],
      leavesGenerationUnobserved: true,
      requeueAfterMs: 0,
    }
  }
  if (!container && plugin.containerId === null) {
    // Declared stopped from the start: install it (image checked, container created) so
    // that a later start is quick, but do not start it.
    const { pull, create } = pullAndCreate(plugin, spec, pullPolicy, 'the plugin has no container yet')
    return {
      actions: [...pull, create],
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
    actions: [{ kind: 'stop', containerId: container.id, cause: 'desired state is stopped' }],
    transitionPhase: 'stopping',
    status,
    events: [{ type: 'plugin:stopped', data: fields.length > 0 ? { pendingChanges: fields } : {} }],
  }
}

function planRunning(input: PlanInput, spec: ContainerSpec, pullPolicy: ImagePullPolicy): Plan {
  const { plugin, container } = input
  if (!container) return planCreate(plugin, spec, pullPolicy)
  const drifted = changedFields(container.labels, spec).length > 0 && !adoptedAsIs(container, plugin)
  const underWay = input.rollout?.next !== undefined || input.rollout?.previous !== undefined
  if (underWay || (drifted && !isHeld(plugin, spec))) return planRollout({ input, main: container, spec, pullPolicy })
  const steady = withNetwork(input, container, spec, planSteady(input, container))
  if (drifted) return heldBack(plugin, steady)
  return finishRollout(input, container, steady)
}

/**
 * On the installation network under its name, or off it when isolated: a connect or a
 * disconnect, never a recreate. Nothing when the container's networks are not known.
 */
function withNetwork(input: PlanInput, container: ObservedContainer, spec: ContainerSpec, steady: Plan): Plan {
  const networks = container.networks
  if (!networks) return steady
  const actions: Action[] = []
  if (spec.network && !networks.includes(spec.network.name)) {
    actions.push({ kind: 'connect-network', containerId: container.id, network: spec.network.name, aliases: spec.network.aliases, cause: `${input.plugin.forgehookId} is reached by name on ${spec.network.name}` })
  }
  const installation = input.installationNetwork
  if (!spec.network && installation && networks.includes(installation)) {
    actions.push({ kind: 'disconnect-network', containerId: container.id, network: installation, cause: 'spec.network.isolated: the plugin is kept off the installation network' })
  }
  return actions.length === 0 ? steady : { ...steady, actions: [...actions, ...steady.actions] }
}

/**
 * Rolled back: the old container is looked after as usual (kept running, restarted after a
 * crash) and nothing is updated; the gap to the generation stays visible.
 */
function heldBack(plugin: Plugin, steady: Plan): Plan {
  const status = { ...steady.status }
  if (status.error === null && plugin.rollout) status.error = rolledBackError(plugin.rollout)
  return { ...steady, status, leavesGenerationUnobserved: true }
}

/** A rollout the status shows under way with nothing left to do: its last step ran, its record did not (a manager stopped). */
function finishRollout(input: PlanInput, container: ObservedContainer, steady: Plan): Plan {
  const rollout = input.plugin.rollout
  if (!rollout || !ROLLOUT_IN_PROGRESS.has(rollout.phase)) return steady
  const finished = { ...rollout, phase: 'complete' as const, finishedAt: new Date(input.now).toISOString() }
  const recorded: PlannedEvent = {
    type: 'plugin:updated',
    data: { image: container.image, strategy: rollout.strategy, recordedLate: 'the last step of the rollout ran, its record did not (a manager stopped)' },
  }
  return { ...steady, status: { ...steady.status, rollout: finished }, events: [...steady.events, recorded] }
}

function planCreate(plugin: Plugin, spec: ContainerSpec, pullPolicy: ImagePullPolicy): Plan {
  // We had a container and it is gone: someone removed it behind our back.
  const recovered = plugin.containerId !== null
  const cause = recovered ? `container ${plugin.containerId!.slice(0, 12)} is missing` : 'the plugin has no container yet'
  const events: PlannedEvent[] = recovered
    ? [{ type: 'plugin:recovered', data: { previousContainerId: plugin.containerId, image: spec.image, hostPort: spec.hostPort } }]
    : [{ type: 'plugin:installed', data: { image: spec.image, hostPort: spec.hostPort } }]
  events.push({ type: 'plugin:started', data: { hostPort: spec.hostPort } })
  const { pull, create } = pullAndCreate(plugin, spec, pullPolicy, cause)
  return {
    actions: [...pull, create, { kind: 'start', cause: 'desired state is running' }],
    transitionPhase: 'installing',
    status: { status: 'running', error: null, nextRestartAt: null, restartCount: 0 },
    events,
  }
}

/**
 * The image (and the named volumes) first, then the create. Only Always pulls up front;
 * otherwise the create applies the policy when the engine says the image is missing (as
 * `docker run` does), so an image already there costs no lookup. This is for a plugin with
 * nothing running to protect; an update prepares its new container first (plan-rollout.ts).
 */
function pullAndCreate(plugin: Plugin, spec: ContainerSpec, pullPolicy: ImagePullPolicy, cause: string): { pull: Action[]; create: Action } {
  const pull: Action[] = []
  if (pullPolicy === 'Always') pull.push({ kind: 'pull', image: spec.image, policy: 'Always', cause: `imagePullPolicy Always for ${spec.name}` })
  const volumes = volumesToEnsure(plugin, spec)
  if (volumes.length > 0) pull.push({ kind: 'ensure-volumes', volumes, cause: `named volumes of ${spec.name}` })
  if (pullPolicy === 'Always') return { pull, create: { kind: 'create', spec, cause } }
  return { pull, create: { kind: 'create', spec, missingImage: pullPolicy, cause } }
}

/**
 * For a plugin row that is gone (deleted in SQL, or uninstalled by a manager that died
 * before removing the container): remove its containers (a rollout may have left two) if
 * we made them, or if the deleted row had adopted it (its tombstone names the container).
 */
export function planOrphanRemoval(pluginId: string, containers: ObservedContainer[], tombstone?: Pick<PluginTombstone, 'containerId' | 'forgehookId'>): Plan {
  const ours = containers.filter(
    (container) =>
      !hasUnsafeSettings(container) &&
      ((isManaged(container) && container.labels[LABELS.pluginId] === pluginId) ||
      // Adopted (no labels of ours): only the very container the row had, under the plugin's name.
        (tombstone !== undefined && !isManaged(container) && container.id === tombstone.containerId && container.name === containerNameFor(tombstone.forgehookId))),
  )
  if (ours.length === 0) return { actions: [], status: {}, events: [] }
  const forgehookId = tombstone?.forgehookId ?? ours[0]!.labels[LABELS.forgehookId] ?? ours[0]!.name
  const main = ours.find((container) => container.name === containerNameFor(forgehookId)) ?? ours[0]!
  return {
    actions: ours.flatMap((container) => stopAndRemove(container, 'its plugin was deleted')),
    status: {},
    events: [{ type: 'plugin:uninstalled', data: { containerId: main.id, pluginId } }],
    subject: { pluginId: null, forgehookId },
  }
}
