// The ContainerRuntime on a real Docker engine, through dockerode. Every Docker error is
// translated here, at the driver edge: "not found" by status code, never by guessing.

import Docker from 'dockerode'
import type { Readable } from 'node:stream'
import {
  ContainerNotFoundError,
  CONTAINER_NAME_PREFIX,
  ImageNotFoundError,
  LABELS,
  NameConflictError,
  PortInUseError,
  RegistryAuthError,
  RuntimeNotConnectedError,
  VolumeInUseError,
  type ContainerRuntime,
  type ContainerSpec,
  type ContainerStats,
  type CreateOptions,
  type EnsuredImage,
  type ObservedVolume,
  type ImagePullPolicy,
  type ObservedContainer,
  type RuntimeInfo,
  type RuntimeStreamItem,
} from './container-runtime.js'
import { pinApiVersion } from './docker-connection.js'
import { EngineDriver } from './engine-driver.js'
import { streamDockerEvents } from './docker-events.js'
import { EngineStatsReader } from './engine-stats.js'
import {
  createOptionsFor,
  hostPortFromStartError,
  isPortInUseMessage,
  observedFromInspect,
  observedFromListEntry,
  portInUseDetail,
  statsFromDocker,
  type DockerInspectInfo,
  type DockerListEntry,
} from './docker-mapping.js'
import { classifyPullFailure, engineMessageOf, statusCodeOf } from './docker-errors.js'
import { digestForRepository } from './image-reference.js'
import { NO_REGISTRY_AUTH, redactCredentials, registryAuthHeader, type RegistryAuth, type RegistryAuthLookup } from './registry-auth.js'
import type { Logger } from '../logger.js'
import type { BackoffOptions } from '../util/backoff.js'

export interface DockerRuntimeOptions {
  /** `unix:///path/to/docker.sock` or `tcp://host:port`. Default unix:///var/run/docker.sock. */
  dockerHost?: string
  /** Inactivity timeout of one request (not of streams). Default 10_000 ms. */
  requestTimeoutMs?: number
  /** Limit of one image pull, start to end. Default 300_000 ms. */
  pullTimeoutMs?: number
  /** Grace added to a stop's own timeout before we give up on the engine. Default 10_000 ms. */
  stopGraceMs?: number
  /** How often a connected event stream pings the engine. Default 5_000 ms. */
  livenessIntervalMs?: number
  /**
   * Event stream reconnects. Default 250 ms doubling to 5 s, ±20% jitter: after a long
   * outage the engine's return is noticed within 6 s (a failed connect costs nothing).
   */
  reconnectBackoff?: BackoffOptions
  /** Credentials for pulls (REGISTRY_AUTH_FILE), looked up for every pull. Default none. */
  registryAuth?: RegistryAuth
  logger: Logger
}

interface DockerClients {
  /** With the request timeout: every call that answers once. */
  unary: Docker
  /** Without a timeout: docker-modem's timeout is an inactivity timeout and would kill a quiet stream. */
  streaming: Docker
  /** Stats without dockerode, over kept-alive sockets: the one call an idle manager repeats (engine-stats.ts). */
  stats: EngineStatsReader
}

const MANAGED_FILTER = `${LABELS.managed}=true`

/** The container runtime's handshake is ping and /version, nothing more. */
const NOTHING_MORE = async (): Promise<undefined> => undefined

export class DockerRuntime extends EngineDriver implements ContainerRuntime {
  private readonly pullTimeoutMs: number
  private readonly stopGraceMs: number
  private readonly livenessIntervalMs: number
  private readonly reconnectBackoff: BackoffOptions
  private readonly registryAuth: RegistryAuth
  private readonly logger: Logger
  private clients: DockerClients | undefined

  constructor(options: DockerRuntimeOptions) {
    super(options.dockerHost ?? 'unix:///var/run/docker.sock', options.requestTimeoutMs)
    this.pullTimeoutMs = options.pullTimeoutMs ?? 300_000
    this.stopGraceMs = options.stopGraceMs ?? 10_000
    this.livenessIntervalMs = options.livenessIntervalMs ?? 5_000
    this.reconnectBackoff = options.reconnectBackoff ?? { initialMs: 250, maxMs: 5_000, jitter: 0.2 }
    this.registryAuth = options.registryAuth ?? NO_REGISTRY_AUTH
    this.logger = options.logger
  }

  preconnect(): void {
    this.startEarlyHandshake(NOTHING_MORE)
  }

