// ANY /plugins/:name/* — a reverse proxy to the plugin's published port, and the request
// counters it keeps for plugin_metrics (written in batches, not one row per request).
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as NodeReadableStream } from 'node:stream/web'
import type { HttpBindings } from '@hono/node-server'
import { Hono, type Context } from 'hono'
import type { PluginStore } from '../db/plugin-store.js'
import type { Logger } from '../logger.js'
import type { Clock } from '../util/clock.js'
import { Periodic } from '../util/periodic.js'
import type { ApiDependencies, ProxyUsageRecorder, Upstream } from './deps.js'
import { ApiError } from './errors.js'

export interface ProxyRouteOptions {
  /** Upstream inactivity timeout: waiting for the answer, and between body chunks. Default 30_000 ms. */
  timeoutMs?: number
}

/** Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])
/** Never forwarded upstream: the FlowForge token must not reach a plugin; Host is the upstream's own. */
const NOT_FOR_PLUGINS = new Set(['authorization', 'host'])
/** Statuses whose responses have no body; a Response with one would throw. */
const BODYLESS_STATUSES = new Set([101, 204, 205, 304])

export function proxyRoutes(deps: ApiDependencies, options: ProxyRouteOptions = {}): Hono {
  const timeoutMs = options.timeoutMs ?? 30_000
  const app = new Hono()

  app.all('/plugins/:name/*', async (c) => {
    const pluginName = c.req.param('name')
    const plugin = await deps.store.getPlugin(pluginName)
    if (!plugin) throw new ApiError(404, 'not_found', `plugin ${pluginName} not found`)
    if (plugin.status !== 'running' || plugin.hostPort === null) {
      throw new ApiError(503, 'plugin_not_running', `plugin ${pluginName} is ${plugin.status}, not running`, [], { 'Retry-After': '5' })
    }
    const candidates = deps.upstreams ? rotate(await deps.upstreams(plugin)) : [{ host: deps.pluginHost, port: plugin.hostPort }]
    if (candidates.length === 0) {
      throw new ApiError(503, 'plugin_not_running', `plugin ${pluginName} has no task running on a reachable node`, [], { 'Retry-After': '5' })
    }
    // Counted until the upstream answer has been passed on whole (or the request failed).
    const ended = deps.proxyTraffic?.begin(plugin.hostPort) ?? (() => undefined)
    const startedAt = deps.clock.now()
    // Response time is time to the upstream's answer: a streamed body may run for as long as it likes.
    const record = (error: boolean) => deps.proxyUsage.record(plugin.id, { durationMs: deps.clock.now() - startedAt, error })
    let upstream: IncomingMessage
    try {
      upstream = await sendToFirstAnswering(candidates, c, timeoutMs)
    } catch (error) {
      ended()
      record(true)
      if (error instanceof UpstreamTimeoutError) throw new ApiError(504, 'upstream_timeout', `plugin ${pluginName} did not answer within ${timeoutMs} ms`)
      deps.logger.warn({ err: error, plugin: pluginName, hostPort: plugin.hostPort }, 'proxy: the plugin is not reachable')
      throw new ApiError(502, 'bad_gateway', `plugin ${pluginName} is not reachable on port ${plugin.hostPort}`)
    }
    upstream.once('close', ended)
    const status = upstream.statusCode ?? 502
    record(status >= 500)
    if (status < 200 || status > 599) {
      upstream.destroy()
      throw new ApiError(502, 'bad_gateway', `plugin ${pluginName} answered with status ${status}`)
    }
    const body = BODYLESS_STATUSES.has(status) || c.req.method === 'HEAD' ? null : (Readable.toWeb(upstream) as ReadableStream<Uint8Array>)
    if (body === null) upstream.resume()
    return new Response(body, { status, headers: responseHeaders(upstream) })
  })

  return app
}

/** The plugin-side URL: the path after /plugins/<name>, still percent-encoded, and the query. */
function upstreamUrl(pluginHost: string, hostPort: number, requestUrl: string): URL {
  const incoming = new URL(requestUrl)
  const rest = incoming.pathname.split('/').slice(3).join('/')
  const host = pluginHost.includes(':') ? `[${pluginHost}]` : pluginHost
  return new URL(`http://${host}:${hostPort}/${rest}${incoming.search}`)
}

