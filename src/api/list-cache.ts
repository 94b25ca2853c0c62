// Serialized GET /api/v1/plugins bodies, keyed by the normalized filter, in the spirit of
// the Kubernetes API server's watch cache: a hit costs no query, no mapping, no stringify.
// The rules that keep a served body current:
// 1. Every change-feed notification (each insert, update and delete of a plugin row, status
//    writes and plain SQL included) and every resync drops all bodies.
// 2. Writes answered by this API call invalidate() before the answer leaves, so a client
//    reads its own writes even while the NOTIFY is still on its way.
// 3. Every invalidation bumps a generation. A body is kept only if no invalidation happened
//    since its query started: a query in flight may have read the rows as they were before.
// 4. Bodies are kept and served only while the feed is connected, and a body is kept only if
//    it was connected when the query started too. Before the first LISTEN, or while the
//    connection is lost, writes may go unseen; the resync after a reconnect is rule 1.
// 5. A body older than maxAgeMs is not served: a change that fires no notification (TRUNCATE)
//    is seen within that time.
// 6. At most maxEntries bodies; the least recently used goes first.
// Concurrent misses of one key under one generation share a single query.
import { createHash } from 'node:crypto'
import type { ChangeListener } from '../db/change-feed.js'
import type { Clock } from '../util/clock.js'
import { entityTag } from './request.js'

/** What the cache needs of the store (PluginStore has both). */
export interface ChangeSource {
  subscribe(listener: ChangeListener): () => void
  readonly changeFeedConnected: boolean
}

export interface ListCacheOptions {
  clock: Pick<Clock, 'now'>
  /** Distinct filters kept. Default 16. */
  maxEntries?: number
  /** Age after which a body is computed again (rule 5). Default 30 s. */
  maxAgeMs?: number
}

export interface SerializedList {
  /** UTF-8 JSON, ready to send. */
  body: Uint8Array<ArrayBuffer>
  /** A strong ETag: a digest of the body. */
  etag: string
}

interface Entry {
  list: SerializedList
  storedAt: number
}

export class ListCache {
  private readonly entries = new Map<string, Entry>()
  /** Queries in flight under the current generation, by key. */
  private readonly flights = new Map<string, Promise<SerializedList>>()
  private readonly maxEntries: number
  private readonly maxAgeMs: number
  private generation = 0
  private unsubscribe: (() => void) | undefined

  constructor(
    private readonly source: ChangeSource,
    private readonly options: ListCacheOptions,
  ) {
    this.maxEntries = options.maxEntries ?? 16
    this.maxAgeMs = options.maxAgeMs ?? 30_000
    this.unsubscribe = source.subscribe({ onChange: () => this.invalidate(), onResync: () => this.invalidate() })
  }

  /** The body for `key`: cached, shared with a query in flight, or rendered by `render`. */
  read(key: string, render: () => Promise<string>): Promise<SerializedList> {
    if (!this.caching) return render().then(serialize)
    const entry = this.entries.get(key)
    if (entry !== undefined && this.options.clock.now() - entry.storedAt < this.maxAgeMs) {
      // Map order is the LRU order: a hit moves to the end.
      this.entries.delete(key)
      this.entries.set(key, entry)
      return Promise.resolve(entry.list)
    }
    return this.flights.get(key) ?? this.fly(key, render)
  }

  /** Drops every body; queries in flight will not be kept (rules 1 to 3). */
  invalidate(): void {
    this.generation += 1
    this.entries.clear()
    this.flights.clear()
  }

  /** Stops listening; nothing is cached from then on. */
  close(): void {
    this.unsubscribe?.()
    this.unsubscribe = undefined
    this.invalidate()
  }

  get size(): number {
    return this.entries.size
  }

  private get caching(): boolean {
    return this.unsubscribe !== undefined && this.source.changeFeedConnected
  }

  private fly(key: string, render: () => Promise<string>): Promise<SerializedList> {
    const generation = this.generation
    const list = render()
      .then(serialize)
      .then((serialized) => {
        if (this.caching && generation === this.generation) this.remember(key, serialized)
        return serialized
      })
      .finally(() => {
        if (this.flights.get(key) === list) this.flights.delete(key)
      })
    this.flights.set(key, list)
    return list
  }

  private remember(key: string, list: SerializedList): void {
    this.entries.delete(key)
    this.entries.set(key, { list, storedAt: this.options.clock.now() })
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break
      this.entries.delete(oldest)
    }
  }
}

const utf8 = new TextEncoder()

function serialize(json: string): SerializedList {
  const body = utf8.encode(json)
  return { body, etag: entityTag(createHash('sha1').update(body).digest('base64url')) }
}
