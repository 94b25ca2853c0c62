// Updates on the real Docker engine, through the whole daemon (API, proxy, controller) as an
// operator drives it: a bad tag never takes the plugin down, a release that exits or never
// becomes healthy is rolled back, start-first loses no proxied request, and a volume's data
// survives updates, rollbacks, uninstall and reinstall until it is purged.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { silentLogger } from '../../src/logger.js'
import { startDaemon, type Daemon } from '../../src/main.js'
import { eventually } from '../helpers/databases.js'
import { buildTestImages, docker, probeEngine, removeContainers, requireEngineInCi } from '../helpers/docker.js'

const engine = await probeEngine()
requireEngineInCi(engine)

const PREFIX = 'ro-'
const INSTANCE = 'it-rollouts'

interface PluginAnswer {
  metadata: { generation: number }
  status: { phase: string; observedGeneration: number; containerId: string | null; hostPort: number | null; error: string | null; rollout: { phase: string; error?: string; toImage: string } | null }
}

/** Proxied GETs every 100 ms while an update runs: every answer, and every failure. */
class Poller {
  readonly answers: string[] = []
  readonly failures: string[] = []
  private timer: NodeJS.Timeout | undefined
  private inFlight = Promise.resolve()

  constructor(private readonly url: string) {}

  start(): void {
    this.timer = setInterval(() => {
      this.inFlight = this.inFlight.then(() => this.once())
    }, 100)
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.inFlight
  }

  private async once(): Promise<void> {
    try {
      const response = await fetch(this.url, { signal: AbortSignal.timeout(3_000) })
      const body = (await response.text()).trim()
      if (response.status === 200) this.answers.push(body)
      else this.failures.push(`${response.status} ${body.slice(0, 120)}`)
    } catch (error) {
      this.failures.push(String(error))
    }
  }
}

