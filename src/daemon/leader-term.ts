// What only the leader runs, built fresh for every term: the controller, the health and
// metrics loops over one shared view of Docker, and the spec folder.
import type { ControllerConfig, SpecsConfig } from '../config.js'
import { ContainerCache } from '../controller/container-cache.js'
import { Controller } from '../controller/controller.js'
import { HealthMonitor } from '../controller/health-monitor.js'
import { MetricsSampler } from '../controller/metrics-sampler.js'
import { RestartRequests } from '../controller/restart-requests.js'
import { installationNetworkName, type ContainerSpecOptions } from '../spec/container-spec.js'
import { DEFAULT_ROLLOUT_SETTINGS } from '../controller/plan-types.js'
import type { ProxyTraffic, ReadinessProbe } from '../controller/readiness-probe.js'
import type { Kysely } from 'kysely'
import { AuditRetention } from '../db/audit-retention.js'
import type { EventBus } from '../db/event-bus.js'
import type { PluginStore } from '../db/plugin-store.js'
import type { Database } from '../db/schema.js'
import type { Logger } from '../logger.js'
import type { ContainerRuntime } from '../runtime/container-runtime.js'
import { SpecFolder } from '../sources/spec-folder.js'
import type { Clock } from '../util/clock.js'
import { probeHostFor } from './probe-host.js'
import type { RegistryAuth } from '../runtime/registry-auth.js'
import type { ServiceRuntime } from '../swarm/service-runtime.js'
import type { TaskRows } from '../swarm/service-reconciler.js'
import { SwarmController } from '../swarm/swarm-controller.js'

export interface LeaderTermParts {
  store: PluginStore
  runtime: ContainerRuntime
  bus: EventBus
  clock: Clock
  logger: Logger
  controller: ControllerConfig
  specs: SpecsConfig
  /** The database, for the audit retention (EVENT_RETENTION); without it none runs (tests). */
  db?: Kysely<Database>
  /** The proxy's requests in flight, for the drain of a start-first update. */
  traffic?: ProxyTraffic
  /** Default: HTTP health check or TCP connect over the network. */
  readiness?: ReadinessProbe
  /** RUNTIME=swarm: the swarm manager, and where the task rows go. Given, the term runs the swarm controller instead of the container one. */
  swarm?: { runtime: ServiceRuntime; tasks: TaskRows; registryAuth?: RegistryAuth }
}

/** What the API and the election need of either control loop. */
export interface ControlLoop {
  start(): Promise<void>
  stop(): Promise<void>
  snapshot(): ReturnType<Controller['snapshot']>
  requestRestart(pluginId: string, reason: string): void
}

export class LeaderTerm {
  readonly controller: ControlLoop
  readonly specs: SpecFolder
  /** Settles once the spec folder is watched; rejects when it cannot be. */
  readonly specsStarted: Promise<void>
  /** Resolves once Docker was reached, the first sync done and the loops started; a failure is logged. */
  readonly ready: Promise<void>
  private readonly health: HealthMonitor
  private readonly metrics: MetricsSampler
  private readonly retention: AuditRetention | undefined

