// Live plugin events: GET /api/v1/ws (WebSocket) and its server-sent-events twin
// GET /api/v1/events/stream. Both relay every event the EventBus carries (each audit row
// as it is recorded) and unsubscribe when the client goes, so nothing outlives a connection.
import { upgradeWebSocket } from '@hono/node-server'
import { Hono, type Context } from 'hono'
import { streamSSE, type SSEStreamingApi } from 'hono/streaming'
import type { WebSocket } from 'ws'
import type { BusEvent } from '../../db/event-bus.js'
import type { Clock, TimerHandle } from '../../util/clock.js'
import type { ApiDependencies } from '../deps.js'
import { ApiError } from '../errors.js'
import { QueryReader } from '../request.js'
import { DEFAULT_MAX_STREAMS, StreamLimit } from '../stream-limit.js'

export interface StreamRouteOptions {
  /** SSE comment heartbeat and WebSocket ping interval. Default 15_000 ms. */
  heartbeatMs?: number
  /** The cap on live streams, shared with the log streams. Default: one of its own of DEFAULT_MAX_STREAMS. */
  streams?: StreamLimit
}

/** A WebSocket client this far behind is dropped rather than buffered without end. */
const MAX_WEBSOCKET_BUFFERED_BYTES = 4 * 1024 * 1024
/** An SSE client with this many events not yet taken by its socket is dropped. */
const MAX_SSE_PENDING_EVENTS = 1_000
/** 1013 Try Again Later: the close code for a client that cannot keep up, or that found no free slot. */
const CLOSE_TRY_AGAIN_LATER = 1013

/** The JSON each event is sent as, on both streams. */
export interface WireEvent {
  id: number | null
  pluginId: string | null
  forgehookId: string | null
  type: string
  data: Record<string, unknown>
  timestamp: string
}

export function toWireEvent(event: BusEvent): WireEvent {
  const { id, pluginId, forgehookId, type, data, timestamp } = event
  return { id, pluginId, forgehookId, type, data, timestamp: timestamp.toISOString() }
}

export function streamRoutes(deps: ApiDependencies, options: StreamRouteOptions = {}): Hono {
  const heartbeatMs = options.heartbeatMs ?? 15_000
  const streams = options.streams ?? new StreamLimit(DEFAULT_MAX_STREAMS)
  const app = new Hono()

  app.get(
    '/api/v1/ws',
    upgradeWebSocket((c) => {
      const matches = readEventFilter(c)
      // Refused with a 503 before the handshake when full; the slot itself is taken on open.
      streams.check()
      let unsubscribe: (() => void) | undefined
      let stopPinging: (() => void) | undefined
      let releaseSlot: (() => void) | undefined
      const release = () => {
        unsubscribe?.()
        stopPinging?.()
        releaseSlot?.()
      }
      return {
        // Subscribing on open, not before the upgrade: a failed handshake leaves nothing behind.
        onOpen: (_event, ws) => {
          const socket = ws.raw as unknown as WebSocket
          releaseSlot = streams.tryTake()
          if (releaseSlot === undefined) {
            // Another stream took the last slot during the handshake.
            socket.close(CLOSE_TRY_AGAIN_LATER, 'too many streams')
            return
          }
          unsubscribe = deps.events.subscribe((event) => {
            if (!matches(event) || socket.readyState !== socket.OPEN) return
            if (socket.bufferedAmount > MAX_WEBSOCKET_BUFFERED_BYTES) {
              deps.logger.warn({ bufferedBytes: socket.bufferedAmount }, 'event stream client cannot keep up: closing its WebSocket')
              release()
              socket.close(CLOSE_TRY_AGAIN_LATER, 'too slow')
              return
            }
            socket.send(JSON.stringify(toWireEvent(event)))
          })
          stopPinging = pingUntilSilent(socket, deps.clock, heartbeatMs)
        },
        onClose: release,
        onError: (event) => {
          deps.logger.debug({ err: (event as Event & { error?: unknown }).error }, 'event stream WebSocket failed')
          release()
        },
      }
    }),
    // Reached only without an Upgrade header: upgradeWebSocket passes such requests on.
    () => {
      throw new ApiError(426, 'upgrade_required', 'this endpoint speaks WebSocket; for plain HTTP use /api/v1/events/stream', [], {
        Upgrade: 'websocket',
      })
    },
  )

  app.get('/api/v1/events/stream', (c) => {
    const matches = readEventFilter(c)
    const releaseSlot = streams.take()
    return streamSSE(c, async (stream) => {
      let pending = 0
      let queue = Promise.resolve()
      const send = (event: BusEvent) => {
        if (pending >= MAX_SSE_PENDING_EVENTS) {
          deps.logger.warn({ pendingEvents: pending }, 'event stream client cannot keep up: closing its SSE stream')
          stream.abort()
          return
        }
        pending += 1
        // Chained, so events leave in the order they were recorded.
        queue = queue
          .then(() => stream.writeSSE({ data: JSON.stringify(toWireEvent(event)), ...(event.id === null ? {} : { id: String(event.id) }) }))
          .catch((error: unknown) => deps.logger.debug({ err: error }, 'could not write to an event stream client'))
          .finally(() => {
            pending -= 1
          })
      }
      const unsubscribe = deps.events.subscribe((event) => {
        if (matches(event)) send(event)
      })
      const stopHeartbeat = startHeartbeat(stream, deps.clock, heartbeatMs)
      try {
        // The first bytes tell the client it is subscribed (and flush the headers).
        await stream.write(': subscribed\n\n')
        await untilAborted(stream)
      } finally {
        unsubscribe()
        stopHeartbeat()
        releaseSlot()
      }
    })
  })

  return app
}

