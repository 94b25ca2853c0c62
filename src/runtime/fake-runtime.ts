// An in-memory ContainerRuntime for fast tests and the 10,000-plugin benchmark, so no call
// scans every container. It behaves like Docker wherever test/runtime/contract.ts looks, and
// adds test controls for what an engine does behind our back: crashes, removals, lost streams.

import {
  ContainerNotFoundError,
  ImageNotFoundError,
  NameConflictError,
  PortInUseError,
  RegistryAuthError,
  RuntimeUnavailableError,
  VolumeInUseError,
  type ContainerHealth,
  type ContainerRuntime,
  type ContainerSpec,
  type ContainerState,
  type ContainerStats,
  type CreateOptions,
  type EnsuredImage,
  type ImagePullPolicy,
  type ObservedContainer,
  type ObservedVolume,
  type RuntimeInfo,
  type RuntimeStreamItem,
} from './container-runtime.js'
import { createHash, randomBytes } from 'node:crypto'
import { parseImageReference } from './image-reference.js'
import { FakeContainers, inspectView, listView, newFakeContainer, type FakeContainer, type FakeStats, type NewFakeContainer } from './fake-containers.js'
import { FakeEventHub } from './fake-event-hub.js'
import { LogFollowers, splitLines, tailText } from './fake-logs.js'

export interface FakeRuntimeOptions {
  /** Images present on the fake engine. Default none. */
  images?: string[]
  /** Images a pull can fetch. Default none: every pull fails, as on a machine without a registry. */
  pullable?: string[]
  /** Text a container of the image writes to its log when it starts. Default none. */
  imageOutput?: Record<string, string>
  /** Images (by reference, or by image id: a broken push) whose containers exit with this code right after they start. Default none. */
  exitOnStart?: Record<string, number>
  /** Paths an image declares as VOLUME: each container gets an anonymous volume there unless something is mounted. Default none. */
  imageVolumes?: Record<string, string[]>
  /** Images whose registry refuses pulls for want of credentials (RegistryAuthError). Default none. */
  authRequired?: string[]
}

/** Docker names anonymous volumes with 64 hex digits. */
const ANONYMOUS_VOLUME = /^[0-9a-f]{64}$/

const RUNNING_STATS: FakeStats = { cpuPercent: 0.5, memoryMb: 16 }
/** A stopped container reports zeros, as Docker's does. */
const IDLE_STATS: ContainerStats = { cpu: { containerNanos: 0, systemNanos: 0, onlineCpus: 1 }, memoryMb: 0 }

export class FakeRuntime implements ContainerRuntime {
  /**
   * Every call that changes things on a real engine, in order, including those that turn
   * out to be no-ops (they are still a Docker call): `create forgehook-a`, `start <id>`,
   * `stop <id>`, `remove <id>`, `pull <image>`.
   */
  readonly mutatingCalls: string[] = []
  /** listManaged and listByNamePrefix calls. */
  listCalls = 0
  inspectCalls = 0

  private readonly containers = new FakeContainers()
  private images: Set<string>
  /** Image ids on the engine by reference, and in the registry (pullable ones): a push changes the registry's. */
  private readonly localImageIds = new Map<string, string>()
  private readonly registryImageIds = new Map<string, string>()
  private readonly pushes = new Map<string, number>()
  private readonly authRequired: Set<string>
  private readonly pullable: Set<string>
  private readonly imageOutput: Record<string, string>
  private readonly exitOnStart: Record<string, number>
  private readonly imageVolumes: Record<string, string[]>
  private readonly occupiedPorts = new Set<number>()
  /** User-defined networks by name, with their labels. */
  private readonly networks = new Map<string, Record<string, string>>()
  /** Named and anonymous volumes by name, with their labels. */
  private readonly volumes = new Map<string, Record<string, string>>()
  private readonly eventHub = new FakeEventHub()
  private readonly logFollowers = new LogFollowers()
  private reachable = true

