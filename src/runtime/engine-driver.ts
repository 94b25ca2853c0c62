// What the two Docker drivers share, the container runtime (docker-runtime.ts) and the swarm
// runtime (src/swarm/docker-swarm-runtime.ts): one engine address, dockerode clients made
// for it, the unversioned handshake, and every failed call translated into our errors.
import Docker from 'dockerode'
import { Agent } from 'node:http'
import { inspect } from 'node:util'
import { RuntimeUnavailableError } from './container-runtime.js'
import { describeEndpoint, parseDockerHost, type DockerEndpoint, type EngineVersion } from './docker-connection.js'
import { driverError, engineMessageOf } from './docker-errors.js'

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

export abstract class EngineDriver {
  protected readonly endpoint: DockerEndpoint
  protected readonly requestTimeoutMs: number

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