/** `?plugin=<name or id>` and `?type=a,b` (repeatable); no parameters match every event. */
function readEventFilter(c: Context): (event: BusEvent) => boolean {
  const query = new QueryReader(c)
  const plugin = query.text('plugin')
  const types = query.list('type')
  query.done()
  return (event) => {
    if (plugin !== undefined && event.forgehookId !== plugin && event.pluginId !== plugin) return false
    return types === undefined || types.includes(event.type)
  }
}

/** Writes an SSE comment every `intervalMs`, so proxies and clients see a quiet stream is alive. Returns stop. */
export function startHeartbeat(stream: SSEStreamingApi, clock: Clock, intervalMs: number): () => void {
  return repeat(clock, intervalMs, () => void stream.write(': heartbeat\n\n'))
}

/** Resolves once the client has gone (or the server cut the connection). */
export function untilAborted(stream: SSEStreamingApi): Promise<void> {
  if (stream.aborted) return Promise.resolve()
  return new Promise((resolve) => stream.onAbort(resolve))
}

/**
 * Pings every `intervalMs`; a client that has not answered the previous ping is cut off,
 * so a vanished peer does not stay subscribed until TCP gives up. Returns stop.
 */
function pingUntilSilent(socket: WebSocket, clock: Clock, intervalMs: number): () => void {
  let answered = true
  const onPong = () => {
    answered = true
  }
  socket.on('pong', onPong)
  const stop = repeat(clock, intervalMs, () => {
    if (!answered) {
      socket.terminate()
      return
    }
    answered = false
    socket.ping()
  })
  return () => {
    stop()
    socket.off('pong', onPong)
  }
}

/** Runs `tick` every `intervalMs` on the injected clock until the returned stop is called. */
function repeat(clock: Clock, intervalMs: number, tick: () => void): () => void {
  let timer: TimerHandle | undefined
  let stopped = false
  const schedule = () => {
    timer = clock.setTimeout(() => {
      if (stopped) return
      tick()
      schedule()
    }, intervalMs)
  }
  schedule()
  return () => {
    stopped = true
    if (timer) clock.clearTimeout(timer)
  }
}
