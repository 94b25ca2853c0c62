// An in-memory ContainerRuntime for fast tests. It behaves like Docker wherever the
// contract suite (test/runtime/contract.ts) looks, and adds test controls for what a
// real engine does behind our back: crashes, removals, health changes, lost event streams.

import { randomBytes } from 'node:crypto'
import {
  ContainerNotFoundError,
  CONTAINER_NAME_PREFIX,
  ImageNotFoundError,
  isManaged,
  LABELS,
  NameConflictError,
  PortInUseError,
  RuntimeUnavailableError,
  type ContainerHealth,
  type ContainerRuntime,
  type ContainerSpec,
  type ContainerState,
  type ContainerStats,
  type ImagePullPolicy,
  type ObservedContainer,
  type RuntimeEvent,
  type RuntimeInfo,
  type RuntimeStreamItem,
} from './container-runtime.js'
import { EventChannel } from './event-channel.js'

export interface FakeRuntimeOptions {
  /** Images present on the fake engine. Default none. */
  images?: string[]
  /** Images a pull can fetch. Default none: every pull fails, as on a machine without a registry. */
  pullable?: string[]
  /** Text a container of the image writes to its log when it starts. Default none. */
  imageOutput?: Record<string, string>
}

interface FakeContainer {
  id: string
  name: string
  image: string
  state: ContainerState
  labels: Record<string, string>
  exitCode: number
  oomKilled: boolean
  startedAt?: Date
  finishedAt?: Date
  health?: ContainerHealth
  hostPort?: number
  containerPort?: number
  logLines: string[]
  stats?: ContainerStats
}

