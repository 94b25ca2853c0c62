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

export class EventBus {
  private readonly listeners = new Set<BusListener>()

  subscribe(listener: BusListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  publish(event: BusEvent): void {
    for (const listener of this.listeners) {
      // A slow or broken subscriber must not stop the others or the publisher.
      try {
        listener(event)
      } catch {
        this.listeners.delete(listener)
      }
    }
  }

  get subscriberCount(): number {
    return this.listeners.size
  }
}
