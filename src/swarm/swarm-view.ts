// The manager's last look at the swarm: services by name, tasks by service, nodes by id.
// The controller refreshes it (a poll, events, a resync); the reconciler reads it, and
// puts what its own create and update answered into it, so that it never acts on a view
// older than its own last action.
import { LABELS } from '../runtime/container-runtime.js'
import type { ObservedNode, ObservedService, ObservedTask } from './service-runtime.js'

export class SwarmView {
  private services = new Map<string, ObservedService>()
  private tasks = new Map<string, ObservedTask[]>()
  private nodeMap = new Map<string, ObservedNode>()
  /** Bumped by every action of ours: a list begun before it must not overwrite what it put here. */
  private generation = 0

  beginList(): number {
    return this.generation
  }

  /** The services as a list found them; ignored when one of our actions came after the list began. */
  replaceServices(services: ObservedService[], token: number): boolean {
    if (token !== this.generation) return false
    this.services = new Map(services.map((service) => [service.name, service]))
    return true
  }

  replaceTasks(tasks: ObservedTask[]): void {
    const byService = new Map<string, ObservedTask[]>()
    for (const task of tasks) {
      const list = byService.get(task.serviceId) ?? []
      list.push(task)
      byService.set(task.serviceId, list)
    }
    this.tasks = byService
  }

  replaceNodes(nodes: ObservedNode[]): void {
    this.nodeMap = new Map(nodes.map((node) => [node.id, node]))
  }

  service(name: string): ObservedService | undefined {
    return this.services.get(name)
  }

  allServices(): ObservedService[] {
    return [...this.services.values()]
  }

  /** A service of this plugin id under any name (a row renamed in SQL leaves its old service behind). */
  servicesOfPlugin(pluginId: string): ObservedService[] {
    return this.allServices().filter((service) => service.labels[LABELS.pluginId] === pluginId)
  }

  tasksOf(serviceId: string): ObservedTask[] {
    return this.tasks.get(serviceId) ?? []
  }

  nodes(): ReadonlyMap<string, ObservedNode> {
    return this.nodeMap
  }

  /** What our own create or update answered (an inspect right after it). */
  putService(service: ObservedService): void {
    this.generation += 1
    this.services.set(service.name, service)
  }

  removeService(name: string): void {
    this.generation += 1
    this.services.delete(name)
  }
}
