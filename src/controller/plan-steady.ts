// The plan for a container that already runs the wanted spec (or is held back after a
// rollback): keep it running, restart it once when asked, count its crashes and restart it
// after the crash-loop backoff. Pure, like plan.ts (golden text in test/controller/plan.test.ts).
import type { Plugin, PluginStatusUpdate } from '../db/plugin-store.js'
import type { ObservedContainer } from '../runtime/container-runtime.js'
import { backoffDelayMs } from '../util/backoff.js'
import { formatDuration } from '../util/format-duration.js'
import { DEFAULT_CRASH_LOOP, type CrashLoopPolicy, type Plan, type PlanInput, type PlannedEvent } from './plan-types.js'

/** The wait before restart number `restartCount` (1 for the first crash). */
export function crashLoopDelayMs(restartCount: number, policy: CrashLoopPolicy = DEFAULT_CRASH_LOOP): number {
  return backoffDelayMs(restartCount - 1, { initialMs: policy.initialDelayMs, maxMs: policy.maxDelayMs })
}

/** A container that runs the wanted spec (or is held back): keep it running, restart it, count its crashes. */
export function planSteady(input: PlanInput, container: ObservedContainer): Plan {
  const { plugin, now } = input
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
      { kind: 'stop', containerId: container.id, cause: reason },
      { kind: 'start', cause: reason },
    ],
    transitionPhase: 'starting',
    status: { status: 'running', error: null, containerId: container.id },
    events: [{ type: 'plugin:restarted', data: { containerId: container.id, reason } }],
    takesRestartRequest: true,
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
