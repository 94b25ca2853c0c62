import { backoffDelayMs } from '../util/backoff.js'
import { systemClock, type Clock, type TimerHandle } from '../util/clock.js'

// A rate-limited work queue of string keys with the semantics of client-go's
// util/workqueue (the Type queue, the delaying queue and the rate-limiting queue in one):
//
// - A key is waiting at most once: adding a waiting key does nothing.
// - A key is handed to one worker at a time: adding a key that is being processed marks
//   it dirty, and done() puts it back once, however many adds happened meanwhile.
// - Delayed adds keep the earliest deadline per key.
// - addRateLimited() backs off per key (backoffDelayMs: baseDelayMs * 2^failures, capped at
//   maxDelayMs) until forget() is called on success, and returns the delay it scheduled.

export interface WorkQueueOptions {
  /** Source of time for delayed adds. Default: systemClock. */
  clock?: Clock
  /** First rate-limited delay of a key. Default 1000 ms. */
  baseDelayMs?: number
  /** Upper bound of any rate-limited delay. Default 300_000 ms (5 min). */
  maxDelayMs?: number
}

interface DelayedAdd {
  readyAt: number
  timer: TimerHandle
}

export class WorkQueue {
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

  private shuttingDown = false

  constructor(options: WorkQueueOptions = {}) {
    this.clock = options.clock ?? systemClock
    this.baseDelayMs = options.baseDelayMs ?? 1_000
    this.maxDelayMs = options.maxDelayMs ?? 300_000
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
   * Resolves undefined after shutDown().
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined)
    const key = this.takeNext()
    if (key !== undefined) return Promise.resolve(key)
    return new Promise((resolve) => this.waitingGetters.push(resolve))
  }

  /** Ends processing of the key; a key re-added meanwhile goes back to the FIFO, once. */
  done(key: string): void {
    if (!this.processing.delete(key)) return
    if (this.dirty.has(key)) {
      this.fifo.push(key)
      this.handOutToWaitingGetters()
    }
  }

  /**
   * Adds the key after delayMs; a key already scheduled keeps the earlier deadline.
   * Returns how long from now the key is due (0 when added at once).
   */
  addAfter(key: string, delayMs: number): number {
    if (this.shuttingDown) return delayMs
    if (delayMs <= 0) {
      this.add(key)
      return 0
    }
    const now = this.clock.now()
    const readyAt = now + delayMs
    const scheduled = this.delayed.get(key)
    // client-go keeps the earlier deadline: a later request must not postpone work that
    // is already due sooner.
    if (scheduled !== undefined && scheduled.readyAt <= readyAt) return scheduled.readyAt - now
    if (scheduled !== undefined) this.clock.clearTimeout(scheduled.timer)
    const timer = this.clock.setTimeout(() => {
      this.delayed.delete(key)
      this.add(key)
    }, delayMs)
    this.delayed.set(key, { readyAt, timer })
    return delayMs
  }

  /**
   * Adds the key after its backoff and counts one more failure for it. Returns the delay
   * scheduled: what a log line saying "retrying in" must state.
   */
  addRateLimited(key: string): number {
    const failureCount = this.failureCounts.get(key) ?? 0
    const delayMs = backoffDelayMs(failureCount, { initialMs: this.baseDelayMs, maxMs: this.maxDelayMs })
    if (this.shuttingDown) return delayMs
    this.failureCounts.set(key, failureCount + 1)
    return this.addAfter(key, delayMs)
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

  /**
   * Stops at once: adds are ignored, delayed adds are dropped, every getter receives
   * undefined. Keys still queued are not handed out. Running work is not interrupted.
   */
  shutDown(): void {
    this.shuttingDown = true
    this.dropDelayedAdds()
    this.wakeWaitingGettersWithUndefined()
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

  private wakeWaitingGettersWithUndefined(): void {
    for (const resolve of this.waitingGetters.splice(0)) resolve(undefined)
  }

  private dropDelayedAdds(): void {
    for (const { timer } of this.delayed.values()) this.clock.clearTimeout(timer)
    this.delayed.clear()
  }
}
