// Health monitor and metrics sampler on the in-memory runtime, an injected HTTP probe and
// a fake clock.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { ContainerCache } from '../../src/controller/container-cache.js'
import { HealthMonitor, type HttpProbe } from '../../src/controller/health-monitor.js'
import { MetricsSampler } from '../../src/controller/metrics-sampler.js'
import type { Plugin } from '../../src/db/plugin-store.js'
import { silentLogger } from '../../src/logger.js'
import { containerNameFor, type ObservedContainer } from '../../src/runtime/container-runtime.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { FakeClock } from '../helpers/fake-clock.js'

describe('health monitor and metrics sampler', () => {
  let database: TestDatabase
  let clock: FakeClock
  let cache: ContainerCache
  const restarts: string[] = []
  let probeStatus: Record<number, number | Error>
  const probedUrls: string[] = []
  const probe: HttpProbe = async (url) => {
    probedUrls.push(url)
    const port = Number(new URL(url).port)
    const answer = probeStatus[port] ?? new Error('connection refused')
    if (answer instanceof Error) throw answer
    return answer
  }

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => database?.close())
  beforeEach(async () => {
    await database.reset()
    clock = new FakeClock()
    cache = new ContainerCache()
    restarts.length = 0
    probedUrls.length = 0
    probeStatus = {}
  })

  function monitor(): HealthMonitor {
    return new HealthMonitor({
      store: database.store,
      cache,
      clock,
      logger: silentLogger(),
      intervalMs: 30_000,
      probe,
      requestRestart: (pluginId, reason) => restarts.push(`${pluginId} ${reason}`),
    })
  }

  async function runningPlugin(name: string, hostPort: number, healthCheck?: Record<string, unknown>): Promise<Plugin> {
    const plugin = await database.store.createPlugin({
      forgehookId: name,
      source: 'api',
      manifest: { image: 'flowforge/x:1', port: 8080, ...(healthCheck ? { healthCheck } : {}) },
    })
    const container: ObservedContainer = { id: `c-${name}`, name: containerNameFor(name), image: 'flowforge/x:1', state: 'running', labels: {} }
    cache.putDetailed(container)
    return (await database.store.writeStatus(plugin.id, { status: 'running', hostPort, containerId: container.id }))!
  }

  async function healthOf(name: string): Promise<string> {
    return (await database.store.requirePlugin(name)).healthStatus
  }

  test('an HTTP health path: healthy at once, unhealthy only after three failures in a row', async () => {
    await runningPlugin('web', 4100, { path: '/health' })
    probeStatus[4100] = 200
    const health = monitor()
    await health.checkAll()
    expect(await healthOf('web')).toBe('healthy')
    expect(probedUrls).toEqual(['http://127.0.0.1:4100/health'])

    probeStatus[4100] = 503
    await health.checkAll()
    await health.checkAll()
    expect(await healthOf('web')).toBe('healthy')
    await health.checkAll()
    expect(await healthOf('web')).toBe('unhealthy')
    probeStatus[4100] = 204
    await health.checkAll()
    expect(await healthOf('web')).toBe('healthy')

    const events = (await database.store.listEvents({ forgehookId: 'web', types: ['plugin:health'], order: 'asc' })).items
    expect(events.map((event) => `${event.data.from}->${event.data.to}`)).toEqual(['unknown->healthy', 'healthy->unhealthy', 'unhealthy->healthy'])
  })

  test('unchanged health only refreshes last_health_check, for all plugins in one statement', async () => {
    await runningPlugin('steady', 4101, { path: '/health' })
    probeStatus[4101] = 200
    const health = monitor()
    await health.checkAll()
    const first = await database.store.requirePlugin('steady')
    clock.advance(30_000)
    await health.checkAll()
    const second = await database.store.requirePlugin('steady')
    expect(second.lastHealthCheck!.getTime()).toBe(first.lastHealthCheck!.getTime() + 30_000)
    expect((await database.store.listEvents({ forgehookId: 'steady' })).items).toHaveLength(1)
  })

  test('a new health path in the spec is probed from the next round on', async () => {
    await runningPlugin('moved', 4106, { path: '/old' })
    probeStatus[4106] = 200
    const health = monitor()
    await health.checkAll()
    await database.store.updateSpec('moved', { manifest: { image: 'flowforge/x:1', port: 8080, healthCheck: { path: '/new' } } })
    await health.checkAll()
    expect(probedUrls).toEqual(['http://127.0.0.1:4106/old', 'http://127.0.0.1:4106/new'])
  })

  test('a round reads the manifests only of plugins whose generation it has not seen', async () => {
    await runningPlugin('kept', 4107, { path: '/health' })
    await runningPlugin('edited', 4108, { path: '/health' })
    probeStatus[4107] = 200
    probeStatus[4108] = 200
    const asked: string[][] = []
    const manifestsOf = database.store.manifestsOf.bind(database.store)
    const health = new HealthMonitor({
      store: Object.assign(Object.create(database.store) as typeof database.store, {
        manifestsOf: (ids: string[]) => (asked.push([...ids]), manifestsOf(ids)),
      }),
      cache,
      clock,
      logger: silentLogger(),
      intervalMs: 30_000,
      probe,
      requestRestart: () => undefined,
    })
    await health.checkAll()
    await health.checkAll()
    const edited = await database.store.updateSpec('edited', { manifest: { image: 'flowforge/x:1', port: 8080, healthCheck: { path: '/v2' } } })
    await health.checkAll()
    const kept = await database.store.requirePlugin('kept')
    // Running plugins come by name: edited, then kept. The second round asked for nothing.
    expect(asked).toEqual([[edited.id, kept.id], [edited.id]])
    expect(probedUrls.slice(-2)).toEqual(['http://127.0.0.1:4108/v2', 'http://127.0.0.1:4107/health'])
  })

  test('without a health path or a Docker HEALTHCHECK the health is unknown', async () => {
    await runningPlugin('plain', 4102)
    await monitor().checkAll()
    expect(await healthOf('plain')).toBe('unknown')
    expect(probedUrls).toEqual([])
  })

  test('a Docker HEALTHCHECK wins over the HTTP probe and is written as soon as the engine reports it', async () => {
    const plugin = await runningPlugin('docker-hc', 4103, { path: '/health' })
    cache.putDetailed({ ...cache.get('forgehook-docker-hc')!.container, health: 'unhealthy' })
    const health = monitor()
    await health.checkAll()
    expect(await healthOf('docker-hc')).toBe('unhealthy')
    expect(probedUrls).toEqual([])
    await health.onDockerHealth(plugin.id, 'healthy')
    expect(await healthOf('docker-hc')).toBe('healthy')
  })

  test('restartOnFailure asks for one restart after that many failures', async () => {
    const plugin = await runningPlugin('flaky', 4104, { path: '/health', restartOnFailure: 2 })
    const health = monitor()
    await health.checkAll()
    expect(restarts).toEqual([])
    await health.checkAll()
    expect(restarts).toEqual([`${plugin.id} health check /health failed 2 times in a row`])
  })

  test('the monitor runs every interval on the injected clock', async () => {
    await runningPlugin('ticking', 4105, { path: '/health' })
    probeStatus[4105] = 200
    const health = monitor()
    health.start()
    expect(probedUrls).toHaveLength(0)
    clock.advance(30_000)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(probedUrls).toHaveLength(1)
    await health.stop()
  })

  test('metrics: one sample per running plugin per round, and old samples go', async () => {
    const runtime = new FakeRuntime({ images: ['flowforge/x:1'] })
    const plugin = await runningPlugin('measured', 4106)
    const containerId = await runtime.create({
      name: 'forgehook-measured',
      image: 'flowforge/x:1',
      env: {},
      labels: {},
      containerPort: 8080,
      hostPort: 4106,
      hostIp: '127.0.0.1',
    })
    await runtime.start(containerId)
    runtime.setStats(containerId, { cpuPercent: 12.5, memoryMb: 48.25 })
    cache.putDetailed((await runtime.inspect(containerId))!)
    await database.store.recordMetrics(plugin.id, { cpuUsagePercent: 1, recordedAt: new Date(clock.now() - 8 * 24 * 3600_000) })

    const sampler = new MetricsSampler({
      store: database.store,
      runtime,
      cache,
      clock,
      logger: silentLogger(),
      intervalMs: 30_000,
      retentionMs: 7 * 24 * 3600_000,
    })
    expect(await sampler.sampleAll()).toBe(1)
    const samples = await database.store.listMetrics(plugin.id)
    expect(samples).toHaveLength(1)
    // The first read of a container has its memory; its CPU rate needs a second read.
    expect(samples[0]).toMatchObject({ cpuUsagePercent: null, memoryUsageMb: 48.25 })

    clock.advance(30_000)
    expect(await sampler.sampleAll()).toBe(1)
    const [latest] = await database.store.listMetrics(plugin.id, { limit: 1 })
    expect(latest).toMatchObject({ cpuUsagePercent: 12.5, memoryUsageMb: 48.25 })
  })

  test('metrics: a recreated container starts its CPU rate afresh', async () => {
    const runtime = new FakeRuntime({ images: ['flowforge/x:1'] })
    const plugin = await runningPlugin('recreated', 4107)
    const spec = { name: 'forgehook-recreated', image: 'flowforge/x:1', env: {}, labels: {}, containerPort: 8080, hostPort: 4107, hostIp: '127.0.0.1' }
    const firstId = await runtime.create(spec)
    await runtime.start(firstId)
    cache.putDetailed((await runtime.inspect(firstId))!)
    const sampler = new MetricsSampler({ store: database.store, runtime, cache, clock, logger: silentLogger(), intervalMs: 30_000, retentionMs: 7 * 24 * 3600_000 })
    await sampler.sampleAll()

    await runtime.stop(firstId, 0)
    await runtime.remove(firstId)
    const secondId = await runtime.create(spec)
    await runtime.start(secondId)
    runtime.setStats(secondId, { cpuPercent: 40, memoryMb: 20 })
    cache.putDetailed((await runtime.inspect(secondId))!)
    clock.advance(30_000)
    await sampler.sampleAll()
    const [afterRecreate] = await database.store.listMetrics(plugin.id, { limit: 1 })
    expect(afterRecreate).toMatchObject({ cpuUsagePercent: null, memoryUsageMb: 20 })

    clock.advance(30_000)
    await sampler.sampleAll()
    const [next] = await database.store.listMetrics(plugin.id, { limit: 1 })
    expect(next).toMatchObject({ cpuUsagePercent: 40, memoryUsageMb: 20 })
  })

  test('metrics: a container we started is sampled once it has been inspected, not before', async () => {
    const runtime = new FakeRuntime({ images: ['flowforge/x:1'] })
    const plugin = await runningPlugin('settling', 4108)
    const containerId = await runtime.create({ name: 'forgehook-settling', image: 'flowforge/x:1', env: {}, labels: {}, containerPort: 8080, hostPort: 4108, hostIp: '127.0.0.1' })
    // What the controller does: the create's container in the cache, then the start's answer.
    cache.putDetailed((await runtime.inspect(containerId))!)
    const version = cache.versionOf(containerId)
    await runtime.start(containerId)
    expect(cache.markStarted(containerId, new Date(clock.now()), version)).toBe(true)
    runtime.setStats(containerId, { cpuPercent: 7, memoryMb: 30 })
    const sampler = new MetricsSampler({ store: database.store, runtime, cache, clock, logger: silentLogger(), intervalMs: 30_000, retentionMs: 7 * 24 * 3600_000 })

    expect(await sampler.sampleAll()).toBe(0)
    expect(await database.store.listMetrics(plugin.id)).toHaveLength(0)

    // The start settler's inspect: an ordinary entry from then on.
    cache.putDetailed((await runtime.inspect(containerId))!)
    clock.advance(30_000)
    expect(await sampler.sampleAll()).toBe(1)
    expect(await database.store.listMetrics(plugin.id)).toMatchObject([{ cpuUsagePercent: null, memoryUsageMb: 30 }])
  })
})
