// The control loop: triggers put plugin ids on the queue; workers reconcile them.
// Triggers only enqueue: store change notifications, Docker events of managed containers,
// and a full resync at start, after every reconnect of either stream, and periodically.
import type { Logger } from '../logger.js'
import type { PluginChange } from '../db/change-feed.js'
import type { Plugin, PluginStore } from '../db/plugin-store.js'
import {
  isManaged,
  LABELS,
  rolloutNamesFor,
  RuntimeUnavailableError,
  type ContainerHealth,
  type ContainerRuntime,
  type RuntimeEvent,
  type RuntimeInfo,
} from '../runtime/container-runtime.js'
import { Backoff, sleep } from '../util/backoff.js'
import { formatDuration } from '../util/format-duration.js'
import type { Clock, TimerHandle } from '../util/clock.js'
import { adoptOrphans } from './adoption.js'
import type { ContainerSpecOptions } from '../spec/container-spec.js'
import { ContainerCache } from './container-cache.js'
import { ImageDigests } from './image-digests.js'
import { ImagePoller } from './image-poller.js'
import type { CrashLoopPolicy, RolloutSettings } from './plan-types.js'
import { networkReadinessProbe, type ProxyTraffic, type ReadinessProbe } from './readiness-probe.js'
import { PortAllocator, type PortRange } from './port-allocator.js'
import { Reconciler } from './reconciler.js'
import { RestartRequests } from './restart-requests.js'
import { StartSettler } from './start-settler.js'
import { isEcho, sameObservation } from './event-echo.js'
import { needsReconcile } from './resync-check.js'
import { WorkQueue } from './work-queue.js'
import { runWorkers, type WorkerPool } from './worker-pool.js'
import { isUuid } from '../util/uuid.js'

export interface ControllerOptions {
  store: PluginStore
  runtime: ContainerRuntime
  clock: Clock
  logger: Logger
  workers: number
  resyncIntervalMs: number
  container: ContainerSpecOptions
  stopTimeoutSeconds: number
  portRange: PortRange
  retryBaseMs: number
  retryMaxMs: number
  crashLoop?: CrashLoopPolicy
  /** The view of Docker shared with the health monitor and the metrics sampler. Default: a fresh one. */
  cache?: ContainerCache
  /** One-off restart requests (the health monitor's, the API's). Default: a fresh list. */
  restarts?: RestartRequests
  /** Whether a rollout's new container answers. Default: HTTP health check or TCP connect, over the network. */
  readiness?: ReadinessProbe
  /** Where plugin ports are reached from the manager. Default 127.0.0.1. */
  probeHost?: string
  /** The proxy's requests in flight, for the drain of a start-first update. Default: none seen. */
  traffic?: ProxyTraffic
  rolloutSettings?: RolloutSettings
  /** Which requested host ports a row may have; ALLOW_ANY_HOST_PORT lifts HOST_PORT_RANGE. Default: inside portRange. */
  allowAnyHostPort?: boolean
  /** Told of Docker HEALTHCHECK changes as they happen (the health monitor). Must not throw. */
  onDockerHealth?: (pluginId: string, health: ContainerHealth) => void
  /** IMAGE_POLL_INTERVAL: how often an imagePullPolicy Always image is pulled to notice a new push. Default 5 min. */
  imagePollIntervalMs?: number
}

const DEFAULT_IMAGE_POLL_INTERVAL_MS = 5 * 60_000

export interface ControllerStats {
  dockerConnected: boolean
  engine?: RuntimeInfo
  queueDepth: number
  processing: number
  reconciles: number
  reconcileErrors: number
  reconcileSecondsTotal: number
  resyncs: number
  lastResyncAt?: Date
}

/** Before any work: also what a follower, which runs no controller, reports. */
export function emptyControllerStats(): ControllerStats {
  return { dockerConnected: false, queueDepth: 0, processing: 0, reconciles: 0, reconcileErrors: 0, reconcileSecondsTotal: 0, resyncs: 0 }
}


export class Controller {
  readonly cache: ContainerCache
  private readonly restarts: RestartRequests
  private readonly unsubscribeRestarts: () => void
  readonly queue: WorkQueue
  /** What this manager's pulls found: the image each Always tag names (image-digests.ts). */
  readonly digests = new ImageDigests()
  private readonly imagePoller: ImagePoller
  private readonly reconciler: Reconciler
  private readonly settler: StartSettler
  private readonly abort = new AbortController()
  private readonly log: Logger
  private pool: WorkerPool | undefined
  private eventsLoop: Promise<void> | undefined
  private resyncTimer: TimerHandle | undefined
  private resyncRunning: Promise<void> | undefined
  private resyncAgain = false
  private unsubscribe: (() => void) | undefined
  private readonly stats: ControllerStats = emptyControllerStats()

