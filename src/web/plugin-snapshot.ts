// Every plugin row, kept between changes for the dashboard: a page of it at 1,000 plugins
// then costs no query, and a change costs one small query for the plugin that changed
// rather than all 1,000 rows again. The rules that keep it current, in the spirit of
// ListCache (api/list-cache.ts):
// 1. Every change notification marks its plugin; every event on the bus marks the event's
//    plugin too. The controller's status write and its events are one statement and the bus
//    is told before any browser hears of the event, so the fragment a page fetches on an
//    event always holds that write (the notification itself may come a moment later).
// 2. A read applies every mark made before it started: the marked plugins are read again
//    (one by one; more than 100 and it reads everything), in order, after any read before it.
// 3. Everything is read again at the first read, after a resync (notifications may have been
//    lost), while the change feed is down, and after maxAgeMs (a TRUNCATE notifies nobody).
import type { EventBus } from '../db/event-bus.js'
import type { Plugin } from '../db/plugin-store.js'
import type { ChangeSource } from '../api/list-cache.js'
import type { Clock } from '../util/clock.js'

export interface PluginSnapshotOptions {
  source: ChangeSource
  /** The live events; each one marks its plugin. */
  events?: Pick<EventBus, 'subscribe'>
  list: () => Promise<Plugin[]>
  /** One plugin by its uuid; undefined once it is gone. */
  get: (pluginId: string) => Promise<Plugin | undefined>
  clock: Pick<Clock, 'now'>
  /** Default 30 s. */
  maxAgeMs?: number
}

/** More marked plugins than this at one read, and everything is read again. */
const MAX_SINGLE_READS = 100

export class PluginSnapshot {
  private plugins = new Map<string, Plugin>()
  private sorted: Plugin[] | undefined
  private takenAt = Number.NEGATIVE_INFINITY
  private everything = true
  private readonly marked = new Set<string>()
  private work: Promise<void> = Promise.resolve()
  private readonly unsubscribe: () => void
  private readonly unsubscribeEvents: () => void

  constructor(private readonly options: PluginSnapshotOptions) {
    this.unsubscribe = options.source.subscribe({ onChange: (change) => this.marked.add(change.id), onResync: () => (this.everything = true) })
    this.unsubscribeEvents =
      options.events?.subscribe((event) => {
        if (event.pluginId !== null) this.marked.add(event.pluginId)
      }, 'internal') ?? (() => undefined)
  }

  read(): Promise<Plugin[]> {
    const readAll = this.everything || !this.options.source.changeFeedConnected || this.options.clock.now() - this.takenAt >= (this.options.maxAgeMs ?? 30_000) || this.marked.size > MAX_SINGLE_READS
    const marked = [...this.marked]
    this.marked.clear()
    if (readAll) this.everything = false
    // In order: a read waits for the reads before it, and applies what was marked by its start.
    const step = this.work.then(() => (readAll ? this.readAll() : this.readSome(marked)))
    this.work = step.catch(() => {
      this.everything = true
    })
    return step.then(() => (this.sorted ??= [...this.plugins.values()]))
  }

  close(): void {
    this.unsubscribe()
    this.unsubscribeEvents()
  }

  private async readAll(): Promise<void> {
    const startedAt = this.options.clock.now()
    const plugins = await this.options.list()
    this.plugins = new Map(plugins.map((plugin) => [plugin.id, plugin]))
    this.sorted = undefined
    this.takenAt = startedAt
  }

  private async readSome(pluginIds: string[]): Promise<void> {
    for (const pluginId of pluginIds) {
      const plugin = await this.options.get(pluginId)
      if (plugin === undefined) this.plugins.delete(pluginId)
      else this.plugins.set(pluginId, plugin)
      this.sorted = undefined
    }
  }
}

/** A value read again when older than maxAgeMs; concurrent reads share one query. */
export class RefreshingValue<T> {
  private value: { data: T; takenAt: number } | undefined
  private flight: Promise<T> | undefined

  constructor(
    private readonly read_: () => Promise<T>,
    private readonly options: { clock: Pick<Clock, 'now'>; maxAgeMs: number },
  ) {}

  read(): Promise<T> {
    if (this.value !== undefined && this.options.clock.now() - this.value.takenAt < this.options.maxAgeMs) return Promise.resolve(this.value.data)
    return (this.flight ??= this.read_()
      .then((data) => {
        this.value = { data, takenAt: this.options.clock.now() }
        return data
      })
      .finally(() => {
        this.flight = undefined
      }))
  }
}
