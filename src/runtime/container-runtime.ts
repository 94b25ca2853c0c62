// The only door to Docker. The controller depends on this interface; the Docker driver
// (docker-runtime.ts) and the in-memory fake (fake-runtime.ts) implement it, and one
// contract suite (test/runtime/contract.ts) runs against both.
import { ExpectedError } from '../util/expected-error.js'

/** Labels on every container this manager creates. Only containers with MANAGED_LABEL are ever changed. */
export const LABELS = {
  managed: 'io.flowforge.managed',
  pluginId: 'io.flowforge.plugin-id',
  forgehookId: 'io.flowforge.forgehook-id',
  specHash: 'io.flowforge.spec-hash',
  /** Which manager installation owns it (MANAGER_INSTANCE): several can share one engine. */
  instance: 'io.flowforge.instance',
} as const

export const CONTAINER_NAME_PREFIX = 'forgehook-'

export function containerNameFor(forgehookId: string): string {
  return `${CONTAINER_NAME_PREFIX}${forgehookId}`
}

/**
 * The names a rollout uses beside the plugin's own: the new container while it is prepared
 * (`next`), the old one while the new one proves itself (`previous`). "_" is in no plugin
 * name (a DNS label), so these never collide with another plugin's container.
 */
export function rolloutNamesFor(forgehookId: string): { main: string; next: string; previous: string } {
  const main = containerNameFor(forgehookId)
  return { main, next: `${main}_next`, previous: `${main}_previous` }
}

/** The Docker volume of a plugin's named volume. */
export function volumeNameFor(forgehookId: string, volumeName: string): string {
  return `${CONTAINER_NAME_PREFIX}${forgehookId}-${volumeName}`
}

/** Labels of a plugin's named volume: ours, of this installation, of this plugin name (a reinstall finds it again). */
export const VOLUME_LABELS = { volume: 'io.flowforge.volume' } as const

export type ImagePullPolicy = 'IfNotPresent' | 'Always' | 'Never'

/** A named Docker volume mounted into a container. */
export interface VolumeMount {
  /** The Docker volume's name. */
  source: string
  /** Path inside the container. */
  target: string
  readOnly: boolean
}

/** Everything needed to create a plugin's container. Its hash is the drift detector. */
export interface ContainerSpec {
  name: string
  image: string
  env: Record<string, string>
  labels: Record<string, string>
  /** The port the plugin listens on inside the container. */
  containerPort: number
  hostPort: number
  /** Address the published port binds to; 127.0.0.1 unless configured. */
  hostIp: string
  memoryMb?: number
  cpus?: number
  /** The plugin's named volumes (spec.volumes), created beforehand (ensureVolume). */
  volumes?: VolumeMount[]
  /**
   * imagePullPolicy Always: the id (sha256:…) of the image the tag pointed to at the last
   * pull. Hashed like the other fields, so a new push is drift; not passed to Docker (the
   * container is created from `image`).
   */
  imageId?: string
  /** The registry digest (sha256:…) of that image, when known: recorded in status and events, not hashed. */
  imageDigest?: string
  /** Replaces the image's ENTRYPOINT. */
  command?: string[]
  /** Replaces the image's CMD. */
  args?: string[]
  /** uid[:gid] or a name; the image's user otherwise. */
  user?: string
  readOnlyRootFilesystem?: boolean
  /** In-memory writable directories. */
  tmpfs?: string[]
  capDrop?: string[]
  capAdd?: string[]
  /** The manifest's process limit; `defaults.pidsLimit` otherwise. */
  pids?: number
  /** Published ports beside the primary one. */
  ports?: { name: string; containerPort: number; protocol: 'tcp' | 'udp'; hostPort: number }[]
  /**
   * The installation's network (flowforge-<instance>) and the plugin's DNS names on it;
   * absent for an isolated plugin (Docker's default bridge). Not part of the hash: joining
   * or leaving is a connect, not a recreate.
   */
  network?: { name: string; aliases: string[] }
  /**
   * What every container gets when the manifest says nothing (PLUGIN_DEFAULT_MEMORY_MB,
   * PLUGIN_PIDS_LIMIT, PLUGIN_LOG_MAX_SIZE/FILES). Not part of the hash: a changed default
   * applies to containers made from then on, and recreates none.
   */
  defaults?: { memoryMb?: number; pidsLimit?: number; log?: { maxSize: string; maxFiles: number } }
}

/** How one container is made from a spec, beyond the spec itself. */
export interface CreateOptions {
  /** The container's name, when not the spec's own (a rollout's temporary name). */
  name?: string
  /** Volumes to mount besides the spec's: an old container's anonymous volumes, carried over by a recreate. */
  extraVolumes?: VolumeMount[]
}

