// What to do when an action of a plan fails in a way the planner knows: a pure function
// of the plugin, the failure and the plan it broke, tested as golden text like plan().
import type { Plugin } from '../db/plugin-store.js'
import type { RolloutStatus } from '../db/schema.js'
import { nameConflictMessage, ownedBy, withError } from './plan.js'
import { CONFLICT_RETRY_MS, type ActionFailure, type Plan, type Recovery } from './plan-types.js'

export function planRecovery(plugin: Plugin, failure: ActionFailure, planned?: Pick<Plan, 'rolloutStage' | 'status'>): Recovery {
  // A rollout that could not prepare its new container: the old one was never touched.
  if (planned?.rolloutStage === 'prepare' && failure.kind !== 'name-taken') return rolloutFailed(plugin, planned, describe(failure))
  switch (failure.kind) {
    case 'image-missing':
    case 'registry-auth':
      // Recorded so the operator sees why, and retried with backoff: the image may appear
      // (pushed, or the registry back), or the credentials be fixed (`docker login`: the
      // file is read again at the next pull), without any change of the spec.
      return { kind: 'abort', plan: withError(plugin, failure.error, {}), retry: true }
    case 'name-taken': {
      const { holder } = failure
      // Gone again between the create and the inspect: try again.
      if (!holder) return { kind: 'abort', plan: nothingToDo(), retry: true }
      // Docker made it while our call failed, or a crashed manager did: use it (a
      // rollout's next reconcile judges it by its labels like any other).
      if (ownedBy(holder, plugin)) return { kind: 'continue-with', containerId: holder.id, cause: `container ${holder.id.slice(0, 12)} under that name is this plugin's own` }
      // Someone else's: never touched; looked at again later.
      return { kind: 'abort', plan: withError(plugin, nameConflictMessage(holder), { requeueAfterMs: CONFLICT_RETRY_MS }), retry: false }
    }
    case 'port-in-use':
      // A port the operator asked for is theirs to free: say so and look again later.
      if (plugin.requestedHostPort !== null) {
        return { kind: 'abort', plan: withError(plugin, `requested ${failure.error}`, { requeueAfterMs: CONFLICT_RETRY_MS }), retry: false }
      }
      // An allocated port taken by something outside FlowForge: give it up, so the retry
      // allocates another (and recreates the container with it).
      return {
        kind: 'abort',
        plan: { ...nothingToDo(), actions: plugin.hostPort === null ? [] : [{ kind: 'release-port', hostPort: plugin.hostPort, cause: failure.error }] },
        retry: true,
      }
    case 'volume-taken':
      // Someone else's volume under the plugin's volume name: never touched, looked at again later.
      return { kind: 'abort', plan: withError(plugin, failure.error, { requeueAfterMs: CONFLICT_RETRY_MS }), retry: false }
    case 'no-port':
      return { kind: 'abort', plan: withError(plugin, failure.error, { requeueAfterMs: CONFLICT_RETRY_MS }), retry: false }
  }
}

/**
 * The plugin keeps running its old version; the status says the update failed and why,
 * observed_generation stays below generation, and the queue retries with backoff (a spec
 * fixed meanwhile is a new generation, prepared at once).
 */
function rolloutFailed(plugin: Plugin, planned: Pick<Plan, 'status'>, error: string): Recovery {
  const attempted = planned.status.rollout
  const rollout: RolloutStatus | undefined = attempted ? { ...attempted, phase: 'failed', error } : undefined
  const message = `the update${rollout ? ` to ${rollout.toImage}` : ''} failed, the previous version keeps running: ${error}`
  const events = plugin.rollout?.phase === 'failed' && plugin.rollout.error === error ? [] : [{ type: 'plugin:rollout-failed', data: { error, ...(rollout ? { toImage: rollout.toImage, generation: rollout.generation } : {}) } }]
  return {
    kind: 'abort',
    plan: { actions: [], status: { error: message, ...(rollout ? { rollout } : {}) }, events, leavesGenerationUnobserved: true },
    retry: true,
  }
}

function describe(failure: ActionFailure): string {
  switch (failure.kind) {
    case 'name-taken':
      return failure.holder ? nameConflictMessage(failure.holder) : 'a container name was taken'
    default:
      return failure.error
  }
}

function nothingToDo(): Plan {
  return { actions: [], status: {}, events: [] }
}
