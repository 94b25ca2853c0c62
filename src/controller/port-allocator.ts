// Host ports: the requested one, or one allocated from HOST_PORT_RANGE and kept for the
// plugin's life. The unique index on plugins.host_port is the referee when two reconciles
// allocate at once: the loser picks again.
import { InvalidValueError } from '../db/errors.js'
import type { Plugin, PluginStore } from '../db/plugin-store.js'
import type { AssignedPort } from '../db/schema.js'
import type { ExtraPort } from '../spec/manifest.js'

export interface PortRange {
  from: number
  to: number
}

export type PortResolution = { ok: true; plugin: Plugin; hostPort: number } | { ok: false; error: string }

const ALLOCATION_ATTEMPTS = 5

export class PortAllocator {
  /** Ports found taken outside FlowForge; skipped by allocation from now on. */
  private readonly takenOutside = new Set<number>()
  /**
   * Ports assigned or requested in the store, read once and kept up to date by our own
   * allocations; re-read when an allocation loses a race or the range looks full, so it
   * costs one query per allocation at most rather than a table scan each time.
   */
  private reserved: Set<number> | undefined
  private loading: Promise<Set<number>> | undefined
  /** Ports picked by allocations whose write has not finished yet. */
  private readonly claimed = new Set<number>()
  /**
   * Where the next search for a free port starts: after the last port handed out, so that
   * allocating N ports costs N steps, not N²/2 (10,000 plugins: 50 million). It goes back to
   * the start of the range whenever the reserved set is read again, which is also when
   * ports of deleted plugins become free, so the lowest free port is found again then.
   */
  private cursor: number

  constructor(
    private readonly store: PluginStore,
    private readonly range: PortRange,
  ) {
    this.cursor = range.from
  }

  async resolve(plugin: Plugin): Promise<PortResolution> {
    const requested = plugin.requestedHostPort
    if (requested !== null) return this.assignRequested(plugin, requested)
    if (plugin.hostPort !== null) return { ok: true, plugin, hostPort: plugin.hostPort }
    return this.allocate(plugin)
  }

