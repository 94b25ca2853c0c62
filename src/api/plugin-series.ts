// The per-plugin series of GET /metrics, for dashboards elsewhere (Grafana): up, phase and
// health as labelled 0/1 gauges (kube-state-metrics' way, so `sum by (phase)` works and a
// change moves a 1 rather than making a new series), restarts, the latest CPU and memory
// sample, and the proxy's requests, errors and latency histogram. What a scrape costs stays
// bounded: the plugins' phase, health and restart count are one narrow query (no JSON
// columns), taken again only after the change feed said something changed and at most every
// 2 s (every 30 s at the latest); the latest samples at most every 10 s; the proxy's figures
// are in memory.
import type { LatestResourceSample, PluginGauge } from '../db/metric-queries.js'
import { HEALTH_STATUSES, PLUGIN_PHASES } from '../db/schema.js'
import type { Clock } from '../util/clock.js'
import { ChangeCachedRead } from './change-cached-read.js'
import type { ChangeSource } from './list-cache.js'
import { LATENCY_BUCKETS_SECONDS, type ProxyLatency } from './proxy-latency.js'

/** The shape of one metric family (routes/observability.ts renders it). */
export interface SeriesFamily {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary'
  samples: { labels?: Record<string, string>; value: number; suffix?: string }[]
}

export interface PluginSeriesOptions {
  source: ChangeSource
  gauges: () => Promise<PluginGauge[]>
  /** The latest CPU and memory sample of every plugin since the given time. Default: no such series. */
  latestSamples?: (since: Date) => Promise<Map<string, LatestResourceSample>>
  proxyLatency?: ProxyLatency
  clock: Pick<Clock, 'now'>
}

const MIN_GAUGE_INTERVAL_MS = 2_000
const MAX_GAUGE_AGE_MS = 30_000
const SAMPLE_INTERVAL_MS = 10_000
/** A sample older than this is not shown as the current figure. */
const SAMPLE_LOOKBACK_MS = 10 * 60_000

export class PluginSeries {
  private readonly gauges: ChangeCachedRead<PluginGauge[]>
  private samples: Map<string, LatestResourceSample> = new Map()
  private samplesAt = Number.NEGATIVE_INFINITY
  private sampleFlight: Promise<void> | undefined

  constructor(private readonly options: PluginSeriesOptions) {
    this.gauges = new ChangeCachedRead({ source: options.source, read: options.gauges, clock: options.clock, minIntervalMs: MIN_GAUGE_INTERVAL_MS, maxAgeMs: MAX_GAUGE_AGE_MS })
  }

  close(): void {
    this.gauges.close()
  }

  async families(): Promise<SeriesFamily[]> {
    const [gauges] = await Promise.all([this.gauges.read(), this.refreshSamples()])
    const named = (gauge: PluginGauge, extra: Record<string, string> = {}) => ({ plugin: gauge.forgehookId, ...extra })
    const phaseOf = (gauge: PluginGauge) => (gauge.deleting ? 'uninstalling' : gauge.phase)
    const families: SeriesFamily[] = [
      {
        name: 'flowforge_plugin_up',
        help: 'Whether the plugin runs (phase running: 1) or not (0).',
        type: 'gauge',
        samples: gauges.map((gauge) => ({ labels: named(gauge), value: phaseOf(gauge) === 'running' ? 1 : 0 })),
      },
      {
        name: 'flowforge_plugin_phase',
        help: 'The plugin\'s phase: 1 for the current one, 0 for the others.',
        type: 'gauge',
        samples: gauges.flatMap((gauge) => PLUGIN_PHASES.map((phase) => ({ labels: named(gauge, { phase }), value: phaseOf(gauge) === phase ? 1 : 0 }))),
      },
      {
        name: 'flowforge_plugin_health',
        help: 'The plugin\'s health: 1 for the current one, 0 for the others.',
        type: 'gauge',
        samples: gauges.flatMap((gauge) => HEALTH_STATUSES.map((health) => ({ labels: named(gauge, { health }), value: gauge.health === health ? 1 : 0 }))),
      },
      {
        name: 'flowforge_plugin_restarts',
        help: 'Crash restarts in the plugin\'s current backoff (restart_count; it goes back to 0 after 10 minutes of running).',
        type: 'gauge',
        samples: gauges.map((gauge) => ({ labels: named(gauge), value: gauge.restartCount })),
      },
    ]
    if (this.options.latestSamples) {
      const cpu: SeriesFamily['samples'] = []
      const memory: SeriesFamily['samples'] = []
      for (const gauge of gauges) {
        const sample = this.samples.get(gauge.pluginId)
        if (sample?.cpuUsagePercent != null) cpu.push({ labels: named(gauge), value: sample.cpuUsagePercent })
        if (sample?.memoryUsageMb != null) memory.push({ labels: named(gauge), value: Math.round(sample.memoryUsageMb * 1024 * 1024) })
      }
      families.push(
        { name: 'flowforge_plugin_cpu_percent', help: 'CPU of the plugin\'s container at its latest sample, in % of one core.', type: 'gauge', samples: cpu },
        { name: 'flowforge_plugin_memory_bytes', help: 'Memory of the plugin\'s container at its latest sample.', type: 'gauge', samples: memory },
      )
    }
    const latency = this.options.proxyLatency
    if (latency) {
      const proxied = gauges.flatMap((gauge) => {
        const stats = latency.get(gauge.pluginId)
        return stats ? [{ gauge, stats }] : []
      })
      families.push(
        { name: 'flowforge_plugin_proxy_requests_total', help: 'Requests proxied to the plugin since the manager started.', type: 'counter', samples: proxied.map(({ gauge, stats }) => ({ labels: named(gauge), value: stats.requests })) },
        { name: 'flowforge_plugin_proxy_errors_total', help: 'Proxied requests that failed (upstream unreachable, timed out or 5xx).', type: 'counter', samples: proxied.map(({ gauge, stats }) => ({ labels: named(gauge), value: stats.errors })) },
        {
          name: 'flowforge_plugin_proxy_request_duration_seconds',
          help: 'Time from a proxied request to the plugin\'s answer.',
          type: 'histogram',
          samples: proxied.flatMap(({ gauge, stats }) => [
            ...LATENCY_BUCKETS_SECONDS.map((bound, index) => ({ suffix: '_bucket', labels: named(gauge, { le: String(bound) }), value: stats.bucketCounts[index]! })),
            { suffix: '_bucket', labels: named(gauge, { le: '+Inf' }), value: stats.requests },
            { suffix: '_sum', labels: named(gauge), value: stats.sumSeconds },
            { suffix: '_count', labels: named(gauge), value: stats.requests },
          ]),
        },
      )
    }
    return families
  }

  private refreshSamples(): Promise<void> {
    const latestSamples = this.options.latestSamples
    if (!latestSamples || this.options.clock.now() - this.samplesAt < SAMPLE_INTERVAL_MS) return Promise.resolve()
    return (this.sampleFlight ??= (async () => {
      try {
        this.samples = await latestSamples(new Date(this.options.clock.now() - SAMPLE_LOOKBACK_MS))
        this.samplesAt = this.options.clock.now()
      } finally {
        this.sampleFlight = undefined
      }
    })())
  }
}
