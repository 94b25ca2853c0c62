// The control loop against the real Docker engine, on a real Postgres server when
// TEST_DATABASE_URL is set (embedded otherwise): what an operator sees in `docker ps`,
// over HTTP, and in the rows and events.
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import type { Controller } from '../../src/controller/controller.js'
import { HealthMonitor } from '../../src/controller/health-monitor.js'
import { MetricsSampler } from '../../src/controller/metrics-sampler.js'
import { silentLogger } from '../../src/logger.js'
import { LABELS } from '../../src/runtime/container-runtime.js'
import { DockerRuntime } from '../../src/runtime/docker-runtime.js'
import { systemClock } from '../../src/util/clock.js'
import { engines, eventually, openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { buildTestImages, docker, DOCKER_HOST, probeEngine, removeContainers, requireEngineInCi } from '../helpers/docker.js'
import { eventTypes, startController, waitForConverged, waitForPlugin } from '../helpers/controller-harness.js'

const engine = await probeEngine()
requireEngineInCi(engine)

const PREFIX = 'it-'
const HTTP_1 = 'flowforge-test/http:1'
const HTTP_2 = 'flowforge-test/http:2'

function httpManifest(image = HTTP_1, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'HTTP test plugin', version: '1.0.0', image, imagePullPolicy: 'Never', port: 8080, healthCheck: { path: '/health' }, ...extra }
}

async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) })
  return { status: response.status, body: (await response.text()).trim() }
}

async function answers(port: number, path: string, expected: string): Promise<void> {
  await eventually(async () => {
    try {
      const reply = await httpGet(port, path)
      return reply.body === expected ? true : undefined
    } catch {
      return undefined
    }
  }, 10_000, `http://127.0.0.1:${port}${path} to answer "${expected}"`)
}

/** Containers named forgehook-it-<name>, as `docker ps -a` lists them. */
async function dockerPs(name: string): Promise<string[]> {
  const out = await docker('ps', '-a', '--filter', `name=^/forgehook-${PREFIX}${name}$`, '--format', '{{.ID}} {{.State}}')
  return out.split('\n').filter(Boolean)
}

const databaseEngine = engines.includes('postgres') ? 'postgres' : 'embedded'

