// The controller's view of Docker: filled by one list call per resync, kept current by the
// event stream and by the results of our own actions, so that reconciling an unchanged
// plugin costs no Docker call.
import { LABELS, type ObservedContainer } from '../runtime/container-runtime.js'

interface Entry {
  container: ObservedContainer
  /** From inspect (exit code, start time, health), not only from a list. */
  detailed: boolean
}

export class ContainerCache {
  private readonly byName = new Map<string, Entry>()

  /** Replaces everything with a fresh list; keeps inspect details where nothing changed. */
  replaceAll(listed: ObservedContainer[]): void {
    const previous = new Map(this.byName)
    this.byName.clear()
    for (const container of listed) {
      const before = previous.get(container.name)
      const unchanged = before?.detailed && before.container.id === container.id && before.container.state === container.state
      this.byName.set(container.name, unchanged ? before : { container, detailed: false })
    }
  }

  /** Records what inspect returned. */
  putDetailed(container: ObservedContainer): void {
    this.byName.set(container.name, { container, detailed: true })
  }

  removeByName(name: string): void {
    this.byName.delete(name)
  }

  removeById(containerId: string): void {
    for (const [name, entry] of this.byName) if (entry.container.id === containerId) this.byName.delete(name)
  }

  get(name: string): { container: ObservedContainer; detailed: boolean } | undefined {
    return this.byName.get(name)
  }

  findByPluginId(pluginId: string): ObservedContainer | undefined {
    for (const entry of this.byName.values()) if (entry.container.labels[LABELS.pluginId] === pluginId) return entry.container
    return undefined
  }

  all(): ObservedContainer[] {
    return [...this.byName.values()].map((entry) => entry.container)
  }

  get size(): number {
    return this.byName.size
  }
}
