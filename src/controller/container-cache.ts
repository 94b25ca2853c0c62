// The controller's view of Docker: filled by one list call per resync, kept current by the
// event stream and by the results of our own actions, so that reconciling an unchanged
// plugin costs no Docker call.
//
// The cache is *complete* after a list: a name it does not hold has no container, so a
// reconcile need not ask Docker (a container made behind our back meets its create as a
// name conflict, which inspects). It stops being complete when an entry had to be dropped
// without knowing the container's fate (a failed inspect), until the next list.
import { LABELS, type ObservedContainer } from '../runtime/container-runtime.js'

interface Entry {
  container: ObservedContainer
  /** From inspect (exit code, start time, health), or from our own create: not only from a list. */
  detailed: boolean
  /**
   * Running by our own start's answer, not yet inspected (see markStarted): the engine's
   * start time, health and networks are not read yet. The reconciler inspects such an entry
   * before it judges it; the controller settles it once the queue is idle.
   */
  provisional?: boolean
  /** The change counter when it was put: newer than a list means the list did not see it. */
  seq: number
}

/** The same networks, or the list does not say (then the entry's own are kept). */
function sameNetworks(cached: ObservedContainer, listed: ObservedContainer): boolean {
  if (!listed.networks || !cached.networks) return true
  return cached.networks.length === listed.networks.length && cached.networks.every((network) => listed.networks!.includes(network))
}

/** Taken before a list call; replaceAll keeps what changed after it. */
export type ListToken = number

export class ContainerCache {
  private readonly byName = new Map<string, Entry>()
  private readonly nameById = new Map<string, string>()
  /** Names removed since the last list, with the change counter of the removal. */
  private readonly removed = new Map<string, number>()
  /** Our own start or stop in flight, by container id. */
  private readonly acting = new Map<string, 'start' | 'stop'>()
  /** Names our own create is making right now (the id is not known until it answers). */
  private readonly creating = new Set<string>()
  /** Ids of provisional entries (markStarted), in the order they were started. */
  private readonly unsettledIds = new Set<string>()
  private seq = 0
  private listed = false
  private incomplete = false

  /** Call right before listing the containers; pass the token to replaceAll. */
  beginList(): ListToken {
    this.incomplete = false
    return this.seq
  }

  /**
   * Replaces everything with a fresh list; keeps inspect details where nothing changed,
   * and whatever was put or removed after `token` (the list cannot know of it).
   */
  replaceAll(listed: ObservedContainer[], token: ListToken = this.seq): void {
    const previous = new Map(this.byName)
    this.byName.clear()
    this.nameById.clear()
    for (const container of listed) {
      const removedAt = this.removed.get(container.name)
      if (removedAt !== undefined && removedAt > token) continue
      const before = previous.get(container.name)
      // A network joined or left shows in the list, not in container events: that is a change too.
      const unchanged = before?.detailed && before.container.id === container.id && before.container.state === container.state && sameNetworks(before.container, container)
      this.set(unchanged || (before && before.seq > token) ? before : { container, detailed: false, seq: this.seq })
    }
    for (const entry of previous.values()) if (entry.seq > token && !this.byName.has(entry.container.name)) this.set(entry)
    this.removed.clear()
    this.listed = true
  }

  /** Records what inspect returned, or what our own create made. */
  putDetailed(container: ObservedContainer): void {
    this.set({ container, detailed: true, seq: ++this.seq })
  }

  /** The change counter of the container's entry: whether anything was put for it since. */
  versionOf(containerId: string): number | undefined {
    const name = this.nameById.get(containerId)
    return name === undefined ? undefined : this.byName.get(name)?.seq
  }

  /**
   * Our start of a container that our own create put here (state created) succeeded: it is
   * running since about `startedAt`, with the create's image, labels, port binding and
   * mounts; a start changes none of them. The entry is provisional until inspected: health,
   * the engine's own start time and the networks are not known yet. False (nothing
   * recorded) when the entry is not that one any more (`version` from before the start):
   * an event's inspect during the start put something newer, or it never was our create's.
   */
  markStarted(containerId: string, startedAt: Date, version: number | undefined): boolean {
    const entry = this.getEntryById(containerId)
    if (!entry || version === undefined || entry.seq !== version || !entry.detailed || entry.container.state !== 'created') return false
    const { exitCode: _exitCode, finishedAt: _finishedAt, ...container } = entry.container
    this.set({ container: { ...container, state: 'running', startedAt }, detailed: true, provisional: true, seq: ++this.seq })
    this.unsettledIds.add(containerId)
    return true
  }

