// Pulls from a real registry (Debian's docker-registry, distribution 2.x) on the real engine,
// through the daemon as an operator runs it: one registry open to all, one behind htpasswd.
// The test images are pushed there first (docker push) and their local tags removed, so every
// pull the daemon makes goes to the registry. Credentials come from the config.json that
// `docker login` writes (REGISTRY_AUTH_FILE), in temporary DOCKER_CONFIG folders: the host's
// own Docker config is never touched. Everything pushed, tagged and started is removed after.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { startDaemon, type Daemon } from '../../src/main.js'
import { ImageNotFoundError, RegistryAuthError } from '../../src/runtime/container-runtime.js'
import { DockerRuntime } from '../../src/runtime/docker-runtime.js'
import { RegistryAuthFile } from '../../src/runtime/registry-auth.js'
import { silentLogger } from '../../src/logger.js'
import { eventually } from '../helpers/databases.js'
import { buildTestImages, docker, DOCKER_HOST, probeEngine, removeContainers, requireEngineInCi } from '../helpers/docker.js'
import { captureLogs } from '../helpers/log-capture.js'
import { dockerLogin, probeRegistryTools, pushImage, removeTags, requireRegistryInCi, startRegistry, type TestRegistry } from '../helpers/registry.js'

const engine = await probeEngine()
requireEngineInCi(engine)
const tools = await probeRegistryTools()
requireRegistryInCi(tools)

const PREFIX = 'reg-'
const INSTANCE = 'it-registry'
const POLL_SECONDS = 1

interface PluginAnswer {
  metadata: { generation: number }
  status: { phase: string; observedGeneration: number; containerId: string | null; error: string | null; imageDigest: string | null; rollout: { phase: string; error?: string } | null }
}

interface EventAnswer {
  type: string
  data: Record<string, unknown>
}

