// Composition root: builds the parts from the configuration and connects them; each part
// owns its policy (src/daemon/ holds the leader's term and who leads).
//
// Start-up: open the database and migrate it, start the leader election (or lead at once
// on the embedded engine), then serve the API. The API serves before Docker is reached, on
// purpose: inputs only write desired state, so they are accepted while a leader's term
// connects to Docker in the background, and /readyz says "not ready" until the first sync
// (`ready` resolves then). Stopping: stop taking input, end the term (running reconciles
// finish), then the database. Containers keep running.
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import { createApp } from './api/app.js'
import { containerLogSource } from './api/routes/logs.js'
import type { ApiDependencies, PluginLogSource, Upstream } from './api/deps.js'
import { ProxyUsage } from './api/proxy.js'
import { ProxyLatency, recordingBoth } from './api/proxy-latency.js'
import { ProxyTrafficCounter } from './api/proxy-traffic.js'
import { startApiServer } from './api/server.js'
import { Controller, emptyControllerStats } from './controller/controller.js'
import type { LeadershipStatus } from './controller/leader-election.js'
import type { ReadinessProbe } from './controller/readiness-probe.js'
import { openDatabase, type DatabaseHandle } from './db/database.js'
import { countPlugins } from './db/plugin-counts.js'
import { latestResourceSamples, metricBuckets, pluginGauges } from './db/metric-queries.js'
import { sqlAccessHints } from './db/sql-access-hints.js'
import { EventBus } from './db/event-bus.js'
import { EventRelay } from './db/event-relay.js'
import { postgresLeaderLock, type LeaderLockBackend } from './db/leader-lock.js'
import { migrate } from './db/migrator.js'
import { PluginStore, type Plugin } from './db/plugin-store.js'
import { LeaderTerm } from './daemon/leader-term.js'
import { Leadership } from './daemon/leadership.js'
import { probeHostFor } from './daemon/probe-host.js'
import { RuntimeNotConnectedError, type ContainerRuntime } from './runtime/container-runtime.js'
import { DockerRuntime } from './runtime/docker-runtime.js'
import { RegistryAuthFile } from './runtime/registry-auth.js'
import { DockerSwarmRuntime } from './swarm/docker-swarm-runtime.js'
import type { TaskRows } from './swarm/service-reconciler.js'
import type { ServiceRuntime } from './swarm/service-runtime.js'
import type { SpecFolder } from './sources/spec-folder.js'
import { systemClock, type Clock } from './util/clock.js'
import { Catalog } from './web/catalog.js'
import { createConsole } from './web/console.js'

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
  /** Whether a rollout's new container answers. Default: its health check or a TCP connect. Tests on the fake runtime pass one that always says yes. */
  readiness?: ReadinessProbe
  /** RUNTIME=swarm: default the swarm manager at DOCKER_HOST. */
  serviceRuntime?: ServiceRuntime
}

/** What a follower reports for the controller it does not run. */
const STANDBY_STATS = emptyControllerStats()

