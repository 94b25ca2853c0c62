// A cap on the live streams open at once (event WebSockets, event and log SSE streams): each
// holds a subscription, buffers and, for logs, a Docker connection, so a client that opens
// them without end would run the daemon out of memory and sockets. Past the cap a new stream
// is refused with a clear 503 rather than accepted and starved.
import { ApiError } from './errors.js'

/** API_MAX_STREAMS' default. */
export const DEFAULT_MAX_STREAMS = 32

export class StreamLimit {
  private open = 0

  /** `max` streams at once (API_MAX_STREAMS). */
  constructor(readonly max: number) {}

  get count(): number {
    return this.open
  }

  /** Throws the 503 when no stream can be opened now. */
  check(): void {
    if (this.open >= this.max) throw tooManyStreams(this.max)
  }

  /** Takes a slot, or throws the 503; the returned release may be called more than once. */
  take(): () => void {
    this.check()
    this.open += 1
    let released = false
    return () => {
      if (released) return
      released = true
      this.open -= 1
    }
  }

  /** A slot when there is one; undefined otherwise (a WebSocket already upgraded when it asks). */
  tryTake(): (() => void) | undefined {
    return this.open >= this.max ? undefined : this.take()
  }
}

export function tooManyStreams(max: number): ApiError {
  return new ApiError(503, 'too_many_streams', `${max} live streams are open, the most this daemon serves at once (API_MAX_STREAMS); close one or try again later`, [], {
    'Retry-After': '10',
  })
}