describe.skipIf(!engine.reachable || !tools.available)('pulls from a real registry through the daemon', () => {
  const user = { username: 'flowforge', password: `pw-${randomBytes(12).toString('hex')}` }
  const folders: string[] = []
  const pushed: string[] = []
  let open: TestRegistry
  let locked: TestRegistry
  /** The CLI's config for pushing (logged in to the locked registry). */
  let pushConfig: string
  /** The daemon's REGISTRY_AUTH_FILE folder: empty at first, `docker login` during a test. */
  let daemonConfig: string
  const digests: Record<string, string> = {}
  const logs = captureLogs('debug')
  let daemon: Daemon
  let api: string

  function folder(name: string): string {
    const dir = mkdtempSync(join(tmpdir(), `flowforge-${name}-`))
    folders.push(dir)
    return dir
  }

  async function push(source: string, target: string): Promise<string> {
    pushed.push(target)
    return pushImage(source, target, pushConfig)
  }

  beforeAll(async () => {
    await buildTestImages()
    await removeContainers(`forgehook-${PREFIX}`)
    ;[open, locked] = await Promise.all([startRegistry(), startRegistry({ user })])
    pushConfig = folder('push-config')
    daemonConfig = folder('daemon-config')
    await dockerLogin(pushConfig, locked.host, user)
    digests.open = await push('flowforge-test/http:1', `${open.host}/flowforge-test/http:1`)
    digests.always1 = await push('flowforge-test/http:1', `${open.host}/flowforge-test/http:always`)
    digests.locked = await push('flowforge-test/http:1', `${locked.host}/flowforge-test/http:1`)
    // Gone from the engine: what the daemon runs, it pulled from the registry.
    await removeTags(pushed)
    const config = loadConfig({
      PORT: '0',
      SPECS_DIR: '/nonexistent-reg-specs',
      MANAGER_INSTANCE: INSTANCE,
      HOST_PORT_RANGE: '4900-4949',
      STOP_TIMEOUT: '2',
      HEALTH_INTERVAL: '1',
      RECONCILE_RETRY_MAX: '2',
      IMAGE_POLL_INTERVAL: String(POLL_SECONDS),
      REGISTRY_AUTH_FILE: join(daemonConfig, 'config.json'),
    })
    daemon = await startDaemon({ ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }, logs.logger)
    await daemon.ready
    api = `http://${daemon.apiAddress.host}:${daemon.apiAddress.port}`
  }, 180_000)

  afterAll(async () => {
    await daemon?.stop()
    await removeContainers(`forgehook-${PREFIX}`)
    await removeTags(pushed)
    await Promise.all([open?.stop(), locked?.stop()])
    for (const dir of folders) rmSync(dir, { recursive: true, force: true })
  }, 60_000)

  function manifest(image: string, imagePullPolicy = 'IfNotPresent'): Record<string, unknown> {
    // The health path lets a rollout finish as soon as the new container answers (no 5 s stable window).
    return { name: 'Registry test', version: '1.0.0', image, imagePullPolicy, port: 8080, healthCheck: { path: '/health', intervalSeconds: 1, timeoutSeconds: 1 } }
  }

  async function put(name: string, image: string, imagePullPolicy?: string): Promise<void> {
    const document = { apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name: `${PREFIX}${name}` }, spec: { manifest: manifest(image, imagePullPolicy) } }
    const response = await fetch(`${api}/api/v1/plugins/${PREFIX}${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(document) })
    expect([200, 201]).toContain(response.status)
  }

  async function get(name: string): Promise<PluginAnswer> {
    return (await (await fetch(`${api}/api/v1/plugins/${PREFIX}${name}`)).json()) as PluginAnswer
  }

  async function events(name: string): Promise<EventAnswer[]> {
    const page = (await (await fetch(`${api}/api/v1/plugins/${PREFIX}${name}/events?limit=1000`)).json()) as { items: EventAnswer[] }
    return page.items.reverse()
  }

  function until(name: string, check: (plugin: PluginAnswer) => boolean, what: string, timeoutMs = 30_000): Promise<PluginAnswer> {
    return eventually(async () => {
      const plugin = await get(name)
      return check(plugin) ? plugin : undefined
    }, timeoutMs, `${PREFIX}${name}: ${what}`)
  }

  const converged = (plugin: PluginAnswer) => plugin.status.observedGeneration === plugin.metadata.generation && plugin.status.phase === 'running'

  async function answer(name: string): Promise<string> {
    return eventually(async () => {
      const response = await fetch(`${api}/plugins/${PREFIX}${name}/index.html`, { signal: AbortSignal.timeout(3_000) }).catch(() => undefined)
      return response?.status === 200 ? (await response.text()).trim() : undefined
    }, 15_000, `${PREFIX}${name} answers through the proxy`)
  }

  test('an image of an open registry is pulled from it and runs, its digest in the status', async () => {
    await put('open', `${open.host}/flowforge-test/http:1`)
    const running = await until('open', converged, 'running')
    expect(running.status).toMatchObject({ error: null, imageDigest: digests.open })
    expect(await answer('open')).toBe('hello from version 1')
    expect(open.manifestRequests()).toContainEqual(expect.stringMatching(/^(HEAD|GET) \/v2\/flowforge-test\/http\/manifests\/1 200$/))
  })

  test('a tag the registry does not have reads "image not found: REF"', async () => {
    const reference = `${open.host}/flowforge-test/http:nope`
    await put('missing', reference)
    const failed = await until('missing', (plugin) => plugin.status.phase === 'error', 'error recorded')
    expect(failed.status.error).toMatch(new RegExp(`^image not found: ${reference.replace(/[.:/]/g, '\\$&')} \\(.*manifest unknown`))
  })

  test('a private image without credentials, then with wrong ones, reads "registry authentication failed for HOST"; after docker login the next retry converges, without a restart', async () => {
    const reference = `${locked.host}/flowforge-test/http:1`
    const authFile = join(daemonConfig, 'config.json')
    await put('private', reference)
    const refused = await until('private', (plugin) => plugin.status.phase === 'error', 'refused without credentials')
    expect(refused.status.error).toMatch(new RegExp(`^registry authentication failed for ${locked.host.replace(/[.:]/g, '\\$&')} \\(no credentials for`))
    expect(refused.status.error).not.toContain('image not found')

    writeFileSync(authFile, JSON.stringify({ auths: { [locked.host]: { auth: Buffer.from(`${user.username}:wrong-password`).toString('base64') } } }))
    const wrong = await until('private', (plugin) => plugin.status.error?.includes('refused the credentials') === true, 'refused with wrong credentials')
    expect(wrong.status.error).toMatch(/^registry authentication failed for \S+ \(the registry refused the credentials: .*unauthorized/)
    expect(wrong.status.error).not.toContain('wrong-password')

    // What an operator does: docker login, with the daemon running.
    await dockerLogin(daemonConfig, locked.host, user)
    const running = await until('private', converged, 'running after docker login')
    expect(running.status).toMatchObject({ error: null, imageDigest: digests.locked })
    expect(await answer('private')).toBe('hello from version 1')
    const types = (await events('private')).map((event) => event.type)
    expect(types.filter((type) => type === 'plugin:error').length).toBeGreaterThanOrEqual(2)
    expect(types).toContain('plugin:started')
  })

  test('the runtime pulls with the credentials and says the digest; without them it throws RegistryAuthError, for a missing tag ImageNotFoundError', async () => {
    const runtime = new DockerRuntime({ dockerHost: DOCKER_HOST, logger: silentLogger(), registryAuth: new RegistryAuthFile({ path: join(pushConfig, 'config.json'), logger: silentLogger() }) })
    await runtime.connect()
    const reference = `${locked.host}/flowforge-test/http:1`
    const ensured = await runtime.ensureImage(reference, 'Always')
    expect(ensured).toEqual({ imageId: await docker('image', 'inspect', '-f', '{{.Id}}', 'flowforge-test/http:1'), digest: digests.locked, pulled: true })
    const missing = runtime.ensureImage(`${locked.host}/flowforge-test/http:nope`, 'Always')
    await expect(missing).rejects.toBeInstanceOf(ImageNotFoundError)
    await expect(missing).rejects.toThrow(`image not found: ${locked.host}/flowforge-test/http:nope (`)

    const anonymous = new DockerRuntime({ dockerHost: DOCKER_HOST, logger: silentLogger() })
    await anonymous.connect()
    const refusing = anonymous.ensureImage(reference, 'Always')
    await expect(refusing).rejects.toBeInstanceOf(RegistryAuthError)
    await expect(refusing).rejects.toThrow(`registry authentication failed for ${locked.host} (`)
  })

  test('Always: an unchanged digest recreates nothing; a new push under the tag is rolled out once, with the new digest in the status and the event', async () => {
    const reference = `${open.host}/flowforge-test/http:always`
    await put('always', reference, 'Always')
    const first = await until('always', (plugin) => converged(plugin) && plugin.status.imageDigest === digests.always1, 'running the first push')
    expect(await answer('always')).toBe('hello from version 1')

    // Polled once per IMAGE_POLL_INTERVAL at most, and the same digest is no change.
    const manifestPath = '/v2/flowforge-test/http/manifests/always'
    const pollsBefore = open.manifestRequests().filter((request) => request.includes(manifestPath)).length
    const quietStarted = Date.now()
    await delay(3_500)
    const polls = open.manifestRequests().filter((request) => request.includes(manifestPath)).length - pollsBefore
    expect(polls).toBeGreaterThanOrEqual(2)
    // A pull makes one or two manifest requests (HEAD, then GET when the image is new to the engine).
    expect(polls).toBeLessThanOrEqual(2 * (Math.floor((Date.now() - quietStarted) / (POLL_SECONDS * 1000)) + 1))
    expect((await get('always')).status.containerId).toBe(first.status.containerId)
    expect((await events('always')).filter((event) => event.type === 'plugin:updated')).toEqual([])

    digests.always2 = await push('flowforge-test/http:2', reference)
    await removeTags([reference])
    const updated = await until('always', (plugin) => plugin.status.imageDigest === digests.always2 && plugin.status.rollout?.phase === 'complete', 'the new push rolled out')
    expect(updated.status.containerId).not.toBe(first.status.containerId)
    expect(updated.status).toMatchObject({ phase: 'running', error: null })
    expect(await answer('always')).toBe('hello from version 2')
    expect(await docker('inspect', '-f', '{{.Image}}', updated.status.containerId!)).toBe(await docker('image', 'inspect', '-f', '{{.Id}}', 'flowforge-test/http:2'))

    // Once: the next polls find the same digest.
    await delay(2_500)
    expect((await get('always')).status.containerId).toBe(updated.status.containerId)
    const updates = (await events('always')).filter((event) => event.type === 'plugin:updated')
    expect(updates).toHaveLength(1)
    expect(updates[0]?.data).toMatchObject({ changedFields: ['imageId'], imageDigest: digests.always2, image: reference, previousContainerId: first.status.containerId })
    expect((await docker('ps', '-a', '--filter', `name=^/forgehook-${PREFIX}always`, '--format', '{{.Names}}')).split('\n')).toEqual([`forgehook-${PREFIX}always`])
  })

  test('the password is nowhere: not in the log, the API, the audit trail, the container labels or the errors', async () => {
    const secrets = [user.password, Buffer.from(`${user.username}:${user.password}`).toString('base64')]
    const names = ['open', 'missing', 'private', 'always']
    const places: Record<string, string> = {
      log: logs.lines.map((line) => JSON.stringify(line)).join('\n'),
      plugins: await (await fetch(`${api}/api/v1/plugins`)).text(),
      events: await (await fetch(`${api}/api/v1/events?limit=1000`)).text(),
      labels: await docker('inspect', ...(await docker('ps', '-aq', '--filter', `name=^/forgehook-${PREFIX}`)).split('\n').filter(Boolean)),
    }
    for (const name of names) places[`events of ${name}`] = JSON.stringify(await events(name))
    for (const [place, text] of Object.entries(places)) for (const secret of secrets) expect(text.includes(secret), `${place} holds the password`).toBe(false)
    // The log does say where credentials came from.
    expect(logs.messages()).toContainEqual(expect.stringContaining(`credentials for ${locked.host} from ${join(daemonConfig, 'config.json')}`))
  })
})

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
