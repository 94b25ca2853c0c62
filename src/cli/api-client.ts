// forgectl's HTTP client for the daemon's API (global fetch). Every failure becomes one
// readable line: the API's error message with the field paths of its details, or, when the
// daemon cannot be reached, the URL and why. Every string it hands on, answers, streams and
// errors alike, is terminal-safe (terminal-text.ts): what the server says is never obeyed by
// the operator's terminal.
import type { ClientConfig } from '../config.js'
import { CliError, InterruptedError } from './cli-errors.js'
import { oneLine } from './output.js'
import type { PluginEvent, PluginObject, PluginRevisionObject } from './plugin-object.js'
import { readServerSentEvents, type SseMessage } from './sse.js'
import { terminalSafe, terminalSafeValue } from './terminal-text.js'

export interface ErrorDetail {
  field: string
  message: string
}

/** The API answered with an error status; `message` is the whole line to print. */
export class ApiRequestError extends CliError {
  override name = 'ApiRequestError'
  constructor(
    readonly status: number,
    readonly code: string,
    readonly apiMessage: string,
    readonly details: ErrorDetail[],
  ) {
    super(describeApiError(code, apiMessage, details))
  }
}

/** Nothing answered at the URL (refused, unknown host, timed out). */
export class ApiUnreachableError extends CliError {
  override name = 'ApiUnreachableError'
}

export interface ApiClientOptions {
  /** Aborts every request and stream (Ctrl-C). Default none. */
  signal?: AbortSignal
  /** Limit for each request that is not a stream. Default 30 s. */
  requestTimeoutMs?: number
}

type Query = Record<string, string | number | boolean | undefined>

interface RequestOptions {
  query?: Query
  body?: unknown
  /** A stream is open as long as the server sends: no request timeout. */
  stream?: boolean
}

export class ApiClient {
  private readonly requestTimeoutMs: number

  constructor(
    private readonly config: ClientConfig,
    private readonly options: ApiClientOptions = {},
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000
  }

  get baseUrl(): string {
    return this.config.url
  }

  async listPlugins(): Promise<PluginObject[]> {
    const response = await this.send('GET', '/api/v1/plugins')
    return ((await response.json()) as { items: PluginObject[] }).items
  }

  async getPlugin(name: string): Promise<PluginObject> {
    return (await this.send('GET', pluginPath(name))).json() as Promise<PluginObject>
  }

  /** The plugin, or undefined when the API says 404: "not found" is an answer here, not a failure. */
  async findPlugin(name: string): Promise<PluginObject | undefined> {
    try {
      return await this.getPlugin(name)
    } catch (error) {
      if (error instanceof ApiRequestError && error.status === 404) return undefined
      throw error
    }
  }

  /** PUT: 201 when created, 200 when replaced (or left as it was). */
  async putPlugin(name: string, document: unknown): Promise<{ status: number; plugin: PluginObject }> {
    const response = await this.send('PUT', pluginPath(name), { body: document })
    return { status: response.status, plugin: (await response.json()) as PluginObject }
  }

  /** With `purgeVolumes`, the plugin's named volumes go too. */
  async deletePlugin(name: string, options: { purgeVolumes?: boolean } = {}): Promise<PluginObject> {
    const query = options.purgeVolumes ? { purge: 'true' } : {}
    return (await this.send('DELETE', pluginPath(name), { query })).json() as Promise<PluginObject>
  }

  /** Newest first. */
  async listRevisions(name: string): Promise<PluginRevisionObject[]> {
    const response = await this.send('GET', `${pluginPath(name)}/revisions`)
    return ((await response.json()) as { items: PluginRevisionObject[] }).items
  }

  /** Writes an earlier revision's spec as a new generation (default: the one before the current). */
  async undoRollout(name: string, toRevision?: number): Promise<PluginObject> {
    const body = toRevision === undefined ? {} : { toRevision }
    return (await this.send('POST', `${pluginPath(name)}/rollout/undo`, { body })).json() as Promise<PluginObject>
  }

  async retryRollout(name: string): Promise<PluginObject> {
    return (await this.send('POST', `${pluginPath(name)}/rollout/retry`)).json() as Promise<PluginObject>
  }

  async pluginAction(name: string, action: 'start' | 'stop' | 'restart'): Promise<PluginObject> {
    return (await this.send('POST', `${pluginPath(name)}/${action}`)).json() as Promise<PluginObject>
  }

  async pluginLogs(name: string, tail: number | undefined): Promise<string> {
    return (await this.send('GET', `${pluginPath(name)}/logs`, { query: { tail } })).text()
  }

  /** The newest `limit` events (of one plugin, when named), newest first as the API gives them. */
  async listEvents(pluginName: string | undefined, limit: number): Promise<PluginEvent[]> {
    const path = pluginName === undefined ? '/api/v1/events' : `${pluginPath(pluginName)}/events`
    const response = await this.send('GET', path, { query: { limit } })
    return ((await response.json()) as { items: PluginEvent[] }).items
  }