  /** The engine's `start` event of a provisional entry: its time is the engine's start time. */
  noteStartTime(containerId: string, time: Date): void {
    const entry = this.getEntryById(containerId)
    if (entry?.provisional && entry.container.state === 'running') entry.container = { ...entry.container, startedAt: time }
  }

  /** Provisional entries (markStarted) not inspected yet, oldest first. */
  unsettled(): string[] {
    for (const containerId of this.unsettledIds) if (!this.getEntryById(containerId)?.provisional) this.unsettledIds.delete(containerId)
    return [...this.unsettledIds]
  }

  removeByName(name: string): void {
    const entry = this.byName.get(name)
    if (entry) this.nameById.delete(entry.container.id)
    this.byName.delete(name)
    this.removed.set(name, ++this.seq)
  }

  removeById(containerId: string): void {
    const name = this.nameById.get(containerId)
    if (name !== undefined) this.removeByName(name)
  }

  /** Drops an entry whose container may still exist: names not held are no longer known to be free. */
  forget(containerId: string): void {
    this.removeById(containerId)
    this.incomplete = true
  }

  get(name: string): { container: ObservedContainer; detailed: boolean; provisional?: boolean } | undefined {
    return this.byName.get(name)
  }

  getById(containerId: string): { container: ObservedContainer; detailed: boolean; provisional?: boolean } | undefined {
    return this.getEntryById(containerId)
  }

  /**
   * Runs our own start or stop (and the inspect after it, or markStarted). Meanwhile the
   * container's events of that action are echoes (see isOwnAction): what the operation puts
   * afterwards records the outcome.
   */
  async whileActing<T>(containerId: string, action: 'start' | 'stop', operation: () => Promise<T>): Promise<T> {
    this.acting.set(containerId, action)
    try {
      return await operation()
    } finally {
      this.acting.delete(containerId)
    }
  }

  /**
   * Runs our own create of `name`. Its `create` event often arrives before the create's
   * answer, so before the entry the answer puts: it is an echo all the same (a create by
   * someone else under that name makes ours fail with a conflict, which inspects).
   */
  async whileCreating<T>(name: string, operation: () => Promise<T>): Promise<T> {
    this.creating.add(name)
    try {
      return await operation()
    } finally {
      this.creating.delete(name)
    }
  }

  /** Whether a Docker event is what our create, start or stop in flight on that container causes. */
  isOwnAction(containerId: string, eventAction: string, containerName?: string): boolean {
    if (eventAction === 'create' && containerName !== undefined && this.creating.has(containerName)) return true
    const acting = this.acting.get(containerId)
    if (acting === 'start') return eventAction === 'start'
    if (acting === 'stop') return eventAction === 'kill' || eventAction === 'die' || eventAction === 'stop'
    return false
  }

  /** Whether a name the cache does not hold is known to have no container. */
  get complete(): boolean {
    return this.listed && !this.incomplete
  }

  /** Every container labelled with the plugin id (its own, and a rollout's beside it). */
  allByPluginId(pluginId: string): ObservedContainer[] {
    const found: ObservedContainer[] = []
    for (const entry of this.byName.values()) if (entry.container.labels[LABELS.pluginId] === pluginId) found.push(entry.container)
    return found
  }

  all(): ObservedContainer[] {
    return [...this.byName.values()].map((entry) => entry.container)
  }

  get size(): number {
    return this.byName.size
  }

  private getEntryById(containerId: string): Entry | undefined {
    const name = this.nameById.get(containerId)
    return name === undefined ? undefined : this.byName.get(name)
  }

  private set(entry: Entry): void {
    if (!entry.provisional) this.unsettledIds.delete(entry.container.id)
    // Renamed (a rollout): the entry under its old name goes.
    const oldName = this.nameById.get(entry.container.id)
    if (oldName !== undefined && oldName !== entry.container.name) this.byName.delete(oldName)
    const stale = this.byName.get(entry.container.name)
    if (stale) this.nameById.delete(stale.container.id)
    this.byName.set(entry.container.name, entry)
    this.nameById.set(entry.container.id, entry.container.name)
  }
}
