import { systemClock, type Clock, type TimerHandle } from '../util/clock.js'

// A rate-limited work queue of string keys with the semantics of client-go's
// util/workqueue (the Type queue, the delaying queue and the rate-limiting queue in one):
//
// - A key is waiting at most once: adding a waiting key does nothing.
// - A key is handed to one worker at a time: adding a key that is being processed marks
//   it dirty, and done() puts it back once, however many adds happened meanwhile.
// - Delayed adds keep the earliest deadline per key.
// - addRateLimited() backs off per key: baseDelayMs * 2^failures, capped at maxDelayMs,
//   until forget() is called on success.

export interface WorkQueueOptions {
  /** Source of time for delayed adds. Default: systemClock. */
  clock?: Clock
  /** First rate-limited delay of a key. Default 1000 ms. */
  baseDelayMs?: number
  /** Upper bound of any rate-limited delay. Default 300_000 ms (5 min). */
  maxDelayMs?: number
  /** Label for logs and /metrics. Default 'work-queue'. */
  name?: string
}

interface DelayedAdd {
  readyAt: number
  timer: TimerHandle
}

export class WorkQueue {
  readonly name: string
  private readonly clock: Clock
  private readonly baseDelayMs: number
  private readonly maxDelayMs: number

  /** Keys waiting to be handed out, oldest first. Every key here is also in `dirty`. */
  private readonly fifo: string[] = []
  /** Keys that need processing: waiting in the FIFO, or re-added while processing. */
  private readonly dirty = new Set<string>()
  private readonly processing = new Set<string>()
  private readonly delayed = new Map<string, DelayedAdd>()
  private readonly failureCounts = new Map<string, number>()
  private readonly waitingGetters: Array<(key: string | undefined) => void> = []
  private readonly drainWaiters: Array<() => void> = []

  private shuttingDown = false
  /** True while shutting down with drain: getters keep receiving what is queued. */
  private draining = false

  constructor(options: WorkQueueOptions = {}) {
    this.clock = options.clock ?? systemClock
    this.baseDelayMs = options.baseDelayMs ?? 1_000
    this.maxDelayMs = options.maxDelayMs ?? 300_000
    this.name = options.name ?? 'work-queue'
  }

  /** Marks the key as needing processing. Ignored once the queue is shutting down. */
  add(key: string): void {
    if (this.shuttingDown) return
    if (this.dirty.has(key)) return
    this.dirty.add(key)
    // A key being processed waits for done(), so two workers never hold the same key.
    if (this.processing.has(key)) return
    this.fifo.push(key)
    this.handOutToWaitingGetters()
  }

  /**
   * The next key to process, which the caller must pass to done() when finished.
   * Resolves undefined after shutDown(), or after shutDownWithDrain() once nothing is
   * queued or processing.
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown && !this.draining) return Promise.resolve(undefined)
    const key = this.takeNext()
    if (key !== undefined) return Promise.resolve(key)
    if (this.isDrained()) return Promise.resolve(undefined)
    return new Promise((resolve) => this.waitingGetters.push(resolve))
  }

  /** Ends processing of the key; a key re-added meanwhile goes back to the FIFO, once. */
  done(key: string): void {
    if (!this.processing.delete(key)) return
    if (this.dirty.has(key)) {
      this.fifo.push(key)
      this.handOutToWaitingGetters()
    }
    this.settleIfDrained()
  }

  /** Adds the key after delayMs; a key already scheduled keeps the earlier deadline. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return
    if (delayMs <= 0) {
      this.add(key)
      return
    }
    const readyAt = this.clock.now() + delayMs
    const scheduled = this.delayed.get(key)
    // client-go keeps the earlier deadline: a later request must not postpone work that
    // is already due sooner.
    if (scheduled !== undefined && scheduled.readyAt <= readyAt) return
    if (scheduled !== undefined) this.clock.clearTimeout(scheduled.timer)
    const timer = this.clock.setTimeout(() => {
      this.delayed.delete(key)
      this.add(key)
    }, delayMs)
    this.delayed.set(key, { readyAt, timer })
  }

  /** Adds the key after its backoff and counts one more failure for it. */
  addRateLimited(key: string): void {
    if (this.shuttingDown) return
    const failureCount = this.failureCounts.get(key) ?? 0
    this.failureCounts.set(key, failureCount + 1)
    this.addAfter(key, this.backoffDelay(failureCount))
  }

  /** Resets the key's backoff; call it when the key was processed successfully. */
  forget(key: string): void {
    this.failureCounts.delete(key)
  }

  /** How many rate-limited adds the key has had since it was last forgotten. */
  failures(key: string): number {
    return this.failureCounts.get(key) ?? 0
  }

  /** Number of keys waiting to be handed out (not processing, not delayed). */
  len(): number {
    return this.fifo.length
  }

  get processingCount(): number {
    return this.processing.size
  }

  get delayedCount(): number {
    return this.delayed.size
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown
  }

  /**
   * Stops at once: adds are ignored, delayed adds are dropped, every getter receives
   * undefined. Keys still queued are not handed out. Running work is not interrupted; a
   * pending shutDownWithDrain() stops waiting for the queue and resolves once nothing is
   * processing.
   */
  shutDown(): void {
    this.shuttingDown = true
    this.draining = false
    this.dropDelayedAdds()
    this.wakeWaitingGettersWithUndefined()
    this.settleIfDrained()
  }

  /**
   * Stops accepting adds and drops delayed adds, but keeps handing out what is queued
   * (including keys re-added while processing, before the shutdown). Resolves once the
   * FIFO is empty and nothing is processing.
   */
  shutDownWithDrain(): Promise<void> {
    if (!this.shuttingDown) {
      this.shuttingDown = true
      this.draining = true
      this.dropDelayedAdds()
    }
    const drained = new Promise<void>((resolve) => this.drainWaiters.push(resolve))
    this.settleIfDrained()
    return drained
  }

  private backoffDelay(failureCount: number): number {
    // 2 ** failureCount overflows to Infinity after ~1000 failures; min() still caps it.
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** failureCount)
  }

  private takeNext(): string | undefined {
    const key = this.fifo.shift()
    if (key === undefined) return undefined
    this.dirty.delete(key)
    this.processing.add(key)
    return key
  }

  private handOutToWaitingGetters(): void {
    while (this.waitingGetters.length > 0 && this.fifo.length > 0) {
      const resolve = this.waitingGetters.shift()!
      resolve(this.takeNext())
    }
  }

  /**
   * True when getters can stop for good. While draining, an empty FIFO is not enough: a
   * key being processed may have been re-added before the shutdown and come back on done().
   */
  private isDrained(): boolean {
    if (!this.shuttingDown) return false
    if (!this.draining) return this.processing.size === 0
    return this.fifo.length === 0 && this.processing.size === 0
  }

  private settleIfDrained(): void {
    if (!this.isDrained()) return
    this.wakeWaitingGettersWithUndefined()
    for (const resolve of this.drainWaiters.splice(0)) resolve()
  }

  private wakeWaitingGettersWithUndefined(): void {
    for (const resolve of this.waitingGetters.splice(0)) resolve(undefined)
  }

  private dropDelayedAdds(): void {
    for (const { timer } of this.delayed.values()) this.clock.clearTimeout(timer)
    this.delayed.clear()
  }
}