export async function startDaemon(config: Config, logger: Logger, dependencies: DaemonDependencies = {}): Promise<Daemon> {
  const settings = config.controller
  const clock = dependencies.clock ?? systemClock
  const registryAuth = settings.registryAuthFile ? new RegistryAuthFile({ path: settings.registryAuthFile, logger }) : undefined
  if (settings.registryAuthFile) logger.info({ registryAuthFile: settings.registryAuthFile }, `registry credentials for pulls: the auths of ${settings.registryAuthFile}, read again when it changes`)
  const runtime =
    dependencies.runtime ?? new DockerRuntime({ dockerHost: settings.dockerHost, requestTimeoutMs: settings.dockerTimeoutMs, logger, ...(registryAuth ? { registryAuth } : {}) })
  // Docker's ping and version while the database opens, not after it: the controller's first
  // connect() takes the answer (a restart's way to /readyz, docs/benchmarks.md section 7e).
  if (settings.runtime !== 'swarm') runtime.preconnect?.()
  const database = await openMigratedDatabase(config, logger, dependencies.onQuery)

  const bus = new EventBus()
  const store = new PluginStore(database.db, database.changes, logger, bus)
  // Events other managers (or psql) record reach this manager's live streams too.
  const relay = new EventRelay(store, bus, logger)
  // RUNTIME=swarm: plugins are services of the swarm DOCKER_HOST manages (src/swarm/).
  const swarm =
    settings.runtime === 'swarm'
      ? {
          runtime: dependencies.serviceRuntime ?? new DockerSwarmRuntime({ dockerHost: settings.dockerHost, requestTimeoutMs: settings.dockerTimeoutMs, logger }),
          tasks: taskRowsOf(store),
          ...(registryAuth ? { registryAuth } : {}),
        }
      : undefined
  // Requests the proxy forwards right now: a start-first update drains the old container.
  const proxyTraffic = new ProxyTrafficCounter()
  const leadership = new Leadership({
    managerId: settings.managerId,
    store,
    logger,
    // The embedded engine is single-process (its data folder is locked): no election.
    lock: database.engine === 'postgres' && config.database.kind === 'postgres'
      ? (dependencies.leaderLock ?? postgresLeaderLock(config.database.connectionString, settings.instance, settings.managerId))
      : undefined,
    startTerm: () =>
      new LeaderTerm({
        store,
        runtime,
        bus,
        clock,
        logger,
        controller: settings,
        specs: config.specs,
        db: database.db,
        traffic: proxyTraffic,
        ...(dependencies.readiness ? { readiness: dependencies.readiness } : {}),
        ...(swarm ? { swarm } : {}),
      }),
  })
  const proxyUsage = new ProxyUsage({ store, clock, logger, flushIntervalMs: config.api.usageFlushIntervalMs })
  const proxyLatency = new ProxyLatency()
  const apiDependencies: ApiDependencies = {
    store,
    runtime,
    events: bus,
    logger,
    clock,
    database: { engine: database.engine, ping: () => database.ping() },
    countPlugins: () => countPlugins(database.db),
    controller: {
      snapshot: () => leadership.currentTerm?.controller.snapshot() ?? STANDBY_STATS,
      requestRestart: (pluginId, reason) => leadership.requestRestart(pluginId, reason),
    },
    specs: { list: () => leadership.currentTerm?.specs.list() ?? [] },
    leadership: () => leadership.status(),
    // The proxy's samples go to plugin_metrics (ProxyUsage) and to the per-plugin /metrics series.
    proxyUsage: recordingBoth(proxyUsage, proxyLatency),
    proxyLatency,
    pluginGauges: () => pluginGauges(database.db),
    latestResourceSamples: (since) => latestResourceSamples(database.db, { since }),
    proxyTraffic,
    apiToken: config.api.token,
    allowedHosts: config.api.allowedHosts,
    maxStreams: config.api.maxStreams,
    pluginHost: probeHostFor(settings.pluginBindAddress),
    ...(swarm ? { upstreams: swarmUpstreams(store, settings.swarm.publishMode, probeHostFor(settings.pluginBindAddress)) } : {}),
    pluginLogs: swarm ? connectingAtFirstRead(swarm.runtime, serviceLogSource(swarm.runtime)) : connectingAtFirstRead(runtime, containerLogSource(runtime)),
    hostPorts: { range: settings.hostPortRange, allowAny: settings.allowAnyHostPort },
    runtimeName: settings.runtime,
  }
  // The web console reads the store and the event stream; its pages write through the API's routes.
  const webConsole = createConsole({
    api: apiDependencies,
    latestSamples: (since) => latestResourceSamples(database.db, { since }),
    metricBuckets: (pluginId, since, bucketSeconds) => metricBuckets(database.db, pluginId, since, bucketSeconds),
    catalog: new Catalog({ dir: config.console.catalogDir, ...(config.console.catalogUrl ? { url: config.console.catalogUrl } : {}), clock }),
    catalogDir: config.console.catalogDir,
    specsDir: config.specs.dir,
  })
  const app = createApp({ ...apiDependencies, console: webConsole })

  relay.start()
  let server: Awaited<ReturnType<typeof startApiServer>>
  try {
    // The revision trigger prunes to this, for every writer (migrations/004).
    await store.revisions.setHistoryLimit(settings.revisionHistoryLimit)
    await leadership.start()
    server = await startApiServer({ app, host: config.api.host, port: config.api.port, logger })
  } catch (error) {
    // A spec folder that cannot be watched (without an election) or a taken port: nothing keeps running.
    await leadership.stop()
    await relay.stop()
    await database.close()
    throw error
  }
  proxyUsage.start()
  if (!config.api.token) {
    logger.warn(`FORGE_API_TOKEN is not set: the API asks for no authentication, so it listens on ${config.api.host} only`)
  }
  logger.info(
    { database: database.description, api: `http://${server.address.host}:${server.address.port}`, specs: config.specs.dir, managerId: settings.managerId },
    'FlowForge plugin manager started',
  )

  const ready = leadership.ready()
  // The term logs a controller that did not start; a caller need not await `ready`.
  ready.catch(() => undefined)
  let stopping: Promise<void> | undefined
  return {
    database,
    store,
    get controller() {
      const controller = leaderPart(leadership, settings.managerId, 'runs no controller').controller
      if (!(controller instanceof Controller)) throw new Error(`manager ${settings.managerId} runs the swarm controller (RUNTIME=swarm), not the container one`)
      return controller
    },
    get specs() {
      return leaderPart(leadership, settings.managerId, 'watches no spec folder').specs
    },
    leadership: () => leadership.status(),
    apiAddress: server.address,
    ready,
    stop: () => {
      stopping ??= (async () => {
        // Stop taking input first, then let running reconciles finish. Containers keep running.
        await server.close()
        webConsole.close()
        await leadership.stop()
        await proxyUsage.stop()
        await relay.stop()
        await database.close()
        logger.info('FlowForge plugin manager stopped')
      })()
      return stopping
    },
  }
}

