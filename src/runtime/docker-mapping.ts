// Translation between Docker's JSON and our runtime types. Each function reads only the
// fields named in its narrow input type, so tests can hand it crafted engine answers.

import type { ContainerHealth, ContainerSpec, ContainerState, ContainerStats, CreateOptions, ObservedContainer, ObservedMount, VolumeMount } from './container-runtime.js'

const CONTAINER_STATES: ReadonlySet<string> = new Set<ContainerState>([
  'created',
  'running',
  'paused',
  'restarting',
  'removing',
  'exited',
  'dead',
])

const HEALTH_VALUES: ReadonlySet<string> = new Set<ContainerHealth>(['starting', 'healthy', 'unhealthy'])

/** One entry of `GET /containers/json`. */
export interface DockerListEntry {
  Id: string
  Names?: string[]
  Image: string
  ImageID?: string
  State: string
  Status?: string
  Labels?: Record<string, string> | null
  Ports?: { PrivatePort: number; PublicPort?: number; Type: string }[]
  NetworkSettings?: { Networks?: Record<string, unknown> | null } | null
}

type PortMap = Record<string, { HostIp?: string; HostPort?: string }[] | null> | null | undefined

/** The parts of `GET /containers/{id}/json` we read. */
export interface DockerInspectInfo {
  Id: string
  Name: string
  /** The image's id. */
  Image?: string
  State: {
    Status: string
    ExitCode?: number
    OOMKilled?: boolean
    StartedAt?: string
    FinishedAt?: string
    Health?: { Status?: string; Log?: { Output?: string }[] | null } | null
  }
  Config: { Image: string; Labels?: Record<string, string> | null; Env?: string[] | null }
  HostConfig?: {
    PortBindings?: PortMap
    Privileged?: boolean
    CapAdd?: string[] | null
    NetworkMode?: string
    PidMode?: string
    IpcMode?: string
    UsernsMode?: string
    Devices?: unknown[] | null
    Binds?: string[] | null
  }
  NetworkSettings?: { Ports?: PortMap; Networks?: Record<string, unknown> | null }
  Mounts?: { Type?: string; Name?: string; Destination?: string; RW?: boolean }[] | null
}

export function observedFromListEntry(entry: DockerListEntry): ObservedContainer {
  const observed: ObservedContainer = {
    id: entry.Id,
    name: primaryName(entry.Names ?? []),
    image: entry.Image,
    ...(entry.ImageID ? { imageId: entry.ImageID } : {}),
    state: containerStateOf(entry.State),
    labels: { ...(entry.Labels ?? {}) },
  }
  const health = healthFromStatusText(entry.Status ?? '')
  if (health) observed.health = health
  if (entry.NetworkSettings?.Networks) observed.networks = Object.keys(entry.NetworkSettings.Networks)
  // The list reports ports of running containers only; our containers publish one port.
  const published = (entry.Ports ?? []).find((port) => port.Type === 'tcp' && port.PublicPort)
  if (published?.PublicPort) {
    observed.hostPort = published.PublicPort
    observed.containerPort = published.PrivatePort
  }
  return observed
}

export function observedFromInspect(info: DockerInspectInfo): ObservedContainer {
  const observed: ObservedContainer = {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    image: info.Config.Image,
    ...(info.Image ? { imageId: info.Image } : {}),
    state: containerStateOf(info.State.Status),
    labels: { ...(info.Config.Labels ?? {}) },
    exitCode: info.State.ExitCode ?? 0,
    oomKilled: info.State.OOMKilled ?? false,
  }
  const startedAt = dockerTime(info.State.StartedAt)
  if (startedAt) observed.startedAt = startedAt
  const finishedAt = dockerTime(info.State.FinishedAt)
  if (finishedAt) observed.finishedAt = finishedAt
  const health = info.State.Health?.Status
  if (health && HEALTH_VALUES.has(health)) observed.health = health as ContainerHealth
  const lastCheck = info.State.Health?.Log?.at(-1)?.Output
  if (lastCheck) observed.healthOutput = lastCheck.trim().slice(0, 500)
  if (info.Config.Env) observed.env = envOf(info.Config.Env)
  if (info.NetworkSettings?.Networks) observed.networks = Object.keys(info.NetworkSettings.Networks)
  const unsafe = unsafeSettingsOf(info)
  if (unsafe.length > 0) observed.unsafe = unsafe
  if (info.Mounts) observed.mounts = info.Mounts.map(
    (mount): ObservedMount => ({
      type: mount.Type ?? 'unknown',
      ...(mount.Name ? { name: mount.Name } : {}),
      destination: mount.Destination ?? '',
      readOnly: mount.RW === false,
    }),
  )
  // NetworkSettings.Ports is filled only while the container runs; PortBindings is what
  // create asked for, so a created or exited container still shows its port.
  const binding = firstBinding(info.NetworkSettings?.Ports) ?? firstBinding(info.HostConfig?.PortBindings)
  if (binding) {
    observed.hostPort = binding.hostPort
    observed.containerPort = binding.containerPort
  }
  return observed
}