  /**
   * A second port for a start-first update, free now; the caller keeps it in
   * status.rollout.toHostPort, which the reserved set reads from then on.
   */
  async reserveExtra(): Promise<number | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const fresh = this.reserved === undefined
      const reserved = await this.reservedPorts()
      const hostPort = this.firstFree(reserved)
      if (hostPort !== undefined) {
        reserved.add(hostPort)
        return hostPort
      }
      if (fresh) return undefined
      this.forgetReserved()
    }
    return undefined
  }

  /**
   * Host ports for the manifest's extra ports: an assignment already made is kept (for the
   * plugin's life, like the primary port), a requested one is taken when no other plugin
   * holds it, the rest come from the range. Writes status.extra_ports when it changed.
   */
  async resolveExtras(plugin: Plugin, wanted: ExtraPort[]): Promise<PortResolution> {
    const own = new Set([plugin.hostPort, ...plugin.extraPorts.map((port) => port.hostPort)])
    const assigned: AssignedPort[] = []
    for (const port of wanted) {
      const protocol = port.protocol ?? 'tcp'
      const kept = plugin.extraPorts.find(
        (candidate) => candidate.name === port.name && candidate.containerPort === port.containerPort && candidate.protocol === protocol && (port.hostPort === undefined || candidate.hostPort === port.hostPort),
      )
      if (kept) {
        assigned.push(kept)
        continue
      }
      if (port.hostPort !== undefined) {
        const reserved = await this.reservedPorts()
        if (reserved.has(port.hostPort) && !own.has(port.hostPort)) {
          return { ok: false, error: `requested host port ${port.hostPort} of port ${port.name} is already assigned to another plugin` }
        }
        reserved.add(port.hostPort)
        assigned.push({ name: port.name, containerPort: port.containerPort, protocol, hostPort: port.hostPort })
        continue
      }
      const hostPort = await this.reserveExtra()
      if (hostPort === undefined) return { ok: false, error: `no free host port left in HOST_PORT_RANGE ${this.range.from}-${this.range.to} for port ${port.name}` }
      assigned.push({ name: port.name, containerPort: port.containerPort, protocol, hostPort })
    }
    if (JSON.stringify(assigned) === JSON.stringify(plugin.extraPorts)) return { ok: true, plugin, hostPort: plugin.hostPort ?? 0 }
    const updated = await this.store.writeStatus(plugin.id, { extraPorts: assigned })
    return { ok: true, plugin: updated ?? plugin, hostPort: plugin.hostPort ?? 0 }
  }

  /** The plugin's allocated port turned out to be in use on the host: let it go. */
  async release(plugin: Plugin): Promise<void> {
    if (plugin.hostPort === null) return
    this.takenOutside.add(plugin.hostPort)
    await this.store.writeStatus(plugin.id, { hostPort: null })
  }

  private async assignRequested(plugin: Plugin, requested: number): Promise<PortResolution> {
    if (plugin.hostPort === requested) return { ok: true, plugin, hostPort: requested }
    try {
      const updated = await this.store.writeStatus(plugin.id, { hostPort: requested })
      return { ok: true, plugin: updated ?? plugin, hostPort: requested }
    } catch (error) {
      if (!(error instanceof InvalidValueError)) throw error
      const holder = await this.store.pluginHoldingPort(requested)
      return { ok: false, error: `requested host port ${requested} is already assigned to plugin ${holder ?? 'another plugin'}` }
    }
  }

  private async allocate(plugin: Plugin): Promise<PortResolution> {
    for (let attempt = 0; attempt < ALLOCATION_ATTEMPTS; attempt++) {
      const fresh = this.reserved === undefined
      const reserved = await this.reservedPorts()
      const hostPort = this.firstFree(reserved)
      if (hostPort === undefined) {
        if (!fresh) {
          // Ports of deleted plugins are free again: look at the store before giving up.
          this.forgetReserved()
          continue
        }
        return { ok: false, error: `no free host port left in HOST_PORT_RANGE ${this.range.from}-${this.range.to}` }
      }
      // Claimed before the write: a concurrent allocation (or a reload of the set while
      // this write is in flight) must not hand out the same port.
      this.claimed.add(hostPort)
      try {
        const updated = await this.store.writeStatus(plugin.id, { hostPort })
        this.reserved?.add(hostPort)
        return { ok: true, plugin: updated ?? plugin, hostPort }
      } catch (error) {
        // Someone outside this process (another manager, an SQL edit) holds it: read the store again.
        if (!(error instanceof InvalidValueError)) throw error
        this.forgetReserved()
      } finally {
        this.claimed.delete(hostPort)
      }
    }
    throw new Error(`could not allocate a host port for ${plugin.forgehookId} after ${ALLOCATION_ATTEMPTS} attempts`)
  }

  /** The reserved set, loaded once for all concurrent allocations. */
  private async reservedPorts(): Promise<Set<number>> {
    if (this.reserved) return this.reserved
    this.loading ??= this.store.reservedHostPorts().finally(() => (this.loading = undefined))
    const loaded = await this.loading
    // Another allocation may have installed (and added to) a set meanwhile: keep that one.
    this.reserved ??= loaded
    return this.reserved
  }

  /** Read the store again at the next allocation, and search the range from its start. */
  private forgetReserved(): void {
    this.reserved = undefined
    this.cursor = this.range.from
  }

  /** The first free port from the cursor on, wrapping round to the range's start once. */
  private firstFree(used: Set<number>): number | undefined {
    const { from, to } = this.range
    const size = to - from + 1
    for (let step = 0; step < size; step++) {
      const port = from + ((this.cursor - from + step) % size)
      if (!used.has(port) && !this.claimed.has(port) && !this.takenOutside.has(port)) {
        this.cursor = port
        return port
      }
    }
    return undefined
  }
}