  constructor(options: FakeRuntimeOptions = {}) {
    this.images = new Set(options.images ?? [])
    this.pullable = new Set(options.pullable ?? [])
    this.imageOutput = options.imageOutput ?? {}
    this.exitOnStart = options.exitOnStart ?? {}
    this.imageVolumes = options.imageVolumes ?? {}
    this.authRequired = new Set(options.authRequired ?? [])
  }

  async connect(): Promise<RuntimeInfo> {
    this.assertReachable()
    return { engineVersion: '20.10.24-fake', apiVersion: '1.41' }
  }

  async listManaged(): Promise<ObservedContainer[]> {
    this.assertReachable()
    this.listCalls += 1
    return Array.from(this.containers.managed(), listView)
  }

  async listByNamePrefix(): Promise<ObservedContainer[]> {
    this.assertReachable()
    this.listCalls += 1
    return Array.from(this.containers.namePrefixed(), listView)
  }

  async inspect(idOrName: string): Promise<ObservedContainer | undefined> {
    this.assertReachable()
    this.inspectCalls += 1
    const container = this.containers.find(idOrName)
    return container ? inspectView(container) : undefined
  }

  async ensureImage(image: string, policy: ImagePullPolicy): Promise<EnsuredImage> {
    this.assertReachable()
    if (policy !== 'Always' && this.images.has(image)) return { imageId: this.localImageId(image), pulled: false }
    if (policy === 'Never') throw new ImageNotFoundError(image, 'not present on the engine and the pull policy is Never')
    this.mutatingCalls.push(`pull ${image}`)
    if (this.authRequired.has(image)) {
      const { registryHost } = parseImageReference(image)
      throw new RegistryAuthError(image, registryHost, `no credentials for ${registryHost} (fake registry): unauthorized: authentication required`)
    }
    if (!this.pullable.has(image)) throw new ImageNotFoundError(image, `manifest for ${image} not found: manifest unknown (fake registry)`)
    const imageId = this.registryImageIds.get(image) ?? fakeImageId(image, 0)
    this.images.add(image)
    this.localImageIds.set(image, imageId)
    return { imageId, digest: fakeDigest(imageId), pulled: true }
  }

  async create(spec: ContainerSpec, options: CreateOptions = {}): Promise<string> {
    this.assertReachable()
    const name = options.name ?? spec.name
    this.mutatingCalls.push(`create ${name}`)
    if (this.containers.find(name)) throw new NameConflictError(name)
    if (!this.images.has(spec.image)) throw new ImageNotFoundError(spec.image, `No such image: ${spec.image}`)
    const mounts = [...(spec.volumes ?? []), ...(options.extraVolumes ?? [])]
    // Like Docker, a named volume a mount needs is created on the fly (unlabelled), and an
    // image's VOLUME path with nothing mounted on it gets a new anonymous volume.
    for (const path of this.imageVolumes[spec.image] ?? []) {
      if (mounts.some((mount) => mount.target === path)) continue
      mounts.push({ source: randomBytes(32).toString('hex'), target: path, readOnly: false })
    }
    for (const mount of mounts) if (!this.volumes.has(mount.source)) this.volumes.set(mount.source, {})
    const { imageId: _wanted, imageDigest: _digest, ...created } = spec
    const container = this.add({
      ...created,
      name,
      imageId: this.localImageId(spec.image),
      state: 'created',
      networks: spec.network ? [spec.network.name] : ['bridge'],
      mounts: mounts.map((mount) => ({ type: 'volume', name: mount.source, destination: mount.target, readOnly: mount.readOnly })),
    })
    return container.id
  }

