// Exponential backoff with a cap, in one formula for every retry in the daemon: the work
// queue's per-key retries, the crash-loop restarts, and the reconnect loops (Docker, Postgres).

/** The growth of a backoff: initialMs, then times `factor` per failure, never above maxMs. */
export interface BackoffCurve {
  /** First delay. */
  initialMs: number
  /** Upper bound of any delay. */
  maxMs: number
  /** Growth per failure. Default 2. */
  factor?: number
}

/**
 * The delay before the next attempt after `failures` earlier failures of the same thing:
 * initialMs after none, then multiplied by the factor per failure, capped at maxMs. Pure,
 * so the queue, the planner and the logs all state the same number.
 */
export function backoffDelayMs(failures: number, curve: BackoffCurve): number {
  // factor ** failures overflows to Infinity after ~1000 failures; min() still caps it.
  return Math.min(curve.maxMs, curve.initialMs * (curve.factor ?? 2) ** Math.max(0, failures))
}

/** A Backoff's curve, with optional jitter. */
export interface BackoffOptions extends BackoffCurve {
  /**
   * Random spread as a fraction of the delay (0.2 = ±20%), so that many clients that lost
   * the same server do not come back in lockstep. Default 0.
   */
  jitter?: number
}

export class Backoff {
  private failures = 0

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay to wait after one more failure. */
  next(): number {
    const base = backoffDelayMs(this.failures, this.options)
    this.failures += 1
    const jitter = this.options.jitter ?? 0
    if (jitter === 0) return base
    const spread = base * jitter * (this.random() * 2 - 1)
    return Math.max(0, Math.min(this.options.maxMs, Math.round(base + spread)))
  }

  reset(): void {
    this.failures = 0
  }

  get attempts(): number {
    return this.failures
  }
}

/** A sleep that an AbortSignal ends early (resolving, not rejecting). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}