/** The database, opened and migrated; closed again when migrating fails. */
async function openMigratedDatabase(config: Config, logger: Logger, onQuery: (() => void) | undefined): Promise<DatabaseHandle> {
  if (config.database.kind === 'embedded') {
    logger.info(
      { dataDir: config.database.dataDir },
      `no DATABASE_URL or POSTGRES_HOST set: using the embedded Postgres (PGlite) in ${config.database.dataDir}`,
    )
  }
  const database = await openDatabase(config, logger, { onQuery })
  // The guide's start-up lines ("Database connection established", "Database migrations
  // completed"), which an operator looks for in `docker compose logs`.
  logger.info({ database: database.description }, `database connection established: ${database.description}`)
  try {
    const { applied, alreadyApplied } = await migrate(database.db, config.migrationsDir, logger)
    logger.info({ applied: applied.length, alreadyApplied }, `database migrations completed: ${applied.length} applied now, ${alreadyApplied} earlier`)
  } catch (error) {
    await database.close()
    throw error
  }
  if (database.sqlAddress) {
    for (const hint of sqlAccessHints(database.sqlAddress, database.sqlPasswordFile)) logger.info(hint.fields, hint.message)
  }
  return database
}

function leaderPart(leadership: Leadership, managerId: string, what: string): LeaderTerm {
  const term = leadership.currentTerm
  if (!term) throw new Error(`manager ${managerId} is not leading: it ${what}`)
  return term
}

/** RUNTIME=swarm: a plugin's logs are its service's, every task's wherever it runs, read through the swarm manager. */
function serviceLogSource(runtime: ServiceRuntime): PluginLogSource {
  return {
    idOf: (plugin) => plugin.containerName,
    logs: (id, options) => runtime.logs(id, options),
    followLogs: (id, options) => runtime.followLogs(id, options),
    exists: async (id) => (await runtime.inspectService(id)) !== undefined,
  }
}

/**
 * The source, with its runtime connected at the first read that finds it unconnected: only
 * the leader's controller connects the runtime, so on a manager that does not lead (or
 * before the controller got there) a log read would fail otherwise. Connected once; a
 * failed connect is tried again at the next read.
 */
function connectingAtFirstRead(runtime: { connect(): Promise<unknown> }, source: PluginLogSource): PluginLogSource {
  let connecting: Promise<unknown> | undefined
  const connected = async <T>(call: () => T | Promise<T>): Promise<T> => {
    try {
      return await call()
    } catch (error) {
      if (!(error instanceof RuntimeNotConnectedError)) throw error
      await (connecting ??= runtime.connect().catch((failure: unknown) => {
        connecting = undefined
        throw failure
      }))
      return await call()
    }
  }
  return {
    idOf: (plugin) => source.idOf(plugin),
    logs: (id, options) => connected(() => source.logs(id, options)),
    followLogs: async function* (id, options) {
      yield* await connected(() => source.followLogs(id, options))
    },
    exists: (id) => connected(() => source.exists(id)),
  }
}

/** plugin_tasks as the swarm reconciler reads and writes it. */
function taskRowsOf(store: PluginStore): TaskRows {
  return {
    listTasks: (pluginId) => store.tasks.listTasks(pluginId),
    replaceTasks: async (pluginId, tasks) => void (await store.tasks.replaceTasks(pluginId, tasks.map((task) => ({ ...task, pluginId })))),
  }
}

/**
 * Where a plugin on the swarm answers: each running task's node on its published port (host
 * mode), or, with the routing mesh (ingress), this host first and then those nodes.
 */
function swarmUpstreams(store: PluginStore, publishMode: 'host' | 'ingress', pluginHost: string): (plugin: Plugin) => Promise<Upstream[]> {
  return async (plugin) => {
    const tasks = await store.tasks.listTasks(plugin.id)
    const nodes = tasks
      .filter((task) => task.state === 'running' && task.desiredState === 'running' && task.nodeState === 'ready' && task.nodeAddress !== null)
      .map((task) => ({ host: task.nodeAddress!, port: task.hostPort ?? plugin.hostPort ?? 0 }))
      .filter((upstream) => upstream.port > 0)
    return publishMode === 'ingress' && plugin.hostPort !== null ? [{ host: pluginHost, port: plugin.hostPort }, ...nodes] : nodes
  }
}
