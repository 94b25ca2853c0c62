// Telling news from echoes in the Docker event stream: most events of managed containers
// confirm what the controller's cache already holds (our own create, start and stop); only
// the others are worth a reconcile.
import type { ObservedContainer, RuntimeEvent } from '../runtime/container-runtime.js'

/**
 * Whether an event only confirms what the cache already says of that container: created,
 * started while cached as running, stopped or died while cached as stopped (with the same
 * exit code). Anything else (kill, oom, health, a state the cache does not show) is news.
 */
export function isEcho(event: RuntimeEvent, cached: { container: ObservedContainer; detailed: boolean } | undefined): boolean {
  if (!cached?.detailed) return false
  const { state, exitCode } = cached.container
  switch (event.action) {
    case 'create':
      return true
    case 'start':
      return state === 'running'
    case 'stop':
      return state === 'exited'
    case 'die':
      return state === 'exited' && (event.exitCode === undefined || event.exitCode === exitCode)
    default:
      return false
  }
}

/** Two inspections of a container that tell the same: nothing changed in between. */
export function sameObservation(a: ObservedContainer, b: ObservedContainer): boolean {
  return (
    a.id === b.id &&
    a.name === b.name &&
    a.image === b.image &&
    a.state === b.state &&
    a.exitCode === b.exitCode &&
    a.oomKilled === b.oomKilled &&
    a.startedAt?.getTime() === b.startedAt?.getTime() &&
    a.finishedAt?.getTime() === b.finishedAt?.getTime() &&
    a.health === b.health &&
    a.hostPort === b.hostPort &&
    a.containerPort === b.containerPort &&
    sameLabels(a.labels, b.labels)
  )
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key])
}
