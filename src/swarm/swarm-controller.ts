// The control loop on the swarm runtime: the container controller's shape (a work queue of
// plugin ids, workers, store notifications as triggers, a full resync at start, after the
// engine comes back and periodically), with Swarm's facts as its view.
//
// Swarm's event stream says when a service or a node changed, but not when a task did: the
// tasks are listed every SWARM_POLL_INTERVAL (one call for all of them, and one for the
// nodes), and only plugins whose tasks changed are queued. An event asks for that poll at once.
import type { Logger } from '../logger.js'
import type { PluginChange } from '../db/change-feed.js'
import type { PluginStore } from '../db/plugin-store.js'
import { adoptOrphans } from '../controller/adoption.js'
import { emptyControllerStats, type ControllerStats } from '../controller/controller.js'
import { PortAllocator, type PortRange } from '../controller/port-allocator.js'
import { RestartRequests } from '../controller/restart-requests.js'
import { WorkQueue } from '../controller/work-queue.js'
import { runWorkers, type WorkerPool } from '../controller/worker-pool.js'
import { LABELS, RuntimeUnavailableError, type ObservedContainer } from '../runtime/container-runtime.js'
import type { RegistryAuth } from '../runtime/registry-auth.js'
import { Backoff, sleep } from '../util/backoff.js'
import type { Clock, TimerHandle } from '../util/clock.js'
import { formatDuration } from '../util/format-duration.js'
import { isUuid } from '../util/uuid.js'
import type { ObservedService, ObservedTask, ServiceRuntime, SwarmInfo } from './service-runtime.js'
import { ServiceReconciler, type TaskRows } from './service-reconciler.js'
import type { ServiceSpecOptions } from './service-spec.js'
import { SwarmView } from './swarm-view.js'

export interface SwarmControllerOptions {
  store: PluginStore
  tasks: TaskRows
  runtime: ServiceRuntime
  clock: Clock
  logger: Logger
  workers: number
  resyncIntervalMs: number
  /** How often the tasks and nodes are listed. */
  pollIntervalMs: number
  service: ServiceSpecOptions
  portRange: PortRange
  allowAnyHostPort?: boolean
  retryBaseMs: number
  retryMaxMs: number
  registryAuth?: RegistryAuth
}

export class SwarmController {
  readonly view = new SwarmView()
  readonly queue: WorkQueue
  private readonly reconciler: ServiceReconciler
  private readonly restarts = new RestartRequests()
  private readonly abort = new AbortController()
  private readonly log: Logger
  private readonly stats: ControllerStats = emptyControllerStats()
  private pool: WorkerPool | undefined
  private unsubscribe: (() => void) | undefined
  private eventsLoop: Promise<void> | undefined
  private pollTimer: TimerHandle | undefined
  private resyncTimer: TimerHandle | undefined
  private polling: Promise<void> | undefined
  private pollAgain = false
  /** Per service id: what its tasks looked like at the last poll. */
  private fingerprints = new Map<string, string>()
  private nodesFingerprint = ''
  private info: SwarmInfo | undefined

  constructor(private readonly options: SwarmControllerOptions) {
    this.log = options.logger.child({ component: 'swarm-controller' })
    this.queue = new WorkQueue({ clock: options.clock, baseDelayMs: options.retryBaseMs, maxDelayMs: options.retryMaxMs })
    this.reconciler = new ServiceReconciler({
      store: options.store,
      tasks: options.tasks,
      runtime: options.runtime,
      view: this.view,
      ports: new PortAllocator(options.store, options.portRange),
      clock: options.clock,
      logger: options.logger,
      service: options.service,
      ...(options.registryAuth ? { registryAuth: options.registryAuth } : {}),
      hostPorts: { range: options.portRange, allowAny: options.allowAnyHostPort ?? false },
      restarts: this.restarts,
    })
    this.restarts.onRequest((pluginId) => this.queue.add(pluginId))
  }

  /** Replaces the plugin's tasks once (a forced service update, as `docker service update --force`). */
  requestRestart(pluginId: string, reason: string): void {
    this.restarts.request(pluginId, reason)
  }

