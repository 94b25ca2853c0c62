import type { Logger } from '../logger.js'

/** The NOTIFY channel the plugins trigger writes to (migrations/001). */
export const PLUGIN_CHANGES_CHANNEL = 'plugin_changes'
/** The NOTIFY channel of recorded audit events (migrations/003): {id, origin}. */
export const PLUGIN_EVENTS_CHANNEL = 'plugin_events'
/** Restart requests a follower passes to the leader: {id, reason}. Not stored. */
export const PLUGIN_RESTARTS_CHANNEL = 'plugin_restarts'

/** One committed write to the plugins table, as sent by the trigger. */
export interface PluginChange {
  op: 'insert' | 'update' | 'delete'
  /** The plugin uuid. */
  id: string
  /** The forgehook_id. */
  name: string
  generation: number
  resourceVersion: number
  /** True when desired state changed (insert, delete, new generation, deletion request). */
  spec: boolean
}

export interface ChangeListener {
  onChange(change: PluginChange): void
  /**
   * Notifications may have been lost (the listening connection was lost and is back):
   * re-read everything. Not called for the first connection: a consumer reads everything
   * once at start anyway.
   */
  onResync(reason: string): void
  /**
   * An audit event recorded by another writer (another manager, psql): its plugin_events.id.
   * Only the Postgres server feed sends these; the embedded engine has one writer.
   */
  onEvent?(eventId: number): void
  /** Another manager (a follower) asks the leader to restart a plugin's container once. Server feed only. */
  onRestartRequest?(pluginId: string, reason: string): void
}

export interface ChangeFeed {
  subscribe(listener: ChangeListener): () => void
  /**
   * True while notifications are being received. While false (not listening yet, or the
   * connection is lost) writes may go unnoticed; onResync follows once it is back.
   */
  readonly connected: boolean
  close(): Promise<void>
}

/** Keeps the listeners and turns raw payloads into PluginChange values. */
export class ChangeFanout {
  private readonly listeners = new Set<ChangeListener>()

  constructor(private readonly logger: Logger) {}

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  get listenerCount(): number {
    return this.listeners.size
  }

  deliverPayload(payload: string): void {
    const change = parsePluginChange(payload)
    if (!change) {
      this.logger.warn({ payload: payload.slice(0, 200) }, 'ignoring a malformed plugin_changes notification')
      return
    }
    for (const listener of this.listeners) this.callSafely(() => listener.onChange(change))
  }

  deliverEvent(eventId: number): void {
    for (const listener of this.listeners) if (listener.onEvent) this.callSafely(() => listener.onEvent!(eventId))
  }

  deliverRestartRequest(pluginId: string, reason: string): void {
    for (const listener of this.listeners) {
      if (listener.onRestartRequest) this.callSafely(() => listener.onRestartRequest!(pluginId, reason))
    }
  }

  resync(reason: string): void {
    for (const listener of this.listeners) this.callSafely(() => listener.onResync(reason))
  }

  // One listener's bug must not stop the others from hearing about the change.
  private callSafely(call: () => void): void {
    try {
      call()
    } catch (error) {
      this.logger.error({ err: error }, 'a change listener threw')
    }
  }
}

export function parsePluginChange(payload: string): PluginChange | undefined {
  let value: unknown
  try {
    value = JSON.parse(payload)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const record = value as Record<string, unknown>
  const op = record.op
  if (op !== 'insert' && op !== 'update' && op !== 'delete') return undefined
  if (typeof record.id !== 'string' || typeof record.name !== 'string') return undefined
  return {
    op,
    id: record.id,
    name: record.name,
    generation: Number(record.generation),
    resourceVersion: Number(record.resourceVersion),
    spec: record.spec === true,
  }
}
