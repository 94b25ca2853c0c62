// A plugin row as a Swarm service: the same container spec the docker runtime builds
// (buildContainerSpec: image, env and FORGEHOOK_CONFIG, command, user, limits, volumes,
// ports, labels), wrapped in what only a service has: replicas, placement, restart, update
// and rollback policy, health check, endpoint. The hash of the document we send is the
// service's drift detector, as the spec hash is a container's.
import { createHash } from 'node:crypto'
import type { Plugin } from '../db/plugin-store.js'
import { CONTAINER_NAME_PREFIX, LABELS, type ContainerSpec } from '../runtime/container-runtime.js'
import { buildContainerSpec, canonicalJson, type ContainerSpecOptions } from '../spec/container-spec.js'
import type { ParsedManifest } from '../spec/manifest.js'
import type { EndpointMode, PublishMode, WantedService } from './service-runtime.js'

/** Services are named like containers: forgehook-<name>. */
export const SERVICE_NAME_PREFIX = CONTAINER_NAME_PREFIX

export function serviceNameFor(forgehookId: string): string {
  return `${SERVICE_NAME_PREFIX}${forgehookId}`
}

export interface ServiceSpecOptions extends ContainerSpecOptions {
  publishMode: PublishMode
  endpointMode: EndpointMode
  /** Grace period of a task's stop (StopGracePeriod), seconds. */
  stopTimeoutSeconds: number
  /** Swarm's restart policy delay after a task exits, seconds. */
  restartDelaySeconds: number
}

/** The placement part of a plugin's spec (spec.placement). */
export interface PlacementSpec {
  constraints?: string[]
  preferences?: { spread: string }[]
  maxReplicasPerNode?: number
}

/** What of a plugin row becomes a service beyond its container: read defensively, a row from an older manager has none. */
export interface ServiceFields {
  replicas: number
  placement: PlacementSpec
}

export function serviceFieldsOf(plugin: Plugin): ServiceFields {
  const row = plugin as Plugin & { replicas?: number; placement?: PlacementSpec | null }
  return { replicas: row.replicas ?? 1, placement: row.placement ?? {} }
}

const NANOS_PER_SECOND = 1_000_000_000
const DEFAULT_MONITOR_SECONDS = 60

/**
 * The Engine API ServiceSpec for a plugin. Replicas are 0 while the plugin is declared
 * stopped: the service (and its history) stays, its tasks go.
 */
export function buildServiceSpec(plugin: Plugin, manifest: ParsedManifest, hostPort: number, options: ServiceSpecOptions, image: { imageId?: string } = {}): WantedService {
  const container = buildContainerSpec(plugin, manifest, hostPort, options, image)
  const fields = serviceFieldsOf(plugin)
  const replicas = plugin.desiredState === 'stopped' ? 0 : fields.replicas
  const name = serviceNameFor(plugin.forgehookId)
  const labels = serviceLabels(container)
  const spec: Record<string, unknown> = {
    Name: name,
    Labels: labels,
    TaskTemplate: {
      ContainerSpec: containerSpecOf(container, manifest, options),
      Resources: resourcesOf(container),
      RestartPolicy: { Condition: 'any', Delay: options.restartDelaySeconds * NANOS_PER_SECOND },
      Placement: placementOf(fields.placement),
      ...(container.network ? { Networks: [{ Target: container.network.name, Aliases: container.network.aliases }] } : {}),
      ...(container.defaults?.log ? { LogDriver: { Name: 'json-file', Options: { 'max-size': container.defaults.log.maxSize, 'max-file': String(container.defaults.log.maxFiles) } } } : {}),
    },
    Mode: { Replicated: { Replicas: replicas } },
    UpdateConfig: updateConfigOf(plugin),
    RollbackConfig: { Parallelism: 1, Order: orderOf(plugin), FailureAction: 'pause', Monitor: monitorSecondsOf(plugin) * NANOS_PER_SECOND },
    EndpointSpec: {
      Mode: options.endpointMode,
      Ports: [
        { TargetPort: container.containerPort, PublishedPort: hostPort, Protocol: 'tcp', PublishMode: options.publishMode },
        ...(container.ports ?? []).map((port) => ({ TargetPort: port.containerPort, PublishedPort: port.hostPort, Protocol: port.protocol, PublishMode: options.publishMode })),
      ],
    },
  }
  const specHash = hashOf(spec)
  ;(spec.Labels as Record<string, string>)[LABELS.specHash] = specHash
  return { name, spec, specHash, replicas, image: container.image }
}

/** The container's labels go on the service too (adoption and the installation filter read them there); its spec hash is replaced by the service's. */
function serviceLabels(container: ContainerSpec): Record<string, string> {
  const labels = { ...container.labels }
  delete labels[LABELS.specHash]
  return labels
}