  async start(): Promise<void> {
    this.unsubscribe = this.options.store.subscribe({
      onChange: (change: PluginChange) => {
        if (change.spec) this.queue.add(change.id)
      },
      onResync: (reason) => void this.resync(`database: ${reason}`, false),
      onRestartRequest: (pluginId, reason) => this.requestRestart(pluginId, reason),
    })
    this.info = await this.connect()
    if (this.abort.signal.aborted) return
    const network = this.options.service.network
    if (network) await this.options.runtime.ensureOverlayNetwork(network, { [LABELS.managed]: 'true', [LABELS.instance]: this.options.service.instance })
    await this.resync('start', true)
    this.pool = runWorkers(this.queue, this.options.workers, (key) => this.reconcileTimed(key), (key, error, retryInMs) => {
      this.stats.reconcileErrors += 1
      this.log.warn({ pluginId: key, err: error, retryInMs }, `reconcile of ${key} failed: ${(error as Error).message}; retrying in ${formatDuration(retryInMs)}`)
    })
    this.eventsLoop = this.consumeEvents()
    this.schedulePoll()
    this.scheduleResync()
  }

  async stop(): Promise<void> {
    this.abort.abort()
    this.unsubscribe?.()
    if (this.pollTimer) this.options.clock.clearTimeout(this.pollTimer)
    if (this.resyncTimer) this.options.clock.clearTimeout(this.resyncTimer)
    this.queue.shutDown()
    await this.pool?.stopped
    await this.eventsLoop
    await this.polling
  }

  snapshot(): ControllerStats {
    return { ...this.stats, ...(this.info ? { engine: { engineVersion: this.info.engineVersion, apiVersion: this.info.apiVersion } } : {}), queueDepth: this.queue.len(), processing: this.queue.processingCount }
  }

