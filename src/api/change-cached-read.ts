// A value GET /metrics reports, kept in memory between changes: a scrape reads no row. It is
// read again (the plugin counts: one grouped query of a few rows; the per-plugin gauges: one
// narrow query) only after the change feed said something changed, at most once per
// minIntervalMs however often /metrics is scraped, and at least every maxAgeMs (a TRUNCATE
// sends no notification). While the feed is down (changes may go unseen) it is read at most
// once per minIntervalMs. Reads that overlap share one query.
import type { Clock } from '../util/clock.js'
import type { ChangeSource } from './list-cache.js'

export interface ChangeCachedReadOptions<T> {
  source: ChangeSource
  read: () => Promise<T>
  clock: Pick<Clock, 'now'>
  /** Default 2 s. */
  minIntervalMs?: number
  /** Default 30 s. */
  maxAgeMs?: number
}

export class ChangeCachedRead<T> {
  private value: T | undefined
  private takenAt = 0
  private changed = true
  private flight: Promise<T> | undefined
  private readonly unsubscribe: () => void

  constructor(private readonly options: ChangeCachedReadOptions<T>) {
    const changed = () => {
      this.changed = true
    }
    this.unsubscribe = options.source.subscribe({ onChange: changed, onResync: changed })
  }

  read(): Promise<T> {
    const age = this.options.clock.now() - this.takenAt
    const fresh = !this.changed && this.options.source.changeFeedConnected && age < (this.options.maxAgeMs ?? 30_000)
    if (this.value !== undefined && (fresh || age < (this.options.minIntervalMs ?? 2_000))) return Promise.resolve(this.value)
    return (this.flight ??= this.take())
  }

  close(): void {
    this.unsubscribe()
  }

  private async take(): Promise<T> {
    // A change from now on makes the next read take it again.
    this.changed = false
    try {
      const value = await this.options.read()
      this.value = value
      this.takenAt = this.options.clock.now()
      return value
    } catch (error) {
      this.changed = true
      throw error
    } finally {
      this.flight = undefined
    }
  }
}
