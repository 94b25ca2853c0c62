// Resource usage of running plugins each interval: one read of each container's counters,
// 32 at a time, written in one statement, and old samples deleted in small batches so plugin_metrics does not
// grow without bound. Audit events are never deleted.
//
// CPU is the rate between this round's read of a container and the previous round's, so
// the first sample of a container (new, recreated, or missed last round) has memory and
// no CPU figure (null, shown as "–"): a rate over Docker's own one-second window would
// cost a wait of 1-2 s per call, which at 200 plugins is what kept rounds from finishing.
import type { Logger } from '../logger.js'
import type { MetricsSample, PluginStore } from '../db/plugin-store.js'
import { containerNameFor, type ContainerRuntime, type CpuCounters } from '../runtime/container-runtime.js'
import type { Clock } from '../util/clock.js'
import { Periodic } from '../util/periodic.js'
import { mapLimit } from '../util/concurrency.js'
import type { ContainerCache } from './container-cache.js'
import { cpuPercentBetween } from './cpu-rate.js'

export interface MetricsSamplerOptions {
  store: PluginStore
  runtime: ContainerRuntime
  cache: ContainerCache
  clock: Clock
  logger: Logger
  intervalMs: number
  retentionMs: number
  /**
   * Stats calls in flight at once. Default 32. A one-shot read still waits for the next
   * tick of dockerd's stats collector (about 1 s on Docker 20.10), and one tick answers
   * every call waiting for it: calls in flight, not their cost, set how many plugins a
   * round covers (4 covered about 120 a minute; 200 plugins every 30 s need more than 8).
   */
  concurrency?: number
}

const DEFAULT_CONCURRENCY = 32

export class MetricsSampler {
  private readonly periodic: Periodic
  /** Last round's counters by container id: only containers read then, so it holds no one gone. */
  private previousCpu = new Map<string, CpuCounters>()

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
    const plugins = await store.listRunningPlugins()
    const now = new Date(this.options.clock.now())
    const cpuNow = new Map<string, CpuCounters>()
    const samples = await mapLimit(plugins, this.options.concurrency ?? DEFAULT_CONCURRENCY, async (plugin) => {
      const entry = cache.get(containerNameFor(plugin.forgehookId))
      const container = entry?.container
      if (!container || container.state !== 'running') return undefined
      // Started by us and not inspected yet (start-settler.ts settles it once the queue is
      // idle, within 60 s): left to the next round. Its first sample would hold memory only
      // (no earlier counters, no CPU rate), and skipping it keeps the stats calls out of a
      // mass converge, where they slowed the creates and starts (docs/benchmarks.md, 1d).
      if (entry.provisional) return undefined
      try {
        const stats = await runtime.stats(container.id)
        cpuNow.set(container.id, stats.cpu)
        const earlier = this.previousCpu.get(container.id)
        const cpuPercent = earlier ? cpuPercentBetween(earlier, stats.cpu) : undefined
        const sample: MetricsSample = { cpuUsagePercent: cpuPercent === undefined ? null : round(cpuPercent), memoryUsageMb: round(stats.memoryMb), recordedAt: now }
        return { pluginId: plugin.id, sample }
      } catch (error) {
        logger.debug({ err: error, plugin: plugin.forgehookId }, 'no resource sample this round')
        return undefined
      }
    })
    this.previousCpu = cpuNow
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
