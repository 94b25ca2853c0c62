// Composition root: build everything from the configuration, start it, stop it cleanly.
// The start-up sequence is the guide's: connect to the database, migrate, check Docker,
// load plugins and sync with Docker (adopting orphans), then serve.
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import { Controller } from './controller/controller.js'
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
import { SpecFolder } from './sources/spec-folder.js'

export interface Daemon {
  database: DatabaseHandle
  store: PluginStore
  controller: Controller
  specs: SpecFolder
  /** Where the HTTP API listens. */
  apiAddress: { host: string; port: number }
  /** Resolves once Docker was reached and the first sync is done. */
  ready: Promise<void>
  stop(): Promise<void>
}

export interface DaemonDependencies {
  /** Default: the Docker engine at DOCKER_HOST. Tests pass the in-memory fake. */
  runtime?: ContainerRuntime
  clock?: Clock
  /** Called once per database query (benchmarks count round trips). */
  onQuery?: () => void
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
  const runtime =
    dependencies.runtime ?? new DockerRuntime({ dockerHost: settings.dockerHost, requestTimeoutMs: settings.dockerTimeoutMs, logger })
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
  const specs = new SpecFolder({ dir: config.specs.dir, store, events: bus, logger, clock, rescanIntervalMs: config.specs.rescanIntervalMs, awaitWriteFinishMs: config.specs.settleMs })
  const proxyUsage = new ProxyUsage({ store, clock, logger, flushIntervalMs: config.api.usageFlushIntervalMs })
  const app = createApp({
    store,
    runtime,
    events: bus,
    logger,
    clock,
    database: { engine: database.engine, ping: () => database.ping() },
    controller,
    specs,
    proxyUsage,
    apiToken: config.api.token,
    pluginHost: probeHostFor(settings.pluginBindAddress),
  })
  let server: Awaited<ReturnType<typeof startApiServer>> | undefined
  try {
    await specs.start()
    server = await startApiServer({ app, host: config.api.host, port: config.api.port, logger })
  } catch (error) {
    await specs.stop()
    await database.close()
    throw error
  }
  proxyUsage.start()
  if (!config.api.token) {
    logger.warn(`FORGE_API_TOKEN is not set: the API asks for no authentication, so it listens on ${config.api.host} only`)
  }

  const ready = controller.start().then(() => {
    health.start()
    metrics.start()
    logger.info('controller running: Docker observed, orphans adopted, workers started')
  })
  ready.catch((error: unknown) => logger.error({ err: error }, `the controller did not start: ${(error as Error).message}`))
  logger.info(
    { database: database.description, api: `http://${server.address.host}:${server.address.port}`, specs: config.specs.dir },
    'FlowForge plugin manager started',
  )

  const api = server
  let stopping: Promise<void> | undefined
  return {
    database,
    store,
    controller,
    specs,
    apiAddress: api.address,
    ready,
    stop: () => {
      stopping ??= (async () => {
        // Stop taking input first, then let running reconciles finish. Containers keep running.
        await api.close()
        await specs.stop()
        await Promise.all([controller.stop(), health.stop(), metrics.stop(), proxyUsage.stop()])
        await database.close()
        logger.info('FlowForge plugin manager stopped')
      })()
      return stopping
    },
  }
}

/** Plugins published on every address (0.0.0.0) are still reached on loopback. */
function probeHostFor(bindAddress: string): string {
  return bindAddress === '0.0.0.0' || bindAddress === '::' ? '127.0.0.1' : bindAddress
}
