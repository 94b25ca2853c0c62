// `GET /containers/{id}/stats?stream=false&one-shot=true` without dockerode: the metrics
// sampler makes one per running plugin every interval (400 a minute at 200 plugins), the
// one Docker call an idle manager repeats. Through docker-modem each call built its request
// (util.inspect of the options included), opened a new connection to the engine and parsed
// the answer through node:http's streams: about 1 ms of CPU per call here, against about
// 0.15 ms for the same request written to a kept-alive socket and its answer framed by hand
// (http1-response.ts). Every other Docker call still goes through dockerode.
//
// Sockets are kept between rounds (at most maxIdleSockets, each closed after idleSocketMs
// unused, never keeping the process alive). A kept socket the engine closed just as it is
// reused fails before any answer arrives; such a call is retried once on a new connection
// within the same deadline.
import { connect, type Socket } from 'node:net'
import { Http1ResponseReader, timeoutError, type Http1Response } from '../util/http1-response.js'
import type { DockerEndpoint } from './docker-connection.js'
import type { DockerStats } from './docker-mapping.js'

export interface EngineStatsReaderOptions {
  endpoint: DockerEndpoint
  /** The pinned API version, e.g. "1.41". */
  apiVersion: string
  /** Limit of one call, connect to the last byte. */
  timeoutMs: number
  /** Sockets kept for the next call. Default 32 (the metrics sampler's calls in flight). */
  maxIdleSockets?: number
  /**
   * How long a kept socket may wait for its next call. Default 60 s: longer than the default
   * 30 s metrics interval, or no socket would last from one round to the next.
   */
  idleSocketMs?: number
}

/** The engine answered with an error status: `statusCode` and `json` as docker-modem's errors carry them (docker-errors.ts reads both). */
export class EngineHttpError extends Error {
  override name = 'EngineHttpError'
  constructor(
    readonly statusCode: number,
    readonly json: { message: string },
  ) {
    super(`(HTTP code ${statusCode}) ${json.message}`)
  }
}

/** Errors of a kept socket the engine closed as we reused it. */
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE'])

export class EngineStatsReader {
  private readonly idle: Socket[] = []
  /** What each idle socket listens for while it waits, to take off when it is reused. */
  private readonly idleListeners = new Map<Socket, () => void>()
  private readonly maxIdleSockets: number
  private readonly idleSocketMs: number
  private closed = false

  constructor(private readonly options: EngineStatsReaderOptions) {
    this.maxIdleSockets = options.maxIdleSockets ?? 32
    this.idleSocketMs = options.idleSocketMs ?? 60_000
  }

  /** One read of a container's counters; rejects with EngineHttpError on an error status. */
  async read(containerId: string): Promise<DockerStats> {
    const path = `/v${this.options.apiVersion}/containers/${encodeURIComponent(containerId)}/stats?stream=false&one-shot=true`
    const request = `GET ${path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: flowforge-plugin-manager\r\n\r\n`
    const response = await this.send(request, performance.now() + this.options.timeoutMs, true)
    const json = parseJson(response.body)
    if (response.statusCode < 200 || response.statusCode >= 300) {
      const message = (json as { message?: unknown } | undefined)?.message
      throw new EngineHttpError(response.statusCode, { message: typeof message === 'string' ? message : response.body.toString('utf8', 0, 200).trim() })
    }
    if (typeof json !== 'object' || json === null) throw new Error('the engine answered stats without a JSON object')
    return json as DockerStats
  }

  /** Sockets open and idle now. For tests. */
  idleSockets(): number {
    return this.idle.length
  }

  /** Closes the kept sockets; calls in flight finish and close theirs. */
  close(): void {
    this.closed = true
    for (const socket of this.idle.splice(0)) this.forget(socket).destroy()
  }

  private send(request: string, deadline: number, mayRetry: boolean): Promise<Http1Response> {
    const reused = this.take()
    const socket = reused ?? this.open()
    return new Promise((resolve, reject) => {
      const reader = new Http1ResponseReader()
      const timer = setTimeout(() => fail(timeoutError(this.options.timeoutMs)), Math.max(0, deadline - performance.now()))
      const cleanup = () => {
        clearTimeout(timer)
        socket.off('data', onData).off('end', onEnd).off('error', fail).off('close', onClose)
      }
      const finish = (response: Http1Response) => {
        cleanup()
        if (response.reusable) this.keep(socket)
        else socket.destroy()
        resolve(response)
      }
      function fail(error: Error & { code?: string }): void {
        cleanup()
        socket.destroy()
        const stale = reused !== undefined && !reader.started && STALE_SOCKET_CODES.has(error.code ?? '')
        if (stale && mayRetry && performance.now() < deadline) resolve(retry())
        else reject(error)
      }
      const retry = () => this.send(request, deadline, false)
      const onData = (chunk: Buffer) => {
        let response: Http1Response | undefined
        try {
          response = reader.push(chunk)
        } catch (error) {
          return fail(error as Error)
        }
        if (response) finish(response)
      }
      const onEnd = () => {
        try {
          finish(reader.end())
        } catch (error) {
          fail(error as Error)
        }
      }
      const onClose = () => fail(Object.assign(new Error('the engine closed the connection'), { code: 'ECONNRESET' }))
      socket.on('data', onData).on('end', onEnd).on('error', fail).on('close', onClose)
      socket.write(request)
    })
  }

  private open(): Socket {
    const { endpoint } = this.options
    return endpoint.kind === 'socket' ? connect({ path: endpoint.socketPath }) : connect({ host: endpoint.host, port: endpoint.port, noDelay: true })
  }

  /** An idle socket, taken out of the pool, or undefined. */
  private take(): Socket | undefined {
    const socket = this.idle.pop()
    if (!socket) return undefined
    this.forget(socket)
    socket.ref()
    socket.setTimeout(0)
    return socket
  }

  private keep(socket: Socket): void {
    if (this.closed || this.idle.length >= this.maxIdleSockets || socket.destroyed) {
      socket.destroy()
      return
    }
    // Whatever happens to an idle socket (the engine closes it, sends something unasked, or
    // it waits too long) ends it.
    const drop = () => {
      const index = this.idle.indexOf(socket)
      if (index >= 0) this.idle.splice(index, 1)
      this.forget(socket).destroy()
    }
    this.idleListeners.set(socket, drop)
    socket.on('data', drop).on('end', drop).on('error', drop).on('close', drop).on('timeout', drop)
    socket.setTimeout(this.idleSocketMs)
    // A kept socket never holds the process open.
    socket.unref()
    this.idle.push(socket)
  }

  private forget(socket: Socket): Socket {
    const drop = this.idleListeners.get(socket)
    if (drop) {
      socket.off('data', drop).off('end', drop).off('error', drop).off('close', drop).off('timeout', drop)
      this.idleListeners.delete(socket)
    }
    return socket
  }
}

/** The body as JSON, or undefined when it is none (empty, or an error page): the caller says what it expected. */
function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (error) {
    if (error instanceof SyntaxError) return undefined
    throw error
  }
}