/** A mount as inspect reports it. */
export interface ObservedMount {
  /** volume, bind, tmpfs, ... */
  type: string
  /** The volume's name (type volume); anonymous volumes have 64 hex digits. */
  name?: string
  destination: string
  readOnly: boolean
}

/** A Docker volume as listed. */
export interface ObservedVolume {
  name: string
  labels: Record<string, string>
}

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead'
export type ContainerHealth = 'starting' | 'healthy' | 'unhealthy'

export interface ObservedContainer {
  id: string
  /** Without the leading slash. */
  name: string
  image: string
  /** The id (sha256:…) of the image it was created from; absent when the engine did not say. */
  imageId?: string
  state: ContainerState
  labels: Record<string, string>
  /** Present only after inspect (list does not report it). */
  exitCode?: number
  oomKilled?: boolean
  startedAt?: Date
  finishedAt?: Date
  /** Docker HEALTHCHECK state; undefined when the image has none. */
  health?: ContainerHealth
  /** Published host port of the container port, when any. */
  hostPort?: number
  /** The container-side port of that binding. */
  containerPort?: number
  /** Present only after inspect. */
  mounts?: ObservedMount[]
  /** The output of the last Docker HEALTHCHECK run, when there is one (inspect only). */
  healthOutput?: string
  /** The container's environment as Docker holds it, the image's included (inspect only). */
  env?: Record<string, string>
  /** The networks it is attached to, by name (absent when not known, e.g. right after our own create). */
  networks?: string[]
  /**
   * What it has that no plugin spec produces: privileged mode, added capabilities, host
   * mounts, devices, the host's network, PID, IPC or user namespace (inspect only; absent
   * when none). Such a container is never adopted, changed or removed: it is not ours.
   */
  unsafe?: string[]
}

export function isManaged(container: ObservedContainer): boolean {
  return container.labels[LABELS.managed] === 'true'
}

/** The image ensureImage made sure of. */
export interface EnsuredImage {
  /** Docker's image id, sha256:… of its config: what a container's imageId is compared with. */
  imageId: string
  /** The registry's manifest digest (sha256:…) for the reference's repository, when the engine knows one. */
  digest?: string
  /** Whether a pull from the registry happened (Always, or a missing image). */
  pulled: boolean
}

/**
 * Cumulative CPU counters at one read. A CPU rate needs two reads of the same container
 * (cpuPercentBetween): one read answers at once, where Docker's own rate would make the
 * call wait for a second sample of its own.
 */
export interface CpuCounters {
  /** CPU time the container has used since it started, in nanoseconds. */
  containerNanos: number
  /** CPU time of the whole host (all CPUs) at the same read, in nanoseconds. */
  systemNanos: number
  /** CPUs the container can run on. */
  onlineCpus: number
}

export interface ContainerStats {
  cpu: CpuCounters
  /** Memory in use without reclaimable page cache, in MiB. */
  memoryMb: number
}

export interface RuntimeEvent {
  /** die, start, stop, destroy, oom, create, health_status, ... */
  action: string
  containerId: string
  name: string
  labels: Record<string, string>
  /** health_status only. */
  health?: ContainerHealth
  exitCode?: number
  time: Date
}

/**
 * What the event stream yields: an event; word that the engine was lost (`disconnected`,
 * once per outage, so that readiness can say so while it lasts); or word that events may
 * have been missed (`resync`, once it is back).
 */
export type RuntimeStreamItem =
  | { type: 'event'; event: RuntimeEvent }
  | { type: 'disconnected'; reason: string }
  | { type: 'resync'; reason: string }

export interface RuntimeInfo {
  engineVersion: string
  apiVersion: string
}

