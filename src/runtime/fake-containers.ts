// The fake engine's containers and the indexes that keep every lookup the controller makes
// O(1) or O(result) at 10,000 containers: by id, by name, the managed ones, the forgehook-*
// ones, and the host ports held by running containers.

import { randomBytes } from 'node:crypto'
import {
  ContainerNotFoundError,
  CONTAINER_NAME_PREFIX,
  isManaged,
  type ContainerHealth,
  type ContainerState,
  type ObservedContainer,
  type ObservedMount,
} from './container-runtime.js'

export interface FakeContainer {
  readonly id: string
  /** Changed only through FakeContainers.rename, which keeps the name index true. */
  readonly name: string
  readonly image: string
  /** The id the image had on the fake engine when the container was created. */
  readonly imageId?: string
  /** Changed only through FakeContainers.setState, which keeps the host port index true. */
  readonly state: ContainerState
  readonly labels: Record<string, string>
  exitCode: number
  oomKilled: boolean
  startedAt?: Date
  finishedAt?: Date
  health?: ContainerHealth
  healthOutput?: string
  mounts: ObservedMount[]
  readonly env: Record<string, string>
  networks: string[]
  /** Test control: settings no spec of ours produces (privileged, host mounts, ...). */
  readonly unsafe: string[]
  readonly hostPort?: number
  readonly containerPort?: number
  logLines: string[]
  /** Test control: the usage stats reports while the container runs (setStats). */
  stats?: FakeStats
  /** The CPU counters stats reports: they advance by one second of one host CPU per read. */
  readonly cpu: { containerNanos: number; systemNanos: number }
}

/** What a fake container uses: CPU in percent of one CPU, memory in MiB. */
export interface FakeStats {
  cpuPercent: number
  memoryMb: number
}

/** Ids are 64 lowercase hex digits, like Docker's, so only such a string can be an id prefix. */
const ID_PREFIX = /^[0-9a-f]+$/

/** What a new container is made of; the rest starts empty. */
export interface NewFakeContainer {
  name: string
  image: string
  imageId?: string
  labels: Record<string, string>
  state: ContainerState
  hostPort?: number
  containerPort?: number
  mounts?: ObservedMount[]
  env?: Record<string, string>
  unsafe?: string[]
  networks?: string[]
}

export function newFakeContainer(options: NewFakeContainer): FakeContainer {
  // Like Docker, a port counts only as a pair: host side and container side.
  const { hostPort, containerPort } = options
  return {
    id: randomBytes(32).toString('hex'),
    name: options.name,
    image: options.image,
    ...(options.imageId !== undefined ? { imageId: options.imageId } : {}),
    state: options.state,
    labels: { ...options.labels },
    exitCode: 0,
    oomKilled: false,
    logLines: [],
    cpu: { containerNanos: 0, systemNanos: 0 },
    mounts: [...(options.mounts ?? [])],
    env: { ...(options.env ?? {}) },
    networks: [...(options.networks ?? ['bridge'])],
    unsafe: [...(options.unsafe ?? [])],
    ...(hostPort !== undefined && containerPort !== undefined ? { hostPort, containerPort } : {}),
  }
}

export class FakeContainers {
  /** Every container in creation order, the order lists report (the maps below keep it too). */
  private readonly byId = new Map<string, FakeContainer>()
  private readonly byName = new Map<string, FakeContainer>()
  private readonly managedById = new Map<string, FakeContainer>()
  private readonly namePrefixedById = new Map<string, FakeContainer>()
  /** Ids of running containers by published host port; foreign containers may share one. */
  private readonly runningByHostPort = new Map<number, Set<string>>()

  /** The caller has checked that the name is free. */
  add(container: FakeContainer): void {
    this.byId.set(container.id, container)
    this.byName.set(container.name, container)
    // Labels never change after create, so membership is decided once.
    if (isManaged(container)) this.managedById.set(container.id, container)
    if (container.name.startsWith(CONTAINER_NAME_PREFIX)) this.namePrefixedById.set(container.id, container)
    this.indexHostPort(container)
  }

