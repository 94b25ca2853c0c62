// What the HTTP API is built from. Every side effect is injected, so routes are tested
// with app.request() on the in-memory runtime and an embedded database.
import type { RuntimeName } from '../config.js'
import type { ControllerStats } from '../controller/controller.js'
import type { LeadershipStatus } from '../controller/leader-election.js'
import type { EventBus } from '../db/event-bus.js'
import type { LatestResourceSample, PluginGauge } from '../db/metric-queries.js'
import type { PluginCount } from '../db/plugin-counts.js'
import type { Plugin, PluginStore } from '../db/plugin-store.js'
import type { Logger } from '../logger.js'
import type { ContainerRuntime } from '../runtime/container-runtime.js'
import type { SpecFolderView } from '../sources/spec-file-report.js'
import type { HostPortPolicy } from '../spec/host-port-policy.js'
import type { Clock } from '../util/clock.js'
import type { Hono } from 'hono'
import type { BrowserSessionCheck } from './api-authentication.js'
import type { ProxyLatency } from './proxy-latency.js'
import type { ProxyTrafficCounter } from './proxy-traffic.js'

/** Request counters of the reverse proxy, flushed into plugin_metrics periodically. */
export interface ProxyUsageRecorder {
  record(pluginId: string, sample: { durationMs: number; error: boolean }): void
  /** Everything recorded since start, flushed or not (GET /metrics). */
  totals(): { requests: number; errors: number }
}

export interface ApiDependencies {
  store: PluginStore
  runtime: ContainerRuntime
  events: EventBus
  logger: Logger
  clock: Clock
  /** The database: ping for /readyz, engine name for /metrics. */
  database: { engine: 'postgres' | 'embedded'; ping(): Promise<void> }
  controller: {
    snapshot(): ControllerStats
    /** Restarts the running container once (POST /plugins/:id/restart). */
    requestRestart(pluginId: string, reason: string): void | Promise<void>
  }
  /** Who leads among the managers on this database: /readyz and /metrics say it. */
  leadership(): LeadershipStatus
  /** Plugins per phase and health, one grouped query (GET /metrics caches it between changes). */
  countPlugins(): Promise<PluginCount[]>
  /** Absent when no spec folder is watched. */
  specs?: SpecFolderView
  proxyUsage: ProxyUsageRecorder
  /** Requests the proxy forwards right now, by upstream port (a start-first update drains the old one). Default: not counted. */
  proxyTraffic?: ProxyTrafficCounter
  /** FORGE_API_TOKEN; undefined = no authentication (the server then binds 127.0.0.1 only). */
  apiToken?: string
  /** Address plugin ports are reached on from the manager (the proxy's upstream host). */
  pluginHost: string
  /**
   * Where a plugin answers, when that is not pluginHost:hostPort: on RUNTIME=swarm its running
   * tasks' nodes (docs/swarm.md). The proxy tries them in turn. Default: pluginHost:hostPort.
   */
  upstreams?: (plugin: Plugin) => Promise<Upstream[]>
  /**
   * Where a plugin's logs are read. Default: its container's, through `runtime`. The daemon
   * passes one that connects a manager's runtime at its first read (only the leader's
   * controller connects it otherwise) and, on RUNTIME=swarm, reads the service's logs.
   */
  pluginLogs?: PluginLogSource
  /** Which spec.hostPort a document may ask for: HOST_PORT_RANGE, or any with ALLOW_ANY_HOST_PORT. */
  hostPorts: HostPortPolicy
  /** RUNTIME: which runtime runs the plugins; docker refuses spec.replicas other than 1 and spec.placement (422). Default docker. */
  runtimeName?: RuntimeName
  /** Host names served besides IP literals and localhost (API_ALLOWED_HOSTS and this machine's name). Default none. */
  allowedHosts?: readonly string[]
  /** Live streams (WebSockets, SSE, followed logs) open at once (API_MAX_STREAMS). Default 32. */
  maxStreams?: number
  /**
   * The web console (src/web, built by main.ts): its routes, mounted beside the API's, and its
   * sessions, whose cookie (with the CSRF token on writes) /api accepts as it accepts the token.
   * Default none: no pages, and cookies mean nothing.
   */
  console?: { routes: Hono; sessions: BrowserSessionCheck }
  /** Phase, health and restarts of every plugin, one narrow query (the per-plugin /metrics series). Default: no per-plugin series. */
  pluginGauges?: () => Promise<PluginGauge[]>
  /** The latest CPU and memory sample of every plugin since a time (flowforge_plugin_cpu_percent, _memory_bytes). Default none. */
  latestResourceSamples?: (since: Date) => Promise<Map<string, LatestResourceSample>>
  /** Per-plugin proxy requests, errors and latencies since start (flowforge_plugin_proxy_*). Default none. */
  proxyLatency?: ProxyLatency
}

/** One address a plugin answers on. */
export interface Upstream {
  host: string
  port: number
}

/** What the logs route reads a plugin's logs from (see ApiDependencies.pluginLogs). */
export interface PluginLogSource {
  /**
   * What to read for this plugin: its container's id or, on RUNTIME=swarm, its service's
   * name (every task's logs, on whichever node it runs, through the swarm manager); null
   * while there is none.
   */
  idOf(plugin: Plugin): string | null
  /** The last `tail` lines; ContainerNotFoundError when there is no such container or service. */
  logs(id: string, options: { tail: number }): Promise<string>
  /** The tail, then what is written, until it ends or `signal` aborts; ContainerNotFoundError as above. */
  followLogs(id: string, options: { tail: number; signal: AbortSignal }): AsyncIterable<string>
  exists(id: string): Promise<boolean>
}
