// Updates that never make things worse (pure, like plan.ts). A spec change reaches a running
// plugin in steps, one reconcile each, each decided from what is observed: the old and new
// containers under their names, the row's status.rollout, a readiness probe. A manager
// killed between any two steps leaves a state the next reconcile resolves.
//
// Recreate (default):   prepare: image made sure of, volumes, the new container created as
//                       forgehook-NAME_next; the old one untouched. A failure ends here.
//                       switch: the names change hands while the old one still serves
//                       (rename it _previous, rename next to NAME; a rename does not touch
//                       a running container), then, a step of its own: stop old, start new.
//                       The proxy answers 503 for that second step only.
//                       verify: running (and healthy) within healthyTimeoutSeconds →
//                       the old one is removed; otherwise rolled back: the new one goes,
//                       the old one is renamed back and started.
// StartFirst:           prepare: a second port reserved; the new container created and
//                       started beside the old one, which keeps serving.
//                       verify: healthy → the row's host_port moves to the new port (the
//                       proxy follows it); otherwise the new one is discarded.
//                       drain: proxied requests to the old one finish (bounded), then it is
//                       stopped and removed and the new one takes the plugin's name.
import type { Plugin } from '../db/plugin-store.js'
import type { RolloutStatus, UpdateStrategy } from '../db/schema.js'
import { rolloutNamesFor, type ContainerSpec, type ImagePullPolicy, type ObservedContainer } from '../runtime/container-runtime.js'
import { changedFields } from '../spec/container-spec.js'
import { anonymousVolumesOf, stopAndRemove, volumesToEnsure } from './container-actions.js'
import { DEFAULT_ROLLOUT_SETTINGS, type Action, type Plan, type PlanInput, type PlannedEvent } from './plan-types.js'
import { exitOf, judge, VERIFY_POLL_MS, type Verdict } from './rollout-verdict.js'

/** A rollout still under way: its containers may exist beside the plugin's own. */
export const ROLLOUT_IN_PROGRESS: ReadonlySet<RolloutStatus['phase']> = new Set(['progressing', 'verifying', 'draining'])

const DRAIN_POLL_MS = 200

export interface RolloutContext {
  input: PlanInput
  /** The plugin's own container (ours), whatever it runs. */
  main: ObservedContainer
  spec: ContainerSpec
  pullPolicy: ImagePullPolicy
}

/** A running plugin whose container is not the wanted one, or whose rollout is under way. */
export function planRollout(context: RolloutContext): Plan {
  const { input, main, spec } = context
  const { next, previous } = input.rollout ?? {}
  if (previous) {
    // Recreate after the switch: main is the new container (or the spec changed again).
    if (changedFields(main.labels, spec).length === 0) return planVerifyRecreate(context, previous)
    // Renamed but not started, the old one still serving: the names go back, nothing stops.
    if (main.state === 'created' && previous.state === 'running') return planUndoRenames(context, previous)
    return cleanUp(previous, 'a newer spec replaces the rollout it belongs to')
  }
  const strategy = strategyFor(input.plugin, main)
  if (next) {
    const target = strategy === 'StartFirst' ? input.rollout?.candidate : spec
    if (!target || changedFields(next.labels, target).length > 0) return cleanUp(next, 'it was prepared for another spec')
    if (strategy === 'Recreate') return planSwitchRecreate(context, next)
    if (next.hostPort !== undefined && next.hostPort === input.plugin.hostPort) return planDrain(context, next)
    return planVerifyStartFirst(context, next)
  }
  // Without this the failed release would be prepared again: one more outage, one more failure.
  if (rollbackUnrecorded(input.plugin)) return planRecordRollback(context)
  if (strategy === 'StartFirst' && input.rollout?.candidate === undefined) return planReservePort(context)
  return planPrepare(context, strategy)
}

/**
 * Recorded past the point where the new container ran (Recreate: switched; start first:
 * verifying or draining), yet it is gone and the old one is the plugin's container: a
 * rollback removed it and the manager stopped before recording that.
 */
