// Composition root: build everything from the configuration, start it, stop it cleanly.
// The start-up sequence is the guide's: connect to the database, migrate, check Docker,
// load plugins and sync with Docker (adopting orphans), then serve.
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import { Controller, emptyControllerStats } from './controller/controller.js'
import { LeaderElection, type LeadershipStatus } from './controller/leader-election.js'
import { postgresLeaderLock, type LeaderLockBackend } from './db/leader-lock.js'
import { ApiError } from './api/errors.js'
import { HealthMonitor } from './controller/health-monitor.js'
import { MetricsSampler } from './controller/metrics-sampler.js'
import { openDatabase, type DatabaseHandle } from './db/database.js'
import { migrate } from './db/migrator.js'
import { PluginStore } from './db/plugin-store.js'
import type { ContainerRuntime } from './runtime/container-runtime.js'
import { DockerRuntime } from './runtime/docker-runtime.js'
import { systemClock, type Clock } from './util/clock.js'
import { createApp } from './api/app.js'
import { ProxyUsage } from './api/proxy.js'
import { startApiServer } from './api/server.js'
import { EventBus } from './db/event-bus.js'
import { EventRelay } from './db/event-relay.js'
import { SpecFolder } from './sources/spec-folder.js'

export interface Daemon {
  database: DatabaseHandle
  store: PluginStore
  /** The running controller; throws on a manager that is not leading. */
  controller: Controller
  /** The watched spec folder; throws on a manager that is not leading. */
  specs: SpecFolder
  /** Who leads among the managers on this database (always this one on the embedded engine). */
  leadership(): LeadershipStatus
  /** Where the HTTP API listens. */
  apiAddress: { host: string; port: number }
  /** Resolves once the election decided and, when leading, Docker was reached and the first sync is done. */
  ready: Promise<void>
  stop(): Promise<void>
}

export interface DaemonDependencies {
  /** Default: the Docker engine at DOCKER_HOST. Tests pass the in-memory fake. */
  runtime?: ContainerRuntime
  clock?: Clock
  /** Called once per database query (benchmarks count round trips). */
  onQuery?: () => void
  /** Default: the advisory lock on the Postgres server. */
  leaderLock?: LeaderLockBackend
}

