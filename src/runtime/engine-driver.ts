// What the two Docker drivers share, the container runtime (docker-runtime.ts) and the swarm
// runtime (src/swarm/docker-swarm-runtime.ts): one engine address, dockerode clients made
// for it, the unversioned handshake, and every failed call translated into our errors.
import Docker from 'dockerode'
import { Agent } from 'node:http'
import type { Readable } from 'node:stream'
import { inspect } from 'node:util'
import { ContainerNotFoundError, RuntimeUnavailableError } from './container-runtime.js'
import { describeEndpoint, parseDockerHost, type DockerEndpoint, type EngineVersion } from './docker-connection.js'
import { driverError, engineMessageOf, statusCodeOf } from './docker-errors.js'
import { demultiplexDockerLogs, LogDemultiplexer } from './docker-streams.js'

/**
 * docker-modem runs `util.inspect(options, { showHidden: true, depth: null })` on every
 * request's options, agent included, even with its debug output off. Of an agent with
 * sockets in flight that is about 9 ms of CPU per call (0.6 ms with this override, measured
 * with 4 calls in flight against a stand-in socket).
 */
class QuietAgent extends Agent {
  [inspect.custom](): string {
    return 'Agent { keepAlive: false }'
  }
}

/**
 * A connection per call, not Node's global agent. That agent keeps idle sockets for 5 s, and
 * on Node 24 a call with a timeout (docker-modem's) that reuses one just as those 5 s run out
 * fails with "socket hang up": the event stream's ping every 5 s did, about one ping in three.
 */
export const ONE_CONNECTION_PER_CALL: Agent = new QuietAgent({ keepAlive: false })

/** How long an early handshake's answer (preconnect) stands for the next connect(). */
const EARLY_HANDSHAKE_MAX_AGE_MS = 10_000

export abstract class EngineDriver {
  protected readonly endpoint: DockerEndpoint
  protected readonly requestTimeoutMs: number
  private early: { at: number; answer: Promise<unknown> } | undefined

  protected constructor(dockerHost: string, requestTimeoutMs: number | undefined) {
    this.endpoint = parseDockerHost(dockerHost)
    this.requestTimeoutMs = requestTimeoutMs ?? 10_000
  }

  /**
   * Ping and /version, unversioned (the version is what they find out), and whatever else
   * `more` asks of the same client before the engine counts as reached.
   */
  protected async handshake<T>(more: (client: Docker) => Promise<T>): Promise<{ engine: EngineVersion; extra: T }> {
    const bootstrap = this.makeClient(undefined, this.requestTimeoutMs)
    try {
      await bootstrap.ping()
      const engine = (await bootstrap.version()) as EngineVersion
      return { engine, extra: await more(bootstrap) }
    } catch (error) {
      throw new RuntimeUnavailableError(`Docker engine at ${this.where()} is not reachable: ${engineMessageOf(error)}`, { cause: error })
    }
  }

  /** The handshake, started now; the next handshakeOrEarly() takes its answer (preconnect). */
  protected startEarlyHandshake<T>(more: (client: Docker) => Promise<T>): void {
    const answer = this.handshake(more)
    // Read by the connect() that takes it; no one may be waiting yet.
    answer.catch(() => undefined)
    this.early = { at: Date.now(), answer }
  }

  /** An early handshake's answer when one was started in the last 10 s (taken once), else a new handshake. */
  protected handshakeOrEarly<T>(more: (client: Docker) => Promise<T>): Promise<{ engine: EngineVersion; extra: T }> {
    const early = this.early
    this.early = undefined
    if (early && Date.now() - early.at < EARLY_HANDSHAKE_MAX_AGE_MS) return early.answer as Promise<{ engine: EngineVersion; extra: T }>
    return this.handshake(more)
  }

  protected makeClient(apiVersion: string | undefined, timeout: number | undefined): Docker {
    // Explicit undefineds override what docker-modem would read from DOCKER_HOST,
    // DOCKER_CLIENT_TIMEOUT and friends: configuration comes from src/config.ts only.
    const version = apiVersion === undefined ? undefined : `v${apiVersion}`
    // docker-modem takes `agent` (its ConstructorOptions); dockerode's DockerOptions type leaves it out.
    const connection = { version, timeout, agent: ONE_CONNECTION_PER_CALL }
    if (this.endpoint.kind === 'socket') {
      return new Docker({ socketPath: this.endpoint.socketPath, host: undefined, port: undefined, ...connection })
    }
    return new Docker({ host: this.endpoint.host, port: this.endpoint.port, protocol: 'http', ...connection })
  }

  /**
   * The last `tail` lines of a logs endpoint, a container's (`/containers/ID/logs`) or a
   * service's (`/services/ID/logs`, every task's through the swarm manager), demultiplexed.
   * Raw bytes: dockerode would JSON-parse a body that happens to be JSON. A 404 is
   * ContainerNotFoundError.
   */
  protected async readLogs(client: Docker, path: string, what: string, tail: number): Promise<string> {
    try {
      const body = await this.dialLogs(client, path, { follow: false, tail })
      const chunks: Buffer[] = []
      for await (const chunk of body) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
      return demultiplexDockerLogs(Buffer.concat(chunks))
    } catch (error) {
      if (statusCodeOf(error) === 404) throw new ContainerNotFoundError(`no ${what}`, { cause: error })
      throw this.driverError(`read the logs of ${what}`, error)
    }
  }

  /**
   * The last `tail` lines, then what is written, as demultiplexed text chunks, until the
   * stream ends or `signal` aborts. Give it a client without a request timeout: docker-modem's
   * is an inactivity timeout and would end a quiet stream.
   */
  protected async *followLogStream(client: Docker, path: string, what: string, tail: number, signal: AbortSignal): AsyncIterable<string> {
    if (signal.aborted) return
    let body: Readable
    try {
      body = await this.dialLogs(client, path, { follow: true, tail, abortSignal: signal })
    } catch (error) {
      if (signal.aborted) return
      if (statusCodeOf(error) === 404) throw new ContainerNotFoundError(`no ${what}`, { cause: error })
      throw this.driverError(`follow the logs of ${what}`, error)
    }
    const demultiplexer = new LogDemultiplexer()
    try {
      for await (const chunk of body) {
        const text = demultiplexer.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
        if (text) yield text
      }
    } catch (error) {
      // Aborting destroys the request: the error it leaves behind is the expected end.
      if (signal.aborted) return
      throw this.driverError(`follow the logs of ${what}`, error)
    } finally {
      body.destroy()
    }
    const rest = demultiplexer.end()
    if (rest) yield rest
  }

  private dialLogs(client: Docker, path: string, options: { follow: boolean; tail: number; abortSignal?: AbortSignal }): Promise<Readable> {
    const { abortSignal, ...query } = options
    return new Promise((resolve, reject) => {
      const dialOptions = {
        path: `${path}?`,
        method: 'GET',
        isStream: true,
        ...(abortSignal ? { abortSignal } : {}),
        statusCodes: { 200: true, 404: 'no such container or service', 500: 'server error', 503: 'node is not part of a swarm' },
        options: { stdout: true, stderr: true, ...query },
      }
      client.modem.dial(dialOptions, (error, response) => (error ? reject(error) : resolve(response as Readable)))
    })
  }

  protected async call<T>(action: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request()
    } catch (error) {
      throw this.driverError(action, error)
    }
  }

  protected driverError(action: string, error: unknown): Error {
    return driverError(this.where(), action, error, this.requestTimeoutMs)
  }

  protected where(): string {
    return describeEndpoint(this.endpoint)
  }
}
