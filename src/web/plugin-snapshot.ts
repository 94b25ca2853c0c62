// Every plugin row, kept between changes for the dashboard: a page of it at 1,000 plugins
// then costs no query but the latest samples of the rows shown. The rules are ListCache's
// (api/list-cache.ts): every change notification and resync drops it, a read that started
// before a change is not kept, nothing is kept while the change feed is down, and it is read
// again after maxAgeMs at the latest (a TRUNCATE notifies nobody).
import type { Plugin } from '../db/plugin-store.js'
import type { ChangeSource } from '../api/list-cache.js'
import type { Clock } from '../util/clock.js'

export interface PluginSnapshotOptions {
  source: ChangeSource
  list: () => Promise<Plugin[]>
  clock: Pick<Clock, 'now'>
  /** Default 10 s. */
  maxAgeMs?: number
}

export class PluginSnapshot {
  private plugins: Plugin[] | undefined
  private takenAt = 0
  private generation = 0
  private flight: Promise<Plugin[]> | undefined
  private readonly unsubscribe: () => void

  constructor(private readonly options: PluginSnapshotOptions) {
    const changed = () => {
      this.generation += 1
      this.plugins = undefined
      this.flight = undefined
    }
    this.unsubscribe = options.source.subscribe({ onChange: changed, onResync: changed })
  }

  read(): Promise<Plugin[]> {
    const fresh = this.plugins !== undefined && this.options.source.changeFeedConnected && this.options.clock.now() - this.takenAt < (this.options.maxAgeMs ?? 10_000)
    if (fresh) return Promise.resolve(this.plugins!)
    return (this.flight ??= this.take())
  }

  close(): void {
    this.unsubscribe()
  }

  private async take(): Promise<Plugin[]> {
    const generation = this.generation
    const connected = this.options.source.changeFeedConnected
    const startedAt = this.options.clock.now()
    try {
      const plugins = await this.options.list()
      if (connected && generation === this.generation) {
        this.plugins = plugins
        this.takenAt = startedAt
      }
      return plugins
    } finally {
      if (generation === this.generation) this.flight = undefined
    }
  }
}