export async function startDaemon(config: Config, logger: Logger, dependencies: DaemonDependencies = {}): Promise<Daemon> {
  if (config.database.kind === 'embedded') {
    logger.info(
      { dataDir: config.database.dataDir },
      `no DATABASE_URL or POSTGRES_HOST set: using the embedded Postgres (PGlite) in ${config.database.dataDir}`,
    )
  }
  const database = await openDatabase(config, logger, { onQuery: dependencies.onQuery })
  try {
    await migrate(database.db, config.migrationsDir, logger)
  } catch (error) {
    await database.close()
    throw error
  }
  if (database.sqlAddress) {
    const { host, port } = database.sqlAddress
    logger.info({ host, port }, `embedded database open for SQL clients: psql -h ${host} -p ${port} -U postgres`)
  }

  const settings = config.controller
  const clock = dependencies.clock ?? systemClock
  const bus = new EventBus()
  const store = new PluginStore(database.db, database.changes, logger, bus)
  // Events other managers (or psql) record reach this manager's live streams too.
  const relay = new EventRelay(store, bus, logger)
  relay.start()
  const runtime =
    dependencies.runtime ?? new DockerRuntime({ dockerHost: settings.dockerHost, requestTimeoutMs: settings.dockerTimeoutMs, logger })

  // What only the leader runs: the controller, its health and metrics loops, the spec folder.
  // A term is built fresh each time this manager starts leading.
  const startTerm = (): LeaderTerm => {
    let health: HealthMonitor | undefined
    const controller = new Controller({
      store,
      runtime,
      clock,
      logger,
      workers: settings.workers,
      resyncIntervalMs: settings.resyncIntervalMs,
      container: { hostIp: settings.pluginBindAddress, instance: settings.instance },
      stopTimeoutSeconds: settings.stopTimeoutSeconds,
      portRange: settings.hostPortRange,
      retryBaseMs: settings.retryBaseMs,
      retryMaxMs: settings.retryMaxMs,
      onDockerHealth: (pluginId, status) => void health?.onDockerHealth(pluginId, status),
    })
    health = new HealthMonitor({
      store,
      cache: controller.cache,
      clock,
      logger,
      intervalMs: settings.healthIntervalMs,
      probeHost: probeHostFor(settings.pluginBindAddress),
      requestRestart: (pluginId, reason) => controller.requestRestart(pluginId, reason),
    })
    const metrics = new MetricsSampler({
      store,
      runtime,
      cache: controller.cache,
      clock,
      logger,
      intervalMs: settings.healthIntervalMs,
      retentionMs: settings.metricsRetentionMs,
    })
    // Inputs write desired state only; they work while Docker is still being reached.
    const specs = new SpecFolder({
      dir: config.specs.dir,
      store,
      events: bus,
      logger,
      clock,
      rescanIntervalMs: config.specs.rescanIntervalMs,
      awaitWriteFinishMs: config.specs.settleMs,
    })
    const specsStarted = specs.start()
    // A leader must reconcile even when its spec folder cannot be watched: holding the lead
    // without a controller would stop every manager. (Without an election the start-up
    // itself fails on it, below.)
    const ready = specsStarted
      .catch((error: unknown) => logger.error({ err: error }, `the spec folder is not watched (${(error as Error).message}); reconciling without it`))
      .then(() => controller.start())
      .then(() => {
        health.start()
        metrics.start()
        logger.info('controller running: Docker observed, orphans adopted, workers started')
      })
    ready.catch((error: unknown) => logger.error({ err: error }, `the controller did not start: ${(error as Error).message}`))
    return {
      controller,
      specs,
      specsStarted,
      ready,
      stop: async () => {
        await specsStarted.catch(() => undefined)
        await specs.stop()
        await Promise.all([controller.stop(), health.stop(), metrics.stop()])
      },
    }
  }

  let term: LeaderTerm | undefined
  let termStopping: Promise<void> | undefined
  const stopTerm = async () => {
    const ending = term
    term = undefined
    if (ending) await ending.stop()
  }
  // The embedded engine is single-process (its data folder is locked): no election.
  const election =
    database.engine === 'postgres' && config.database.kind === 'postgres'
      ? new LeaderElection({
          backend: dependencies.leaderLock ?? postgresLeaderLock(config.database.connectionString, settings.instance, settings.managerId),
          managerId: settings.managerId,
          logger,
          onStartedLeading: () => void (term = startTerm()),
          onStoppedLeading: () => (termStopping = stopTerm()),
        })
      : undefined
  const startedAt = new Date()
  const leadership = (): LeadershipStatus =>
    election?.status() ?? { role: 'leader', managerId: settings.managerId, leader: settings.managerId, since: startedAt, terms: 1 }

  const proxyUsage = new ProxyUsage({ store, clock, logger, flushIntervalMs: config.api.usageFlushIntervalMs })
  const app = createApp({
    store,
    runtime,
    events: bus,
    logger,
    clock,
    database: { engine: database.engine, ping: () => database.ping() },
    controller: {
      snapshot: () => term?.controller.snapshot() ?? STANDBY_STATS,
      requestRestart: async (pluginId, reason) => {
        if (term) return term.controller.requestRestart(pluginId, reason)
        // A follower passes it on to the leader (which listens for it), if there is one.
        const status = leadership()
        if (!status.leader) throw noLeader(status)
        await store.sendRestartRequest(pluginId, `${reason} (via manager ${status.managerId})`)
      },
    },
    specs: { list: () => term?.specs.list() ?? [] },
    leadership,
    proxyUsage,
    apiToken: config.api.token,
    pluginHost: probeHostFor(settings.pluginBindAddress),
  })
  let server: Awaited<ReturnType<typeof startApiServer>> | undefined
  try {
    if (election) election.start()
    else term = startTerm()
    // A spec folder that cannot be watched is a start-up error, as is a taken port.
    if (term) await term.specsStarted
    server = await startApiServer({ app, host: config.api.host, port: config.api.port, logger })
  } catch (error) {
    await election?.stop()
    await stopTerm()
    await database.close()
    throw error
  }
  proxyUsage.start()
  if (!config.api.token) {
    logger.warn(`FORGE_API_TOKEN is not set: the API asks for no authentication, so it listens on ${config.api.host} only`)
  }

  const ready = election ? election.firstDecision.then(() => term?.ready) : term!.ready
  logger.info(
    { database: database.description, api: `http://${server.address.host}:${server.address.port}`, specs: config.specs.dir, managerId: settings.managerId },
    'FlowForge plugin manager started',
  )

  const api = server
  let stopping: Promise<void> | undefined
  return {
    database,
    store,
    get controller() {
      if (!term) throw new Error(`manager ${settings.managerId} is not leading: it runs no controller`)
      return term.controller
    },
    get specs() {
      if (!term) throw new Error(`manager ${settings.managerId} is not leading: it watches no spec folder`)
      return term.specs
    },
    leadership,
    apiAddress: api.address,
    ready,
    stop: () => {
      stopping ??= (async () => {
        // Stop taking input first, then let running reconciles finish. Containers keep running.
        await api.close()
        if (election) await election.stop()
        await termStopping
        await stopTerm()
        await proxyUsage.stop()
        await relay.stop()
        await database.close()
        logger.info('FlowForge plugin manager stopped')
      })()
      return stopping
    },
  }
}

interface LeaderTerm {
  controller: Controller
  specs: SpecFolder
  specsStarted: Promise<void>
  ready: Promise<void>
  stop(): Promise<void>
}

/** What a follower reports for the controller it does not run. */
const STANDBY_STATS = emptyControllerStats()

function noLeader(status: LeadershipStatus): ApiError {
  return new ApiError(503, 'no_leader', `no manager leads right now (this one, ${status.managerId}, follows); try again in a few seconds`)
}

/** Plugins published on every address (0.0.0.0) are still reached on loopback. */
function probeHostFor(bindAddress: string): string {
  return bindAddress === '0.0.0.0' || bindAddress === '::' ? '127.0.0.1' : bindAddress
}