  async connect(): Promise<RuntimeInfo> {
    const { engine } = await this.handshakeOrEarly(NOTHING_MORE)
    const apiVersion = pinApiVersion(engine)
    this.clients?.stats.close()
    this.clients = {
      unary: this.makeClient(apiVersion, this.requestTimeoutMs),
      streaming: this.makeClient(apiVersion, undefined),
      stats: new EngineStatsReader({ endpoint: this.endpoint, apiVersion, timeoutMs: this.requestTimeoutMs }),
    }
    this.logger.info({ engineVersion: engine.Version, engineApiVersion: engine.ApiVersion, apiVersion }, 'connected to the Docker engine')
    return { engineVersion: engine.Version, apiVersion }
  }

  async listManaged(): Promise<ObservedContainer[]> {
    const entries = await this.call('list managed containers', () =>
      this.connected().unary.listContainers({ all: true, filters: { label: [MANAGED_FILTER] } }),
    )
    return (entries as DockerListEntry[]).map(observedFromListEntry)
  }

  async listByNamePrefix(): Promise<ObservedContainer[]> {
    // Docker's name filter is an unanchored regexp over names that start with '/'.
    const entries = await this.call('list containers by name', () =>
      this.connected().unary.listContainers({ all: true, filters: { name: [`^/${CONTAINER_NAME_PREFIX}`] } }),
    )
    return (entries as DockerListEntry[]).map(observedFromListEntry).filter((container) => container.name.startsWith(CONTAINER_NAME_PREFIX))
  }

  async inspect(idOrName: string): Promise<ObservedContainer | undefined> {
    try {
      const info = await this.connected().unary.getContainer(idOrName).inspect()
      return observedFromInspect(info as unknown as DockerInspectInfo)
    } catch (error) {
      if (statusCodeOf(error) === 404) return undefined
      throw this.driverError(`inspect ${idOrName}`, error)
    }
  }

  async ensureImage(image: string, policy: ImagePullPolicy): Promise<EnsuredImage> {
    if (policy !== 'Always') {
      const present = await this.imageInfo(image)
      if (present) return { ...present, pulled: false }
    }
    if (policy === 'Never') throw new ImageNotFoundError(image, 'not present on the engine and the pull policy is Never')
    await this.pull(image)
    const pulled = await this.imageInfo(image)
    // Pulled, and gone again at once (someone's `docker rmi`): as good as missing.
    if (!pulled) throw new ImageNotFoundError(image, 'the pull succeeded but the engine has no such image right after it')
    return { ...pulled, pulled: true }
  }

  async create(spec: ContainerSpec, options: CreateOptions = {}): Promise<string> {
    const name = options.name ?? spec.name
    try {
      const container = await this.connected().unary.createContainer(createOptionsFor(spec, options))
      return container.id
    } catch (error) {
      const statusCode = statusCodeOf(error)
      if (statusCode === 409) throw new NameConflictError(name)
      if (statusCode === 404) throw new ImageNotFoundError(spec.image, engineMessageOf(error))
      throw this.driverError(`create ${name}`, error)
    }
  }

  async rename(containerId: string, name: string): Promise<void> {
    try {
      await this.connected().unary.getContainer(containerId).rename({ name })
    } catch (error) {
      const statusCode = statusCodeOf(error)
      if (statusCode === 409) throw new NameConflictError(name)
      if (statusCode === 404) throw new ContainerNotFoundError(`no container ${containerId}`, { cause: error })
      throw this.driverError(`rename ${containerId} to ${name}`, error)
    }
  }

  async ensureVolume(name: string, labels: Record<string, string>): Promise<ObservedVolume> {
    try {
      const found = (await this.connected().unary.getVolume(name).inspect()) as { Name: string; Labels?: Record<string, string> | null }
      return { name: found.Name, labels: { ...(found.Labels ?? {}) } }
    } catch (error) {
      if (statusCodeOf(error) !== 404) throw this.driverError(`inspect volume ${name}`, error)
    }
    // Creating a volume that exists returns it unchanged: a race with another creator is harmless.
    const created = (await this.call(`create volume ${name}`, () => this.connected().unary.createVolume({ Name: name, Labels: labels }))) as {
      Name?: string
      Labels?: Record<string, string> | null
    }
    return { name: created.Name ?? name, labels: { ...(created.Labels ?? labels) } }
  }

  async removeVolume(name: string): Promise<void> {
    try {
      await this.connected().unary.getVolume(name).remove()
    } catch (error) {
      const statusCode = statusCodeOf(error)
      if (statusCode === 404) return
      if (statusCode === 409) throw new VolumeInUseError(name)
      throw this.driverError(`remove volume ${name}`, error)
    }
  }

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<boolean> {
    try {
      await this.connected().unary.getNetwork(name).inspect()
      return false
    } catch (error) {
      if (statusCodeOf(error) !== 404) throw this.driverError(`inspect network ${name}`, error)
    }
    try {
      await this.connected().unary.createNetwork({ Name: name, Driver: 'bridge', CheckDuplicate: true, Labels: labels })
      return true
    } catch (error) {
      // Made meanwhile by another manager of the installation: that one serves.
      if (statusCodeOf(error) === 409) return false
      throw this.driverError(`create network ${name}`, error)
    }
  }