const RUNNING_STATS: ContainerStats = { cpuPercent: 0.5, memoryMb: 16 }
const IDLE_STATS: ContainerStats = { cpuPercent: 0, memoryMb: 0 }

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

  private readonly containers = new Map<string, FakeContainer>()
  private images: Set<string>
  private readonly pullable: Set<string>
  private readonly imageOutput: Record<string, string>
  private readonly occupiedPorts = new Set<number>()
  private readonly channels = new Set<EventChannel>()
  /** Open followLogs iterations by container id. */
  private readonly logFollowers = new Map<string, Set<LogFollower>>()
  private reachable = true

  constructor(options: FakeRuntimeOptions = {}) {
    this.images = new Set(options.images ?? [])
    this.pullable = new Set(options.pullable ?? [])
    this.imageOutput = options.imageOutput ?? {}
  }

  async connect(): Promise<RuntimeInfo> {
    this.assertReachable()
    return { engineVersion: '20.10.24-fake', apiVersion: '1.41' }
  }

  async listManaged(): Promise<ObservedContainer[]> {
    this.assertReachable()
    this.listCalls += 1
    return [...this.containers.values()].map(listView).filter(isManaged)
  }

  async listByNamePrefix(): Promise<ObservedContainer[]> {
    this.assertReachable()
    this.listCalls += 1
    return [...this.containers.values()].filter((container) => container.name.startsWith(CONTAINER_NAME_PREFIX)).map(listView)
  }

  async inspect(idOrName: string): Promise<ObservedContainer | undefined> {
    this.assertReachable()
    this.inspectCalls += 1
    const container = this.find(idOrName)
    return container ? inspectView(container) : undefined
  }

  async ensureImage(image: string, policy: ImagePullPolicy): Promise<void> {
    this.assertReachable()
    if (policy !== 'Always' && this.images.has(image)) return
    if (policy === 'Never') throw new ImageNotFoundError(image, 'not present on the engine and the pull policy is Never')
    this.mutatingCalls.push(`pull ${image}`)
    if (!this.pullable.has(image)) throw new ImageNotFoundError(image, `pull access denied for ${image} (fake registry)`)
    this.images.add(image)
  }

  async create(spec: ContainerSpec): Promise<string> {
    this.assertReachable()
    this.mutatingCalls.push(`create ${spec.name}`)
    if (this.find(spec.name)) throw new NameConflictError(spec.name)
    if (!this.images.has(spec.image)) throw new ImageNotFoundError(spec.image, `No such image: ${spec.image}`)
    const container = this.add({ ...spec, state: 'created' })
    return container.id
  }

  async start(containerId: string): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`start ${containerId}`)
    const container = this.get(containerId)
    if (container.state === 'running') return
    const hostPort = container.hostPort
    if (hostPort !== undefined && this.isPortTaken(hostPort, container.id)) {
      throw new PortInUseError(hostPort, `Bind for 127.0.0.1:${hostPort} failed: port is already allocated`)
    }
    container.state = 'running'
    container.exitCode = 0
    container.oomKilled = false
    container.startedAt = new Date()
    delete container.health
    const output = this.imageOutput[container.image]
    if (output) container.logLines.push(...splitLines(output))
    this.emit(container, 'start')
  }

  async stop(containerId: string, _timeoutSeconds: number): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`stop ${containerId}`)
    const container = this.get(containerId)
    if (container.state !== 'running') return
    // Like a process that handles SIGTERM and exits cleanly.
    this.exit(container, 0)
    this.emit(container, 'stop')
  }

  async remove(containerId: string): Promise<void> {
    this.assertReachable()
    this.mutatingCalls.push(`remove ${containerId}`)
    const container = this.find(containerId)
    if (!container) return
    this.destroy(container)
  }

  async logs(containerId: string, options: { tail: number }): Promise<string> {
    this.assertReachable()
    return tailText(this.get(containerId).logLines, options.tail)
  }

  /** Like Docker: the tail, then lines written by writeLog until the container stops or the signal aborts. */
  async *followLogs(containerId: string, options: { tail: number; signal: AbortSignal }): AsyncIterable<string> {
    this.assertReachable()
    const container = this.get(containerId)
    const existing = tailText(container.logLines, options.tail)
    if (options.signal.aborted) return
    if (container.state !== 'running') {
      if (existing) yield existing
      return
    }
    // Registered before the first yield, so nothing written while the consumer reads the tail is lost.
    const follower = new LogFollower()
    const followers = this.logFollowers.get(container.id) ?? new Set<LogFollower>()
    this.logFollowers.set(container.id, followers.add(follower))
    const onAbort = () => follower.end({ discard: true })
    options.signal.addEventListener('abort', onAbort, { once: true })
    try {
      if (existing) yield existing
      for (let text = await follower.next(); text !== undefined; text = await follower.next()) yield text
    } finally {
      options.signal.removeEventListener('abort', onAbort)
      followers.delete(follower)
      if (followers.size === 0) this.logFollowers.delete(container.id)
    }
  }

  async stats(containerId: string): Promise<ContainerStats> {
    this.assertReachable()
    const container = this.get(containerId)
    if (container.state !== 'running') return { ...IDLE_STATS }
    return { ...(container.stats ?? RUNNING_STATS) }
  }

  /** Delivers events from the moment of the call, like the Docker driver. */
  events(signal: AbortSignal): AsyncIterable<RuntimeStreamItem> {
    const channel = new EventChannel(() => this.channels.delete(channel))
    if (signal.aborted) {
      channel.close()
      return channel
    }
    this.channels.add(channel)
    signal.addEventListener('abort', () => channel.close(), { once: true })
    return channel
  }

  // ---- Test controls: what a real engine (or a person with the docker CLI) does behind our back.

  /** Test control: the container's process exits on its own (emits oom when oomKilled, then die). */
  crash(idOrName: string, exitCode: number, options: { oomKilled?: boolean } = {}): void {
    const container = this.get(idOrName)
    if (container.state !== 'running') throw new Error(`FakeRuntime.crash: ${container.name} is not running`)
    if (options.oomKilled) this.emit(container, 'oom')
    this.exit(container, exitCode)
    container.oomKilled = options.oomKilled ?? false
  }

  /** Test control: someone removes the container (`docker rm -f`); emits destroy. */
  removeBehindBack(idOrName: string): void {
    this.destroy(this.get(idOrName))
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
  }): string {
    if (this.find(options.name)) throw new NameConflictError(options.name)
    const containerPort = options.containerPort ?? (options.hostPort === undefined ? undefined : 8080)
    const container = this.add({ ...options, containerPort, labels: options.labels ?? {}, state: options.state ?? 'running' })
    if (container.state === 'running') container.startedAt = new Date()
    return container.id
  }

  /** Test control: the image's HEALTHCHECK reports a new state; emits health_status. */
  setHealth(idOrName: string, health: ContainerHealth): void {
    const container = this.get(idOrName)
    container.health = health
    this.emit(container, 'health_status', { health })
  }

  /** Test control: the event stream was lost and re-established; every consumer gets a resync. */
  simulateReconnect(reason: string): void {
    for (const channel of this.channels) channel.push({ type: 'resync', reason })
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
    const container = this.get(idOrName)
    const lines = splitLines(text)
    container.logLines.push(...lines)
    const written = tailText(lines, lines.length)
    for (const follower of this.logFollowers.get(container.id) ?? []) follower.push(written)
  }

  /** Test control: what stats reports while the container runs. */
  setStats(idOrName: string, stats: ContainerStats): void {
    this.get(idOrName).stats = { ...stats }
  }

  /** Test control: forget the call counters, e.g. after a test's setup. */
  resetCalls(): void {
    this.mutatingCalls.length = 0
    this.listCalls = 0
    this.inspectCalls = 0
  }

  // ---- Internals

  private add(options: {
    name: string
    image: string
    labels: Record<string, string>
    state: ContainerState
    hostPort?: number
    containerPort?: number
  }): FakeContainer {
    const container: FakeContainer = {
      id: randomBytes(32).toString('hex'),
      name: options.name,
      image: options.image,
      state: options.state,
      labels: { ...options.labels },
      exitCode: 0,
      oomKilled: false,
      logLines: [],
    }
    // Like Docker, a port counts only as a pair: host side and container side.
    if (options.hostPort !== undefined && options.containerPort !== undefined) {
      container.hostPort = options.hostPort
      container.containerPort = options.containerPort
    }
    this.containers.set(container.id, container)
    this.emit(container, 'create')
    return container
  }

  private exit(container: FakeContainer, exitCode: number): void {
    container.state = 'exited'
    container.exitCode = exitCode
    container.finishedAt = new Date()
    delete container.health
    for (const follower of this.logFollowers.get(container.id) ?? []) follower.end()
    this.emit(container, 'die', { exitCode })
  }

  private destroy(container: FakeContainer): void {
    if (container.state === 'running') this.exit(container, 137) // removal with force kills
    this.containers.delete(container.id)
    this.emit(container, 'destroy')
  }

  private isPortTaken(hostPort: number, exceptContainerId: string): boolean {
    if (this.occupiedPorts.has(hostPort)) return true
    return [...this.containers.values()].some(
      (other) => other.id !== exceptContainerId && other.state === 'running' && other.hostPort === hostPort,
    )
  }

  /** Docker's lookup order: full id, then exact name, then a unique id prefix. */
  private find(idOrName: string): FakeContainer | undefined {
    const byId = this.containers.get(idOrName)
    if (byId) return byId
    const all = [...this.containers.values()]
    const byName = all.find((container) => container.name === idOrName)
    if (byName) return byName
    const byPrefix = all.filter((container) => container.id.startsWith(idOrName))
    return idOrName.length > 0 && byPrefix.length === 1 ? byPrefix[0] : undefined
  }

  private get(idOrName: string): FakeContainer {
    const container = this.find(idOrName)
    if (!container) throw new ContainerNotFoundError(`no container ${idOrName}`)
    return container
  }

  private emit(container: FakeContainer, action: string, extra: Pick<RuntimeEvent, 'health' | 'exitCode'> = {}): void {
    if (container.labels[LABELS.managed] !== 'true') return
    const event: RuntimeEvent = { action, containerId: container.id, name: container.name, labels: { ...container.labels }, time: new Date(), ...extra }
    for (const channel of this.channels) channel.push({ type: 'event', event })
  }

  private assertReachable(): void {
    if (!this.reachable) throw new RuntimeUnavailableError('fake Docker engine is not reachable (test control)')
  }
}