  constructor(private readonly options: ControllerOptions) {
    this.log = options.logger.child({ component: 'controller' })
    this.cache = options.cache ?? new ContainerCache()
    this.restarts = options.restarts ?? new RestartRequests()
    // Queued at once, even before the first sync: the workers take it after that.
    this.unsubscribeRestarts = this.restarts.onRequest((pluginId) => this.queue.add(pluginId))
    this.queue = new WorkQueue({ clock: options.clock, baseDelayMs: options.retryBaseMs, maxDelayMs: options.retryMaxMs })
    this.reconciler = new Reconciler({
      store: options.store,
      runtime: options.runtime,
      cache: this.cache,
      ports: new PortAllocator(options.store, options.portRange),
      clock: options.clock,
      logger: options.logger,
      container: options.container,
      stopTimeoutSeconds: options.stopTimeoutSeconds,
      crashLoop: options.crashLoop,
      restarts: this.restarts,
      readiness: options.readiness ?? networkReadinessProbe,
      probeHost: options.probeHost ?? '127.0.0.1',
      ...(options.traffic ? { traffic: options.traffic } : {}),
      ...(options.rolloutSettings ? { rolloutSettings: options.rolloutSettings } : {}),
      hostPorts: { range: options.portRange, allowAny: options.allowAnyHostPort ?? false },
      digests: this.digests,
    })
    this.imagePoller = new ImagePoller({
      listPlugins: () => options.store.listPlugins(),
      runtime: options.runtime,
      digests: this.digests,
      clock: options.clock,
      logger: options.logger,
      intervalMs: options.imagePollIntervalMs ?? DEFAULT_IMAGE_POLL_INTERVAL_MS,
      onNewImage: (references) => this.requestResync(`a pull found a new image for ${references.join(', ')}`),
    })
    this.settler = new StartSettler({
      cache: this.cache,
      runtime: options.runtime,
      clock: options.clock,
      logger: this.log,
      busy: () => this.queue.len() > 0 || this.queue.processingCount > 0,
      enqueue: (pluginId) => this.queue.add(pluginId),
    })
  }

  /** Restarts the plugin's running container once (no recreate). */
  requestRestart(pluginId: string, reason: string): void {
    this.restarts.request(pluginId, reason)
  }

  /**
   * Connects to Docker (retrying until it answers), observes everything once, adopts
   * orphans, and only then starts the workers: nothing is created before it was looked for.
   * Resolves when the first sync is done.
   */
  async start(): Promise<void> {
    // Changes arriving before the first sync are queued and handled after it.
    this.unsubscribe = this.options.store.subscribe({
      onChange: (change) => this.onStoreChange(change),
      onResync: (reason) => this.requestResync(`database: ${reason}`),
      onRestartRequest: (pluginId, reason) => this.requestRestart(pluginId, reason),
    })
    this.stats.engine = await this.connectRuntime()
    if (this.abort.signal.aborted) return
    await this.resync('start', { adopt: true })
    this.pool = runWorkers(this.queue, this.options.workers, (key) => this.reconcileTimed(key), (key, error, retryInMs) => this.onReconcileError(key, error, retryInMs))
    this.eventsLoop = this.consumeEvents()
    this.scheduleResync()
    this.imagePoller.start()
  }

  /** Stops taking new work; lets running reconciles finish. */
  async stop(): Promise<void> {
    this.abort.abort()
    this.unsubscribe?.()
    this.unsubscribeRestarts()
    if (this.resyncTimer) this.options.clock.clearTimeout(this.resyncTimer)
    this.queue.shutDown()
    await this.settler.stop()
    await this.imagePoller.stop()
    await this.pool?.stopped
    await this.eventsLoop
    await this.resyncRunning
  }

  snapshot(): ControllerStats {
    return { ...this.stats, queueDepth: this.queue.len(), processing: this.queue.processingCount }
  }

  /** Asks for a full resync; several requests during one resync coalesce into one more. */
  requestResync(reason: string): void {
    if (this.abort.signal.aborted || !this.pool) return
    if (this.resyncRunning) {
      this.resyncAgain = true
      return
    }
    void this.resync(reason, { adopt: false })
  }

