// Liveness, readiness and Prometheus metrics. Mounted before authentication: probes and
// scrapers carry no token, and nothing here reveals more than counts and phases.
import { Hono } from 'hono'
import type { PluginCount } from '../../db/plugin-counts.js'
import { HEALTH_STATUSES, PLUGIN_PHASES } from '../../db/schema.js'
import type { TimerHandle } from '../../util/clock.js'
import type { ApiDependencies } from '../deps.js'
import { ChangeCachedRead } from '../change-cached-read.js'
import { PluginSeries } from '../plugin-series.js'

/** How long /readyz waits for the database before calling it unreachable. */
const DATABASE_PING_TIMEOUT_MS = 2_000

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export function observabilityRoutes(deps: ApiDependencies): Hono {
  const app = new Hono()
  const counts = new ChangeCachedRead({ source: deps.store, read: () => deps.countPlugins(), clock: deps.clock })
  // Per-plugin series (plugin-series.ts), when the daemon provides the narrow query they need.
  const pluginGauges = deps.pluginGauges
  const perPlugin = pluginGauges
    ? new PluginSeries({ source: deps.store, gauges: pluginGauges, clock: deps.clock, ...(deps.latestResourceSamples ? { latestSamples: deps.latestResourceSamples } : {}), ...(deps.proxyLatency ? { proxyLatency: deps.proxyLatency } : {}) })
    : undefined

  // Alive: the process answers HTTP. Never depends on the database or Docker, so an
  // orchestrator does not restart the manager for an outage it cannot fix.
  app.get('/healthz', (c) => c.json({ status: 'ok' }))

  // Ready: the database answers and, on the leader, Docker too. A follower does not use
  // Docker (it serves the API; the leader reconciles), so its Docker is "standby".
  app.get('/readyz', async (c) => {
    const leadership = deps.leadership()
    const database = (await pingDatabase(deps)) ? 'ok' : 'unreachable'
    const leading = leadership.role === 'leader'
    const docker = !leading ? 'standby' : deps.controller.snapshot().dockerConnected ? 'ok' : 'unreachable'
    const ready = database === 'ok' && docker !== 'unreachable'
    return c.json(
      { status: ready ? 'ready' : 'degraded', database, docker, role: leadership.role, manager: leadership.managerId, leader: leadership.leader ?? null },
      ready ? 200 : 503,
    )
  })

  app.get('/metrics', async (c) => {
    const text = renderPrometheus([...collectMetrics(deps, await counts.read()), ...((await perPlugin?.families()) ?? [])])
    return c.body(text, 200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE })
  })

  return app
}

async function pingDatabase(deps: ApiDependencies): Promise<boolean> {
  let timer: TimerHandle | undefined
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = deps.clock.setTimeout(() => reject(new Error(`no answer within ${DATABASE_PING_TIMEOUT_MS} ms`)), DATABASE_PING_TIMEOUT_MS)
  })
  try {
    await Promise.race([deps.database.ping(), timedOut])
    return true
  } catch (error) {
    deps.logger.warn({ err: error }, 'readiness check: the database did not answer')
    return false
  } finally {
    if (timer) deps.clock.clearTimeout(timer)
  }
}

export interface MetricFamily {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary'
  /** `suffix`: _bucket, _sum or _count of a histogram or summary. */
  samples: { labels?: Record<string, string>; value: number; suffix?: string }[]
}

