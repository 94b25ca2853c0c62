// Resource usage of running plugins each interval: one-shot stats (about a second each on
// Docker, so a few at a time) written in one statement, and old samples deleted in small
// batches so plugin_metrics does not grow without bound. Audit events are never deleted.
import type { Logger } from '../logger.js'
import type { MetricsSample, PluginStore } from '../db/plugin-store.js'
import { containerNameFor, type ContainerRuntime } from '../runtime/container-runtime.js'
import type { Clock } from '../util/clock.js'
import { Periodic } from '../util/periodic.js'
import { mapLimit } from '../util/concurrency.js'
import type { ContainerCache } from './container-cache.js'

export interface MetricsSamplerOptions {
  store: PluginStore
  runtime: ContainerRuntime
  cache: ContainerCache
  clock: Clock
  logger: Logger
  intervalMs: number
  retentionMs: number
  /** Stats calls in flight at once. Default 4. */
  concurrency?: number
}

export class MetricsSampler {
  private readonly periodic: Periodic

  constructor(private readonly options: MetricsSamplerOptions) {
    this.periodic = new Periodic({ ...options, name: 'metrics' }, () => this.sampleAll())
  }

  start(): void {
    this.periodic.start()
  }

  stop(): Promise<void> {
    return this.periodic.stop()
  }

  /** One round: sample every running plugin, then apply retention. Public for tests. */
  async sampleAll(): Promise<number> {
    const { store, runtime, cache, logger } = this.options
    const plugins = await store.listPlugins({ status: 'running' })
    const now = new Date(this.options.clock.now())
    const samples = await mapLimit(plugins, this.options.concurrency ?? 4, async (plugin) => {
      const container = cache.get(containerNameFor(plugin.forgehookId))?.container
      if (!container || container.state !== 'running') return undefined
      try {
        const stats = await runtime.stats(container.id)
        const sample: MetricsSample = { cpuUsagePercent: round(stats.cpuPercent), memoryUsageMb: round(stats.memoryMb), recordedAt: now }
        return { pluginId: plugin.id, sample }
      } catch (error) {
        logger.debug({ err: error, plugin: plugin.forgehookId }, 'no resource sample this round')
        return undefined
      }
    })
    const taken = samples.filter((sample) => sample !== undefined)
    await store.recordMetricsBatch(taken)
    const deleted = await store.deleteMetricsBefore(new Date(this.options.clock.now() - this.options.retentionMs))
    if (deleted > 0) logger.debug({ deleted }, 'deleted old metrics samples')
    return taken.length
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000
}
