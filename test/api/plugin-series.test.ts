// The per-plugin series of GET /metrics: what they say, and what a scrape costs (one narrow
// query after a change, none while nothing changes).
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import { pluginGauges } from '../../src/db/metric-queries.js'
import { ProxyLatency } from '../../src/api/proxy-latency.js'
import { eventually, openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, send } from './api-harness.js'

let database: TestDatabase
beforeAll(async () => {
  database = await openTestDatabase('embedded')
})
afterAll(() => database?.close())
beforeEach(() => database.reset())

test('per-plugin up, phase, health, restarts, CPU, memory and proxy histograms, one narrow query per change', async () => {
  const queries: string[] = []
  const latency = new ProxyLatency()
  const api = apiHarness(database, {
    pluginGauges: () => {
      queries.push('gauges')
      return pluginGauges(database.handle.db)
    },
    latestResourceSamples: async () => new Map(),
    proxyLatency: latency,
  })
  const web = await database.store.createPlugin({ forgehookId: 'web', source: 'api', manifest: sampleManifest('web') })
  await database.store.writeStatus(web.id, { status: 'running', healthStatus: 'healthy', restartCount: 2 })
  await database.store.createPlugin({ forgehookId: 'idle', source: 'api', manifest: sampleManifest('idle') })
  await database.store.recordMetrics(web.id, { cpuUsagePercent: 12.5, memoryUsageMb: 64 })
  latency.record(web.id, { durationMs: 3, error: false })
  latency.record(web.id, { durationMs: 700, error: true })

  const withSamples = apiHarness(database, {
    pluginGauges: () => pluginGauges(database.handle.db),
    latestResourceSamples: async (since) => (await import('../../src/db/metric-queries.js')).latestResourceSamples(database.handle.db, { since }),
    proxyLatency: latency,
  })
  const text = await (await send(withSamples.app, 'GET', '/metrics')).text()
  expect(text).toContain('flowforge_plugin_up{plugin="web"} 1')
  expect(text).toContain('flowforge_plugin_up{plugin="idle"} 0')
  expect(text).toContain('flowforge_plugin_phase{plugin="web",phase="running"} 1')
  expect(text).toContain('flowforge_plugin_phase{plugin="web",phase="error"} 0')
  expect(text).toContain('flowforge_plugin_health{plugin="web",health="healthy"} 1')
  expect(text).toContain('flowforge_plugin_restarts{plugin="web"} 2')
  expect(text).toContain('flowforge_plugin_cpu_percent{plugin="web"} 12.5')
  expect(text).toContain(`flowforge_plugin_memory_bytes{plugin="web"} ${64 * 1024 * 1024}`)
  expect(text).toContain('# TYPE flowforge_plugin_proxy_request_duration_seconds histogram')
  expect(text).toContain('flowforge_plugin_proxy_request_duration_seconds_bucket{plugin="web",le="0.005"} 1')
  expect(text).toContain('flowforge_plugin_proxy_request_duration_seconds_bucket{plugin="web",le="0.5"} 1')
  expect(text).toContain('flowforge_plugin_proxy_request_duration_seconds_bucket{plugin="web",le="1"} 2')
  expect(text).toContain('flowforge_plugin_proxy_request_duration_seconds_bucket{plugin="web",le="+Inf"} 2')
  expect(text).toContain('flowforge_plugin_proxy_request_duration_seconds_count{plugin="web"} 2')
  expect(text).toContain('flowforge_plugin_proxy_errors_total{plugin="web"} 1')
  expect(text).toContain('flowforge_reconcile_duration_seconds_count 0')

  for (let scrape = 0; scrape < 20; scrape++) await (await send(api.app, 'GET', '/metrics')).text()
  expect(queries).toEqual(['gauges'])
  await database.store.writeStatus(web.id, { status: 'error', error: 'exited with code 1' })
  await eventually(async () => ((await (await send(api.app, 'GET', '/metrics')).text()).includes('flowforge_plugin_phase{plugin="web",phase="error"} 1') ? true : undefined), 5_000, 'the change in /metrics')
  expect(queries.length).toBeLessThanOrEqual(4)
})