/** `KEY=value` pairs as a map; a bare `KEY` is an empty value. */
function envOf(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const pair of pairs) {
    const at = pair.indexOf('=')
    if (at < 0) env[pair] = ''
    else env[pair.slice(0, at)] = pair.slice(at + 1)
  }
  return env
}

/** Settings that give a container the host: none of our specs produces them. */
function unsafeSettingsOf(info: DockerInspectInfo): string[] {
  const host = info.HostConfig ?? {}
  const found: string[] = []
  if (host.Privileged) found.push('privileged mode')
  if ((host.CapAdd ?? []).length > 0) found.push(`added capabilities (${host.CapAdd!.join(', ')})`)
  if ((host.Devices ?? []).length > 0) found.push('host devices')
  const binds = [...(host.Binds ?? []), ...(info.Mounts ?? []).filter((mount) => mount.Type === 'bind').map((mount) => mount.Destination ?? '')]
  if (binds.length > 0) found.push('host mounts')
  if (host.NetworkMode === 'host') found.push("the host's network")
  if (host.PidMode === 'host') found.push("the host's PID namespace")
  if (host.IpcMode === 'host') found.push("the host's IPC namespace")
  if (host.UsernsMode === 'host') found.push("the host's user namespace")
  return found
}

/** A container linked into others has several names (`/a/b`); its own has one slash. */
function primaryName(names: string[]): string {
  const own = names.find((name) => name.lastIndexOf('/') === 0) ?? names[0] ?? ''
  return own.replace(/^\//, '')
}

function containerStateOf(state: string): ContainerState {
  // An unknown state from a newer engine is treated as the most pessimistic one.
  return CONTAINER_STATES.has(state) ? (state as ContainerState) : 'dead'
}

/** The list's Status text: `Up 5 seconds (healthy)`, `(unhealthy)`, `(health: starting)`. */
export function healthFromStatusText(status: string): ContainerHealth | undefined {
  if (status.includes('(health: starting)')) return 'starting'
  if (status.includes('(unhealthy)')) return 'unhealthy'
  if (status.includes('(healthy)')) return 'healthy'
  return undefined
}

/** Docker writes 0001-01-01T00:00:00Z for "never". */
function dockerTime(value: string | undefined): Date | undefined {
  if (!value || value.startsWith('0001-01-01')) return undefined
  const time = new Date(value)
  return Number.isNaN(time.getTime()) ? undefined : time
}

/** The first published tcp port; keys look like `8080/tcp`. */
function firstBinding(ports: PortMap): { containerPort: number; hostPort: number } | undefined {
  for (const [portKey, bindings] of Object.entries(ports ?? {})) {
    if (!portKey.endsWith('/tcp')) continue
    const hostPort = Number((bindings ?? []).find((binding) => binding.HostPort)?.HostPort)
    if (Number.isInteger(hostPort) && hostPort > 0) return { containerPort: Number.parseInt(portKey, 10), hostPort }
  }
  return undefined
}

/** The parts of `GET /containers/{id}/stats?stream=false&one-shot=true` we read (no precpu_stats then). */
export interface DockerStats {
  cpu_stats?: DockerCpuStats
  memory_stats?: { usage?: number; stats?: Record<string, number> }
}

interface DockerCpuStats {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] }
  system_cpu_usage?: number
  online_cpus?: number
}

/** The counters of one read; `docker stats`' CPU arithmetic is cpuPercentBetween's. A stopped container reports zeros. */
export function statsFromDocker(stats: DockerStats): ContainerStats {
  const cpu = stats.cpu_stats
  return {
    cpu: {
      containerNanos: cpu?.cpu_usage?.total_usage ?? 0,
      systemNanos: cpu?.system_cpu_usage ?? 0,
      onlineCpus: cpu?.online_cpus || cpu?.cpu_usage?.percpu_usage?.length || 1,
    },
    memoryMb: memoryMbOf(stats),
  }
}