  private async connectRuntime(): Promise<RuntimeInfo | undefined> {
    const backoff = new Backoff({ initialMs: 500, maxMs: 15_000, jitter: 0.2 })
    while (!this.abort.signal.aborted) {
      try {
        const info = await this.options.runtime.connect()
        this.stats.dockerConnected = true
        this.log.info(info, `connected to Docker ${info.engineVersion} (API ${info.apiVersion})`)
        return info
      } catch (error) {
        const delay = backoff.next()
        this.log.warn({ err: error }, `Docker is not reachable (${(error as Error).message}); retrying in ${formatDuration(delay)}`)
        await sleep(delay, this.abort.signal)
      }
    }
    return undefined
  }

  /**
   * One list of rows, one list of containers; only plugins whose observed state differs
   * from what they declare are queued, so an idle resync costs two round trips in all.
   */
  private resync(reason: string, options: { adopt: boolean }): Promise<void> {
    const run = async () => {
      do {
        this.resyncAgain = false
        try {
          await this.resyncOnce(reason, options.adopt)
        } catch (error) {
          if (error instanceof RuntimeUnavailableError) this.stats.dockerConnected = false
          this.log.warn({ err: error }, `resync failed (${(error as Error).message}); the next one will try again`)
        }
      } while (this.resyncAgain && !this.abort.signal.aborted)
    }
    this.resyncRunning = run().finally(() => (this.resyncRunning = undefined))
    return this.resyncRunning
  }

  private async resyncOnce(reason: string, adopt: boolean): Promise<void> {
    const { store, runtime } = this.options
    const started = this.options.clock.now()
    const token = this.cache.beginList()
    // By name, not by label: unlabelled forgehook-* containers are orphans to adopt (at
    // start), containers a plugin adopted (ours since), or foreign ones holding a name.
    const listed = await runtime.listByNamePrefix()
    // The installation network, made again when someone removed it: every plugin is looked at (they reconnect).
    const networkCreated = await this.ensureInstallationNetwork()
    // Containers another installation manages on this engine are not ours to look at.
    const containers = listed.filter((container) => !isManaged(container) || this.isOurs(container))
    this.stats.dockerConnected = true
    this.cache.replaceAll(containers, token)
    let rows = await store.listPlugins()
    if (adopt) {
      const adopted = await adoptOrphans({ store, instance: this.options.container.instance, containers, rows, logger: this.log, inspect: (containerId) => runtime.inspect(containerId) })
      for (const pluginId of adopted.removeContainersOf) this.queue.add(pluginId)
      if (adopted.created > 0) rows = await store.listPlugins()
    } else {
      await this.queueOrphanRemovals(rows)
    }
    let queued = 0
    if (networkCreated) for (const row of rows) this.queue.add(row.id)
    for (const row of rows) {
      const names = rolloutNamesFor(row.forgehookId)
      const entry = this.cache.get(names.main)
      const companions = this.cache.get(names.next) !== undefined || this.cache.get(names.previous) !== undefined
      if (!needsReconcile(row, entry?.container, this.options.container, companions, this.digests)) continue
      this.queue.add(row.id)
      queued += 1
    }
    this.stats.resyncs += 1
    this.stats.lastResyncAt = new Date(this.options.clock.now())
    this.log.info(
      { reason, plugins: rows.length, containers: containers.length, queued, ms: this.options.clock.now() - started },
      `resync (${reason}): ${rows.length} plugins, ${containers.length} containers, ${queued} to reconcile`,
    )
  }

  /** Managed containers whose plugin row is gone: their reconcile removes them. */
  private async queueOrphanRemovals(rows: Plugin[]): Promise<void> {
    const pluginIds = new Set(rows.map((row) => row.id))
    const containers = this.cache.all()
    const orphans = containers
      .filter((container) => isManaged(container))
      .map((container) => container.labels[LABELS.pluginId] ?? '')
      .filter((pluginId) => isUuid(pluginId) && !pluginIds.has(pluginId))
    // Only tombstoned ones: an unknown id is an orphan to adopt at the next start, not to delete.
    if (orphans.length > 0) for (const pluginId of await this.options.store.deletedPluginIds(orphans)) this.queue.add(pluginId)
    // Unlabelled containers no row holds: one a deleted plugin had adopted goes too.
    const held = new Set(rows.map((row) => row.containerId))
    const unheld = containers.filter((container) => !isManaged(container) && !held.has(container.id)).map((container) => container.id)
    if (unheld.length > 0) for (const tombstone of await this.options.store.tombstonesOfContainers(unheld)) this.queue.add(tombstone.pluginId)
  }