function containerSpecOf(container: ContainerSpec, manifest: ParsedManifest, options: ServiceSpecOptions): Record<string, unknown> {
  return {
    // A task's container gets the manager's labels too: `docker ps` on a node says whose it is.
    Labels: { [LABELS.managed]: 'true', [LABELS.instance]: container.labels[LABELS.instance]!, [LABELS.pluginId]: container.labels[LABELS.pluginId]!, [LABELS.forgehookId]: container.labels[LABELS.forgehookId]! },
    Image: container.image,
    Env: Object.entries(container.env).map(([key, value]) => `${key}=${value}`),
    ...(container.command ? { Command: container.command } : {}),
    ...(container.args ? { Args: container.args } : {}),
    ...(container.user ? { User: container.user } : {}),
    ...(container.readOnlyRootFilesystem ? { ReadOnly: true } : {}),
    ...(container.capDrop ? { CapabilityDrop: container.capDrop } : {}),
    ...(container.capAdd ? { CapabilityAdd: container.capAdd } : {}),
    Mounts: [
      // Named volumes are node-local on Swarm: each node has its own forgehook-<plugin>-<volume>.
      ...(container.volumes ?? []).map((volume) => ({ Type: 'volume', Source: volume.source, Target: volume.target, ReadOnly: volume.readOnly, VolumeOptions: { Labels: { [LABELS.managed]: 'true', [LABELS.instance]: options.instance } } })),
      ...(container.tmpfs ?? []).map((target) => ({ Type: 'tmpfs', Target: target })),
    ],
    StopGracePeriod: options.stopTimeoutSeconds * NANOS_PER_SECOND,
    ...(manifest.healthCheck ? { HealthCheck: healthCheckOf(manifest.healthCheck, container.containerPort) } : {}),
  }
}

/**
 * The manifest's HTTP health check, run by the node's engine inside the task's container
 * (Swarm only counts a task as running once it is healthy, and rolls an update back on an
 * unhealthy one): a GET with the image's wget or curl. An image with neither fails it.
 */
function healthCheckOf(check: NonNullable<ParsedManifest['healthCheck']>, port: number): Record<string, unknown> {
  const timeout = check.timeoutSeconds ?? 2
  const url = `http://127.0.0.1:${port}${check.path}`
  const quoted = `'${url.replaceAll("'", "'\\''")}'`
  return {
    // No wget -T: busybox's segfaults with it here; the check's Timeout bounds the run anyway.
    Test: ['CMD-SHELL', `wget -q -O /dev/null ${quoted} || curl -fsS -m ${timeout} -o /dev/null ${quoted} || exit 1`],
    Interval: (check.intervalSeconds ?? 5) * NANOS_PER_SECOND,
    Timeout: timeout * NANOS_PER_SECOND,
    Retries: check.failureThreshold ?? 3,
    StartPeriod: 0,
  }
}

function resourcesOf(container: ContainerSpec): Record<string, unknown> {
  const memoryMb = container.memoryMb ?? container.defaults?.memoryMb
  const pids = container.pids ?? container.defaults?.pidsLimit
  const limits = {
    ...(memoryMb !== undefined ? { MemoryBytes: Math.round(memoryMb * 1024 * 1024) } : {}),
    ...(container.cpus !== undefined ? { NanoCPUs: Math.round(container.cpus * NANOS_PER_SECOND) } : {}),
    ...(pids !== undefined ? { Pids: pids } : {}),
  }
  // Reserved as much as is limited: the scheduler places a task only where its limits fit.
  const reservations = {
    ...(container.memoryMb !== undefined ? { MemoryBytes: Math.round(container.memoryMb * 1024 * 1024) } : {}),
    ...(container.cpus !== undefined ? { NanoCPUs: Math.round(container.cpus * NANOS_PER_SECOND) } : {}),
  }
  return { Limits: limits, Reservations: reservations }
}

function placementOf(placement: PlacementSpec): Record<string, unknown> {
  return {
    ...(placement.constraints && placement.constraints.length > 0 ? { Constraints: placement.constraints } : {}),
    ...(placement.preferences && placement.preferences.length > 0 ? { Preferences: placement.preferences.map((preference) => ({ Spread: { SpreadDescriptor: preference.spread } })) } : {}),
    ...(placement.maxReplicasPerNode !== undefined ? { MaxReplicas: placement.maxReplicasPerNode } : {}),
  }
}

function orderOf(plugin: Plugin): 'start-first' | 'stop-first' {
  return plugin.updatePolicy?.strategy === 'StartFirst' ? 'start-first' : 'stop-first'
}

function monitorSecondsOf(plugin: Plugin): number {
  return plugin.updatePolicy?.healthyTimeoutSeconds ?? DEFAULT_MONITOR_SECONDS
}

/** spec.update as Swarm's: one task at a time, rolled back when a new task fails within the monitor window. */
function updateConfigOf(plugin: Plugin): Record<string, unknown> {
  return { Parallelism: 1, Delay: 0, FailureAction: 'rollback', Monitor: monitorSecondsOf(plugin) * NANOS_PER_SECOND, MaxFailureRatio: 0, Order: orderOf(plugin) }
}

/**
 * The spec to send in an update of `current`: its ForceUpdate counter carried over (sending
 * 0 over a raised counter would itself restart every task), or raised by one for a restart.
 * Not part of the hash: a restart is no spec change.
 */
export function withForceUpdate(wanted: WantedService, current: number, restart: boolean): WantedService {
  const template = wanted.spec.TaskTemplate as Record<string, unknown>
  const forceUpdate = restart ? current + 1 : current
  return { ...wanted, spec: { ...wanted.spec, TaskTemplate: { ...template, ForceUpdate: forceUpdate } } }
}

function hashOf(spec: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex').slice(0, 16)
}
