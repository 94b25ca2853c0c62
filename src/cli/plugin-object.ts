// The API's plugin and event objects as forgectl reads them (see README "The HTTP API"), and
// the one definition of "converged" the client uses: the controller has acted on the latest
// spec (status.observedGeneration == metadata.generation) and the phase is the desired state.
import type { ApiPlugin } from '../spec/api-plugin.js'
import { oneLine, shortValue, truncate } from './output.js'

/** What the API answers for a plugin: the type of its one schema (spec/api-plugin.ts). */
export type PluginObject = ApiPlugin

/** One kept revision of a plugin's spec (GET /api/v1/plugins/NAME/revisions). */
export interface PluginRevisionObject {
  revision: number
  current: boolean
  source: string
  createdAt: string
  spec: Record<string, unknown>
  labels: Record<string, string>
}

export interface PluginEvent {
  /** null for an event that is not stored (only on the live stream). */
  id: number | null
  pluginId: string | null
  forgehookId: string | null
  type: string
  data: Record<string, unknown>
  timestamp: string
}

export type Convergence =
  | { state: 'converged' }
  | { state: 'pending'; reason: string }
  /** The controller acted on the latest spec and failed; it retries with backoff. */
  | { state: 'error'; reason: string }

export function convergenceOf(plugin: PluginObject): Convergence {
  const { generation } = plugin.metadata
  const { phase, observedGeneration } = plugin.status
  if (plugin.metadata.deletionTimestamp) return { state: 'pending', reason: 'being uninstalled' }
  // An update of this generation that was rolled back is not retried by itself: waiting is futile.
  const rollout = plugin.status.rollout
  if (rollout?.generation === generation && rollout.phase === 'rolled-back') {
    return { state: 'error', reason: `the update was rolled back: ${rollout.error ?? 'unknown reason'} (forgectl rollout retry ${plugin.metadata.name} to try again)` }
  }
  // An error recorded for an older generation says nothing about the spec just written.
  if (observedGeneration !== generation) {
    return { state: 'pending', reason: `the controller has not acted on generation ${generation} yet (observed ${observedGeneration})` }
  }
  if (phase === 'error') return { state: 'error', reason: plugin.status.error ?? 'phase error' }
  if (phase !== plugin.spec.state) return { state: 'pending', reason: `phase ${phase}, wants ${plugin.spec.state}` }
  return { state: 'converged' }
}

/** The image the manifest names: a string, or the guide's { repository, tag } form. */
export function manifestImage(manifest: Record<string, unknown>): string | undefined {
  const image = manifest.image
  if (typeof image === 'string') return image
  if (typeof image !== 'object' || image === null) return undefined
  const { repository, tag } = image as { repository?: unknown; tag?: unknown }
  if (typeof repository !== 'string') return undefined
  return typeof tag === 'string' ? `${repository}:${tag}` : repository
}

/** The host port in use, else the one requested. */
export function hostPortOf(plugin: PluginObject): number | undefined {
  return plugin.status.hostPort ?? plugin.spec.hostPort ?? undefined
}

/**
 * READY: replicas running and wanted. The swarm runtime reports both (status.replicas); on
 * the docker runtime a plugin wants its one container while it should run (none once stopped
 * or being deleted), and has it while its phase is running with a container.
 */
export function readyReplicas(plugin: PluginObject): { running: number; desired: number } {
  const { spec, status, metadata } = plugin
  if (status.replicas) return status.replicas
  const desired = spec.state === 'running' && !metadata.deletionTimestamp ? (spec.replicas ?? 1) : 0
  return { running: status.phase === 'running' && status.containerId ? 1 : 0, desired }
}

/** An event's data on one short line: `key=value` pairs, strings as they are, the rest as JSON. */
export function summarizeEventData(data: Record<string, unknown> | null | undefined, maxLength = 100): string {
  const pairs = Object.entries(data ?? {}).map(([key, value]) => `${key}=${shortValue(value)}`)
  return truncate(oneLine(pairs.join(' ')), maxLength)
}