  /** Opens a server-sent-events stream; resolves once the server answered (so it is subscribed). */
  async openStream(path: string, query: Query = {}): Promise<AsyncGenerator<SseMessage>> {
    const response = await this.send('GET', path, { query, stream: true })
    if (!response.body) throw new CliError(`the FlowForge API at ${this.baseUrl} sent an empty stream for ${path}`)
    return this.translateStreamErrors(readServerSentEvents(response.body))
  }

  /** The live event stream, of one plugin when named. */
  openEventStream(pluginName?: string): Promise<AsyncGenerator<SseMessage>> {
    return this.openStream('/api/v1/events/stream', { plugin: pluginName })
  }

  private async send(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: options.stream ? 'text/event-stream' : 'application/json' }
    if (this.config.token) headers.authorization = `Bearer ${this.config.token}`
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    const signals = [this.options.signal, options.stream ? undefined : AbortSignal.timeout(this.requestTimeoutMs)].filter(
      (signal): signal is AbortSignal => signal !== undefined,
    )
    let response: Response
    try {
      response = await fetch(this.urlOf(path, options.query), {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal: AbortSignal.any(signals),
      })
    } catch (error) {
      throw this.transportError(error)
    }
    if (response.ok) return terminalSafeResponse(response)
    throw await readApiError(response, this.baseUrl)
  }

  private async *translateStreamErrors(messages: AsyncGenerator<SseMessage>): AsyncGenerator<SseMessage> {
    try {
      for await (const message of messages) yield terminalSafeValue(message)
    } catch (error) {
      throw this.transportError(error)
    }
  }

  private urlOf(path: string, query: Query = {}): string {
    const url = new URL(this.config.url + path)
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(key, String(value))
    }
    return url.toString()
  }

  /** fetch failed before (or while) an answer came: interrupted, timed out, or nobody there. */
  private transportError(error: unknown): CliError {
    if (error instanceof CliError) return error
    if (this.options.signal?.aborted) return new InterruptedError()
    if (error instanceof Error && error.name === 'TimeoutError') {
      return new ApiUnreachableError(`the FlowForge API at ${this.baseUrl} did not answer within ${this.requestTimeoutMs / 1000} s`)
    }
    return new ApiUnreachableError(`cannot reach the FlowForge API at ${this.baseUrl} (${connectionProblem(error)}): is the daemon running? set FORGE_URL`)
  }
}

/** The answer, with every string its json() and text() give made safe to print (terminal-text.ts). */
function terminalSafeResponse(response: Response): Response {
  return new Proxy(response, {
    get(target, property) {
      if (property === 'json') return async () => terminalSafeValue((await target.json()) as unknown)
      if (property === 'text') return async () => terminalSafe(await target.text())
      const value = Reflect.get(target, property, target) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

function pluginPath(name: string): string {
  return `/api/v1/plugins/${encodeURIComponent(name)}`
}

/** The API's error shape {error: {code, message, details}}; a proxy's page or bare status otherwise. */
async function readApiError(response: Response, baseUrl: string): Promise<CliError> {
  const text = terminalSafe(await response.text().catch((error: unknown) => `(the answer could not be read: ${String(error)})`))
  const body = parseJson(text)
  const error = isRecord(body) && isRecord(body.error) ? body.error : undefined
  if (error && typeof error.message === 'string') {
    const details = Array.isArray(error.details) ? error.details.filter(isErrorDetail) : []
    return new ApiRequestError(response.status, typeof error.code === 'string' ? error.code : 'error', error.message, details)
  }
  const statusLine = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`
  return new ApiRequestError(response.status, 'http_error', `${statusLine} from ${baseUrl}, which does not look like the FlowForge API`, [])
}

function describeApiError(code: string, message: string, details: ErrorDetail[]): string {
  const fields = details.map((detail) => `${detail.field}: ${detail.message}`).join('; ')
  const text = fields ? `${message}: ${fields}` : message
  if (code === 'unauthorized') return oneLine(`unauthorized: ${text} (set FORGE_API_TOKEN to the daemon's token)`)
  return oneLine(text)
}

// Node's fetch reports "fetch failed" with the socket error as its cause, or an AggregateError
// of one error per address tried (localhost is ::1 and 127.0.0.1).
const CONNECTION_PROBLEMS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  ECONNRESET: 'connection reset',
  UND_ERR_SOCKET: 'connection closed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPROTO: 'TLS or protocol error',
}

function connectionProblem(error: unknown): string {
  const code = findErrorCode(error)
  if (code !== undefined) return CONNECTION_PROBLEMS[code] ?? code
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error
  return oneLine(cause instanceof Error ? cause.message : String(cause))
}

function findErrorCode(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') return code
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const innerCode = findErrorCode(inner)
      if (innerCode !== undefined) return innerCode
    }
  }
  return findErrorCode(error.cause)
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    // Not JSON: the caller reports the status instead.
    return undefined
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isErrorDetail(value: unknown): value is ErrorDetail {
  return isRecord(value) && typeof value.field === 'string' && typeof value.message === 'string'
}
