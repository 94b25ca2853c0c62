// The plugin counts GET /metrics reports, kept in memory between changes: a scrape reads no
// row. The counts are taken again (one grouped query of a few rows) only after the change
// feed said something changed, at most once per minIntervalMs however often /metrics is
// scraped, and at least every maxAgeMs (a TRUNCATE sends no notification). While the feed is
// down (changes may go unseen) they are taken at most once per minIntervalMs.
import type { PluginCount } from '../db/plugin-counts.js'
import type { Clock } from '../util/clock.js'
import type { ChangeSource } from './list-cache.js'

export interface PluginCountsCacheOptions {
  source: ChangeSource
  count: () => Promise<PluginCount[]>
  clock: Pick<Clock, 'now'>
  /** Default 2 s. */
  minIntervalMs?: number
  /** Default 30 s. */
  maxAgeMs?: number
}

export class PluginCountsCache {
  private counts: PluginCount[] | undefined
  private takenAt = 0
  private changed = true
  private flight: Promise<PluginCount[]> | undefined
  private readonly unsubscribe: () => void

  constructor(private readonly options: PluginCountsCacheOptions) {
    const changed = () => {
      this.changed = true
    }
    this.unsubscribe = options.source.subscribe({ onChange: changed, onResync: changed })
  }

  read(): Promise<PluginCount[]> {
    const age = this.options.clock.now() - this.takenAt
    const fresh = !this.changed && this.options.source.changeFeedConnected && age < (this.options.maxAgeMs ?? 30_000)
    if (this.counts !== undefined && (fresh || age < (this.options.minIntervalMs ?? 2_000))) return Promise.resolve(this.counts)
    return (this.flight ??= this.take())
  }

  close(): void {
    this.unsubscribe()
  }

  private async take(): Promise<PluginCount[]> {
    // A change from now on makes the next read take them again.
    this.changed = false
    try {
      const counts = await this.options.count()
      this.counts = counts
      this.takenAt = this.options.clock.now()
      return counts
    } catch (error) {
      this.changed = true
      throw error
    } finally {
      this.flight = undefined
    }
  }
}
