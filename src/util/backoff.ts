/** Exponential backoff with a cap: initialMs, then doubling (by `factor`) up to maxMs. */
export interface BackoffOptions {
  /** First delay. */
  initialMs: number
  /** Upper bound of any delay. */
  maxMs: number
  /** Growth per failure. Default 2. */
  factor?: number
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
    const factor = this.options.factor ?? 2
    const base = Math.min(this.options.maxMs, this.options.initialMs * factor ** this.failures)
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

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const seconds = ms / 1000
  return seconds < 120 ? `${Number(seconds.toFixed(1))} s` : `${Number((seconds / 60).toFixed(1))} min`
}