/** Every figure from memory: the controller's counters, and plugin counts kept between changes. */
function collectMetrics(deps: ApiDependencies, plugins: PluginCount[]): MetricFamily[] {
  const stats = deps.controller.snapshot()
  const leadership = deps.leadership()
  const proxy = deps.proxyUsage.totals()
  const countBy = <T extends string>(values: readonly T[], pick: (count: PluginCount) => T) =>
    values.map((value) => ({ value, count: plugins.filter((each) => pick(each) === value).reduce((sum, each) => sum + each.count, 0) }))
  const families: MetricFamily[] = [
    counter('flowforge_reconciles_total', 'Reconciles finished, successful or not.', stats.reconciles),
    counter('flowforge_reconcile_errors_total', 'Reconciles that failed and were retried or recorded.', stats.reconcileErrors),
    counter('flowforge_reconcile_duration_seconds_total', 'Time spent reconciling.', stats.reconcileSecondsTotal),
    {
      name: 'flowforge_reconcile_duration_seconds',
      help: 'Reconciles and the time they took (a summary without quantiles: rate(_sum) / rate(_count) is the mean).',
      type: 'summary',
      samples: [
        { suffix: '_sum', value: stats.reconcileSecondsTotal },
        { suffix: '_count', value: stats.reconciles },
      ],
    },
    gauge('flowforge_work_queue_depth', 'Plugin keys waiting to be reconciled.', stats.queueDepth),
    gauge('flowforge_reconciles_in_flight', 'Reconciles running now.', stats.processing),
    counter('flowforge_resyncs_total', 'Full resyncs of every plugin with Docker.', stats.resyncs),
    gauge('flowforge_docker_connected', 'Whether the Docker engine is reachable (1) or not (0).', stats.dockerConnected ? 1 : 0),
    {
      name: 'flowforge_leader',
      help: 'Whether this manager leads (1: it reconciles) or follows (0), by manager id and the current leader.',
      type: 'gauge',
      samples: [{ labels: { manager: leadership.managerId, leader: leadership.leader ?? '' }, value: leadership.role === 'leader' ? 1 : 0 }],
    },
    counter('flowforge_leader_terms_total', 'Times this manager started leading.', leadership.terms),
    {
      name: 'flowforge_plugins',
      help: 'Plugins by status phase.',
      type: 'gauge',
      samples: countBy(PLUGIN_PHASES, (count) => count.phase).map(({ value, count }) => ({ labels: { phase: value }, value: count })),
    },
    {
      name: 'flowforge_plugins_by_health',
      help: 'Plugins by health status.',
      type: 'gauge',
      samples: countBy(HEALTH_STATUSES, (count) => count.health).map(({ value, count }) => ({ labels: { health: value }, value: count })),
    },
    counter('flowforge_proxy_requests_total', 'Requests proxied to plugins.', proxy.requests),
    counter('flowforge_proxy_errors_total', 'Proxied requests that failed: upstream unreachable, timed out or 5xx.', proxy.errors),
    gauge('flowforge_event_stream_subscribers', 'Open WebSocket and SSE event streams.', deps.events.streamCount),
    {
      name: 'flowforge_database_info',
      help: 'The database engine in use.',
      type: 'gauge',
      samples: [{ labels: { engine: deps.database.engine }, value: 1 }],
    },
  ]
  if (stats.lastResyncAt) {
    families.push(gauge('flowforge_last_resync_timestamp_seconds', 'When the last full resync finished.', stats.lastResyncAt.getTime() / 1000))
  }
  return families
}

function counter(name: string, help: string, value: number): MetricFamily {
  return { name, help, type: 'counter', samples: [{ value }] }
}

function gauge(name: string, help: string, value: number): MetricFamily {
  return { name, help, type: 'gauge', samples: [{ value }] }
}

/** The Prometheus text exposition format 0.0.4. */
export function renderPrometheus(families: MetricFamily[]): string {
  const lines: string[] = []
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`)
    lines.push(`# TYPE ${family.name} ${family.type}`)
    for (const sample of family.samples) lines.push(`${family.name}${sample.suffix ?? ''}${renderLabels(sample.labels)} ${renderValue(sample.value)}`)
  }
  return `${lines.join('\n')}\n`
}

function renderLabels(labels: Record<string, string> | undefined): string {
  if (!labels || Object.keys(labels).length === 0) return ''
  const pairs = Object.entries(labels).map(([key, value]) => `${key}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return `{${pairs.join(',')}}`
}

function renderValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf'
  return String(value)
}