/** What inspect shows: everything, with the configured port even before the container runs. */
function inspectView(container: FakeContainer): ObservedContainer {
  const { logLines: _logLines, stats: _stats, ...observed } = container
  return { ...observed, labels: { ...container.labels } }
}

/** What a list shows: no exit details, and published ports of running containers only. */
function listView(container: FakeContainer): ObservedContainer {
  const observed: ObservedContainer = {
    id: container.id,
    name: container.name,
    image: container.image,
    state: container.state,
    labels: { ...container.labels },
  }
  if (container.health) observed.health = container.health
  if (container.state === 'running' && container.hostPort !== undefined && container.containerPort !== undefined) {
    observed.hostPort = container.hostPort
    observed.containerPort = container.containerPort
  }
  return observed
}

function tailText(lines: string[], tail: number): string {
  const last = tail <= 0 ? [] : lines.slice(-tail)
  return last.map((line) => `${line}\n`).join('')
}

/** One followLogs iteration: text waiting to be read, and a wake-up for the reader. */
class LogFollower {
  private readonly chunks: string[] = []
  private ended = false
  private wake: (() => void) | undefined

  push(text: string): void {
    if (this.ended || !text) return
    this.chunks.push(text)
    this.wake?.()
  }

  /** The container stopped (what it wrote before is still read), or the reader went away (`discard`). */
  end(options: { discard?: boolean } = {}): void {
    this.ended = true
    if (options.discard) this.chunks.length = 0
    this.wake?.()
  }

  /** The next chunk; undefined once ended and read to the end. */
  async next(): Promise<string | undefined> {
    for (;;) {
      const chunk = this.chunks.shift()
      if (chunk !== undefined) return chunk
      if (this.ended) return undefined
      await new Promise<void>((resolve) => {
        this.wake = resolve
      })
      this.wake = undefined
    }
  }
}

function splitLines(text: string): string[] {
  return text.split('\n').filter((line, index, lines) => line.length > 0 || index < lines.length - 1)
}