function rollbackUnrecorded(plugin: Plugin): boolean {
  const rollout = plugin.rollout
  if (rollout?.generation !== plugin.generation) return false
  if (rollout.strategy === 'Recreate') return rollout.phase === 'verifying' && rollout.switchedAt !== undefined
  return rollout.phase === 'verifying' || rollout.phase === 'draining'
}

/** What the interrupted rollback would have recorded; the old container started if it is not running yet. */
function planRecordRollback(context: RolloutContext): Plan {
  const { input, main } = context
  const current = input.plugin.rollout!
  const reason = 'a rollback was under way when the manager stopped (the new container is gone; why it failed was not recorded)'
  const { toHostPort: _released, ...kept } = current
  const rolledBack: RolloutStatus = { ...kept, phase: 'rolled-back', error: reason, finishedAt: iso(input.now) }
  const cause = 'rollback: the previous container serves again'
  const actions: Action[] = main.state === 'running' ? [] : [{ kind: 'start', containerId: main.id, cause }]
  // Start first after the switch: the proxy goes back to the old container's port.
  const hostPort = current.phase === 'draining' ? { hostPort: current.fromHostPort ?? main.hostPort ?? null } : {}
  return {
    actions,
    ...(actions.length > 0 ? { transitionPhase: 'starting' as const } : {}),
    status: { status: 'running', error: rolledBackError(rolledBack), nextRestartAt: null, containerId: main.id, ...hostPort, rollout: rolledBack },
    events: [
      {
        type: 'plugin:rolled-back',
        data: { reason, generation: current.generation, failedImage: current.toImage, restoredImage: current.fromImage, strategy: current.strategy, recordedLate: 'the rollback ran, its record did not (a manager stopped)' },
      },
    ],
    leavesGenerationUnobserved: true,
  }
}

/** Recreate, unless start first is asked and possible: a running old container to keep serving, a port of our own. */
export function strategyFor(plugin: Plugin, main: ObservedContainer): UpdateStrategy {
  const asked = plugin.updatePolicy.strategy ?? 'Recreate'
  return asked === 'StartFirst' && main.state === 'running' && plugin.requestedHostPort === null ? 'StartFirst' : 'Recreate'
}

/**
 * Rolled back, and nobody changed the spec or asked for a retry since. Under
 * imagePullPolicy Always a newer push (another wanted image id) is not held back either:
 * only the image that failed is.
 */
export function isHeld(plugin: Plugin, wanted?: Pick<ContainerSpec, 'imageId'>): boolean {
  const rollout = plugin.rollout
  if (rollout?.phase !== 'rolled-back' || rollout.generation !== plugin.generation) return false
  if (rollout.toImageId !== undefined && wanted?.imageId !== undefined && wanted.imageId !== rollout.toImageId) return false
  const retried = plugin.rolloutRetryAt && rollout.finishedAt && plugin.rolloutRetryAt.getTime() > Date.parse(rollout.finishedAt)
  return !retried
}

/** The error a plugin shows while its old version serves after a rollback. */
export function rolledBackError(rollout: RolloutStatus): string {
  return `the update to ${rollout.toImage} (generation ${rollout.generation}) was rolled back: ${rollout.error ?? 'unknown reason'}; ${rollout.fromImage ?? 'the previous version'} keeps running (forgectl rollout retry to try again)`
}

function planReservePort(context: RolloutContext): Plan {
  return {
    actions: [{ kind: 'reserve-port', cause: 'start first: the new container runs beside the old one on a port of its own' }],
    status: { rollout: rolloutStatus(context, 'StartFirst', 'progressing') },
    events: startedEvents(context, 'StartFirst'),
    leavesGenerationUnobserved: true,
    rolloutStage: 'prepare',
    requeueAfterMs: 0,
  }
}

