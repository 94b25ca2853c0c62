// The engine's event stream as an endless async iterable. dockerode hands back the raw
// HTTP response and never reconnects: when dockerd restarts the response just ends, and a
// half-dead connection may stay silent forever. This loop reconnects with backoff, pings
// the engine while the stream is quiet, says "disconnected" when the engine is lost and
// "resync" once it is back, since events may have been missed meanwhile.

import type { Readable } from 'node:stream'
import type { RuntimeStreamItem } from './container-runtime.js'
import { LineSplitter, parseDockerEvent } from './docker-streams.js'
import type { Logger } from '../logger.js'
import { Backoff, sleep, type BackoffOptions } from '../util/backoff.js'
import { formatDuration } from '../util/format-duration.js'

export interface DockerEventSource {
  /**
   * Opens `GET /events` for managed containers. `sinceSeconds` (Unix time) asks the
   * engine to replay events from that moment; it is set until the first connection
   * succeeds, so events between the caller's request and the connection are not lost.
   */
  open(sinceSeconds: number | undefined, signal: AbortSignal): Promise<Readable>
  /** Resolves when the engine answers; rejects when it does not (in time). */
  ping(): Promise<void>
  logger: Logger
  backoff: BackoffOptions
  /** How often a connected stream checks that the engine is still there. */
  livenessIntervalMs: number
}

/**
 * `requestedAtSeconds` is when the caller asked for events (Unix time): the generator's
 * body runs only at the first `next()`, and events from the request on belong to it.
 */
export async function* streamDockerEvents(
  source: DockerEventSource,
  signal: AbortSignal,
  requestedAtSeconds: number,
): AsyncGenerator<RuntimeStreamItem> {
  const backoff = new Backoff(source.backoff)
  let everConnected = false
  // Set after a failed connect or a lost stream: the next connection must be followed by a resync.
  let lossReason: string | undefined

  while (!signal.aborted) {
    let eventStream: Readable
    try {
      eventStream = await source.open(everConnected ? undefined : requestedAtSeconds, signal)
    } catch (error) {
      if (signal.aborted) return
      const firstFailure = lossReason === undefined
      lossReason = `connecting to the event stream failed: ${messageOf(error)}`
      const delayMs = backoff.next()
      source.logger.warn(
        { attempt: backoff.attempts, delayMs, err: error },
        `docker event stream: connect failed; retrying in ${formatDuration(delayMs)}`,
      )
      // Once per outage (not per attempt): the consumer marks the engine unreachable.
      if (firstFailure) yield { type: 'disconnected', reason: lossReason }
      await sleep(delayMs, signal)
      continue
    }

    everConnected = true
    if (lossReason !== undefined) {
      source.logger.info({ attempts: backoff.attempts }, 'docker event stream: reconnected')
      yield { type: 'resync', reason: `docker event stream reconnected (${lossReason})` }
      lossReason = undefined
    }

    const endReason = yield* readEventStream(eventStream, source, signal, () => backoff.reset())
    if (signal.aborted) return
    lossReason = endReason
    const delayMs = backoff.next()
    source.logger.warn(
      { attempt: backoff.attempts, delayMs, reason: endReason },
      `docker event stream lost (${endReason}); reconnecting in ${formatDuration(delayMs)}`,
    )
    // Without this the consumer would only learn of the outage once it is over (the resync):
    // /readyz kept saying "ready" while dockerd was down.
    yield { type: 'disconnected', reason: endReason }
    await sleep(delayMs, signal)
  }
}

/** Yields the stream's events until it ends; returns why it ended. */
async function* readEventStream(
  eventStream: Readable,
  source: DockerEventSource,
  signal: AbortSignal,
  onHealthy: () => void,
): AsyncGenerator<RuntimeStreamItem, string> {
  // The signal may have fired while the caller held the previous item: no abort event will come.
  if (signal.aborted) {
    eventStream.destroy()
    return 'aborted'
  }
  const splitter = new LineSplitter()
  const stopOnAbort = (): void => void eventStream.destroy()
  signal.addEventListener('abort', stopOnAbort, { once: true })
  let livenessFailure: string | undefined
  let pingInFlight = false
  const liveness = setInterval(() => {
    // A ping slower than the interval must not pile up more pings behind it.
    if (pingInFlight) return
    pingInFlight = true
    source
      .ping()
      .then(onHealthy, (error: unknown) => {
        livenessFailure = `the engine did not answer a ping: ${messageOf(error)}`
        eventStream.destroy()
      })
      .finally(() => {
        pingInFlight = false
      })
  }, source.livenessIntervalMs)
  // The stream's socket keeps the process alive while it matters; the timer must not.
  liveness.unref()

  try {
    for await (const chunk of eventStream) {
      onHealthy()
      for (const line of splitter.push(chunk as Buffer)) {
        const item = parseLine(line, source.logger)
        if (item) yield item
      }
    }
    for (const line of splitter.end()) {
      const item = parseLine(line, source.logger)
      if (item) yield item
    }
    return livenessFailure ?? 'the engine closed the stream'
  } catch (error) {
    return livenessFailure ?? `the stream failed: ${messageOf(error)}`
  } finally {
    clearInterval(liveness)
    signal.removeEventListener('abort', stopOnAbort)
    eventStream.destroy()
  }
}

function parseLine(line: string, logger: Logger): RuntimeStreamItem | undefined {
  try {
    const event = parseDockerEvent(line)
    return event ? { type: 'event', event } : undefined
  } catch (error) {
    // One unreadable line loses one event at most; the controller's periodic resync covers it.
    logger.warn({ err: error, line: line.slice(0, 200) }, 'docker event stream: skipped a line that is not JSON')
    return undefined
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
