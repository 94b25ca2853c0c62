// Whether a plugin needs a reconcile, judged from the row and the cached container alone
// (no I/O), so that a periodic resync of unchanged plugins costs nothing per plugin.
// When in doubt it says yes: the reconcile itself is the authority.
import type { Plugin } from '../db/plugin-store.js'
import { isManaged, LABELS, type ObservedContainer } from '../runtime/container-runtime.js'
import { buildContainerSpec, type ContainerSpecOptions } from '../spec/container-spec.js'
import { parseManifest } from '../spec/manifest.js'
import type { ImageDigests } from './image-digests.js'
import { ROLLOUT_IN_PROGRESS } from './plan-rollout.js'

export function needsReconcile(
  plugin: Plugin,
  container: ObservedContainer | undefined,
  options: ContainerSpecOptions,
  /** A rollout's containers beside the plugin's own (forgehook-<name>_next, _previous). */
  hasRolloutContainers = false,
  /** What pulls found (imagePullPolicy Always: a new push is drift). Default: nothing known. */
  digests?: ImageDigests,
): boolean {
  if (plugin.deletionRequestedAt) return true
  if (hasRolloutContainers || (plugin.rollout && ROLLOUT_IN_PROGRESS.has(plugin.rollout.phase))) return true
  if (plugin.observedGeneration !== plugin.generation) return true
  if (plugin.hostPort === null || plugin.status === 'error') return true
  if (plugin.restartCount > 0 || plugin.nextRestartAt) return true
  if (!container) return !(plugin.desiredState === 'stopped' && plugin.status === 'stopped')
  if (!isManaged(container) || container.labels[LABELS.pluginId] !== plugin.id) return true
  if (container.id !== plugin.containerId) return true
  if (plugin.desiredState === 'stopped') return container.state === 'running' || plugin.status !== 'stopped'
  if (container.state !== 'running' || plugin.status !== 'running') return true
  // status.imageDigest behind what a pull found for the image it runs (an upgrade from a version without it).
  const digest = container.imageId === undefined ? undefined : digests?.digestOf(container.imageId)
  if (digest !== undefined && digest !== plugin.imageDigest) return true
  return specDrifted(plugin, container, options, digests)
}

function specDrifted(plugin: Plugin, container: ObservedContainer, options: ContainerSpecOptions, digests: ImageDigests | undefined): boolean {
  const parsed = parseManifest(plugin.manifest)
  if (!parsed.ok) return true
  const image = parsed.manifest.imagePullPolicy === 'Always' && digests ? digests.wantedFor(parsed.manifest.image, container) : {}
  const wanted = buildContainerSpec(plugin, parsed.manifest, plugin.hostPort ?? 0, options, image)
  return container.labels[LABELS.specHash] !== wanted.labels[LABELS.specHash]
}