function forwardedHeaders(c: Context): OutgoingHttpHeaders {
  const incoming = c.req.raw.headers
  const dropped = connectionListed(incoming.get('connection'))
  const headers: OutgoingHttpHeaders = {}
  for (const [name, value] of incoming) {
    if (HOP_BY_HOP.has(name) || NOT_FOR_PLUGINS.has(name) || dropped.has(name)) continue
    headers[name] = value
  }
  const clientAddress = (c.env as Partial<HttpBindings> | undefined)?.incoming?.socket.remoteAddress
  const chain = incoming.get('x-forwarded-for')
  if (clientAddress) headers['x-forwarded-for'] = chain ? `${chain}, ${clientAddress}` : clientAddress
  // What this hop saw; a client-supplied value would be unverified.
  const url = new URL(c.req.url)
  headers['x-forwarded-proto'] = url.protocol.replace(/:$/, '')
  headers['x-forwarded-host'] = incoming.get('host') ?? url.host
  return headers
}

/**
 * A plugin's page is served from the API's own origin, so it is sandboxed: its scripts run
 * in an opaque origin (no allow-same-origin), cannot read the API's answers or storage, and
 * their requests to /api carry `Origin: null`, which browser-guard.ts refuses. Appended, so a
 * policy of the plugin's own still applies too and cannot lift the sandbox.
 */
export const PROXIED_CONTENT_POLICY = 'sandbox allow-scripts allow-forms allow-popups allow-popups-to-escape-sandbox allow-modals allow-downloads'

function responseHeaders(upstream: IncomingMessage): Headers {
  const dropped = connectionListed(upstream.headers.connection)
  const headers = new Headers()
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || dropped.has(name)) continue
    for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item)
  }
  headers.append('Content-Security-Policy', PROXIED_CONTENT_POLICY)
  headers.set('X-Content-Type-Options', 'nosniff')
  return headers
}

/** Headers named in Connection are hop-by-hop too. */
function connectionListed(connection: string | null | undefined): Set<string> {
  return new Set((connection ?? '').split(',').map((name) => name.trim().toLowerCase()).filter(Boolean))
}

class UpstreamTimeoutError extends Error {
  override name = 'UpstreamTimeoutError'
}

/** Connection errors that mean nothing was sent: the next address may be tried. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN'])
let rotation = 0

/** The addresses, starting at the next one in turn: requests spread over a plugin's tasks. */
function rotate(candidates: Upstream[]): Upstream[] {
  if (candidates.length < 2) return candidates
  const start = rotation++ % candidates.length
  return [...candidates.slice(start), ...candidates.slice(0, start)]
}

/**
 * The request to the first address that takes the connection. Only a request without a body
 * moves on to the next address (a body is read as it is sent, and cannot be sent twice).
 */
async function sendToFirstAnswering(candidates: Upstream[], c: Context, timeoutMs: number): Promise<IncomingMessage> {
  const retriable = c.req.raw.body === null
  for (const [index, candidate] of candidates.entries()) {
    try {
      return await sendUpstream(upstreamUrl(candidate.host, candidate.port, c.req.url), c, forwardedHeaders(c), timeoutMs)
    } catch (error) {
      const code = (error as { code?: string }).code
      if (!retriable || index === candidates.length - 1 || code === undefined || !NOT_CONNECTED.has(code)) throw error
    }
  }
  throw new Error('no upstream address')
}

/**
 * node:http rather than fetch: fetch decodes gzip bodies but keeps Content-Encoding, and
 * forbids some headers a proxy must pass. Bodies stream both ways; the client going away
 * (the request's signal) cancels the upstream request.
 */
function sendUpstream(target: URL, c: Context, headers: OutgoingHttpHeaders, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const upstreamRequest = httpRequest(target, { method: c.req.method, headers, timeout: timeoutMs, signal: c.req.raw.signal }, resolve)
    upstreamRequest.on('timeout', () => upstreamRequest.destroy(new UpstreamTimeoutError(`no answer within ${timeoutMs} ms`)))
    upstreamRequest.on('error', reject)
    const body = c.req.raw.body
    if (!body) {
      upstreamRequest.end()
      return
    }
    pipeline(Readable.fromWeb(body as NodeReadableStream<Uint8Array>), upstreamRequest).catch(reject)
  })
}