function planPrepare(context: RolloutContext, strategy: UpdateStrategy): Plan {
  const { input, main, spec, pullPolicy } = context
  const names = rolloutNamesFor(input.plugin.forgehookId)
  const target = strategy === 'StartFirst' ? input.rollout!.candidate! : spec
  const cause = `update, ${strategy}: the new container is prepared before the old one is touched`
  const actions: Action[] = [{ kind: 'pull', image: target.image, policy: pullPolicy, cause }]
  const volumes = volumesToEnsure(input.plugin, target)
  if (volumes.length > 0) actions.push({ kind: 'ensure-volumes', volumes, cause })
  actions.push({ kind: 'create', spec: target, name: names.next, extraVolumes: anonymousVolumesOf(main, target), cause })
  if (strategy === 'StartFirst') actions.push({ kind: 'start', cause: 'start first: it runs beside the old one until it is healthy' })
  return {
    actions,
    status: { rollout: rolloutStatus(context, strategy, strategy === 'StartFirst' ? 'verifying' : 'progressing') },
    events: startedEvents(context, strategy),
    leavesGenerationUnobserved: true,
    rolloutStage: 'prepare',
    requeueAfterMs: strategy === 'StartFirst' ? VERIFY_POLL_MS : 0,
  }
}

/**
 * Recreate, first half of the switch: the names change hands while the old container still
 * serves, so the gap the proxy shows (503 while the row is `starting`) is only the stop and
 * the start of the second half, not these renames and their inspects.
 */
function planSwitchRecreate(context: RolloutContext, next: ObservedContainer): Plan {
  const { input, main } = context
  const names = rolloutNamesFor(input.plugin.forgehookId)
  return {
    actions: [
      { kind: 'rename', containerId: main.id, name: names.previous, cause: 'kept until the new one proves itself; it serves until the new one starts' },
      { kind: 'rename', containerId: next.id, name: names.main, cause: 'update, Recreate: the new container takes the name' },
    ],
    status: { rollout: rolloutStatus(context, 'Recreate', 'progressing') },
    events: [],
    leavesGenerationUnobserved: true,
    rolloutStage: 'switch',
    requeueAfterMs: 0,
  }
}

/** The spec changed between the two halves of a switch: the old one keeps its name and keeps serving; the new one is a leftover. */
function planUndoRenames(context: RolloutContext, previous: ObservedContainer): Plan {
  const { input, main } = context
  const names = rolloutNamesFor(input.plugin.forgehookId)
  const cause = 'a newer spec replaces the rollout before its container started: the old one keeps serving'
  return {
    actions: [
      { kind: 'rename', containerId: main.id, name: names.next, cause },
      { kind: 'rename', containerId: previous.id, name: names.main, cause },
    ],
    status: {},
    events: [],
    leavesGenerationUnobserved: true,
    requeueAfterMs: 0,
  }
}

function planVerifyRecreate(context: RolloutContext, previous: ObservedContainer): Plan {
  const { input, main, spec } = context
  const names = rolloutNamesFor(input.plugin.forgehookId)
  const current = context.input.plugin.rollout
  const since = Date.parse(current?.switchedAt ?? current?.startedAt ?? iso(input.now))
  const rollout: RolloutStatus = { ...(current ?? rolloutStatus(context, 'Recreate', 'verifying')), phase: 'verifying', switchedAt: iso(since) }
  if (main.state === 'created') {
    // Second half of the switch (or a switch a manager stopped in): the old one stops, the new one starts.
    const cause = 'update, Recreate: the new container takes over'
    const stop: Action[] = previous.state === 'running' ? [{ kind: 'stop', containerId: previous.id, cause }] : []
    return {
      actions: [...stop, { kind: 'start', containerId: main.id, cause }],
      transitionPhase: 'starting',
      status: { status: 'running', error: null, nextRestartAt: null, restartCount: 0, rollout: { ...rollout, switchedAt: iso(input.now) } },
      events: [],
      leavesGenerationUnobserved: true,
      rolloutStage: 'switch',
      requeueAfterMs: VERIFY_POLL_MS,
    }
  }
  const verdict = judge(context.input, main, since)
  if (verdict.kind === 'wait') return { actions: [], status: { rollout }, events: [], leavesGenerationUnobserved: true, requeueAfterMs: verdict.afterMs }
  if (verdict.kind === 'good') {
    return {
      actions: stopAndRemove(previous, 'update complete: the old container is not needed any more'),
      status: { status: 'running', error: null, containerId: main.id, rollout: { ...rollout, phase: 'complete', finishedAt: iso(input.now) } },
      events: [updatedEvent(context, previous, 'Recreate')],
    }
  }
  // Rolled back: the new one goes, the old one comes back under the plugin's name.
  const actions: Action[] = [
    ...stopAndRemove(main, `rollback: ${verdict.reason}`),
    { kind: 'rename', containerId: previous.id, name: names.main, cause: 'rollback: the previous container serves again' },
    { kind: 'start', containerId: previous.id, cause: 'rollback: the previous container serves again' },
  ]
  const rolledBack: RolloutStatus = { ...rollout, phase: 'rolled-back', error: verdict.reason, finishedAt: iso(input.now) }
  return {
    actions,
    transitionPhase: 'starting',
    status: { status: 'running', error: rolledBackError(rolledBack), containerId: previous.id, rollout: rolledBack },
    events: [rolledBackEvent(rolledBack, main, verdict)],
    leavesGenerationUnobserved: true,
  }
}

