// HTTP GETs of plugin health URLs with node:http rather than fetch: fetch (undici, WHATWG
// streams, an AbortSignal per call) cost about twice the CPU of node:http per probe, and
// health probes were most of an idle manager's CPU at 200 plugins.
//
// The health monitor keeps connections alive between rounds, one pool per container id:
// a socket opened to one container is never used for another, even one recreated on the
// same host port, so no answer can come from a container that is gone. A container that
// goes away closes its end (its process, or docker-proxy, exits), and the agent drops the
// socket; a socket that the plugin closes just as it is reused fails, and the probe is
// retried once on a new connection within the same timeout. Plugins whose server closes
// idle connections sooner than the health interval (busybox httpd closes after every
// answer, Node's http server after 5 s) get a new connection each round, as before.
import { Agent, request, type ClientRequestArgs } from 'node:http'

/**
 * An HTTP GET that resolves to the status code once the headers arrive (redirects are not
 * followed), and rejects when no answer comes within timeoutMs. `connection` (a container
 * id) names who may share a kept-alive socket; without it the probe uses a new connection.
 * Injected, so tests need no server.
 */
export type HttpProbe = (url: string, timeoutMs: number, connection?: string) => Promise<number>

interface ProbeRequestArgs extends ClientRequestArgs {
  connection?: string
}

/** Node's agent pools sockets by host and port; this one by container id as well. */
class PoolPerConnection extends Agent {
  override getName(options?: ProbeRequestArgs): string {
    return `${super.getName(options)}|${options?.connection ?? ''}`
  }
}

/** No socket outlives its request: for probes that must not share one (rollouts, unknown containers). */
const FRESH_CONNECTIONS = new Agent({ keepAlive: false })

/** One GET, new connection, no reuse. */
export const freshConnectionProbe: HttpProbe = (url, timeoutMs) => statusOf(url, timeoutMs, FRESH_CONNECTIONS)

export interface KeepAliveHttpProbeOptions {
  /**
   * How long a socket may wait unused for the next probe of its container. Default 60 s
   * (twice the default HEALTH_INTERVAL): longer than an interval, or no socket would last
   * until the next round.
   */
  idleSocketMs?: number
}

/**
 * Health probes over kept-alive sockets. Bounded: at most one socket per container (its
 * probes run one at a time), and retainOnly closes those of containers not probed in the
 * last round; close() ends them all.
 */
export class KeepAliveHttpProbe {
  private readonly agent: PoolPerConnection

  constructor(options: KeepAliveHttpProbeOptions = {}) {
    // timeout: an idle pooled socket is destroyed after it (the agent's own handling).
    this.agent = new PoolPerConnection({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1, timeout: options.idleSocketMs ?? 60_000 })
  }

  readonly get: HttpProbe = (url, timeoutMs, connection) => {
    if (connection === undefined) return freshConnectionProbe(url, timeoutMs)
    return statusOf(url, timeoutMs, this.agent, connection)
  }

  /** Closes the idle sockets of every container not named: they were not probed this round. */
  retainOnly(connections: ReadonlySet<string>): void {
    for (const [name, sockets] of Object.entries(this.agent.freeSockets)) {
      const connection = name.slice(name.lastIndexOf('|') + 1)
      if (connections.has(connection)) continue
      for (const socket of sockets ?? []) socket.destroy()
    }
  }

  /** How many sockets are open, idle or in use (a destroyed one leaves its pool a tick later). For tests. */
  openSockets(): number {
    const pools = [...Object.values(this.agent.freeSockets), ...Object.values(this.agent.sockets)]
    return pools.reduce((sum, sockets) => sum + (sockets ?? []).filter((socket) => !socket.destroyed).length, 0)
  }

  close(): void {
    this.agent.destroy()
  }
}

/** Errors of a kept-alive socket the server closed as we reused it: worth one retry on a new one. */
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE'])

/** The probe's time limit is real time (network I/O), not the injected clock's. */
function statusOf(url: string, timeoutMs: number, agent: Agent, connection?: string, retryOf?: { deadline: number }): Promise<number> {
  const deadline = retryOf?.deadline ?? performance.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const args: ProbeRequestArgs = { method: 'GET', agent, ...(connection !== undefined ? { connection } : {}) }
    const probe = request(url, args)
    let answered = false
    // One deadline for connect, queueing, headers and the body (the socket goes back to the
    // pool only once the body is read): a slow or endless body is cut off, as fetch's
    // AbortSignal.timeout did. A retry keeps the first attempt's deadline.
    const timer = setTimeout(() => probe.destroy(timeoutError(timeoutMs)), Math.max(0, deadline - performance.now()))
    probe.once('response', (response) => {
      answered = true
      resolve(response.statusCode ?? 0)
      const done = () => clearTimeout(timer)
      response.once('end', done).once('close', done).once('error', done)
      response.resume()
    })
    probe.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      if (answered) return
      const stale = !retryOf && probe.reusedSocket && STALE_SOCKET_CODES.has(error.code ?? '') && performance.now() < deadline
      if (stale) resolve(statusOf(url, timeoutMs, agent, connection, { deadline }))
      else reject(error)
    })
    probe.end()
  })
}

function timeoutError(timeoutMs: number): Error {
  const error = new Error(`no answer within ${timeoutMs} ms`)
  error.name = 'TimeoutError'
  return error
}