  async connectNetwork(containerId: string, network: string, aliases: string[]): Promise<void> {
    try {
      await this.connected().unary.getNetwork(network).connect({ Container: containerId, EndpointConfig: { Aliases: aliases } })
    } catch (error) {
      const statusCode = statusCodeOf(error)
      // 403 "already exists in network": attached already.
      if (statusCode === 403 && /already exists/i.test(engineMessageOf(error))) return
      if (statusCode === 404) throw new ContainerNotFoundError(`no container ${containerId} or network ${network}`, { cause: error })
      throw this.driverError(`connect ${containerId} to ${network}`, error)
    }
  }

  async disconnectNetwork(containerId: string, network: string): Promise<void> {
    try {
      await this.connected().unary.getNetwork(network).disconnect({ Container: containerId, Force: true })
    } catch (error) {
      const statusCode = statusCodeOf(error)
      if (statusCode === 404 || (statusCode === 403 && /not connected/i.test(engineMessageOf(error)))) return
      throw this.driverError(`disconnect ${containerId} from ${network}`, error)
    }
  }

  async listVolumes(labels: Record<string, string>): Promise<ObservedVolume[]> {
    const filters = { label: Object.entries(labels).map(([key, value]) => `${key}=${value}`) }
    const answer = (await this.call('list volumes', () => this.connected().unary.listVolumes({ filters }))) as {
      Volumes?: { Name: string; Labels?: Record<string, string> | null }[] | null
    }
    return (answer.Volumes ?? []).map((volume) => ({ name: volume.Name, labels: { ...(volume.Labels ?? {}) } }))
  }

  async start(containerId: string): Promise<void> {
    try {
      await this.connected().unary.getContainer(containerId).start()
    } catch (error) {
      const statusCode = statusCodeOf(error)
      if (statusCode === 304) return // already running
      if (statusCode === 404) throw new ContainerNotFoundError(`no container ${containerId}`, { cause: error })
      const message = engineMessageOf(error)
      if (statusCode === 500 && isPortInUseMessage(message)) {
        const hostPort = hostPortFromStartError(message) ?? (await this.inspect(containerId))?.hostPort ?? 0
        throw new PortInUseError(hostPort, portInUseDetail(message))
      }
      throw this.driverError(`start ${containerId}`, error)
    }
  }

  async stop(containerId: string, timeoutSeconds: number): Promise<void> {
    // The engine answers only once the container is down, up to timeoutSeconds later: the
    // unary client's timeout would cut that short, so this runs on the streaming client
    // with a deadline of its own.
    const abortSignal = AbortSignal.timeout(timeoutSeconds * 1000 + this.stopGraceMs)
    try {
      await this.connected().streaming.getContainer(containerId).stop({ t: timeoutSeconds, abortSignal })
    } catch (error) {
      const statusCode = statusCodeOf(error)
      if (statusCode === 304) return // already stopped
      if (statusCode === 404) throw new ContainerNotFoundError(`no container ${containerId}`, { cause: error })
      throw this.driverError(`stop ${containerId}`, error)
    }
  }

  async remove(containerId: string, options: { anonymousVolumes?: boolean } = {}): Promise<void> {
    try {
      // Anonymous volumes (an image's VOLUME) are kept unless asked: a recreate carries them over.
      await this.connected().unary.getContainer(containerId).remove({ force: true, v: options.anonymousVolumes === true })
    } catch (error) {
      const statusCode = statusCodeOf(error)
      if (statusCode === 404) return
      if (statusCode === 409 && engineMessageOf(error).includes('already in progress')) return
      throw this.driverError(`remove ${containerId}`, error)
    }
  }

  async logs(containerId: string, options: { tail: number }): Promise<string> {
    return await this.readLogs(this.connected().unary, `/containers/${encodeURIComponent(containerId)}/logs`, `container ${containerId}`, options.tail)
  }

  followLogs(containerId: string, options: { tail: number; signal: AbortSignal }): AsyncIterable<string> {
    // The streaming client: a quiet container would trip the unary client's inactivity timeout.
    return this.followLogStream(this.connected().streaming, `/containers/${encodeURIComponent(containerId)}/logs`, `container ${containerId}`, options.tail, options.signal)
  }

