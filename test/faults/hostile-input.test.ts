// Fault injection, cases 11–14 (issue #7) and 15–19 (the security issue): hostile input against the daemon as a real process
// (`forgectl serve`), on a real Postgres server and the real Docker engine. Each case looks
// afterwards at what a user would see: HTTP answers, the plugins and plugin_events rows, the
// daemon's own output and the containers of this installation.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { networkInterfaces, tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import { createServerDatabase, eventually, inCi, postgresUrl } from '../helpers/databases.js'
import { buildTestImages, docker, probeEngine, requireEngineInCi } from '../helpers/docker.js'
import { forgectlCommand, root } from '../helpers/forgectl.js'
import { killAllManagers, spawnManager, waitForLog, type ManagerProcess } from '../helpers/manager-process.js'

const execFileAsync = promisify(execFile)

const engine = await probeEngine()
requireEngineInCi(engine)
test.runIf(inCi)('a Postgres server is configured in CI', () => {
  expect(postgresUrl, 'TEST_DATABASE_URL must be set when CI=true').toBeTruthy()
})

const INSTANCE = 'faults-input'
const TOKEN = randomBytes(24).toString('hex')
const IMAGE = 'flowforge-test/http:1'
const TEN_MB = 10 * 1024 * 1024
/** A plugin that runs through the whole file and that no hostile input may touch. */
const KEEP = 'hostile-keep'
/** API_MAX_STREAMS of the manager: the live streams it serves at once. */
const MAX_STREAMS = 6

interface PluginRow {
  forgehook_id: string
  status: string
  container_id: string | null
  environment: Record<string, string>
  generation: string
  observed_generation: string
  source: string
  desired_state: string
  deletion_requested_at: Date | null
}