function memoryMbOf(stats: DockerStats): number {
  const usage = stats.memory_stats?.usage ?? 0
  const details = stats.memory_stats?.stats ?? {}
  // Page cache is reclaimable: cgroup v2 reports inactive_file, v1 total_inactive_file.
  const cache = details.inactive_file ?? details.total_inactive_file ?? details.cache ?? 0
  const used = cache < usage ? usage - cache : usage
  return used / 1024 / 1024
}

/** The body of `POST /containers/create` for a plugin. */
export function createOptionsFor(spec: ContainerSpec, options: CreateOptions = {}) {
  const portKey = `${spec.containerPort}/tcp`
  const volumes: VolumeMount[] = [...(spec.volumes ?? []), ...(options.extraVolumes ?? [])]
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = { [portKey]: [{ HostIp: spec.hostIp, HostPort: String(spec.hostPort) }] }
  const exposed: Record<string, object> = { [portKey]: {} }
  for (const port of spec.ports ?? []) {
    const key = `${port.containerPort}/${port.protocol}`
    exposed[key] = {}
    bindings[key] = [{ HostIp: spec.hostIp, HostPort: String(port.hostPort) }]
  }
  const memoryMb = spec.memoryMb ?? spec.defaults?.memoryMb
  const pids = spec.pids ?? spec.defaults?.pidsLimit
  const log = spec.defaults?.log
  return {
    name: options.name ?? spec.name,
    Image: spec.image,
    Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
    Labels: spec.labels,
    ExposedPorts: exposed,
    ...(spec.command ? { Entrypoint: spec.command } : {}),
    ...(spec.args ? { Cmd: spec.args } : {}),
    ...(spec.user ? { User: spec.user } : {}),
    HostConfig: {
      PortBindings: bindings,
      ...(memoryMb !== undefined ? { Memory: Math.round(memoryMb * 1024 * 1024) } : {}),
      ...(spec.cpus !== undefined ? { NanoCpus: Math.round(spec.cpus * 1e9) } : {}),
      ...(pids !== undefined ? { PidsLimit: pids } : {}),
      // Named volumes only: a host path is never mounted.
      ...(volumes.length > 0 ? { Mounts: volumes.map((volume) => ({ Type: 'volume' as const, Source: volume.source, Target: volume.target, ReadOnly: volume.readOnly })) } : {}),
      ...(spec.readOnlyRootFilesystem ? { ReadonlyRootfs: true } : {}),
      // Writable by any user, like /tmp (a non-root user must be able to write there).
      ...(spec.tmpfs?.length ? { Tmpfs: Object.fromEntries(spec.tmpfs.map((path) => [path, 'rw,nosuid,nodev,mode=1777'])) } : {}),
      ...(spec.capDrop?.length ? { CapDrop: spec.capDrop } : {}),
      ...(spec.capAdd?.length ? { CapAdd: spec.capAdd } : {}),
      ...(spec.network ? { NetworkMode: spec.network.name } : {}),
      // Bounded logs: Docker's json-file driver keeps max-file files of max-size each.
      ...(log ? { LogConfig: { Type: 'json-file', Config: { 'max-size': log.maxSize, 'max-file': String(log.maxFiles) } } } : {}),
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      // The manager restarts crashed plugins itself, with backoff and a record of why.
      RestartPolicy: { Name: 'no' },
    },
    // The plugin's name is its DNS name on the installation network.
    ...(spec.network ? { NetworkingConfig: { EndpointsConfig: { [spec.network.name]: { Aliases: spec.network.aliases } } } } : {}),
  }
}

/**
 * The host port named in a start error: `Bind for 127.0.0.1:8080 failed: port is already
 * allocated` (another container) or `listen tcp4 127.0.0.1:8080: bind: address already
 * in use` (another process).
 */
export function hostPortFromStartError(message: string): number | undefined {
  const match = /:(\d+)(?: failed|: bind)/.exec(message)
  return match?.[1] ? Number(match[1]) : undefined
}

/**
 * A port-in-use start error without the endpoint id Docker puts in it (`... on endpoint
 * forgehook-x (<64 hex digits>): Bind for ...`), which is new at every attempt. The message
 * becomes the plugin's recorded error, and an error that changes at every retry of the same
 * conflict is written, and audited as a new `plugin:error`, at every retry.
 */
export function portInUseDetail(message: string): string {
  return message.replace(/ \([0-9a-f]{64}\)/g, '')
}

export function isPortInUseMessage(message: string): boolean {
  return message.includes('port is already allocated') || message.includes('address already in use')
}