  async rename(containerId: string, name: string): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`rename ${containerId} ${name}`)
    const container = this.containers.get(containerId)
    if (container.name === name) return
    if (this.containers.find(name)) throw new NameConflictError(name)
    this.containers.rename(container, name)
    this.eventHub.publish(container, 'rename')
  }

  async ensureVolume(name: string, labels: Record<string, string>): Promise<ObservedVolume> {
    this.assertReachable()
    const existing = this.volumes.get(name)
    if (existing) return { name, labels: { ...existing } }
    this.mutatingCalls.push(`volume create ${name}`)
    this.volumes.set(name, { ...labels })
    return { name, labels: { ...labels } }
  }

  /** Test control: a volume someone else made (`docker volume create`). */
  addForeignVolume(name: string, labels: Record<string, string> = {}): void {
    this.volumes.set(name, { ...labels })
  }

  async removeVolume(name: string): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`volume rm ${name}`)
    if (!this.volumes.has(name)) return
    if (this.containers.usingVolume(name)) throw new VolumeInUseError(name)
    this.volumes.delete(name)
  }

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<boolean> {
    this.assertReachable()
    if (this.networks.has(name)) return false
    this.mutatingCalls.push(`network create ${name}`)
    this.networks.set(name, { ...labels })
    return true
  }

  async connectNetwork(containerId: string, network: string, _aliases: string[]): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`network connect ${network} ${containerId}`)
    if (!this.networks.has(network)) throw new ContainerNotFoundError(`no network ${network}`)
    const container = this.containers.get(containerId)
    if (!container.networks.includes(network)) container.networks.push(network)
  }

  async disconnectNetwork(containerId: string, network: string): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`network disconnect ${network} ${containerId}`)
    const container = this.containers.find(containerId)
    if (container) container.networks = container.networks.filter((name) => name !== network)
  }

  /** Test control: `docker network rm` (after disconnecting everything from it). */
  removeNetworkBehindBack(name: string): void {
    this.networks.delete(name)
    for (const container of this.containers.all()) container.networks = container.networks.filter((network) => network !== name)
  }

  /** Test control: whether that network exists. */
  hasNetwork(name: string): boolean {
    return this.networks.has(name)
  }

  async listVolumes(labels: Record<string, string>): Promise<ObservedVolume[]> {
    this.assertReachable()
    return [...this.volumes]
      .filter(([, volumeLabels]) => Object.entries(labels).every(([key, value]) => volumeLabels[key] === value))
      .map(([name, volumeLabels]) => ({ name, labels: { ...volumeLabels } }))
  }

  async start(containerId: string): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`start ${containerId}`)
    const container = this.containers.get(containerId)
    if (container.state === 'running') return
    const hostPort = container.hostPort
    if (hostPort !== undefined && (this.occupiedPorts.has(hostPort) || this.containers.isHostPortHeld(hostPort, container.id))) {
      throw new PortInUseError(hostPort, `Bind for 127.0.0.1:${hostPort} failed: port is already allocated`)
    }
    this.containers.setState(container, 'running')
    container.exitCode = 0
    container.oomKilled = false
    container.startedAt = new Date()
    delete container.health
    const output = this.imageOutput[container.image]
    if (output) container.logLines.push(...splitLines(output))
    this.eventHub.publish(container, 'start')
    const exitCode = this.exitOnStart[container.image] ?? (container.imageId === undefined ? undefined : this.exitOnStart[container.imageId])
    // Like a process that dies at once: the start succeeded, the container is gone a moment later.
    if (exitCode !== undefined) setTimeout(() => container.state === 'running' && this.exit(container, exitCode), 20)
  }

  async stop(containerId: string, _timeoutSeconds: number): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`stop ${containerId}`)
    const container = this.containers.get(containerId)
    if (container.state !== 'running') return
    // Like a process that handles SIGTERM and exits cleanly.
    this.exit(container, 0)
    this.eventHub.publish(container, 'stop')
  }

  async remove(containerId: string, options: { anonymousVolumes?: boolean } = {}): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`remove ${containerId}`)
    const container = this.containers.find(containerId)
    if (!container) return
    this.destroy(container)
    if (!options.anonymousVolumes) return
    for (const mount of container.mounts) if (mount.name && ANONYMOUS_VOLUME.test(mount.name)) this.volumes.delete(mount.name)
  }

  async logs(containerId: string, options: { tail: number }): Promise<string> {
    this.assertReachable()
    return tailText(this.containers.get(containerId).logLines, options.tail)
  }

  /** Like Docker: the tail, then lines written by writeLog until the container stops or the signal aborts. */
  async *followLogs(containerId: string, options: { tail: number; signal: AbortSignal }): AsyncIterable<string> {
    this.assertReachable()
    const container = this.containers.get(containerId)
    const existing = tailText(container.logLines, options.tail)
    if (options.signal.aborted) return
    if (container.state !== 'running') {
      if (existing) yield existing
      return
    }
    // Opened before the first yield, so nothing written while the consumer reads the tail is lost.
    const follower = this.logFollowers.open(container.id)
    const onAbort = () => follower.end({ discard: true })
    options.signal.addEventListener('abort', onAbort, { once: true })
    try {
      if (existing) yield existing
      for (let text = await follower.next(); text !== undefined; text = await follower.next()) yield text
    } finally {
      options.signal.removeEventListener('abort', onAbort)
      this.logFollowers.close(container.id, follower)
    }
  }

  async stats(containerId: string): Promise<ContainerStats> {
    this.assertReachable()
    const container = this.containers.get(containerId)
    if (container.state !== 'running') return { cpu: { ...IDLE_STATS.cpu }, memoryMb: IDLE_STATS.memoryMb }
    const { cpuPercent, memoryMb } = container.stats ?? RUNNING_STATS
    // Each read is one second of one host CPU later, the container having used cpuPercent
    // of it: the rate between two reads (cpuPercentBetween) is then cpuPercent.
    container.cpu.systemNanos += 1e9
    container.cpu.containerNanos += cpuPercent * 1e7
    return { cpu: { ...container.cpu, onlineCpus: 1 }, memoryMb }
  }

  /** Delivers events from the moment of the call, like the Docker driver. */
  events(signal: AbortSignal): AsyncIterable<RuntimeStreamItem> {
    return this.eventHub.subscribe(signal)
  }

  // ---- Test controls: what a real engine (or a person with the docker CLI) does behind our back.

  /**
   * Test control: dockerd's SIGTERM. The engine stops answering (its socket goes first), then
   * stops its running containers: kill, die with `exitCode`, stop, for each.
   */
  shutDown(exitCode = 143): void {
    this.reachable = false
    for (const container of [...this.containers.all()]) {
      if (container.state !== 'running') continue
      this.eventHub.publish(container, 'kill')
      this.exit(container, exitCode)
      this.eventHub.publish(container, 'stop')
    }
  }

  /** Test control: the container's process exits on its own (emits oom when oomKilled, then die). */
  crash(idOrName: string, exitCode: number, options: { oomKilled?: boolean } = {}): void {
    const container = this.containers.get(idOrName)
    if (container.state !== 'running') throw new Error(`FakeRuntime.crash: ${container.name} is not running`)
    if (options.oomKilled) this.eventHub.publish(container, 'oom')
    this.exit(container, exitCode)
    container.oomKilled = options.oomKilled ?? false
  }

  /** Test control: someone removes the container (`docker rm -f`); emits destroy. */
  removeBehindBack(idOrName: string): void {
    this.destroy(this.containers.get(idOrName))
  }

  /**
   * Test control: a container we did not create (another tool's, or a leftover). State
   * defaults to running, containerPort to 8080 when hostPort is given. Returns its id.
   */
  addForeign(options: {
    name: string
    image: string
    labels?: Record<string, string>
    state?: ContainerState
    hostPort?: number
    containerPort?: number
    env?: Record<string, string>
    unsafe?: string[]
  }): string {
    if (this.containers.find(options.name)) throw new NameConflictError(options.name)
    const containerPort = options.containerPort ?? (options.hostPort === undefined ? undefined : 8080)
    const container = this.add({ ...options, containerPort, labels: options.labels ?? {}, state: options.state ?? 'running' })
    if (container.state === 'running') container.startedAt = new Date()
    return container.id
  }

  /** Test control: whether a volume of that name exists. */
  hasVolume(name: string): boolean {
    return this.volumes.has(name)
  }

  /** Test control: the image's HEALTHCHECK reports a new state (and output); emits health_status. */
  setHealth(idOrName: string, health: ContainerHealth, output?: string): void {
    const container = this.containers.get(idOrName)
    container.health = health
    if (output !== undefined) container.healthOutput = output
    this.eventHub.publish(container, 'health_status', { health })
  }

  /** Test control: the event stream was lost and re-established; every consumer gets a resync. */
  simulateReconnect(reason: string): void {
    this.eventHub.resync(reason)
  }

  /** Test control: the engine goes away (every call throws RuntimeUnavailableError) or comes back. */
  setReachable(reachable: boolean): void {
    this.reachable = reachable
  }

  /** Test control: replaces the set of images present on the engine. */
  setImages(images: string[]): void {
    this.images = new Set(images)
  }

  /** Test control: an image appears on the engine (`docker load`). */
  addImage(image: string): void {
    this.images.add(image)
  }

  /** Test control: new content is pushed to the registry under this tag; the next pull fetches it. Returns its image id and digest. */
  pushImage(image: string): { imageId: string; digest: string } {
    const version = (this.pushes.get(image) ?? 0) + 1
    this.pushes.set(image, version)
    const imageId = fakeImageId(image, version)
    this.registryImageIds.set(image, imageId)
    this.pullable.add(image)
    return { imageId, digest: fakeDigest(imageId) }
  }

  /** Test control: whether the image's registry refuses pulls for want of credentials (a `docker login` away). */
  setAuthRequired(image: string, required: boolean): void {
    if (required) this.authRequired.add(image)
    else this.authRequired.delete(image)
  }

  /** Test control: the id of the image the engine has under this reference (what a container created now runs). */
  localImageId(image: string): string {
    return this.localImageIds.get(image) ?? fakeImageId(image, 0)
  }

  /** Test control: a process outside Docker listens on the host port. */
  occupyPort(hostPort: number): void {
    this.occupiedPorts.add(hostPort)
  }

  /** Test control: that process has gone. */
  releasePort(hostPort: number): void {
    this.occupiedPorts.delete(hostPort)
  }

  /** Test control: the container writes to stdout. */
  writeLog(idOrName: string, text: string): void {
    const container = this.containers.get(idOrName)
    const lines = splitLines(text)
    container.logLines.push(...lines)
    this.logFollowers.write(container.id, tailText(lines, lines.length))
  }

  /** Test control: the usage stats reports while the container runs (CPU as a rate between two reads). */
  setStats(idOrName: string, stats: FakeStats): void {
    this.containers.get(idOrName).stats = { ...stats }
  }

  /** Test control: forget the call counters, e.g. after a test's setup. */
  resetCalls(): void {
    this.mutatingCalls.length = 0
    this.listCalls = 0
    this.inspectCalls = 0
  }

  // ---- Internals

  private add(options: NewFakeContainer): FakeContainer {
    const container = newFakeContainer(options)
    this.containers.add(container)
    this.eventHub.publish(container, 'create')
    return container
  }

  private exit(container: FakeContainer, exitCode: number): void {
    this.containers.setState(container, 'exited')
    container.exitCode = exitCode
    container.finishedAt = new Date()
    delete container.health
    this.logFollowers.end(container.id)
    this.eventHub.publish(container, 'die', { exitCode })
  }

  private destroy(container: FakeContainer): void {
    if (container.state === 'running') this.exit(container, 137) // removal with force kills
    this.containers.delete(container)
    this.eventHub.publish(container, 'destroy')
  }

  private assertReachable(): void {
    if (!this.reachable) throw new RuntimeUnavailableError('fake Docker engine is not reachable (test control)')
  }
}

/** Deterministic ids: the same image and push give the same id in every run, like content addressing. */
function fakeImageId(image: string, push: number): string {
  return `sha256:${createHash('sha256').update(`${image}#${push}`).digest('hex')}`
}

function fakeDigest(imageId: string): string {
  return `sha256:${createHash('sha256').update(`manifest of ${imageId}`).digest('hex')}`
}