describe.skipIf(!engine.reachable || !postgresUrl)('hostile input against the daemon process', () => {
  let database: { connectionString: string; drop: () => Promise<void> }
  let client: pg.Client
  let specsDir: string
  let outsideDir: string
  let manager: ManagerProcess
  let base: string

  const managerEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
    DATABASE_URL: database.connectionString,
    PORT: '0',
    SPECS_DIR: specsDir,
    SPECS_RESCAN_INTERVAL: '2s',
    MANAGER_INSTANCE: INSTANCE,
    HOST_PORT_RANGE: '5450-5499',
    STOP_TIMEOUT: '1',
    // No periodic status writes: If-Match in case 11 compares against a quiet row.
    HEALTH_INTERVAL: '1h',
    LOG_LEVEL: 'debug',
    API_MAX_STREAMS: String(MAX_STREAMS),
    ...extra,
  })

  beforeAll(async () => {
    await buildTestImages()
    await removeInstanceContainers()
    database = await createServerDatabase()
    client = new pg.Client({ connectionString: database.connectionString })
    await client.connect()
    specsDir = await mkdtemp(path.join(tmpdir(), 'ff-hostile-specs-'))
    outsideDir = await mkdtemp(path.join(tmpdir(), 'ff-hostile-outside-'))
    manager = spawnManager(managerEnv({ FORGE_API_TOKEN: TOKEN }))
    base = loopback(await manager.apiUrl())
    await waitForLog(manager, 'controller running')
    expect((await put(KEEP, pluginDocument(KEEP))).status).toBe(201)
    await converged(KEEP)
  }, 120_000)
  afterAll(async () => {
    await killAllManagers()
    await client?.end()
    await removeInstanceContainers()
    await database?.drop()
    for (const dir of [specsDir, outsideDir]) if (dir) await rm(dir, { recursive: true, force: true })
  })

  /** fetch against the current manager, with the token unless `token` says otherwise. */
  function call(route: string, init: RequestInit & { token?: string | null } = {}): Promise<Response> {
    const { token = TOKEN, ...rest } = init
    const headers = new Headers(rest.headers)
    if (token !== null && !headers.has('authorization')) headers.set('authorization', `Bearer ${token}`)
    return fetch(`${base}${route}`, { ...rest, headers })
  }

  /** `document` as an object, or as JSON text already. */
  function put(name: string, document: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const body = typeof document === 'string' ? document : JSON.stringify(document)
    return call(`/api/v1/plugins/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...headers }, body })
  }

  async function row(name: string): Promise<PluginRow | undefined> {
    const result = await client.query<PluginRow>('SELECT * FROM plugins WHERE forgehook_id = $1', [name])
    return result.rows[0]
  }

  /** Waits until the plugin runs its current spec; `generation` waits for that spec too. */
  async function converged(name: string, generation?: number): Promise<PluginRow> {
    return eventually(
      async () => {
        const current = await row(name)
        const done = current?.status === 'running' && current.observed_generation === current.generation
        return done && (generation === undefined || Number(current.generation) === generation) ? current : undefined
      },
      30_000,
      `${name} running its spec`,
    )
  }

  async function gone(name: string): Promise<void> {
    await eventually(async () => ((await row(name)) === undefined ? true : undefined), 60_000, `${name} uninstalled`)
  }

  /** The spec half of every row: a hostile input must change none of it. */
  async function specSnapshot(): Promise<unknown[]> {
    const result = await client.query('SELECT forgehook_id, generation, source, desired_state, deletion_requested_at FROM plugins ORDER BY forgehook_id')
    return result.rows
  }

  async function keptContainer(): Promise<{ containerId: string; startedAt: string }> {
    const containerId = (await row(KEEP))!.container_id!
    return { containerId, startedAt: await docker('inspect', '-f', '{{.State.StartedAt}}', containerId) }
  }

  async function maxEventId(): Promise<number> {
    const result = await client.query<{ max: string | null }>('SELECT max(id)::text AS max FROM plugin_events')
    return Number(result.rows[0]!.max ?? 0)
  }

  test('two concurrent PUTs with the same If-Match: one 200, one 412, one spec change and one plugin:updated row', async () => {
    const name = 'hostile-race'
    expect((await put(name, pluginDocument(name, { environment: { VERSION: 'start' } }))).status).toBe(201)
    const before = await converged(name)
    const etag = (await call(`/api/v1/plugins/${name}`)).headers.get('etag')!
    const eventsBefore = await maxEventId()

    const answers = await Promise.all(
      ['a', 'b'].map((version) => put(name, pluginDocument(name, { environment: { VERSION: version } }), { 'if-match': etag })),
    )

    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 412])
    const winner = answers[0]!.status === 200 ? 'a' : 'b'
    const loser = answers.find((answer) => answer.status === 412)!
    expect(((await loser.json()) as { error: { code: string } }).error.code).toBe('precondition_failed')
    const after = await converged(name, Number(before.generation) + 1)
    expect(after.environment.VERSION).toBe(winner)
    expect(await docker('inspect', '-f', '{{json .Config.Env}}', after.container_id!)).toContain(`"VERSION=${winner}"`)
    const events = await client.query<{ event_type: string }>('SELECT event_type FROM plugin_events WHERE forgehook_id = $1 AND id > $2 ORDER BY id', [
      name,
      eventsBefore,
    ])
    const types = events.rows.map((event) => event.event_type)
    expect(types.filter((type) => type === 'plugin:updated'), `new events: ${types.join(', ')}`).toHaveLength(1)
  })

  test('bad specs through the API and the folder: 4xx or file errors naming the problem, no plugins row written, the running plugin untouched, the API answering within 1 s', async () => {
    const specsBefore = await specSnapshot()
    const keptBefore = await keptContainer()
    const containersBefore = await instanceContainers()
    const eventsBefore = await maxEventId()

    // The API: every answer a 4xx in the one error shape, naming the field at fault.
    const cases: { what: string; send: () => Promise<Response>; status: number; names: RegExp }[] = [
      { what: 'a bad image reference', send: () => put('hostile-a', pluginDocument('hostile-a', {}, { image: 'Bad Image::1' })), status: 422, names: /spec\.manifest\.image/ },
      { what: 'negative memory', send: () => put('hostile-a', pluginDocument('hostile-a', {}, { resources: { memoryMb: -256 } })), status: 422, names: /spec\.manifest\.resources\.memoryMb/ },
      { what: 'unknown fields', send: () => put('hostile-a', { ...pluginDocument('hostile-a', { replicas: 3 }), extra: true }), status: 422, names: /spec\.replicas.*extra|extra.*spec\.replicas/ },
      { what: 'wrong types', send: () => put('hostile-a', pluginDocument('hostile-a', { state: true }, { port: '8080' })), status: 422, names: /spec\.state.*spec\.manifest\.port/ },
      { what: 'privileged mode', send: () => put('hostile-a', pluginDocument('hostile-a', {}, { privileged: true })), status: 422, names: /spec\.manifest\.privileged/ },
      { what: 'a host mount', send: () => put('hostile-a', pluginDocument('hostile-a', {}, { volumes: ['/:/host'], binds: ['/var/run/docker.sock:/docker.sock'] })), status: 422, names: /spec\.manifest\.volumes.*spec\.manifest\.binds/ },
      { what: 'host network through the guide\'s install', send: () => postJson('/api/v1/plugins/install', { manifest: { id: 'hostile-a', image: IMAGE, port: 8080, hostNetwork: true } }), status: 422, names: /manifest\.hostNetwork/ },
      { what: 'a name with ../ in the URL', send: () => put('..%2F..%2Fetc%2Fpasswd', pluginDocument('../../etc/passwd')), status: 422, names: /metadata\.name/ },
      { what: 'a name with ../ in the body', send: () => postJson('/api/v1/plugins', pluginDocument('../hostile-a')), status: 422, names: /metadata\.name/ },
      { what: 'JSON nested 5,000 levels deep', send: () => put('hostile-a', nestedJson(pluginDocument('hostile-a', { config: { deep: DEEP } }), 5_000)), status: 400, names: /too_deep/ },
      { what: 'a merge patch nested 100,000 levels deep', send: () => patch(KEEP, nestedJson({ spec: { config: { deep: DEEP } } }, 100_000)), status: 400, names: /too_deep/ },
      { what: 'a 10 MB body', send: () => put('hostile-a', { ...pluginDocument('hostile-a'), padding: 'x'.repeat(TEN_MB) }), status: 413, names: /payload_too_large/ },
      { what: 'a 10 MB body without Content-Length', send: () => putStreamed('hostile-a', TEN_MB), status: 413, names: /payload_too_large/ },
      { what: 'a YAML body', send: () => call('/api/v1/plugins', { method: 'POST', headers: { 'content-type': 'application/yaml' }, body: billionLaughs('hostile-a') }), status: 415, names: /Content-Type/ },
      { what: 'privileged mode patched onto the running plugin', send: () => patch(KEEP, { spec: { manifest: { privileged: true } } }), status: 422, names: /spec\.manifest\.privileged/ },
      { what: 'negative memory over the running plugin', send: () => put(KEEP, pluginDocument(KEEP, {}, { resources: { memoryMb: -1 } })), status: 422, names: /spec\.manifest\.resources\.memoryMb/ },
    ]
    for (const { what, send, status, names } of cases) {
      const answer = await send()
      const text = await answer.text()
      expect(answer.status, `${what}: ${text}`).toBe(status)
      expect(text, what).toMatch(names)
      expect(JSON.parse(text), what).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } })
    }

    // The folder: every file reported by GET /api/v1/specs with what is wrong with it.
    const files: Record<string, { text: string; status: string; names: RegExp }> = {
      'bad-image.yaml': { text: yamlSpec('hostile-f1', { image: '"Bad Image::1"' }), status: 'invalid', names: /spec\.manifest\.image/ },
      'negative-memory.yaml': { text: yamlSpec('hostile-f2', { resources: '{ memoryMb: -256 }' }), status: 'invalid', names: /spec\.manifest\.resources\.memoryMb/ },
      'unknown-fields.yaml': { text: `${yamlSpec('hostile-f3')}  replicas: 3\n`, status: 'invalid', names: /spec\.replicas/ },
      'wrong-types.yaml': { text: yamlSpec('hostile-f4', { port: '"eighty"' }), status: 'invalid', names: /spec\.manifest\.port/ },
      'privileged.yaml': { text: yamlSpec('hostile-f5', { privileged: 'true' }), status: 'invalid', names: /spec\.manifest\.privileged/ },
      'host-mount.yaml': { text: yamlSpec('hostile-f6', { volumes: '["/:/host"]', hostPid: 'true' }), status: 'invalid', names: /spec\.manifest\.volumes.*spec\.manifest\.hostPid/ },
      'traversal-name.yaml': { text: yamlSpec('../../etc/passwd'), status: 'invalid', names: /metadata\.name/ },
      'billion-laughs.yaml': { text: billionLaughs('hostile-f7'), status: 'invalid', names: /alias/ },
      'huge.yaml': { text: `${yamlSpec('hostile-f8')}# ${'x'.repeat(TEN_MB)}\n`, status: 'refused', names: /1 MiB/ },
      'takeover.yaml': { text: yamlSpec(KEEP, { image: 'flowforge-test/http:2' }), status: 'conflict', names: new RegExp(KEEP) },
      'escape.yaml': { text: '', status: 'refused', names: /outside the spec folder/ },
    }
    // A symlink out of the folder to a file that would be a valid spec.
    await writeFile(path.join(outsideDir, 'outside.yaml'), yamlSpec('hostile-f9'))
    await symlink(path.join(outsideDir, 'outside.yaml'), path.join(specsDir, 'escape.yaml'))
    for (const [file, { text }] of Object.entries(files)) if (text !== '') await writeFile(path.join(specsDir, file), text)

    const reports = await eventually(
      async () => {
        const answer = (await (await call('/api/v1/specs')).json()) as { items: { path: string; status: string; errors: unknown[] }[] }
        return Object.keys(files).every((file) => answer.items.some((report) => report.path === file)) ? answer.items : undefined
      },
      30_000,
      'GET /api/v1/specs to report every hostile file',
    )
    for (const [file, { status, names }] of Object.entries(files)) {
      const report = reports.find((candidate) => candidate.path === file)!
      expect(report.status, `${file}: ${JSON.stringify(report)}`).toBe(status)
      expect(JSON.stringify(report.errors), file).toMatch(names)
    }
    await waitForLog(manager, 'spec file billion-laughs.yaml is invalid')

    expect(await specSnapshot()).toEqual(specsBefore)
    expect(await keptContainer()).toEqual(keptBefore)
    expect(await instanceContainers()).toEqual(containersBefore)
    expect((await row(KEEP))!.status).toBe('running')
    const keptEvents = await client.query<{ event_type: string }>('SELECT event_type FROM plugin_events WHERE forgehook_id = $1 AND id > $2', [KEEP, eventsBefore])
    // Its audit trail may note the refused takeover (spec:conflict), but no lifecycle change.
    expect(keptEvents.rows.map((event) => event.event_type).filter((type) => type.startsWith('plugin:'))).toEqual([])
    const started = performance.now()
    const answer = await call(`/api/v1/plugins/${KEEP}`)
    expect(answer.status).toBe(200)
    await answer.json()
    expect(performance.now() - started).toBeLessThan(1_000)
  })

  test('a secret environment value never shows in API answers, live events, the daemon\'s debug log or plugin_events; the container gets it', async () => {
    const name = 'hostile-secret'
    const secret = `s3cr3t-${randomBytes(8).toString('hex')}`
    const rotated = `s3cr3t-${randomBytes(8).toString('hex')}`
    const live = await openLiveStreams()
    const answers: string[] = []
    const answered = async (request: Promise<Response>): Promise<number> => {
      const answer = await request
      answers.push(await answer.text())
      return answer.status
    }

    expect(await answered(put(name, pluginDocument(name, { environment: { DB_PASSWORD: secret, LICENSE: secret, GREETING: 'hello' } }, { secrets: ['LICENSE'] })))).toBe(201)
    const first = await converged(name)
    // A change beside the secret, then the secret itself: both recreate the container.
    expect(await answered(patch(name, { spec: { environment: { GREETING: 'hi' } } }))).toBe(200)
    await converged(name, Number(first.generation) + 1)
    expect(await answered(patch(name, { spec: { environment: { DB_PASSWORD: rotated } } }))).toBe(200)
    const running = await converged(name, Number(first.generation) + 2)
    // The folder: a file declaring the secret, and a broken file with the secret on its bad line.
    await writeFile(path.join(specsDir, 'secret.yaml'), `${yamlSpec('hostile-secret-file')}  environment:\n    API_TOKEN: ${secret}\n`)
    await writeFile(path.join(specsDir, 'secret-broken.yaml'), `${yamlSpec('hostile-secret-broken')}  environment:\n    DB_PASSWORD: ${secret}: oops\n`)
    const fromFile = await converged('hostile-secret-file')
    await eventually(
      async () => ((await (await call('/api/v1/specs')).text()).includes('"path":"secret-broken.yaml","status":"invalid"') ? true : undefined),
      30_000,
      'secret-broken.yaml reported invalid',
    )

    for (const route of [
      `/api/v1/plugins/${name}`,
      '/api/v1/plugins',
      `/api/v1/plugins/${name}/events?limit=1000`,
      '/api/v1/plugins/hostile-secret-file',
      '/api/v1/plugins/hostile-secret-broken/events',
      '/api/v1/events?limit=1000',
      '/api/v1/specs',
      `/api/v1/plugins/${name}/logs?tail=1000`,
      '/metrics',
    ]) {
      const answer = await call(route)
      expect(answer.status, route).toBe(200)
      answers.push(await answer.text())
    }
    const streamed = await live.close()
    expect(streamed, 'the live streams carried the plugin\'s events').toMatch(/hostile-secret.*plugin:updated/s)
    const events = await client.query<{ forgehook_id: string; data: string }>('SELECT forgehook_id, data::text AS data FROM plugin_events')
    expect(events.rows.filter((event) => event.forgehook_id === name).length).toBeGreaterThan(0)

    const leaked = (where: string, text: string) => expect([secret, rotated].filter((value) => text.includes(value)), where).toEqual([])
    leaked('API answers', answers.join('\n'))
    leaked('SSE and WebSocket events', streamed)
    leaked('the daemon\'s output', manager.output())
    leaked('plugin_events.data', events.rows.map((event) => event.data).join('\n'))
    expect(manager.output()).toContain('"level":20') // debug lines were written
    const single = (await (await call(`/api/v1/plugins/${name}`)).json()) as { spec: { environment: Record<string, string> } }
    expect(single.spec.environment).toEqual({ DB_PASSWORD: '***', LICENSE: '***', GREETING: 'hi' })
    expect(await containerEnvironment(running.container_id!)).toEqual(expect.arrayContaining([`DB_PASSWORD=${rotated}`, `LICENSE=${secret}`]))
    expect(await containerEnvironment(fromFile.container_id!)).toContain(`API_TOKEN=${secret}`)
  })

  test('a web page cannot drive the API even with the token at hand: cross-site forms and fetches, a foreign-origin WebSocket and a DNS-rebinding Host are refused; nothing changes', async () => {
    const specsBefore = await specSnapshot()
    const keptBefore = await keptContainer()
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    const attacks: { what: string; route: string; headers: Record<string, string>; body?: string; code: string }[] = [
      { what: 'a cross-site form', route: `/api/v1/plugins/${KEEP}/stop`, headers: { ...form, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' }, body: 'x=1', code: 'cross_origin' },
      { what: 'a cross-site fetch without Origin', route: `/api/v1/plugins/${KEEP}/stop`, headers: { 'sec-fetch-site': 'cross-site' }, code: 'cross_origin' },
      { what: 'a sandboxed plugin page (Origin: null)', route: '/api/v1/plugins/install', headers: { origin: 'null', 'content-type': 'application/json' }, body: JSON.stringify({ manifest: { id: 'hostile-page', image: IMAGE, port: 8080 } }), code: 'cross_origin' },
      { what: 'another port of this host', route: `/api/v1/plugins/${KEEP}`, headers: { origin: 'http://127.0.0.1:4100' }, code: 'cross_origin' },
    ]
    for (const { what, route, headers, body, code } of attacks) {
      const answer = await call(route, { method: route.endsWith(KEEP) ? 'DELETE' : 'POST', headers, ...(body !== undefined ? { body } : {}) })
      expect(answer.status, what).toBe(403)
      expect(((await answer.json()) as { error: { code: string } }).error.code, what).toBe(code)
    }
    // DNS rebinding: the page's own name resolves to 127.0.0.1; its Host (and Origin) is that name.
    const port = Number(new URL(base).port)
    const rebound = await rawRequest(port, 'POST', '/api/v1/plugins/install', { host: `rebind.evil.example:${port}`, origin: `http://rebind.evil.example:${port}`, authorization: `Bearer ${TOKEN}` }, JSON.stringify({ manifest: { id: 'hostile-rebound', image: 'attacker/root:1', port: 80 } }))
    expect(rebound.status).toBe(403)
    expect(rebound.body).toContain('host_not_allowed')
    expect((await rawRequest(port, 'GET', '/metrics', { host: 'rebind.evil.example' })).status).toBe(403)
    const auth = { authorization: `Bearer ${TOKEN}` }
    expect(await webSocketHandshakeStatus(`${base}/api/v1/ws`, { ...auth, origin: 'http://evil.example' })).toBe(403)
    expect(await webSocketHandshakeStatus(`${base}/api/v1/ws`, { ...auth, origin: base })).toBe(101)
    // Answers tell browsers not to sniff, frame or run them.
    const answer = await call('/api/v1/plugins')
    expect(answer.headers.get('x-content-type-options')).toBe('nosniff')
    expect(answer.headers.get('content-security-policy')).toContain("default-src 'none'")
    expect(answer.headers.get('referrer-policy')).toBe('no-referrer')
    await answer.text()
    const page = await call(`/plugins/${KEEP}/`)
    expect(page.headers.get('content-security-policy')).toMatch(/sandbox/)
    expect(page.headers.get('content-security-policy')).not.toMatch(/allow-same-origin/)
    await page.text()

    expect(await specSnapshot()).toEqual(specsBefore)
    expect(await keptContainer()).toEqual(keptBefore)
    expect(await row('hostile-page')).toBeUndefined()
    expect(await row('hostile-rebound')).toBeUndefined()
  })

  test('one spec file of 9,600 bad documents is one small report: the daemon stays up and small, and starts again with the file in place; 400 bad documents make 400 small audit rows', async () => {
    const rssBefore = await residentBytes(manager.pid)
    const bomb = Array.from({ length: 9_600 }, (_, index) => `metadata: { name: hostile-bomb-${index} }\nspec: 1\n`).join('---\n')
    expect(bomb.length).toBeLessThan(1024 * 1024)
    await writeFile(path.join(specsDir, 'bomb.yaml'), bomb)
    const many = Array.from({ length: 400 }, (_, index) => `${yamlSpec(`hostile-many-${index}`)}  replicas: 3\n  colour: blue\n`).join('---\n')
    await writeFile(path.join(specsDir, 'many.yaml'), many)
    try {
      const reports = await eventually(async () => {
        const items = ((await (await call('/api/v1/specs')).json()) as { items: { path: string; status: string; errors: unknown[]; moreErrors?: number }[] }).items
        const found = ['bomb.yaml', 'many.yaml'].map((file) => items.find((report) => report.path === file))
        return found.every(Boolean) ? found : undefined
      }, 60_000, 'both files reported')
      expect(reports[0]).toMatchObject({ status: 'refused', errors: [{ message: expect.stringMatching(/more than 500 YAML documents/) }] })
      expect(reports[1]).toMatchObject({ status: 'invalid', moreErrors: 800 - 50 })
      expect(reports[1]!.errors).toHaveLength(50)
      const audit = await eventually(async () => {
        const result = await client.query<{ count: string; bytes: string }>(`SELECT count(*)::text AS count, coalesce(sum(length(data::text)), 0)::text AS bytes FROM plugin_events WHERE event_type = 'spec:invalid' AND forgehook_id LIKE 'hostile-many-%'`)
        return Number(result.rows[0]!.count) === 400 ? result.rows[0]! : undefined
      }, 30_000, '400 spec:invalid rows')
      expect(Number(audit.bytes)).toBeLessThan(400 * 1_000)
      expect(Number((await client.query(`SELECT count(*) FROM plugin_events WHERE forgehook_id LIKE 'hostile-bomb-%'`)).rows[0].count)).toBe(0)
      // Was about 12 GB; the daemon's memory grows by far less than 200 MB.
      expect((await residentBytes(manager.pid)) - rssBefore).toBeLessThan(200 * 1024 * 1024)

      // It starts again with both files in place, and stays up.
      manager.kill('SIGTERM')
      expect(await manager.exited).toBe(0)
      manager = spawnManager(managerEnv({ FORGE_API_TOKEN: TOKEN }))
      base = loopback(await manager.apiUrl())
      await waitForLog(manager, 'controller running')
      await waitForLog(manager, 'spec file bomb.yaml was refused')
      expect((await call('/healthz')).status).toBe(200)
      expect(manager.child.exitCode).toBeNull()
    } finally {
      await rm(path.join(specsDir, 'bomb.yaml'), { force: true })
      await rm(path.join(specsDir, 'many.yaml'), { force: true })
    }
  })

  test('work per request is bounded: a 1 MiB WebSocket message closes that socket, streams past API_MAX_STREAMS get 503, logs past tail 1000 get 400, host ports outside HOST_PORT_RANGE get 422', async () => {
    const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/api/v1/ws`, { headers: { authorization: `Bearer ${TOKEN}` } })
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
    const closed = new Promise<number>((resolve) => socket.once('close', resolve))
    socket.send(Buffer.alloc(1024 * 1024, 0x61))
    expect(await closed).toBe(1009)

    // Streams of earlier cases are gone once the daemon has seen their clients go.
    await eventually(async () => ((await (await call('/metrics')).text()).includes('flowforge_event_stream_subscribers 0') ? true : undefined), 10_000, 'no stream open')
    const streams: AbortController[] = []
    // Held until the end: undici cancels the body of a Response that is garbage-collected,
    // which would end that stream and free its slot before the one that must be refused.
    const open: Response[] = []
    try {
      for (let opened = 0; opened < MAX_STREAMS; opened++) {
        const abort = new AbortController()
        streams.push(abort)
        const answer = await call('/api/v1/events/stream', { signal: abort.signal })
        open.push(answer)
        expect(answer.status).toBe(200)
      }
      const refused = await call('/api/v1/events/stream')
      expect(refused.status).toBe(503)
      expect(await refused.json()).toMatchObject({ error: { code: 'too_many_streams' } })
      expect(await webSocketHandshakeStatus(`${base}/api/v1/ws`, { authorization: `Bearer ${TOKEN}` })).toBe(503)
    } finally {
      for (const abort of streams) abort.abort()
      open.length = 0
    }
    await eventually(async () => {
      const answer = await call('/api/v1/events/stream')
      await answer.body?.cancel()
      return answer.status === 200 ? true : undefined
    }, 10_000, 'stream slots back once their clients went')

    expect((await call(`/api/v1/plugins/${KEEP}/logs?tail=1001`)).status).toBe(400)
    expect((await call(`/api/v1/plugins/${KEEP}/logs?tail=1000`)).status).toBe(200)
    const outside = await put('hostile-port', pluginDocument('hostile-port', { hostPort: 22 }))
    expect(outside.status).toBe(422)
    expect(await outside.text()).toMatch(/spec\.hostPort.*HOST_PORT_RANGE 5450-5499/)
    expect(await row('hostile-port')).toBeUndefined()
  })

  test('secrets in config, under other names and behind a removed secrets list never show: API answers, live streams, the debug log, plugin_events, forgectl get -o yaml and describe, /metrics; the container gets them', async () => {
    const name = 'hostile-config-secret'
    const secret = `c0nf1g-${randomBytes(8).toString('hex')}`
    const license = `l1c-${randomBytes(8).toString('hex')}`
    const live = await openLiveStreams()
    const answers: string[] = []
    const keep = async (request: Promise<Response>): Promise<number> => {
      const answer = await request
      answers.push(await answer.text())
      return answer.status
    }
    const spec = {
      environment: { DB_PASSWORD: secret, GREETING: secret, DATABASE_URL: `postgres://app:${secret}@db/app`, LICENSE: license },
      config: { database: { host: 'db', password: secret }, credentials: { token: secret }, note: secret },
    }
    expect(await keep(put(name, pluginDocument(name, spec, { secrets: ['LICENSE'] })))).toBe(201)
    const running = await converged(name)
    // Removing the secrets list would show LICENSE's value: refused (and the GET still hides it).
    expect(await keep(patch(name, { spec: { manifest: { secrets: null } } }))).toBe(422)
    await writeFile(path.join(specsDir, 'config-secret.yaml'), `${yamlSpec('hostile-config-file')}  config:\n    db: { password: ${secret} }\n`)
    await converged('hostile-config-file')

    for (const route of [`/api/v1/plugins/${name}`, '/api/v1/plugins', `/api/v1/plugins/${name}/events?limit=1000`, '/api/v1/events?limit=1000', '/api/v1/specs', '/api/v1/plugins/hostile-config-file', '/metrics']) {
      expect(await keep(call(route)), route).toBe(200)
    }
    const cli = [await forgectl(['get', name, '-o', 'yaml']), await forgectl(['get', name, '-o', 'json']), await forgectl(['describe', name])]
    for (const result of cli) expect(result.code, result.stderr).toBe(0)
    const streamed = await live.close()
    const events = await client.query<{ data: string }>('SELECT data::text AS data FROM plugin_events')

    const leaked = (where: string, text: string) => expect([secret, license].filter((value) => text.includes(value)), where).toEqual([])
    leaked('API answers', answers.join('\n'))
    leaked('forgectl', cli.map((result) => result.stdout + result.stderr).join('\n'))
    leaked('SSE and WebSocket events', streamed)
    leaked("the daemon's debug log", manager.output())
    leaked('plugin_events.data', events.rows.map((event) => event.data).join('\n'))
    const shown = (await (await call(`/api/v1/plugins/${name}`)).json()) as { spec: { environment: Record<string, string>; config: Record<string, unknown> } }
    expect(shown.spec.environment).toEqual({ DB_PASSWORD: '***', GREETING: '***', DATABASE_URL: '***', LICENSE: '***' })
    expect(shown.spec.config).toEqual({ database: { host: 'db', password: '***' }, credentials: '***', note: '***' })
    const environment = await containerEnvironment(running.container_id!)
    expect(environment).toEqual(expect.arrayContaining([`DB_PASSWORD=${secret}`, `GREETING=${secret}`, `LICENSE=${license}`]))
    expect(environment.find((entry) => entry.startsWith('FORGEHOOK_CONFIG='))).toContain(secret)
    await rm(path.join(specsDir, 'config-secret.yaml'), { force: true })
    await gone('hostile-config-file')
  })

  test('the spec folder keeps syncing past a FIFO and a file too big to read; a symlink out of the folder is refused', async () => {
    await execFileAsync('mkfifo', [path.join(specsDir, 'pipe.yaml')])
    await writeFile(path.join(outsideDir, 'target.yaml'), yamlSpec('hostile-outside'))
    await symlink(path.join(outsideDir, 'target.yaml'), path.join(specsDir, 'link-out.yaml'))
    try {
      // A FIFO blocked the sync for good: later files were never read. Now they are.
      await writeFile(path.join(specsDir, 'after-pipe.yaml'), yamlSpec('hostile-after-pipe'))
      await converged('hostile-after-pipe')
      // And the rescans go on (every 2 s): a second file is applied too.
      await writeFile(path.join(specsDir, 'after-rescan.yaml'), yamlSpec('hostile-after-rescan'))
      await converged('hostile-after-rescan')
      const reports = ((await (await call('/api/v1/specs')).json()) as { items: { path: string; status: string; errors: { message: string }[] }[] }).items
      expect(reports.find((report) => report.path === 'link-out.yaml')).toMatchObject({ status: 'refused', errors: [{ message: expect.stringContaining('outside the spec folder') }] })
      expect(await row('hostile-outside')).toBeUndefined()
    } finally {
      for (const file of ['pipe.yaml', 'link-out.yaml', 'after-pipe.yaml', 'after-rescan.yaml']) await rm(path.join(specsDir, file), { force: true })
    }
    // Uninstalled with their files: gone before the next case takes its snapshot.
    await gone('hostile-after-pipe')
    await gone('hostile-after-rescan')
  })

  test('no token or a wrong token: 401 on /api/v1/* and nothing changes; without FORGE_API_TOKEN the API listens on 127.0.0.1 only', async () => {
    const specsBefore = await specSnapshot()
    const keptBefore = await keptContainer()
    const wrongToken = `${TOKEN.slice(0, -1)}${TOKEN.endsWith('0') ? '1' : '0'}`
    const credentials: { what: string; headers: Record<string, string>; query?: string }[] = [
      { what: 'no Authorization header', headers: {} },
      { what: 'a wrong token of the same length', headers: { authorization: `Bearer ${wrongToken}` } },
      { what: 'the token and one character more', headers: { authorization: `Bearer ${TOKEN}x` } },
      { what: 'the token as Basic credentials', headers: { authorization: `Basic ${Buffer.from(`forge:${TOKEN}`).toString('base64')}` } },
      { what: 'an empty bearer token', headers: { authorization: 'Bearer ' } },
      { what: 'the token in the query string', headers: {}, query: `?token=${TOKEN}&access_token=${TOKEN}` },
    ]
    const document = JSON.stringify(pluginDocument('hostile-intruder'))
    const requests: { method: string; route: string; body?: string; type?: string }[] = [
      { method: 'GET', route: '/api/v1/plugins' },
      { method: 'GET', route: `/api/v1/plugins/${KEEP}` },
      { method: 'PUT', route: '/api/v1/plugins/hostile-intruder', body: document },
      { method: 'POST', route: '/api/v1/plugins', body: document },
      { method: 'PATCH', route: `/api/v1/plugins/${KEEP}`, body: '{"spec":{"state":"stopped"}}', type: 'application/merge-patch+json' },
      { method: 'POST', route: `/api/v1/plugins/${KEEP}/stop` },
      { method: 'POST', route: `/api/v1/plugins/${KEEP}/restart` },
      { method: 'DELETE', route: `/api/v1/plugins/${KEEP}` },
      { method: 'GET', route: `/api/v1/plugins/${KEEP}/logs` },
      { method: 'GET', route: '/api/v1/events' },
      { method: 'GET', route: '/api/v1/events/stream' },
      { method: 'GET', route: '/api/v1/specs' },
      { method: 'GET', route: '/api/v1/openapi.json' },
      { method: 'GET', route: '/api/v1/no-such-route' },
      { method: 'GET', route: `/plugins/${KEEP}/` },
    ]
    for (const { what, headers, query = '' } of credentials) {
      for (const { method, route, body, type = 'application/json' } of requests) {
        const answer = await call(`${route}${query}`, { method, body, headers: { ...headers, 'content-type': type }, token: null })
        const text = await answer.text()
        expect(answer.status, `${method} ${route} with ${what}: ${text}`).toBe(401)
        expect(JSON.parse(text), `${method} ${route} with ${what}`).toMatchObject({ error: { code: 'unauthorized' } })
        expect(answer.headers.get('www-authenticate'), `${method} ${route}`).toMatch(/^Bearer/)
      }
    }
    expect(await webSocketHandshakeStatus(`${base}/api/v1/ws`, {})).toBe(401)
    expect(await webSocketHandshakeStatus(`${base}/api/v1/ws`, { authorization: `Bearer ${wrongToken}` })).toBe(401)
    expect(await specSnapshot()).toEqual(specsBefore)
    expect(await keptContainer()).toEqual(keptBefore)
    // The right token opens the same doors; the probes stay open without one.
    expect((await call('/api/v1/plugins')).status).toBe(200)
    expect((await call('/healthz', { token: null })).status).toBe(200)

    // With the token the API listens on every address, so another local address answers (401).
    const port = new URL(base).port
    const other = otherLocalAddress()
    expect(manager.output()).toMatch(/"api":"http:\/\/0\.0\.0\.0:\d+"/)
    if (other !== undefined) expect((await fetch(`http://${other}:${port}/api/v1/plugins`)).status).toBe(401)

    // The same daemon started again without a token: loopback only, and a wider bind is refused.
    manager.kill('SIGTERM')
    expect(await manager.exited).toBe(0)
    const refused = spawnManager(managerEnv({ API_BIND_ADDRESS: '0.0.0.0' }))
    manager = spawnManager(managerEnv())
    base = await manager.apiUrl()
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(manager.output()).toContain('FORGE_API_TOKEN is not set')
    expect((await call('/api/v1/plugins', { token: null })).status).toBe(200)
    // Without a token a web page is what is left to fear: a cross-site form and a rebinding Host are refused.
    const crossSite = await call(`/api/v1/plugins/${KEEP}/stop`, { method: 'POST', token: null, headers: { origin: 'http://evil.example', 'content-type': 'text/plain' }, body: 'x' })
    expect(crossSite.status).toBe(403)
    const apiPort = Number(new URL(base).port)
    expect((await rawRequest(apiPort, 'POST', `/api/v1/plugins/${KEEP}/stop`, { host: `rebind.evil.example:${apiPort}` })).status).toBe(403)
    expect((await row(KEEP))!.desired_state).toBe('running')
    if (other !== undefined) {
      const failure = await fetch(`http://${other}:${new URL(base).port}/healthz`).then(
        (answer) => `answered ${answer.status}`,
        (error: Error) => (error.cause as { code?: string } | undefined)?.code,
      )
      expect(failure, `connecting on ${other}`).toBe('ECONNREFUSED')
    }
    expect(await refused.exited).not.toBe(0)
    expect(refused.output()).toContain('API_BIND_ADDRESS 0.0.0.0 is not a loopback address and FORGE_API_TOKEN is not set')
  })

  /** The SSE and WebSocket event streams, read from now until close(), which returns all they carried. */
  async function openLiveStreams(): Promise<{ close(): Promise<string> }> {
    const abort = new AbortController()
    const response = await call('/api/v1/events/stream', { signal: abort.signal })
    expect(response.status).toBe(200)
    let sse = ''
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    // A read that fails before close() is reported by close(), not left unhandled.
    let readError: unknown
    const reading = (async () => {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) sse += decoder.decode(chunk.value, { stream: true })
    })().catch((error: unknown) => {
      if (!abort.signal.aborted) readError = error
    })
    const socket = new WebSocket(`${base.replace(/^http/, 'ws')}/api/v1/ws`, { headers: { authorization: `Bearer ${TOKEN}` } })
    const messages: string[] = []
    socket.on('message', (data: Buffer) => messages.push(data.toString()))
    await new Promise((resolve, reject) => {
      socket.once('open', resolve)
      socket.once('error', reject)
    })
    await eventually(() => (sse.includes(': subscribed') ? true : undefined), 5_000, 'the SSE stream to open')
    return {
      close: async () => {
        abort.abort()
        socket.close()
        await reading
        if (readError !== undefined) throw readError
        return `${sse}\n${messages.join('\n')}`
      },
    }
  }

  /** forgectl against the current manager, with the token. */
  async function forgectl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const [command, commandArgs] = forgectlCommand(...args)
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, FORGE_URL: base, FORGE_API_TOKEN: TOKEN }
    return execFileAsync(command, commandArgs, { cwd: root, env, timeout: 60_000 }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
    )
  }

  function postJson(route: string, body: unknown): Promise<Response> {
    return call(route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  }

  function patch(name: string, body: unknown): Promise<Response> {
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    return call(`/api/v1/plugins/${name}`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: text })
  }

  /** A body sent in chunks, so the server cannot refuse it by its Content-Length. */
  function putStreamed(name: string, bytes: number): Promise<Response> {
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024))
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode(`{"apiVersion":"flowforge.io/v1","padding":"`))
        if (sent >= bytes) {
          controller.enqueue(new TextEncoder().encode('"}'))
          controller.close()
          return
        }
        controller.enqueue(chunk)
        sent += chunk.length
      },
    })
    return call(`/api/v1/plugins/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body, duplex: 'half' } as RequestInit)
  }
})

function pluginDocument(name: string, spec: Record<string, unknown> = {}, manifest: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'flowforge.io/v1',
    kind: 'Plugin',
    metadata: { name },
    spec: { manifest: { name: 'Hostile input', version: '1.0.0', image: IMAGE, imagePullPolicy: 'Never', port: 8080, ...manifest }, ...spec },
  }
}

/** A spec file; `manifest` adds or replaces manifest lines (values as YAML text). */
function yamlSpec(name: string, manifest: Record<string, string> = {}): string {
  const fields = { image: IMAGE, imagePullPolicy: 'Never', port: '8080', ...manifest }
  const lines = Object.entries(fields).map(([key, value]) => `    ${key}: ${value}\n`)
  return `apiVersion: flowforge.io/v1\nkind: Plugin\nmetadata:\n  name: "${name}"\nspec:\n  manifest:\n${lines.join('')}`
}

/** Nine levels of nine aliases each: 9^9 strings once expanded, a few hundred bytes as text. */
function billionLaughs(name: string): string {
  const levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']
  const config = levels.map((level, index) => {
    const items = index === 0 ? Array(9).fill('"lol"') : Array(9).fill(`*${levels[index - 1]}`)
    return `    ${level}: &${level} [${items.join(', ')}]\n`
  })
  return `${yamlSpec(name)}  config:\n${config.join('')}`
}

const DEEP = '<deep>'

/** `value` as JSON text with DEEP replaced by `depth` arrays inside each other (too deep for JSON.stringify). */
function nestedJson(value: unknown, depth: number): string {
  return JSON.stringify(value).replace(JSON.stringify(DEEP), `${'['.repeat(depth)}${']'.repeat(depth)}`)
}

/** http://0.0.0.0:port (a wildcard bind) as an address to connect to. */
function loopback(url: string): string {
  return url.replace('//0.0.0.0:', '//127.0.0.1:')
}

/** The status code a WebSocket handshake gets (101 when it opens). */
function webSocketHandshakeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url.replace(/^http/, 'ws'), { headers })
    socket.once('unexpected-response', (request, response) => {
      resolve(response.statusCode ?? 0)
      request.destroy()
    })
    socket.once('open', () => {
      resolve(101)
      socket.close()
    })
    socket.once('error', reject)
  })
}

/** An IPv4 address of this machine other than loopback (eth0, the docker0 bridge), if it has one. */
function otherLocalAddress(): string | undefined {
  const addresses = Object.values(networkInterfaces()).flatMap((entries) => entries ?? [])
  return addresses.find((entry) => entry.family === 'IPv4' && !entry.internal)?.address
}

async function containerEnvironment(containerId: string): Promise<string[]> {
  return JSON.parse(await docker('inspect', '-f', '{{json .Config.Env}}', containerId)) as string[]
}

async function instanceContainers(): Promise<string[]> {
  return (await docker('ps', '-aq', '--no-trunc', '--filter', `label=io.flowforge.instance=${INSTANCE}`)).split('\n').filter(Boolean).sort()
}

async function removeInstanceContainers(): Promise<void> {
  const ids = await instanceContainers()
  if (ids.length > 0) await docker('rm', '-f', ...ids)
}

/** A request with a Host of our choosing (fetch sets its own). */
function rawRequest(port: number, method: string, route: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, method, path: route, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) } }, (response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => (text += chunk.toString()))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }))
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

/** VmRSS of a process, in bytes. */
async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}