describe.skipIf(!engine.reachable)(`the controller on the real Docker engine (${databaseEngine} Postgres)`, () => {
  let database: TestDatabase
  let controller: Controller | undefined
  let dockerRuntime: DockerRuntime

  beforeAll(async () => {
    await buildTestImages()
    await removeContainers(`forgehook-${PREFIX}`)
    database = await openTestDatabase(databaseEngine)
  }, 120_000)
  afterAll(async () => {
    await removeContainers(`forgehook-${PREFIX}`)
    await database?.close()
  })
  afterEach(async () => {
    await controller?.stop()
    controller = undefined
  })

  async function start(): Promise<Controller> {
    dockerRuntime = new DockerRuntime({ dockerHost: DOCKER_HOST, logger: silentLogger() })
    controller = await startController(database, dockerRuntime, {
      portRange: { from: 4600, to: 4699 },
      container: { hostIp: '127.0.0.1', instance: 'it' },
      crashLoop: { initialDelayMs: 1_000, maxDelayMs: 4_000, resetAfterMs: 600_000 },
    })
    return controller
  }

  async function install(name: string, extra: Record<string, unknown> = {}) {
    return database.store.createPlugin({ forgehookId: `${PREFIX}${name}`, source: 'api', manifest: httpManifest(), ...extra })
  }

  test('installs a plugin that answers HTTP on its host port; stops and starts it', async () => {
    await start()
    await install('web')
    const running = await waitForConverged(database, `${PREFIX}web`, 20_000)
    expect(running.hostPort).toBeGreaterThanOrEqual(4600)
    await answers(running.hostPort!, '/index.html', 'hello from version 1')
    expect(await dockerPs('web')).toEqual([`${running.containerId!.slice(0, 12)} running`])

    await database.store.updateSpec(`${PREFIX}web`, { desiredState: 'stopped' })
    const stopped = await waitForConverged(database, `${PREFIX}web`, 30_000)
    expect(stopped.containerId).toBe(running.containerId)
    expect(await dockerPs('web')).toEqual([`${running.containerId!.slice(0, 12)} exited`])

    await database.store.updateSpec(`${PREFIX}web`, { desiredState: 'running' })
    await waitForConverged(database, `${PREFIX}web`, 20_000)
    await answers(running.hostPort!, '/health', 'ok')
  })

  test('an image change recreates the container on the same port with a plugin:updated event', async () => {
    await start()
    await install('upgrade')
    const before = await waitForConverged(database, `${PREFIX}upgrade`, 20_000)
    await database.store.updateSpec(`${PREFIX}upgrade`, { manifest: httpManifest(HTTP_2) })
    const after = await waitForPlugin(database, `${PREFIX}upgrade`, (plugin) => plugin.observedGeneration === 2 && plugin.status === 'running', 'upgraded', 30_000)
    expect(after.hostPort).toBe(before.hostPort)
    expect(after.containerId).not.toBe(before.containerId)
    await answers(after.hostPort!, '/index.html', 'hello from version 2')
    expect(await dockerPs('upgrade')).toHaveLength(1)
    const updated = (await database.store.listEvents({ forgehookId: `${PREFIX}upgrade`, types: ['plugin:updated'] })).items[0]
    expect(updated?.data.changedFields).toEqual(['image'])
  })

  test('docker kill: status error within 2 s, then restarted after backoff', async () => {
    await start()
    await install('killed')
    const running = await waitForConverged(database, `${PREFIX}killed`, 20_000)
    await docker('kill', running.containerId!)
    const crashed = await waitForPlugin(database, `${PREFIX}killed`, (plugin) => plugin.status === 'error', 'crash recorded within 2 s', 2_000)
    expect(crashed.error).toMatch(/^container exited with code 137; restart 1 in 1 s$/)
    const restarted = await waitForPlugin(database, `${PREFIX}killed`, (plugin) => plugin.status === 'running', 'restarted', 15_000)
    expect(restarted).toMatchObject({ restartCount: 1, containerId: running.containerId })
    await answers(restarted.hostPort!, '/health', 'ok')
    expect((await eventTypes(database, `${PREFIX}killed`)).filter((type) => type === 'plugin:crashed')).toHaveLength(1)
  })

  test('docker rm -f: the container is recreated exactly once', async () => {
    await start()
    await install('removed')
    const before = await waitForConverged(database, `${PREFIX}removed`, 20_000)
    await docker('rm', '-f', before.containerId!)
    const after = await waitForPlugin(database, `${PREFIX}removed`, (plugin) => plugin.containerId !== before.containerId && plugin.status === 'running', 'recreated', 20_000)
    await answers(after.hostPort!, '/health', 'ok')
    expect(await dockerPs('removed')).toHaveLength(1)
    expect(await eventTypes(database, `${PREFIX}removed`)).toContain('plugin:recovered')
  })

  test('a plain SQL UPDATE of desired_state stops the container', async () => {
    await start()
    await install('sql')
    const running = await waitForConverged(database, `${PREFIX}sql`, 20_000)
    await sql`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = ${`${PREFIX}sql`}`.execute(database.handle.db)
    await waitForPlugin(database, `${PREFIX}sql`, (plugin) => plugin.status === 'stopped', 'stopped', 30_000)
    expect(await dockerPs('sql')).toEqual([`${running.containerId!.slice(0, 12)} exited`])
  })

  test('a restarted manager keeps the same containers, creates no duplicate, and adopts an orphan', async () => {
    await start()
    await install('stay-a')
    await install('stay-b')
    const before = await Promise.all(['stay-a', 'stay-b'].map((name) => waitForConverged(database, `${PREFIX}${name}`, 20_000)))
    const startedAt = await Promise.all(before.map((plugin) => docker('inspect', '-f', '{{.State.StartedAt}}', plugin.containerId!)))
    await controller!.stop()
    controller = undefined
    // A plugin whose row was lost: its container carries its id and spec; nothing knows it.
    const orphan = before[1]!
    await database.handle.db.deleteFrom('plugin_tombstones').execute()
    await sql`ALTER TABLE plugins DISABLE TRIGGER plugins_record_tombstone`.execute(database.handle.db)
    await sql`DELETE FROM plugins WHERE id = ${orphan.id}`.execute(database.handle.db)
    await sql`ALTER TABLE plugins ENABLE TRIGGER plugins_record_tombstone`.execute(database.handle.db)

    await start()
    const adopted = await waitForConverged(database, `${PREFIX}stay-b`, 20_000)
    expect(adopted).toMatchObject({ id: orphan.id, source: 'adopted', containerId: orphan.containerId, hostPort: orphan.hostPort })
    const after = await database.store.requirePlugin(`${PREFIX}stay-a`)
    expect(after.containerId).toBe(before[0]!.containerId)
    expect(await dockerPs('stay-a')).toHaveLength(1)
    expect(await dockerPs('stay-b')).toHaveLength(1)
    expect(await Promise.all(before.map((plugin) => docker('inspect', '-f', '{{.State.StartedAt}}', plugin.containerId!)))).toEqual(startedAt)
  })

  test('no label of a container holds a secret of its spec (docker inspect); the container gets the real values', async () => {
    await start()
    await install('secretive', { environment: { API_TOKEN: 'tok-8cd1f2a9', MODE: 'plain' }, config: { db: { password: 'pw-51b7e0c3' } } })
    const plugin = await waitForConverged(database, `${PREFIX}secretive`, 20_000)
    const labels = await docker('inspect', '-f', '{{json .Config.Labels}}', plugin.containerId!)
    expect(labels).not.toContain('tok-8cd1f2a9')
    expect(labels).not.toContain('pw-51b7e0c3')
    expect(labels).toContain('plain')
    const env = await docker('inspect', '-f', '{{json .Config.Env}}', plugin.containerId!)
    expect(env).toContain('API_TOKEN=tok-8cd1f2a9')
    expect(env).toContain('pw-51b7e0c3')
  })

  test('uninstall removes the container and the row; the events stay', async () => {
    await start()
    await install('bye')
    const running = await waitForConverged(database, `${PREFIX}bye`, 20_000)
    await database.store.requestDeletion(`${PREFIX}bye`)
    await eventually(async () => ((await database.store.getPlugin(`${PREFIX}bye`)) ? undefined : true), 30_000, 'row deleted')
    expect(await dockerPs('bye')).toEqual([])
    expect(await eventTypes(database, `${PREFIX}bye`)).toEqual(['plugin:installed', 'plugin:started', 'plugin:uninstalled'])
    expect(running.containerId).toBeTruthy()
  })

  test('a foreign container holding the name is reported and left untouched', async () => {
    await start()
    const foreignId = await docker('run', '-d', '--name', `forgehook-${PREFIX}squatter`, HTTP_1)
    const startedAt = await docker('inspect', '-f', '{{.State.StartedAt}}', foreignId)
    await install('squatter')
    const plugin = await waitForPlugin(database, `${PREFIX}squatter`, (row) => row.status === 'error', 'conflict', 20_000)
    expect(plugin.error).toMatch(/is held by a container not managed by FlowForge/)
    expect(await docker('inspect', '-f', '{{.State.Status}} {{.State.StartedAt}}', foreignId)).toBe(`running ${startedAt}`)
    expect(await docker('inspect', '-f', `{{index .Config.Labels "${LABELS.managed}"}}`, foreignId)).toBe('')
  })

  test('health: an HTTP health path and a Docker HEALTHCHECK both reach health_status; stats reach plugin_metrics', async () => {
    const controllerNow = await start()
    await install('probed')
    await install('docker-hc', { manifest: { image: 'flowforge-test/http-healthcheck:1', imagePullPolicy: 'Never', port: 8080 } })
    const probed = await waitForConverged(database, `${PREFIX}probed`, 20_000)
    await waitForConverged(database, `${PREFIX}docker-hc`, 20_000)
    await answers(probed.hostPort!, '/health', 'ok')

    const health = new HealthMonitor({
      store: database.store,
      cache: controllerNow.cache,
      clock: systemClock,
      logger: silentLogger(),
      intervalMs: 60_000,
      requestRestart: () => undefined,
    })
    await health.checkAll()
    expect((await database.store.requirePlugin(`${PREFIX}probed`)).healthStatus).toBe('healthy')
    // The image's HEALTHCHECK runs every second; the engine reports it, we record it.
    await eventually(async () => {
      const row = await database.store.requirePlugin(`${PREFIX}docker-hc`)
      if (row.healthStatus === 'healthy') return true
      await health.checkAll()
      return undefined
    }, 15_000, 'Docker HEALTHCHECK healthy')

    const metrics = new MetricsSampler({
      store: database.store,
      runtime: dockerRuntime,
      cache: controllerNow.cache,
      clock: systemClock,
      logger: silentLogger(),
      intervalMs: 60_000,
      retentionMs: 3_600_000,
    })
    expect(await metrics.sampleAll()).toBeGreaterThanOrEqual(2)
    const samples = await database.store.listMetrics(probed.id)
    expect(samples[0]?.memoryUsageMb).toBeGreaterThan(0)
  })
})