function planVerifyStartFirst(context: RolloutContext, next: ObservedContainer): Plan {
  const { input } = context
  const current = input.plugin.rollout
  const since = Date.parse(current?.startedAt ?? iso(input.now))
  const rollout: RolloutStatus = { ...(current ?? rolloutStatus(context, 'StartFirst', 'verifying')), phase: 'verifying' }
  if (next.state === 'created') {
    return { actions: [{ kind: 'start', containerId: next.id, cause: 'start first: it runs beside the old one until it is healthy' }], status: { rollout }, events: [], leavesGenerationUnobserved: true, rolloutStage: 'prepare', requeueAfterMs: VERIFY_POLL_MS }
  }
  const verdict = judge(context.input, next, since)
  if (verdict.kind === 'wait') return { actions: [], status: { rollout }, events: [], leavesGenerationUnobserved: true, requeueAfterMs: verdict.afterMs }
  if (verdict.kind === 'good') {
    // The switch is the row's host_port: the proxy reads it for every request.
    return {
      actions: [],
      status: { hostPort: next.hostPort!, rollout: { ...rollout, phase: 'draining', switchedAt: iso(input.now), fromHostPort: input.plugin.hostPort ?? undefined } },
      events: [],
      leavesGenerationUnobserved: true,
      requeueAfterMs: (input.rolloutSettings ?? DEFAULT_ROLLOUT_SETTINGS).minDrainMs,
    }
  }
  const { toHostPort: _released, ...kept } = rollout
  const rolledBack: RolloutStatus = { ...kept, phase: 'rolled-back', error: verdict.reason, finishedAt: iso(input.now) }
  return {
    actions: stopAndRemove(next, `rollback: ${verdict.reason}`),
    status: { error: rolledBackError(rolledBack), rollout: rolledBack },
    events: [rolledBackEvent(rolledBack, next, verdict)],
    leavesGenerationUnobserved: true,
  }
}

function planDrain(context: RolloutContext, next: ObservedContainer): Plan {
  const { input, main } = context
  const settings = input.rolloutSettings ?? DEFAULT_ROLLOUT_SETTINGS
  const current = input.plugin.rollout
  const rollout: RolloutStatus = { ...(current ?? rolloutStatus(context, 'StartFirst', 'draining')), phase: 'draining' }
  const names = rolloutNamesFor(input.plugin.forgehookId)
  if (next.state !== 'running') {
    // The new one failed after taking the traffic: give it back to the old one.
    const reason = `the new container stopped after the switch (${exitOf(next)})`
    const rolledBack: RolloutStatus = { ...rollout, phase: 'rolled-back', error: reason, finishedAt: iso(input.now), toHostPort: undefined }
    return {
      actions: stopAndRemove(next, `rollback: ${reason}`),
      status: { hostPort: rollout.fromHostPort ?? main.hostPort ?? null, error: rolledBackError(rolledBack), rollout: rolledBack },
      events: [rolledBackEvent(rolledBack, next, { kind: 'bad', reason })],
      leavesGenerationUnobserved: true,
    }
  }
  const switchedAt = Date.parse(rollout.switchedAt ?? iso(input.now))
  const elapsed = input.now - switchedAt
  const drained = elapsed >= settings.minDrainMs && ((input.rollout?.oldInFlight ?? 0) === 0 || elapsed >= settings.drainTimeoutMs)
  if (!drained) return { actions: [], status: { rollout: { ...rollout, switchedAt: iso(switchedAt) } }, events: [], leavesGenerationUnobserved: true, requeueAfterMs: DRAIN_POLL_MS }
  return {
    actions: [
      ...stopAndRemove(main, 'start first: the old container has drained'),
      { kind: 'rename', containerId: next.id, name: names.main, cause: 'start first: the new container takes the plugin\'s name' },
    ],
    status: { status: 'running', error: null, nextRestartAt: null, restartCount: 0, rollout: { ...rollout, phase: 'complete', finishedAt: iso(input.now) } },
    events: [updatedEvent(context, main, 'StartFirst', { from: rollout.fromHostPort ?? main.hostPort ?? null, to: next.hostPort ?? null })],
  }
}