  async stats(containerId: string): Promise<ContainerStats> {
    try {
      // one-shot (API 1.41, our minimum): one sample. Without it stream=false waits for a
      // second sample of Docker's own (2 s per call on Docker 20.10), so that precpu_stats
      // exist; the metrics sampler takes the rate between its own successive reads instead.
      // A one-shot read still waits for the next tick of dockerd's collector (about 1 s).
      return statsFromDocker(await this.connected().stats.read(containerId))
    } catch (error) {
      if (statusCodeOf(error) === 404) throw new ContainerNotFoundError(`no container ${containerId}`, { cause: error })
      throw this.driverError(`read the stats of ${containerId}`, error)
    }
  }

  /** Delivers events from the moment of the call on, even those before the first `next()`. */
  events(signal: AbortSignal): AsyncIterable<RuntimeStreamItem> {
    const requestedAtSeconds = Date.now() / 1000
    const clients = this.connected()
    return streamDockerEvents(
      {
        open: async (sinceSeconds, openSignal) => {
          const filters = { type: ['container' as const], label: [MANAGED_FILTER] }
          const options = sinceSeconds === undefined ? { filters } : { filters, since: sinceSeconds }
          return (await clients.streaming.getEvents({ ...options, abortSignal: openSignal })) as unknown as Readable
        },
        ping: async () => void (await clients.unary.ping()),
        logger: this.logger,
        backoff: this.reconnectBackoff,
        livenessIntervalMs: this.livenessIntervalMs,
      },
      signal,
      requestedAtSeconds,
    )
  }

  /** The image's id and the registry digest of the reference's repository; undefined when the engine has no such image. */
  private async imageInfo(image: string): Promise<Omit<EnsuredImage, 'pulled'> | undefined> {
    try {
      const info = (await this.connected().unary.getImage(image).inspect()) as { Id: string; RepoDigests?: string[] | null }
      const digest = digestForRepository(image, info.RepoDigests ?? [])
      return { imageId: info.Id, ...(digest ? { digest } : {}) }
    } catch (error) {
      if (statusCodeOf(error) === 404) return undefined
      throw this.driverError(`inspect image ${image}`, error)
    }
  }

  private async pull(image: string): Promise<void> {
    // A pull streams progress and may be quiet for long stretches while layers unpack: it
    // runs on the streaming client with an overall deadline instead of an inactivity one.
    const abortSignal = AbortSignal.timeout(this.pullTimeoutMs)
    const { streaming } = this.connected()
    const auth = await this.registryAuth.lookup(image)
    // The header is made here and handed over as an opaque string: nothing we log holds the
    // options object, and docker-modem takes authconfig out of the query string and body.
    const authconfig = auth.credentials ? { base64: registryAuthHeader(auth.credentials) } : undefined
    this.logger.info({ image, registry: auth.registryHost, credentials: auth.credentials ? 'yes' : 'none' }, `pulling image ${image} (${auth.description})`)
    try {
      const progress = (await streaming.pull(image, { abortSignal, ...(authconfig ? { authconfig } : {}) })) as Readable
      await followPull(streaming, progress)
    } catch (error) {
      throw this.pullError(image, auth, error, abortSignal.aborted)
    }
  }

  /** A failed pull as the caller can act on it: the registry refused us, or there is no such image to be had. */
  private pullError(image: string, auth: RegistryAuthLookup, error: unknown, timedOut: boolean): Error {
    if (timedOut) return new ImageNotFoundError(image, `the pull did not finish within ${this.pullTimeoutMs} ms`)
    const statusCode = statusCodeOf(error)
    // No answer at all: the engine is unreachable, not the image.
    if (statusCode === undefined && !(error instanceof PullFailedError)) return this.driverError(`pull ${image}`, error)
    const message = redactCredentials(engineMessageOf(error), auth.credentials)
    if (classifyPullFailure(statusCode, message) === 'auth') {
      const sent = auth.credentials ? 'the registry refused the credentials' : auth.description
      return new RegistryAuthError(image, auth.registryHost, `${sent}: ${message}`)
    }
    // Not the engine's error as cause: nothing of the request travels with what we throw.
    return new ImageNotFoundError(image, message)
  }

  private connected(): DockerClients {
    if (!this.clients) throw new RuntimeNotConnectedError('DockerRuntime: call connect() before using the runtime')
    return this.clients
  }
}

/** A pull whose progress stream reported an error (the HTTP status was already 200). */
class PullFailedError extends Error {
  override name = 'PullFailedError'
}

function followPull(client: Docker, progress: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    client.modem.followProgress(progress, (error, messages: { error?: string }[]) => {
      if (error) return reject(error)
      const failure = messages.find((message) => message.error)
      if (failure?.error) return reject(new PullFailedError(failure.error))
      resolve()
    })
  })
}

