// What to do when an action of a plan fails in a way the planner knows: a pure function
// of the plugin and the failure, tested as golden text like plan() itself.
import type { Plugin } from '../db/plugin-store.js'
import { belongsTo, nameConflictMessage, withError } from './plan.js'
import { CONFLICT_RETRY_MS, type ActionFailure, type Recovery } from './plan-types.js'

export function planRecovery(plugin: Plugin, failure: ActionFailure): Recovery {
  switch (failure.kind) {
    case 'image-missing':
      // Recorded so the operator sees why, and retried with backoff: the image may appear
      // (pushed, or the registry back) without any change of the spec.
      return { kind: 'abort', plan: withError(plugin, failure.error, {}), retry: true }
    case 'name-taken': {
      const { holder } = failure
      // Gone again between the create and the inspect: try again.
      if (!holder) return { kind: 'abort', plan: nothingToDo(), retry: true }
      // Docker made it while our call failed, or a crashed manager did: use it.
      if (belongsTo(holder, plugin)) return { kind: 'continue-with', containerId: holder.id, cause: `container ${holder.id.slice(0, 12)} under our name is this plugin's own` }
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
  }
}

function nothingToDo() {
  return { actions: [], status: {}, events: [] }
}
