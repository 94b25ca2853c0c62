// Health of running plugins, every HEALTH_INTERVAL: a Docker HEALTHCHECK reports through
// the engine (events and inspect); otherwise an HTTP GET of the manifest's healthCheck.path
// on the host port, unhealthy after `failureThreshold` (default 3) failures in a row;
// otherwise 'unknown'. A change of health is written and audited at once; unchanged ones
// only refresh last_health_check, for all plugins in one statement. HTTP probes are raw
// GETs on a new connection each (http-probe.ts: the cheapest measured).
import type { Logger } from '../logger.js'
import type { PluginStore, RunningPlugin } from '../db/plugin-store.js'
import type { HealthStatus } from '../db/schema.js'
import { containerNameFor } from '../runtime/container-runtime.js'
import { parseManifest, type ParsedManifest } from '../spec/manifest.js'
import type { Clock } from '../util/clock.js'
import { Periodic } from '../util/periodic.js'
import { mapLimit } from '../util/concurrency.js'
import type { ContainerCache } from './container-cache.js'
import { freshConnectionProbe, type HttpProbe } from './http-probe.js'

export type { HttpProbe } from './http-probe.js'

export interface HealthMonitorOptions {
  store: PluginStore
  cache: ContainerCache
  clock: Clock
  logger: Logger
  intervalMs: number
  /** Default: a GET on a new connection (http-probe.ts). */
  probe?: HttpProbe
  /** Where plugin ports are reached from the manager. Default 127.0.0.1. */
  probeHost?: string
  /** Called when a plugin asks to be restarted after repeated failures. */
  requestRestart: (pluginId: string, reason: string) => void
}

type HealthCheck = NonNullable<ParsedManifest['healthCheck']>

const DEFAULT_FAILURE_THRESHOLD = 3
const DEFAULT_TIMEOUT_SECONDS = 5
const PROBE_CONCURRENCY = 8

export class HealthMonitor {
  private readonly failures = new Map<string, number>()
  /**
   * Each plugin's health check as of its generation (a spec change bumps it): the manifest is
   * parsed once per generation, not every round (zod's parse was a few % of an idle
   * manager's CPU at 200 plugins).
   */
  private readonly healthChecks = new Map<string, { generation: number; healthCheck: HealthCheck | undefined }>()
  private readonly periodic: Periodic
  private readonly probe: HttpProbe

  constructor(private readonly options: HealthMonitorOptions) {
    this.periodic = new Periodic({ ...options, name: 'health' }, () => this.checkAll())
    this.probe = options.probe ?? freshConnectionProbe
  }

  start(): void {
    this.periodic.start()
  }

  stop(): Promise<void> {
    return this.periodic.stop()
  }

  /** One round over every running plugin. Public for tests. */
  async checkAll(): Promise<void> {
    const { store } = this.options
    const plugins = await store.listRunningPlugins()
    await this.learnHealthChecks(plugins)
    const now = new Date(this.options.clock.now())
    const results = await mapLimit(plugins, PROBE_CONCURRENCY, (plugin) => this.check(plugin))
    const unchanged: string[] = []
    for (const [index, plugin] of plugins.entries()) {
      const health = results[index]!
      if (health === plugin.healthStatus) unchanged.push(plugin.id)
      else await this.record(plugin, health, now)
    }
    await store.touchHealthChecks(unchanged, now)
    const running = new Set(plugins.map((plugin) => plugin.id))
    for (const id of this.failures.keys()) if (!running.has(id)) this.failures.delete(id)
    for (const id of this.healthChecks.keys()) if (!running.has(id)) this.healthChecks.delete(id)
  }

  /**
   * A Docker health_status event: written at once rather than at the next round. Never
   * rejects: called from the event stream, which does not wait for it. When the database
   * cannot take it, the next round writes what Docker reports by then.
   */
  onDockerHealth(pluginId: string, health: HealthStatus): Promise<void> {
    return this.recordDockerHealth(pluginId, health).catch((error: unknown) => {
      this.options.logger.warn({ err: error, pluginId, health }, `could not record health ${health} of ${pluginId} (${(error as Error).message}); the next health round will`)
    })
  }

  private async recordDockerHealth(pluginId: string, health: HealthStatus): Promise<void> {
    const plugin = await this.options.store.getPlugin(pluginId)
    if (!plugin || plugin.healthStatus === health) return
    await this.record(plugin, health, new Date(this.options.clock.now()))
  }

  private async check(plugin: RunningPlugin): Promise<HealthStatus> {
    const container = this.options.cache.get(containerNameFor(plugin.forgehookId))?.container
    if (container?.health) return container.health
    const healthCheck = this.healthCheckOf(plugin)
    if (!healthCheck || plugin.hostPort === null) return 'unknown'

    const url = `http://${this.options.probeHost ?? '127.0.0.1'}:${plugin.hostPort}${healthCheck.path}`
    const timeoutMs = (healthCheck.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000
    const ok = await this.probe(url, timeoutMs).then(
      (status) => status >= 200 && status < 400,
      () => false,
    )
    if (ok) {
      this.failures.delete(plugin.id)
      return 'healthy'
    }
    const failures = (this.failures.get(plugin.id) ?? 0) + 1
    this.failures.set(plugin.id, failures)
    const threshold = healthCheck.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD
    const restartAfter = healthCheck.restartOnFailure === true ? threshold : healthCheck.restartOnFailure || undefined
    if (restartAfter !== undefined && failures >= restartAfter) {
      this.failures.delete(plugin.id)
      this.options.requestRestart(plugin.id, `health check ${healthCheck.path} failed ${failures} times in a row`)
    }
    if (failures >= threshold) return 'unhealthy'
    // Below the threshold a plugin keeps its health; a new one is still starting.
    return plugin.healthStatus === 'unknown' ? 'starting' : plugin.healthStatus
  }

  /** Reads and parses the manifests of the plugins whose generation is new to us, in one query. */
  private async learnHealthChecks(plugins: RunningPlugin[]): Promise<void> {
    const unknown = plugins.filter((plugin) => this.healthChecks.get(plugin.id)?.generation !== plugin.generation).map((plugin) => plugin.id)
    if (unknown.length === 0) return
    for (const [pluginId, { generation, manifest }] of await this.options.store.manifestsOf(unknown)) {
      const parsed = parseManifest(manifest)
      this.healthChecks.set(pluginId, { generation, healthCheck: parsed.ok ? parsed.manifest.healthCheck : undefined })
    }
  }

  /** As of the generation learnHealthChecks read last: a spec changed since is the next round's. */
  private healthCheckOf(plugin: RunningPlugin): HealthCheck | undefined {
    return this.healthChecks.get(plugin.id)?.healthCheck
  }

  private async record(plugin: RunningPlugin, health: HealthStatus, now: Date): Promise<void> {
    const updated = await this.options.store.writeStatus(plugin.id, { healthStatus: health, lastHealthCheck: now })
    if (!updated) return
    await this.options.store.logEvent({
      pluginId: plugin.id,
      forgehookId: plugin.forgehookId,
      type: 'plugin:health',
      data: { from: plugin.healthStatus, to: health },
    })
    this.options.logger.info({ plugin: plugin.forgehookId, from: plugin.healthStatus, to: health }, `${plugin.forgehookId} is ${health}`)
  }
}