  /** Creates flowforge-<instance> when it is missing; true when it had to. */
  private async ensureInstallationNetwork(): Promise<boolean> {
    const network = this.options.container.network
    if (!network) return false
    const labels = { [LABELS.managed]: 'true', [LABELS.instance]: this.options.container.instance }
    const created = await this.options.runtime.ensureNetwork(network, labels)
    if (created) this.log.info({ network }, `created the installation network ${network}: plugins reach each other by name on it`)
    return created
  }

  private isOurs(container: { labels: Record<string, string> }): boolean {
    return container.labels[LABELS.instance] === this.options.container.instance
  }

  private scheduleResync(): void {
    if (this.abort.signal.aborted) return
    this.resyncTimer = this.options.clock.setTimeout(() => {
      this.requestResync('periodic')
      this.scheduleResync()
    }, this.options.resyncIntervalMs)
  }

  private onStoreChange(change: PluginChange): void {
    // Status-only writes are our own: reconciling again would change nothing.
    if (!change.spec) return
    this.queue.add(change.id)
  }

  private async consumeEvents(): Promise<void> {
    try {
      for await (const item of this.options.runtime.events(this.abort.signal)) {
        if (item.type === 'disconnected') {
          // /readyz says "docker unreachable" from now until a resync reaches the engine again.
          this.stats.dockerConnected = false
          continue
        }
        if (item.type === 'resync') {
          this.requestResync(`docker: ${item.reason}`)
          continue
        }
        await this.onRuntimeEvent(item.event)
      }
    } catch (error) {
      if (this.abort.signal.aborted) return
      this.log.error({ err: error }, 'the Docker event stream failed for good; periodic resyncs continue')
    }
  }

  private async onRuntimeEvent(event: RuntimeEvent): Promise<void> {
    const pluginId = event.labels[LABELS.pluginId]
    if (!pluginId || !isUuid(pluginId) || !this.isOurs(event)) return
    let news = true
    if (event.action === 'destroy') {
      this.cache.removeById(event.containerId)
    } else if (this.cache.isOwnAction(event.containerId, event.action, event.name) || isEcho(event, this.cache.getById(event.containerId))) {
      // The echo of our own create, start or stop: the reconcile that acts put (or is about
      // to put) this very state in the cache, so looking again would change nothing. A start's
      // echo carries the engine's start time, which our start's own answer does not.
      if (event.action === 'start') this.cache.noteStartTime(event.containerId, event.time)
      news = false
    } else {
      try {
        const inspected = await this.options.runtime.inspect(event.containerId)
        if (inspected) {
          // An echo that overtook the reconcile's own inspect, or a real change.
          const cached = this.cache.get(inspected.name)
          news = !(cached?.detailed && sameObservation(cached.container, inspected))
          this.cache.putDetailed(inspected)
        } else {
          this.cache.removeById(event.containerId)
        }
      } catch (error) {
        this.log.debug({ err: error }, `could not inspect ${event.name} after ${event.action}`)
        const cached = this.cache.getById(event.containerId)
        if (error instanceof RuntimeUnavailableError && cached?.detailed && (event.action === 'die' || event.action === 'kill')) {
          // The engine going away (dockerd's SIGTERM) first stops answering, then stops its
          // containers: their kill and die events still arrive, and the die event's own word
          // (its exit code) is all there will be until it is back. Taken, the crash is
          // recorded now and its backoff runs during the outage, so the plugin starts as soon
          // as the engine answers again; forgotten, the reconcile could not look either and
          // the backoff only began after the outage. A kill is a signal, not a change of
          // state: the entry stays for the die that follows it.
          if (event.action === 'die') this.cache.putDetailed({ ...cached.container, state: 'exited', exitCode: event.exitCode ?? cached.container.exitCode, finishedAt: event.time, health: undefined })
        } else {
          // The reconcile will look for itself; the event still counts as a hint.
          this.cache.forget(event.containerId)
        }
      }
    }
    if (event.action === 'health_status') {
      if (event.health) this.options.onDockerHealth?.(pluginId, event.health)
      return
    }
    if (news) this.queue.add(pluginId)
  }

  private async reconcileTimed(pluginId: string): Promise<{ requeueAfterMs?: number }> {
    const started = performance.now()
    try {
      return await this.reconciler.reconcile(pluginId)
    } finally {
      this.stats.reconciles += 1
      this.stats.reconcileSecondsTotal += (performance.now() - started) / 1000
      this.settler.notice()
    }
  }

  private onReconcileError(pluginId: string, error: unknown, retryInMs: number): void {
    this.stats.reconcileErrors += 1
    this.log.warn({ pluginId, err: error, retryInMs }, `reconcile of ${pluginId} failed: ${(error as Error).message}; retrying in ${formatDuration(retryInMs)}`)
  }
}
