// Puts on this manager's live streams (WebSocket, SSE) the audit events that other writers
// recorded: the leader when this manager follows, or a psql client. Its own events the
// store publishes as it writes them; the feed leaves those out (migrations/003 names the
// writer). Ids arriving within `batchMs` are read in one query and published in id order.
import type { Logger } from '../logger.js'
import type { EventBus } from './event-bus.js'
import type { PluginStore } from './plugin-store.js'

export class EventRelay {
  private pending: number[] = []
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  private flushing: Promise<void> = Promise.resolve()

  constructor(
    private readonly store: PluginStore,
    private readonly bus: EventBus,
    private readonly logger: Logger,
    private readonly batchMs = 10,
  ) {}

  start(): void {
    this.unsubscribe ??= this.store.subscribe({
      onChange: () => undefined,
      onResync: () => undefined,
      onEvent: (eventId) => this.enqueue(eventId),
    })
  }

  async stop(): Promise<void> {
    this.unsubscribe?.()
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.pending = []
    await this.flushing
  }

  private enqueue(eventId: number): void {
    this.pending.push(eventId)
    this.timer ??= setTimeout(() => {
      this.timer = undefined
      const ids = this.pending
      this.pending = []
      // One batch at a time, so events are published in the order they were recorded.
      this.flushing = this.flushing.then(() => this.publish(ids))
    }, this.batchMs)
  }

  private async publish(ids: number[]): Promise<void> {
    if (this.bus.subscriberCount === 0) return
    try {
      for (const event of await this.store.eventsByIds(ids)) this.bus.publish(event)
    } catch (error) {
      // Only the live view misses them: the events are stored and GET /api/v1/events has them.
      this.logger.warn({ err: error, events: ids.length }, `could not read ${ids.length} events recorded elsewhere for the live streams`)
    }
  }
}