function rolloutStatus(context: RolloutContext, strategy: UpdateStrategy, phase: RolloutStatus['phase']): RolloutStatus {
  const { input, main, spec } = context
  const current = input.plugin.rollout
  // The same generation's rollout keeps its start time across its steps and retries.
  const same = current !== null && sameRollout(input.plugin)
  const target = strategy === 'StartFirst' ? (input.rollout?.candidate ?? spec) : spec
  return {
    phase,
    strategy,
    generation: input.plugin.generation,
    fromImage: main.image,
    toImage: target.image,
    ...(target.imageId ? { toImageId: target.imageId } : {}),
    startedAt: same && current ? current.startedAt : iso(input.now),
    ...(strategy === 'StartFirst' && current?.toHostPort !== undefined && current.toHostPort !== input.plugin.hostPort ? { toHostPort: current.toHostPort } : {}),
  }
}

/** Once per rollout of a generation: not again for its next steps, nor for each retry after a failed preparation. */
function startedEvents(context: RolloutContext, strategy: UpdateStrategy): PlannedEvent[] {
  const { input, main, spec } = context
  if (sameRollout(input.plugin)) return []
  return [{ type: 'plugin:rollout-started', data: { strategy, generation: input.plugin.generation, fromImage: main.image, toImage: spec.image, changedFields: changedFields(main.labels, spec) } }]
}

function updatedEvent(context: RolloutContext, old: ObservedContainer, strategy: UpdateStrategy, hostPort?: { from: number | null; to: number | null }): PlannedEvent {
  const { spec } = context
  const target = strategy === 'StartFirst' ? (context.input.rollout?.candidate ?? spec) : spec
  return {
    type: 'plugin:updated',
    data: {
      changedFields: changedFields(old.labels, target),
      previousContainerId: old.id,
      image: spec.image,
      // imagePullPolicy Always: the registry digest now running (a new push under the same tag is an update too).
      ...(target.imageDigest ? { imageDigest: target.imageDigest } : {}),
      strategy,
      hostPort: hostPort ?? spec.hostPort,
    },
  }
}

function rolledBackEvent(rollout: RolloutStatus, failed: ObservedContainer, verdict: Extract<Verdict, { kind: 'bad' }>): PlannedEvent {
  return {
    type: 'plugin:rolled-back',
    data: {
      reason: verdict.reason,
      generation: rollout.generation,
      failedImage: rollout.toImage,
      restoredImage: rollout.fromImage,
      strategy: rollout.strategy,
      failedContainerId: failed.id,
      ...(verdict.exitCode !== undefined ? { exitCode: verdict.exitCode, oomKilled: verdict.oomKilled ?? false } : {}),
      ...(verdict.healthOutput !== undefined ? { healthOutput: verdict.healthOutput } : {}),
    },
  }
}

/** A rollout of this generation is under way, or failed to prepare and is being retried. */
function sameRollout(plugin: Plugin): boolean {
  const current = plugin.rollout
  return current !== null && current.generation === plugin.generation && (ROLLOUT_IN_PROGRESS.has(current.phase) || current.phase === 'failed')
}

function cleanUp(container: ObservedContainer, why: string): Plan {
  return { actions: stopAndRemove(container, `a leftover of a rollout: ${why}`), status: {}, events: [], leavesGenerationUnobserved: true, requeueAfterMs: 0 }
}

function iso(time: number): string {
  return new Date(time).toISOString()
}

