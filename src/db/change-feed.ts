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

/** Every channel a server feed LISTENs on. */
export const FEED_CHANNELS = [PLUGIN_CHANGES_CHANNEL, PLUGIN_EVENTS_CHANNEL, PLUGIN_RESTARTS_CHANNEL] as const

/** Keeps the listeners and turns raw notification payloads into listener calls. */
export class ChangeFanout {
  private readonly listeners = new Set<ChangeListener>()

  /** `ownManagerId`: events this manager wrote itself are not delivered (it published them as it wrote them). */
  constructor(
    private readonly logger: Logger,
    private readonly ownManagerId?: string,
  ) {}

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** A notification on one of FEED_CHANNELS; a malformed one is logged and dropped. */
  deliver(channel: string, payload: string): void {
    if (channel === PLUGIN_CHANGES_CHANNEL) {
      const change = parsePluginChange(payload)
      if (change) return this.each((listener) => listener.onChange(change))
    }
    const record = parseRecord(payload)
    // {"id": 42, "origin": "<manager id or empty>"} (migrations/003)
    if (channel === PLUGIN_EVENTS_CHANNEL && typeof record?.id === 'number') {
      const eventId = record.id
      if (record.origin !== this.ownManagerId) this.each((listener) => listener.onEvent?.(eventId))
      return
    }
    // {"id": "<plugin uuid>", "reason": "..."}: a follower's restart request.
    if (channel === PLUGIN_RESTARTS_CHANNEL && typeof record?.id === 'string' && typeof record.reason === 'string') {
      const { id, reason } = record
      return this.each((listener) => listener.onRestartRequest?.(id, reason))
    }
    this.logger.warn({ channel, payload: payload.slice(0, 200) }, `ignoring a malformed ${channel} notification`)
  }

  resync(reason: string): void {
    this.each((listener) => listener.onResync(reason))
  }

  // One listener's bug must not stop the others from hearing about the change.
  private each(call: (listener: ChangeListener) => void): void {
    for (const listener of this.listeners) {
      try {
        call(listener)
      } catch (error) {
        this.logger.error({ err: error }, 'a change listener threw')
      }
    }
  }
}

function parseRecord(payload: string): Record<string, unknown> | undefined {
  let value: unknown
  try {
    value = JSON.parse(payload)
  } catch {
    return undefined
  }
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined
}

export function parsePluginChange(payload: string): PluginChange | undefined {
  const record = parseRecord(payload)
  if (record === undefined) return undefined
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