  constructor(parts: LeaderTermParts) {
    const { store, runtime, clock, logger, controller: settings } = parts
    const cache = new ContainerCache()
    const restarts = new RestartRequests()
    this.health = new HealthMonitor({
      store,
      cache,
      clock,
      logger,
      intervalMs: settings.healthIntervalMs,
      probeHost: probeHostFor(settings.pluginBindAddress),
      requestRestart: (pluginId, reason) => restarts.request(pluginId, reason),
    })
    this.controller = parts.swarm ? swarmController(parts, parts.swarm) : new Controller({
      store,
      runtime,
      clock,
      logger,
      cache,
      restarts,
      workers: settings.workers,
      resyncIntervalMs: settings.resyncIntervalMs,
      container: containerOptionsOf(settings),
      stopTimeoutSeconds: settings.stopTimeoutSeconds,
      portRange: settings.hostPortRange,
      retryBaseMs: settings.retryBaseMs,
      retryMaxMs: settings.retryMaxMs,
      probeHost: probeHostFor(settings.pluginBindAddress),
      ...(parts.traffic ? { traffic: parts.traffic } : {}),
      ...(parts.readiness ? { readiness: parts.readiness } : {}),
      rolloutSettings: { ...DEFAULT_ROLLOUT_SETTINGS, drainTimeoutMs: settings.updateDrainTimeoutMs },
      allowAnyHostPort: settings.allowAnyHostPort,
      onDockerHealth: (pluginId, health) => this.health.onDockerHealth(pluginId, health),
      imagePollIntervalMs: settings.imagePollIntervalMs,
    })
    this.metrics = new MetricsSampler({
      store,
      runtime,
      cache,
      clock,
      logger,
      intervalMs: settings.healthIntervalMs,
      retentionMs: settings.metricsRetentionMs,
    })
    this.retention = parts.db ? new AuditRetention({ db: parts.db, clock, logger, retentionMs: settings.eventRetentionMs }) : undefined
    // Inputs write desired state only; they work while Docker is still being reached.
    this.specs = new SpecFolder({
      dir: parts.specs.dir,
      store,
      events: parts.bus,
      logger,
      clock,
      rescanIntervalMs: parts.specs.rescanIntervalMs,
      awaitWriteFinishMs: parts.specs.settleMs,
      maxDocuments: parts.specs.maxDocuments,
      hostPorts: { range: settings.hostPortRange, allowAny: settings.allowAnyHostPort },
      runtime: settings.runtime,
    })
    this.specsStarted = this.specs.start()
    // A leader must reconcile even when its spec folder cannot be watched: holding the lead
    // without a controller would stop every manager. (A manager that runs no election
    // refuses to start instead: see startDaemon.)
    this.ready = this.specsStarted
      .catch((error: unknown) => logger.error({ err: error }, `the spec folder is not watched (${(error as Error).message}); reconciling without it`))
      .then(() => this.controller.start())
      .then(() => {
        // EVENT_RETENTION holds on every runtime.
        this.retention?.start()
        // On the swarm runtime Swarm runs the health checks (in the tasks) and the containers are on other nodes.
        if (parts.swarm) return logger.info('swarm controller running: services observed, orphans adopted, workers started')
        this.health.start()
        this.metrics.start()
        logger.info('controller running: Docker observed, orphans adopted, workers started')
      })
    // Logged here, so a rejection nobody awaits is still handled.
    this.ready.catch((error: unknown) => logger.error({ err: error }, `the controller did not start: ${(error as Error).message}`))
  }

  async stop(): Promise<void> {
    await this.specsStarted.catch(() => undefined)
    await this.specs.stop()
    await Promise.all([this.controller.stop(), this.health.stop(), this.metrics.stop(), this.retention?.stop()])
  }
}

function swarmController(parts: LeaderTermParts, swarm: NonNullable<LeaderTermParts['swarm']>): SwarmController {
  const settings = parts.controller
  return new SwarmController({
    store: parts.store,
    tasks: swarm.tasks,
    runtime: swarm.runtime,
    clock: parts.clock,
    logger: parts.logger,
    workers: settings.workers,
    resyncIntervalMs: settings.resyncIntervalMs,
    pollIntervalMs: settings.swarm.pollIntervalMs,
    service: {
      ...containerOptionsOf(settings),
      publishMode: settings.swarm.publishMode,
      endpointMode: settings.swarm.endpointMode,
      stopTimeoutSeconds: settings.stopTimeoutSeconds,
      restartDelaySeconds: settings.swarm.restartDelaySeconds,
    },
    portRange: settings.hostPortRange,
    allowAnyHostPort: settings.allowAnyHostPort,
    retryBaseMs: settings.retryBaseMs,
    retryMaxMs: settings.retryMaxMs,
    ...(swarm.registryAuth ? { registryAuth: swarm.registryAuth } : {}),
  })
}

/** What every plugin's container (or service task) gets from the installation's settings. */
export function containerOptionsOf(settings: ControllerConfig): ContainerSpecOptions {
  return {
    hostIp: settings.pluginBindAddress,
    instance: settings.instance,
    network: installationNetworkName(settings.instance),
    defaults: {
      pidsLimit: settings.pluginPidsLimit,
      ...(settings.pluginDefaultMemoryMb > 0 ? { memoryMb: settings.pluginDefaultMemoryMb } : {}),
      log: { maxSize: settings.pluginLogMaxSize, maxFiles: settings.pluginLogMaxFiles },
    },
  }
}