describe.skipIf(!engine.reachable)('rollouts on the real Docker engine', () => {
  let daemon: Daemon
  let api: string

  beforeAll(async () => {
    await buildTestImages()
    await removeContainers(`forgehook-${PREFIX}`)
    await removeVolumes()
    const config = loadConfig({ PORT: '0', SPECS_DIR: '/nonexistent-ro-specs', MANAGER_INSTANCE: INSTANCE, HOST_PORT_RANGE: '4200-4299', STOP_TIMEOUT: '2', HEALTH_INTERVAL: '1' })
    daemon = await startDaemon({ ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }, silentLogger())
    await daemon.ready
    api = `http://${daemon.apiAddress.host}:${daemon.apiAddress.port}`
  }, 120_000)
  afterAll(async () => {
    await daemon?.stop()
    await removeContainers(`forgehook-${PREFIX}`)
    await removeVolumes()
  })

  async function removeVolumes(): Promise<void> {
    const names = (await docker('volume', 'ls', '-q', '--filter', `label=io.flowforge.instance=${INSTANCE}`)).split('\n').filter(Boolean)
    if (names.length > 0) await docker('volume', 'rm', '-f', ...names)
  }

  function document(name: string, spec: Record<string, unknown>): Record<string, unknown> {
    return { apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name: `${PREFIX}${name}` }, spec }
  }

  function manifest(image: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { name: 'Rollout test', version: '1.0.0', image, imagePullPolicy: 'IfNotPresent', port: 8080, ...extra }
  }

  async function put(name: string, spec: Record<string, unknown>): Promise<PluginAnswer> {
    const response = await fetch(`${api}/api/v1/plugins/${PREFIX}${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(document(name, spec)) })
    expect([200, 201]).toContain(response.status)
    return (await response.json()) as PluginAnswer
  }

  async function get(name: string): Promise<PluginAnswer | undefined> {
    const response = await fetch(`${api}/api/v1/plugins/${PREFIX}${name}`)
    if (response.status === 404) return undefined
    return (await response.json()) as PluginAnswer
  }

  function until(name: string, check: (plugin: PluginAnswer) => boolean, what: string, timeoutMs = 30_000): Promise<PluginAnswer> {
    return eventually(async () => {
      const plugin = await get(name)
      return plugin && check(plugin) ? plugin : undefined
    }, timeoutMs, `${PREFIX}${name}: ${what}`)
  }

  const converged = (plugin: PluginAnswer) => plugin.status.observedGeneration === plugin.metadata.generation && plugin.status.phase === 'running'

  /** Containers under the plugin's names (its own, _next, _previous), as docker ps -a lists them. */
  async function containerNames(name: string): Promise<string[]> {
    const out = await docker('ps', '-a', '--filter', `name=^/forgehook-${PREFIX}${name}`, '--format', '{{.Names}}')
    return out.split('\n').filter(Boolean).sort()
  }

  function proxied(name: string, path = '/index.html'): string {
    return `${api}/plugins/${PREFIX}${name}${path}`
  }

  test('a typo in the image tag leaves the old version serving every request; the status names the tag; the fix converges', async () => {
    const installed = await put('typo', { manifest: manifest('flowforge-test/http:1') })
    expect(installed).toBeDefined()
    const running = await until('typo', converged, 'running')
    const poller = new Poller(proxied('typo'))
    poller.start()
    try {
      await put('typo', { manifest: manifest('flowforge-test/http:does-not-exist') })
      const failed = await until('typo', (plugin) => plugin.status.rollout?.phase === 'failed', 'the rollout failed')
      expect(failed.status.rollout?.error).toContain('flowforge-test/http:does-not-exist')
      expect(failed.status).toMatchObject({ phase: 'running', containerId: running.status.containerId, observedGeneration: 1 })
      expect(failed.status.error).toContain('the previous version keeps running')
      // Served throughout by the old container, which nothing touched.
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      expect(await docker('inspect', '-f', '{{.State.Status}} {{.Config.Image}}', running.status.containerId!)).toBe('running flowforge-test/http:1')
    } finally {
      await poller.stop()
    }
    expect(poller.failures).toEqual([])
    expect(poller.answers.length).toBeGreaterThan(10)
    expect(new Set(poller.answers)).toEqual(new Set(['hello from version 1']))
    // The fix is a new generation, prepared at once (a Recreate: its switch is the one gap).
    await put('typo', { manifest: manifest('flowforge-test/http:2') })
    await until('typo', converged, 'the fixed tag running')
    expect((await (await fetch(proxied('typo'))).text()).trim()).toBe('hello from version 2')
    expect(await containerNames('typo')).toEqual([`forgehook-${PREFIX}typo`])
  })

  test('a new version that exits at start is rolled back, with the event; the old container serves again', async () => {
    await put('exits', { manifest: manifest('flowforge-test/http:1') })
    const running = await until('exits', converged, 'running')
    await put('exits', { manifest: manifest('flowforge-test/crash:1') })
    const rolledBack = await until('exits', (plugin) => plugin.status.rollout?.phase === 'rolled-back', 'rolled back')
    expect(rolledBack.status.rollout?.error).toBe('the new container exited with code 3')
    expect(rolledBack.status.containerId).toBe(running.status.containerId)
    expect(await docker('inspect', '-f', '{{.State.Status}} {{.Name}}', running.status.containerId!)).toBe(`running /forgehook-${PREFIX}exits`)
    const events = (await (await fetch(`${api}/api/v1/plugins/${PREFIX}exits/events?type=plugin:rolled-back`)).json()) as { items: { data: Record<string, unknown> }[] }
    expect(events.items[0]?.data).toMatchObject({ reason: 'the new container exited with code 3', exitCode: 3, failedImage: 'flowforge-test/crash:1', restoredImage: 'flowforge-test/http:1' })
    expect(await containerNames('exits')).toEqual([`forgehook-${PREFIX}exits`])
    await eventually(async () => ((await (await fetch(proxied('exits'))).text()).trim() === 'hello from version 1' ? true : undefined), 10_000, 'served again')
  })

  test('a new version that never becomes healthy is rolled back after healthyTimeoutSeconds', async () => {
    await put('sick', { manifest: manifest('flowforge-test/http:1'), update: { healthyTimeoutSeconds: 8 } })
    const running = await until('sick', converged, 'running')
    const started = Date.now()
    await put('sick', { manifest: manifest('flowforge-test/unhealthy:1'), update: { healthyTimeoutSeconds: 8 } })
    const rolledBack = await until('sick', (plugin) => plugin.status.rollout?.phase === 'rolled-back', 'rolled back', 45_000)
    expect(rolledBack.status.rollout?.error).toMatch(/^the new container (is unhealthy|was not healthy within 8 s)/)
    expect(rolledBack.status.containerId).toBe(running.status.containerId)
    expect(Date.now() - started).toBeGreaterThan(1_000)
    expect(await containerNames('sick')).toEqual([`forgehook-${PREFIX}sick`])
  })

  test('a start-first update under a steady stream of proxied requests fails none of them', async () => {
    const spec = (image: string) => ({ manifest: manifest(image, { healthCheck: { path: '/health' } }), update: { strategy: 'StartFirst' } })
    await put('steady', spec('flowforge-test/http:1'))
    const before = await until('steady', converged, 'running')
    const poller = new Poller(proxied('steady'))
    poller.start()
    let after: PluginAnswer
    try {
      await put('steady', spec('flowforge-test/http:2'))
      after = await until('steady', (plugin) => converged(plugin) && plugin.status.rollout?.phase === 'complete', 'updated')
      await new Promise((resolve) => setTimeout(resolve, 500))
    } finally {
      await poller.stop()
    }
    expect(poller.failures).toEqual([])
    expect(poller.answers).toContain('hello from version 1')
    expect(poller.answers.at(-1)).toBe('hello from version 2')
    expect(after.status.hostPort).not.toBe(before.status.hostPort)
    expect(await containerNames('steady')).toEqual([`forgehook-${PREFIX}steady`])
  })

  test('a file in a named volume survives an image change, a rollback, an uninstall and a reinstall; --purge removes it', async () => {
    const volumes = [{ name: 'data', mountPath: '/www/data' }]
    const spec = (image: string) => ({ manifest: manifest(image), volumes })
    await put('data', spec('flowforge-test/http:1'))
    let plugin = await until('data', converged, 'running')
    await docker('exec', plugin.status.containerId!, 'sh', '-c', 'echo precious > /www/data/file.txt')
    const read = async () => (await (await fetch(proxied('data', '/data/file.txt'))).text()).trim()
    expect(await read()).toBe('precious')

    await put('data', spec('flowforge-test/http:2'))
    plugin = await until('data', (row) => converged(row) && row.metadata.generation === 2, 'updated')
    expect(await read()).toBe('precious')

    await put('data', spec('flowforge-test/crash:1'))
    await until('data', (row) => row.status.rollout?.phase === 'rolled-back', 'rolled back')
    await eventually(async () => ((await read()) === 'precious' ? true : undefined), 10_000, 'the file after the rollback')

    await fetch(`${api}/api/v1/plugins/${PREFIX}data`, { method: 'DELETE' })
    await eventually(async () => ((await get('data')) ? undefined : true), 30_000, 'uninstalled')
    expect(await docker('volume', 'ls', '-q', '--filter', `name=^forgehook-${PREFIX}data-data$`)).toBe(`forgehook-${PREFIX}data-data`)

    await put('data', spec('flowforge-test/http:1'))
    await until('data', converged, 'reinstalled')
    expect(await read()).toBe('precious')

    await fetch(`${api}/api/v1/plugins/${PREFIX}data?purge=true`, { method: 'DELETE' })
    await eventually(async () => ((await get('data')) ? undefined : true), 30_000, 'uninstalled with purge')
    expect(await docker('volume', 'ls', '-q', '--filter', `name=^forgehook-${PREFIX}data-data$`)).toBe('')
  })

  test('the anonymous volume an image declares is carried over by an update, not deleted', async () => {
    await put('anon', { manifest: manifest('flowforge-test/http-volume:1') })
    const before = await until('anon', converged, 'running')
    await docker('exec', before.status.containerId!, 'sh', '-c', 'echo kept > /www/data/file.txt')
    const volume = await docker('inspect', '-f', '{{range .Mounts}}{{.Name}}{{end}}', before.status.containerId!)
    await put('anon', { manifest: manifest('flowforge-test/http-volume:2') })
    const after = await until('anon', (plugin) => converged(plugin) && plugin.metadata.generation === 2, 'updated')
    expect(after.status.containerId).not.toBe(before.status.containerId)
    expect(await docker('inspect', '-f', '{{range .Mounts}}{{.Name}}{{end}}', after.status.containerId!)).toBe(volume)
    expect((await (await fetch(proxied('anon', '/data/file.txt'))).text()).trim()).toBe('kept')
    await fetch(`${api}/api/v1/plugins/${PREFIX}anon?purge=true`, { method: 'DELETE' })
    await eventually(async () => ((await get('anon')) ? undefined : true), 30_000, 'uninstalled')
    expect(await docker('volume', 'ls', '-q', '--filter', `name=^${volume}$`)).toBe('')
  })
})