  delete(container: FakeContainer): void {
    this.unindexHostPort(container)
    this.byId.delete(container.id)
    this.byName.delete(container.name)
    this.managedById.delete(container.id)
    this.namePrefixedById.delete(container.id)
  }

  rename(container: FakeContainer, name: string): void {
    this.byName.delete(container.name)
    const writable: { name: string } = container
    writable.name = name
    this.byName.set(name, container)
    if (name.startsWith(CONTAINER_NAME_PREFIX)) this.namePrefixedById.set(container.id, container)
    else this.namePrefixedById.delete(container.id)
  }

  /** Whether any container mounts the volume. */
  usingVolume(name: string): boolean {
    for (const container of this.byId.values()) if (container.mounts.some((mount) => mount.name === name)) return true
    return false
  }

  setState(container: FakeContainer, state: ContainerState): void {
    this.unindexHostPort(container)
    const writable: { state: ContainerState } = container
    writable.state = state
    this.indexHostPort(container)
  }

  /** Docker's lookup order: full id, then exact name, then a unique id prefix. */
  find(idOrName: string): FakeContainer | undefined {
    const container = this.byId.get(idOrName) ?? this.byName.get(idOrName)
    if (container || !ID_PREFIX.test(idOrName)) return container
    // The one lookup that scans: only a hex string gets here, never a forgehook-* name.
    let match: FakeContainer | undefined
    for (const [containerId, candidate] of this.byId) {
      if (!containerId.startsWith(idOrName)) continue
      if (match) return undefined // ambiguous
      match = candidate
    }
    return match
  }

  get(idOrName: string): FakeContainer {
    const container = this.find(idOrName)
    if (!container) throw new ContainerNotFoundError(`no container ${idOrName}`)
    return container
  }

  all(): Iterable<FakeContainer> {
    return this.byId.values()
  }

  /** Containers carrying the managed label, in creation order. */
  managed(): Iterable<FakeContainer> {
    return this.managedById.values()
  }

  /** Containers named forgehook-*, in creation order. */
  namePrefixed(): Iterable<FakeContainer> {
    return this.namePrefixedById.values()
  }

  /** Whether a running container other than `exceptContainerId` publishes the host port. */
  isHostPortHeld(hostPort: number, exceptContainerId: string): boolean {
    const holders = this.runningByHostPort.get(hostPort)
    if (!holders) return false
    return holders.size > (holders.has(exceptContainerId) ? 1 : 0)
  }

  private indexHostPort(container: FakeContainer): void {
    if (container.state !== 'running' || container.hostPort === undefined) return
    const holders = this.runningByHostPort.get(container.hostPort) ?? new Set<string>()
    this.runningByHostPort.set(container.hostPort, holders.add(container.id))
  }

  private unindexHostPort(container: FakeContainer): void {
    if (container.state !== 'running' || container.hostPort === undefined) return
    const holders = this.runningByHostPort.get(container.hostPort)
    holders?.delete(container.id)
    if (holders?.size === 0) this.runningByHostPort.delete(container.hostPort)
  }
}

/** What inspect shows: everything, with the configured port even before the container runs. */
export function inspectView(container: FakeContainer): ObservedContainer {
  const { logLines: _logLines, stats: _stats, cpu: _cpu, ...observed } = container
  const { unsafe, ...rest } = observed
  return { ...rest, labels: { ...container.labels }, mounts: container.mounts.map((mount) => ({ ...mount })), env: { ...container.env }, networks: [...container.networks], ...(unsafe.length > 0 ? { unsafe: [...unsafe] } : {}) }
}

/** What a list shows: no exit details, and published ports of running containers only. */
export function listView(container: FakeContainer): ObservedContainer {
  const observed: ObservedContainer = {
    id: container.id,
    name: container.name,
    image: container.image,
    ...(container.imageId !== undefined ? { imageId: container.imageId } : {}),
    state: container.state,
    labels: { ...container.labels },
  }
  if (container.health) observed.health = container.health
  observed.networks = [...container.networks]
  if (container.state === 'running' && container.hostPort !== undefined && container.containerPort !== undefined) {
    observed.hostPort = container.hostPort
    observed.containerPort = container.containerPort
  }
  return observed
}
