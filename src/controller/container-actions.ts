// Container steps every plan shares: named volumes to make, an old container's anonymous
// volumes to carry over, and stop-then-remove. Pure.
import type { Plugin } from '../db/plugin-store.js'
import { LABELS, volumeNameFor, VOLUME_LABELS, type ContainerSpec, type ObservedContainer, type VolumeMount } from '../runtime/container-runtime.js'
import type { Action } from './plan-types.js'

/** The plugin's named volumes, to be created (labelled as ours) before a container mounts them. */
export function volumesToEnsure(plugin: Plugin, spec: ContainerSpec): { name: string; labels: Record<string, string> }[] {
  return plugin.volumes.map((volume) => ({ name: volumeNameFor(plugin.forgehookId, volume.name), labels: volumeLabels(plugin, spec, volume.name) }))
}

/** Ours, of this installation, of this plugin name (a reinstall under the same name finds its data again). */
export function volumeLabels(plugin: Pick<Plugin, 'forgehookId'>, spec: Pick<ContainerSpec, 'labels'>, volumeName: string): Record<string, string> {
  return {
    [LABELS.managed]: 'true',
    [LABELS.instance]: spec.labels[LABELS.instance] ?? '',
    [LABELS.forgehookId]: plugin.forgehookId,
    [VOLUME_LABELS.volume]: volumeName,
  }
}

/** The old container's anonymous volumes (an image's VOLUME), mounted again in the new one: an update never loses them. */
export function anonymousVolumesOf(old: ObservedContainer, spec: Pick<ContainerSpec, 'volumes'>): VolumeMount[] {
  const taken = new Set((spec.volumes ?? []).map((volume) => volume.target))
  return (old.mounts ?? [])
    .filter((mount) => mount.type === 'volume' && mount.name !== undefined && /^[0-9a-f]{64}$/.test(mount.name) && !taken.has(mount.destination))
    .map((mount) => ({ source: mount.name!, target: mount.destination, readOnly: mount.readOnly }))
}

export function stopAndRemove(container: ObservedContainer, cause: string, options: { anonymousVolumes?: boolean } = {}): Action[] {
  const remove: Action = { kind: 'remove', containerId: container.id, cause, ...(options.anonymousVolumes ? { anonymousVolumes: true } : {}) }
  return container.state === 'running' ? [{ kind: 'stop', containerId: container.id, cause }, remove] : [remove]
}
