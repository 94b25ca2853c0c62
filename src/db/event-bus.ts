// Live fan-out of audit events as they are recorded (the WebSocket and SSE streams), plus
// events that are not stored (a spec file rejected before it names a plugin).
import type { JsonObject } from './schema.js'

export interface BusEvent {
  /** plugin_events.id; null for an event that is not stored. */
  id: number | null
  pluginId: string | null
  forgehookId: string | null
  type: string
  data: JsonObject
  timestamp: Date
}

export type BusListener = (event: BusEvent) => void

/** A client's live stream (WebSocket, SSE), or the daemon's own reader (the console's snapshot). */
export type BusSubscriberKind = 'stream' | 'internal'

export class EventBus {
  private readonly listeners = new Map<BusListener, BusSubscriberKind>()

  subscribe(listener: BusListener, kind: BusSubscriberKind = 'stream'): () => void {
    this.listeners.set(listener, kind)
    return () => this.listeners.delete(listener)
  }

  publish(event: BusEvent): void {
    for (const listener of this.listeners.keys()) {
      // A slow or broken subscriber must not stop the others or the publisher.
      try {
        listener(event)
      } catch {
        this.listeners.delete(listener)
      }
    }
  }

  /** Everyone listening: while nobody is, events recorded elsewhere are not read for the bus. */
  get subscriberCount(): number {
    return this.listeners.size
  }

  /** Open client streams (flowforge_event_stream_subscribers), the daemon's own readers left out. */
  get streamCount(): number {
    let count = 0
    for (const kind of this.listeners.values()) if (kind === 'stream') count += 1
    return count
  }
}
