// Per-plugin request counters and a latency histogram of the reverse proxy, kept in memory
// since start, for GET /metrics (flowforge_plugin_proxy_*). ProxyUsage (proxy.ts) keeps what
// it flushes into plugin_metrics; main.ts hands every sample to both.

/** Upper bounds of the latency buckets, in seconds (Prometheus' defaults, from 5 ms to 10 s). */
export const LATENCY_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const

export interface PluginProxyStats {
  requests: number
  errors: number
  sumSeconds: number
  /** Cumulative: bucketCounts[i] requests took at most LATENCY_BUCKETS_SECONDS[i]. */
  bucketCounts: number[]
}

export class ProxyLatency {
  private readonly byPlugin = new Map<string, PluginProxyStats>()

  record(pluginId: string, sample: { durationMs: number; error: boolean }): void {
    let stats = this.byPlugin.get(pluginId)
    if (stats === undefined) {
      stats = { requests: 0, errors: 0, sumSeconds: 0, bucketCounts: LATENCY_BUCKETS_SECONDS.map(() => 0) }
      this.byPlugin.set(pluginId, stats)
    }
    const seconds = Math.max(0, sample.durationMs) / 1000
    stats.requests += 1
    stats.sumSeconds += seconds
    if (sample.error) stats.errors += 1
    LATENCY_BUCKETS_SECONDS.forEach((bound, index) => {
      if (seconds <= bound) stats.bucketCounts[index]! += 1
    })
  }

  get(pluginId: string): PluginProxyStats | undefined {
    return this.byPlugin.get(pluginId)
  }
}

/** deps.ts' ProxyUsageRecorder, spelled out here: deps.ts imports this file. */
interface UsageRecorder {
  record(pluginId: string, sample: { durationMs: number; error: boolean }): void
  totals(): { requests: number; errors: number }
}

/** A recorder that gives every sample to both. */
export function recordingBoth(usage: UsageRecorder, latency: ProxyLatency): UsageRecorder {
  return {
    record: (pluginId, sample) => {
      usage.record(pluginId, sample)
      latency.record(pluginId, sample)
    },
    totals: () => usage.totals(),
  }
}