export interface ProxyUsageOptions {
  store: Pick<PluginStore, 'recordMetricsBatch' | 'listPlugins'>
  clock: Clock
  logger: Logger
  /** How often the counters are written to plugin_metrics (USAGE_FLUSH_INTERVAL). Default 60_000 ms. */
  flushIntervalMs?: number
}

interface UsageCounts {
  requests: number
  errors: number
  totalMs: number
}

/** Request counters per plugin, written as one plugin_metrics row per plugin per flush. */
export class ProxyUsage implements ProxyUsageRecorder {
  private pending = new Map<string, UsageCounts>()
  private readonly allTime = { requests: 0, errors: 0 }
  private readonly periodic: Periodic

  constructor(private readonly options: ProxyUsageOptions) {
    this.periodic = new Periodic(
      { clock: options.clock, intervalMs: options.flushIntervalMs ?? 60_000, logger: options.logger, name: 'proxy usage flush' },
      () => this.flush(),
    )
  }

  record(pluginId: string, sample: { durationMs: number; error: boolean }): void {
    const counts = this.pending.get(pluginId) ?? { requests: 0, errors: 0, totalMs: 0 }
    counts.requests += 1
    counts.totalMs += Math.max(0, sample.durationMs)
    if (sample.error) counts.errors += 1
    this.pending.set(pluginId, counts)
    this.allTime.requests += 1
    if (sample.error) this.allTime.errors += 1
  }

  totals(): { requests: number; errors: number } {
    return { ...this.allTime }
  }

  start(): void {
    this.periodic.start()
  }

  /** Stops the timer and writes what is left. Never throws: shutdown goes on. */
  async stop(): Promise<void> {
    await this.periodic.stop()
    try {
      await this.flush()
    } catch (error) {
      this.options.logger.warn({ err: error }, 'proxy usage counters could not be written at shutdown')
    }
  }

  /**
   * Writes the counts since the last flush in one statement; returns how many plugins got
   * a row. On failure the counts are kept for the next flush.
   */
  async flush(): Promise<number> {
    const batch = [...this.pending].filter(([, counts]) => counts.requests > 0)
    this.pending = new Map()
    if (batch.length === 0) return 0
    try {
      return await this.write(batch)
    } catch (error) {
      for (const [pluginId, counts] of batch) this.restore(pluginId, counts)
      throw error
    }
  }

  private async write(batch: [string, UsageCounts][]): Promise<number> {
    const recordedAt = new Date(this.options.clock.now())
    try {
      await this.options.store.recordMetricsBatch(batch.map((entry) => sampleOf(entry, recordedAt)))
      return batch.length
    } catch (error) {
      // A plugin deleted since its requests (by whatever means) fails the whole batch on the
      // foreign key: leave such plugins out and try once more.
      const existing = new Set((await this.options.store.listPlugins()).map((plugin) => plugin.id))
      const remaining = batch.filter(([pluginId]) => existing.has(pluginId))
      if (remaining.length === batch.length) throw error
      if (remaining.length > 0) await this.options.store.recordMetricsBatch(remaining.map((entry) => sampleOf(entry, recordedAt)))
      return remaining.length
    }
  }

  private restore(pluginId: string, counts: UsageCounts): void {
    const current = this.pending.get(pluginId) ?? { requests: 0, errors: 0, totalMs: 0 }
    this.pending.set(pluginId, {
      requests: current.requests + counts.requests,
      errors: current.errors + counts.errors,
      totalMs: current.totalMs + counts.totalMs,
    })
  }
}

function sampleOf([pluginId, counts]: [string, UsageCounts], recordedAt: Date) {
  return {
    pluginId,
    sample: {
      requestCount: counts.requests,
      errorCount: counts.errors,
      // BIGINT column; the average keeps three decimals (DECIMAL(12, 3)).
      totalResponseTimeMs: Math.round(counts.totalMs),
      avgResponseTimeMs: Math.round((counts.totalMs / counts.requests) * 1000) / 1000,
      recordedAt,
    },
  }
}