export interface ContainerRuntime {
  /** Pings the engine; pins an API version both sides support. */
  connect(): Promise<RuntimeInfo>
  /**
   * Starts connect()'s handshake now, for the next connect() (within 10 s) to take its
   * answer: the daemon's start asks while its database opens. Optional; a failed early
   * handshake fails that connect(), which the controller retries as any other.
   */
  preconnect?(): void
  /** Containers carrying the managed label, in one call. */
  listManaged(): Promise<ObservedContainer[]>
  /** Containers named forgehook-*, managed or not (orphan adoption, name conflicts). */
  listByNamePrefix(): Promise<ObservedContainer[]>
  /** By id or name; undefined when there is no such container. */
  inspect(idOrName: string): Promise<ObservedContainer | undefined>
  /**
   * Makes sure the image is there per the policy (Always pulls every time, with the
   * registry's credentials when some are configured) and says which image that is.
   * ImageNotFoundError when it cannot be had (not on the engine under Never, no such
   * manifest, registry unreachable); RegistryAuthError when the registry refused the pull
   * for want of (valid) credentials.
   */
  ensureImage(image: string, policy: ImagePullPolicy): Promise<EnsuredImage>
  /** NameConflictError when the name is taken. Returns the new container id. */
  create(spec: ContainerSpec, options?: CreateOptions): Promise<string>
  /** NameConflictError when the new name is taken; ContainerNotFoundError when there is no such container. */
  rename(containerId: string, name: string): Promise<void>
  /** PortInUseError when the host port is taken. Starting a running container is a no-op. */
  start(containerId: string): Promise<void>
  /** Stopping a stopped container is a no-op. */
  stop(containerId: string, timeoutSeconds: number): Promise<void>
  /**
   * Removing a missing container is a no-op. Its anonymous volumes are kept (a recreate
   * carries them over) unless `anonymousVolumes` says to remove them too.
   */
  remove(containerId: string, options?: { anonymousVolumes?: boolean }): Promise<void>
  /** Creates the named volume with these labels when it does not exist; an existing one is kept as it is. Returns it as it is now. */
  ensureVolume(name: string, labels: Record<string, string>): Promise<ObservedVolume>
  /** Removing a missing volume is a no-op; VolumeInUseError while a container uses it. */
  removeVolume(name: string): Promise<void>
  /** Volumes carrying every one of these labels. */
  listVolumes(labels: Record<string, string>): Promise<ObservedVolume[]>
  /**
   * Creates the user-defined bridge network with these labels when there is none of that
   * name; returns whether it had to be created.
   */
  ensureNetwork(name: string, labels: Record<string, string>): Promise<boolean>
  /** Attaches the container to the network under these DNS aliases; already attached is a no-op. */
  connectNetwork(containerId: string, network: string, aliases: string[]): Promise<void>
  /** Detaches the container; not attached (or no such network) is a no-op. */
  disconnectNetwork(containerId: string, network: string): Promise<void>

  /** The last `tail` lines of stdout and stderr, demultiplexed, as text. */
  logs(containerId: string, options: { tail: number }): Promise<string>
  /**
   * The last `tail` lines, then whatever the container writes, as demultiplexed text
   * chunks (not necessarily whole lines). Ends when the container stops or `signal`
   * aborts; a container that is not running yields its tail and ends. Throws
   * ContainerNotFoundError (on the first iteration) when there is no such container.
   */
  followLogs(containerId: string, options: { tail: number; signal: AbortSignal }): AsyncIterable<string>
  /** Resource usage now, in one read that does not wait for a second sample. */
  stats(containerId: string): Promise<ContainerStats>
  /**
   * Events of managed containers until `signal` aborts. Survives an engine restart: it
   * may yield a disconnected item when the stream is lost, then reconnects with backoff
   * and yields a resync item after each reconnect.
   */
  events(signal: AbortSignal): AsyncIterable<RuntimeStreamItem>
}

export class ContainerNotFoundError extends ExpectedError {
  override name = 'ContainerNotFoundError'
}

export class NameConflictError extends ExpectedError {
  override name = 'NameConflictError'
  constructor(readonly containerName: string) {
    super(`a container named ${containerName} already exists`)
  }
}

export class ImageNotFoundError extends ExpectedError {
  override name = 'ImageNotFoundError'
  constructor(
    readonly image: string,
    detail: string,
  ) {
    super(`image not found: ${image} (${detail})`)
  }
}

/**
 * The registry refused a pull for want of (valid) credentials: none configured for its
 * host, or the configured ones refused. The message never holds a credential.
 */
export class RegistryAuthError extends ExpectedError {
  override name = 'RegistryAuthError'
  constructor(
    readonly image: string,
    readonly registryHost: string,
    detail: string,
  ) {
    super(`registry authentication failed for ${registryHost} (${detail})`)
  }
}

export class PortInUseError extends ExpectedError {
  override name = 'PortInUseError'
  constructor(
    readonly hostPort: number,
    detail: string,
  ) {
    super(`host port ${hostPort} is already in use (${detail})`)
  }
}

export class VolumeInUseError extends ExpectedError {
  override name = 'VolumeInUseError'
  constructor(readonly volumeName: string) {
    super(`volume ${volumeName} is in use by a container`)
  }
}

/** The engine is not reachable or did not answer in time. */
export class RuntimeUnavailableError extends ExpectedError {
  override name = 'RuntimeUnavailableError'
}

/**
 * A driver used before its connect(): only the leader's controller connects the runtime, so
 * a manager that does not lead connects it at its first read (main.ts, logSourceOf).
 */
export class RuntimeNotConnectedError extends Error {
  override name = 'RuntimeNotConnectedError'
}