  private async connect(): Promise<SwarmInfo | undefined> {
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000, jitter: 0.2 })
    while (!this.abort.signal.aborted) {
      try {
        const info = await this.options.runtime.connect()
        this.stats.dockerConnected = true
        this.log.info(info, `connected to the swarm manager ${info.nodeId} (Docker ${info.engineVersion}, API ${info.apiVersion})`)
        return info
      } catch (error) {
        const delay = backoff.next()
        this.log.warn({ err: error }, `the swarm manager is not reachable (${(error as Error).message}); retrying in ${formatDuration(delay)}`)
        await sleep(delay, this.abort.signal)
      }
    }
    return undefined
  }

  /**
   * Every service, task and node once; every row queued (a reconcile that finds nothing to
   * do writes nothing). At start, services of ours without a row are adopted or, when
   * their plugin was deleted, removed.
   */
  private async resync(reason: string, adopt: boolean): Promise<void> {
    const { store, runtime } = this.options
    try {
      const token = this.view.beginList()
      const [services, tasks, nodes] = await Promise.all([runtime.listServices(), runtime.listTasks(), runtime.listNodes()])
      this.view.replaceServices(services, token)
      this.view.replaceTasks(tasks)
      this.view.replaceNodes(nodes)
      this.stats.dockerConnected = true
      let rows = await store.listPlugins()
      const ours = services.filter((service) => service.labels[LABELS.managed] === 'true' && service.labels[LABELS.instance] === this.options.service.instance)
      if (adopt) {
        const adopted = await adoptOrphans({
          store,
          instance: this.options.service.instance,
          containers: ours.map(asContainer),
          rows,
          logger: this.log,
          inspect: async (serviceId) => {
            const service = await runtime.inspectService(serviceId)
            return service ? asContainer(service) : undefined
          },
        })
        for (const pluginId of adopted.removeContainersOf) this.queue.add(pluginId)
        if (adopted.created > 0) rows = await store.listPlugins()
      }
      const rowIds = new Set(rows.map((row) => row.id))
      const orphanIds = ours.map((service) => service.labels[LABELS.pluginId] ?? '').filter((id) => isUuid(id) && !rowIds.has(id))
      if (orphanIds.length > 0) for (const pluginId of await store.deletedPluginIds(orphanIds)) this.queue.add(pluginId)
      for (const row of rows) this.queue.add(row.id)
      this.rememberFingerprints(tasks)
      this.stats.resyncs += 1
      this.stats.lastResyncAt = new Date(this.options.clock.now())
      this.log.info({ reason, plugins: rows.length, services: services.length, tasks: tasks.length, nodes: nodes.length }, `resync (${reason}): ${rows.length} plugins, ${services.length} services, ${nodes.length} nodes`)
    } catch (error) {
      if (error instanceof RuntimeUnavailableError) this.stats.dockerConnected = false
      this.log.warn({ err: error }, `resync failed (${(error as Error).message}); the next one will try again`)
      if (reason === 'start') throw error
    }
  }

  /** Lists tasks and nodes; queues the plugins whose tasks (or whose nodes) changed. */
  private poll(): Promise<void> {
    if (this.polling) {
      this.pollAgain = true
      return this.polling
    }
    const run = async () => {
      do {
        this.pollAgain = false
        try {
          await this.pollOnce()
        } catch (error) {
          if (error instanceof RuntimeUnavailableError) this.stats.dockerConnected = false
          this.log.warn({ err: error }, `listing the swarm's tasks failed (${(error as Error).message}); the next poll tries again`)
        }
      } while (this.pollAgain && !this.abort.signal.aborted)
    }
    this.polling = run().finally(() => (this.polling = undefined))
    return this.polling
  }

  private async pollOnce(): Promise<void> {
    const { runtime } = this.options
    const [tasks, nodes] = await Promise.all([runtime.listTasks(), runtime.listNodes()])
    this.view.replaceTasks(tasks)
    this.view.replaceNodes(nodes)
    this.stats.dockerConnected = true
    const nodesPrint = nodes.map((node) => `${node.id}:${node.state}:${node.availability}`).sort().join(',')
    const nodesChanged = nodesPrint !== this.nodesFingerprint
    this.nodesFingerprint = nodesPrint
    const changed = this.rememberFingerprints(tasks)
    for (const service of this.view.allServices()) {
      if (!nodesChanged && !changed.has(service.id)) continue
      const pluginId = service.labels[LABELS.pluginId]
      if (pluginId && service.labels[LABELS.instance] === this.options.service.instance) this.queue.add(pluginId)
    }
  }

  /** Stores each service's task fingerprint; returns the ids of services whose fingerprint changed. */
  private rememberFingerprints(tasks: ObservedTask[]): Set<string> {
    const prints = new Map<string, string[]>()
    for (const task of tasks) {
      const list = prints.get(task.serviceId) ?? []
      list.push(`${task.id}:${task.state}:${task.desiredState}:${task.nodeId ?? ''}`)
      prints.set(task.serviceId, list)
    }
    const next = new Map([...prints].map(([serviceId, list]) => [serviceId, list.sort().join(',')]))
    const changed = new Set<string>()
    for (const [serviceId, print] of next) if (this.fingerprints.get(serviceId) !== print) changed.add(serviceId)
    for (const serviceId of this.fingerprints.keys()) if (!next.has(serviceId)) changed.add(serviceId)
    this.fingerprints = next
    return changed
  }

  private async consumeEvents(): Promise<void> {
    try {
      for await (const item of this.options.runtime.events(this.abort.signal)) {
        if (item.type === 'disconnected') {
          this.stats.dockerConnected = false
          continue
        }
        if (item.type === 'resync') {
          await this.resync(item.reason, false)
          continue
        }
        // A service or node changed: look at the services again (ours may have been updated by hand), then the tasks.
        if (item.kind === 'service') await this.refreshServices()
        void this.poll()
      }
    } catch (error) {
      if (!this.abort.signal.aborted) this.log.error({ err: error }, `the swarm event stream ended: ${(error as Error).message}`)
    }
  }

  private async refreshServices(): Promise<void> {
    try {
      const token = this.view.beginList()
      const services = await this.options.runtime.listServices()
      if (!this.view.replaceServices(services, token)) return
      for (const service of services) {
        const pluginId = service.labels[LABELS.pluginId]
        if (pluginId && service.labels[LABELS.instance] === this.options.service.instance) this.queue.add(pluginId)
      }
    } catch (error) {
      this.log.warn({ err: error }, `listing the swarm's services failed (${(error as Error).message})`)
    }
  }

  private schedulePoll(): void {
    if (this.abort.signal.aborted) return
    this.pollTimer = this.options.clock.setTimeout(() => {
      void this.poll().finally(() => this.schedulePoll())
    }, this.options.pollIntervalMs)
  }

  private scheduleResync(): void {
    if (this.abort.signal.aborted) return
    this.resyncTimer = this.options.clock.setTimeout(() => {
      void this.resync('periodic', false).finally(() => this.scheduleResync())
    }, this.options.resyncIntervalMs)
  }

  private async reconcileTimed(pluginId: string): Promise<{ requeueAfterMs?: number }> {
    const started = performance.now()
    try {
      return await this.reconciler.reconcile(pluginId)
    } finally {
      this.stats.reconciles += 1
      this.stats.reconcileSecondsTotal += (performance.now() - started) / 1000
    }
  }
}

/** A service as adoption sees a container: its labels (the declared spec), its environment (the secrets), its port. */
function asContainer(service: ObservedService): ObservedContainer {
  const port = service.ports[0]
  return {
    id: service.id,
    name: service.name,
    image: service.image,
    state: service.replicas > 0 ? 'running' : 'exited',
    labels: service.labels,
    env: service.env,
    ...(port ? { hostPort: port.publishedPort, containerPort: port.targetPort } : {}),
  }
}
