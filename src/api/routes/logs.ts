// GET /api/v1/plugins/:id/logs?tail=&follow= — a plugin container's stdout and stderr:
// the last lines as text, or (follow=true) those and every new line as server-sent events.
import { Hono } from 'hono'
import { streamSSE, type SSEStreamingApi } from 'hono/streaming'
import { ContainerNotFoundError, RuntimeUnavailableError, type ContainerRuntime } from '../../runtime/container-runtime.js'
import type { ApiDependencies, PluginLogSource } from '../deps.js'
import { ApiError } from '../errors.js'
import { QueryReader } from '../request.js'
import { DEFAULT_MAX_STREAMS, StreamLimit } from '../stream-limit.js'
import { startHeartbeat, untilAborted } from './stream.js'

export interface LogRouteOptions {
  /** SSE comment heartbeat interval while following. Default 15_000 ms. */
  heartbeatMs?: number
  /** The cap on live streams (a follow is one), shared with the event streams. Default: its own. */
  streams?: StreamLimit
}

export const DEFAULT_TAIL = 100
/**
 * A non-follow answer is read whole from Docker before it is sent, and Docker cuts lines at
 * 16 KiB: 1,000 lines is at most about 16 MiB per request.
 */
export const MAX_TAIL = 1_000
/** Non-follow log answers being read at once; more are refused with 503 rather than buffered. */
const MAX_CONCURRENT_LOG_READS = 4
const BOOLEAN_VALUES = ['true', 'false', '1', '0'] as const
/** Output without a newline for this long is sent as a line of its own rather than held without end. */
const MAX_LINE_CHARS = 64 * 1024

export function logRoutes(deps: ApiDependencies, options: LogRouteOptions = {}): Hono {
  const heartbeatMs = options.heartbeatMs ?? 15_000
  const streams = options.streams ?? new StreamLimit(DEFAULT_MAX_STREAMS)
  let readsInFlight = 0
  const app = new Hono()

  app.get('/api/v1/plugins/:id/logs', async (c) => {
    const query = new QueryReader(c)
    const tail = query.integer('tail', 0, MAX_TAIL) ?? DEFAULT_TAIL
    const followValue = query.one('follow', BOOLEAN_VALUES)
    query.done()
    const follow = followValue === 'true' || followValue === '1'
    const source = deps.pluginLogs ?? containerLogSource(deps.runtime)
    const { pluginName, containerId } = await containerOf(deps, source, c.req.param('id'))

    if (!follow) {
      if (readsInFlight >= MAX_CONCURRENT_LOG_READS) {
        throw new ApiError(503, 'too_many_log_reads', `${MAX_CONCURRENT_LOG_READS} log requests are being read already; try again in a moment`, [], { 'Retry-After': '2' })
      }
      readsInFlight += 1
      try {
        return c.text(await runtimeCall(pluginName, () => source.logs(containerId, { tail })))
      } finally {
        readsInFlight -= 1
      }
    }
    streams.check()
    // Checked before the stream opens, so a missing container is a 404 and not an error event.
    if (!(await runtimeCall(pluginName, () => source.exists(containerId)))) throw containerGone(pluginName)

    const releaseSlot = streams.take()
    return streamSSE(c, async (stream) => {
      const following = new AbortController()
      stream.onAbort(() => following.abort())
      const stopHeartbeat = startHeartbeat(stream, deps.clock, heartbeatMs)
      try {
        await relayLogLines(stream, source.followLogs(containerId, { tail, signal: following.signal }))
        if (!following.signal.aborted) await stream.writeSSE({ event: 'end', data: `the container of ${pluginName} stopped` })
      } catch (error) {
        if (following.signal.aborted) return
        deps.logger.warn({ err: error, plugin: pluginName }, 'following the logs of a plugin failed')
        await stream.writeSSE({ event: 'error', data: error instanceof Error ? error.message : String(error) })
      } finally {
        stopHeartbeat()
        following.abort()
        releaseSlot()
      }
    })
  })

  return app
}

/** A plugin's container's logs through a container runtime, used as it is (connected). */
export function containerLogSource(runtime: ContainerRuntime): PluginLogSource {
  return {
    idOf: (plugin) => plugin.containerId,
    logs: (id, options) => runtime.logs(id, options),
    followLogs: (id, options) => runtime.followLogs(id, options),
    exists: async (id) => (await runtime.inspect(id)) !== undefined,
  }
}

/** What the source reads for the plugin (its container, or its service); 404 for an unknown plugin or one with neither. */
async function containerOf(deps: ApiDependencies, source: PluginLogSource, idOrName: string): Promise<{ pluginName: string; containerId: string }> {
  const plugin = await deps.store.getPlugin(idOrName)
  if (!plugin) throw new ApiError(404, 'not_found', `plugin ${idOrName} not found`)
  const id = source.idOf(plugin)
  if (!id) throw containerGone(plugin.forgehookId)
  return { pluginName: plugin.forgehookId, containerId: id }
}

function containerGone(pluginName: string): ApiError {
  return new ApiError(404, 'not_found', `plugin ${pluginName} has no container (not installed yet, or removed)`)
}

/** Driver errors a client can act on, as answers; anything else stays a 500. */
async function runtimeCall<T>(pluginName: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    if (error instanceof ContainerNotFoundError) throw containerGone(pluginName)
    if (error instanceof RuntimeUnavailableError) {
      throw new ApiError(503, 'docker_unavailable', `the Docker engine is not reachable: ${error.message}`, [], { 'Retry-After': '5' })
    }
    throw error
  }
}

/**
 * One SSE message per log line. Chunks are not lines: a line cut between two chunks waits
 * for its end. Awaiting each write holds the container's stream back for a slow client.
 */
async function relayLogLines(stream: SSEStreamingApi, chunks: AsyncIterable<string>): Promise<void> {
  let partialLine = ''
  for await (const chunk of chunks) {
    const lines = (partialLine + chunk).split('\n')
    partialLine = lines.pop() ?? ''
    if (partialLine.length > MAX_LINE_CHARS) {
      lines.push(partialLine.slice(0, MAX_LINE_CHARS))
      partialLine = partialLine.slice(MAX_LINE_CHARS)
    }
    for (const line of lines) await stream.writeSSE({ data: line.endsWith('\r') ? line.slice(0, -1) : line })
  }
  if (partialLine) await stream.writeSSE({ data: partialLine })
}
