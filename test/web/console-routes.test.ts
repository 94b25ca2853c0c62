// The web console's routes with app.request() (no socket, no browser): sessions and CSRF, the
// pages and fragments, the spec check, the marketplace, and /api taking the console's cookie.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Hono } from 'hono'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { createApp } from '../../src/api/app.js'
import type { ApiDependencies } from '../../src/api/deps.js'
import { latestResourceSamples, metricBuckets } from '../../src/db/metric-queries.js'
import { Catalog } from '../../src/web/catalog.js'
import { createConsole } from '../../src/web/console.js'
import { systemClock } from '../../src/util/clock.js'
import type { PluginTask } from '../../src/db/plugin-types.js'
import { openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'
import { apiHarness } from '../api/api-harness.js'

const TOKEN = 'a-console-token-of-some-length'

interface Console {
  app: Hono
  deps: ApiDependencies
}

describe('the web console', () => {
  let database: TestDatabase
  let catalogDir: string

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
    catalogDir = await mkdtemp(path.join(tmpdir(), 'ff-catalog-'))
    await writeFile(
      path.join(catalogDir, 'greeter.yaml'),
      `manifest: { id: greeter, name: Greeter, version: 2.0.0, image: flowforge/greeter:2, port: 8080, description: Says hello }
environment:
  - { name: GREETER_KEY, secret: true }
  - { name: LOG_LEVEL, default: info }
`,
    )
    await writeFile(path.join(catalogDir, 'broken.yaml'), 'manifest: { name: no id }\n')
  })
  afterAll(async () => {
    await database?.close()
    if (catalogDir) await rm(catalogDir, { recursive: true, force: true })
  })
  beforeEach(() => database.reset())

  function consoleApp(apiToken?: string, extra: Partial<ApiDependencies> = {}): Console {
    const { deps } = apiHarness(database, { ...(apiToken ? { apiToken } : {}), ...extra })
    const webConsole = createConsole({
      api: deps,
      latestSamples: (since) => latestResourceSamples(database.handle.db, { since }),
      metricBuckets: (pluginId, since, bucketSeconds) => metricBuckets(database.handle.db, pluginId, since, bucketSeconds),
      catalog: new Catalog({ dir: catalogDir, clock: systemClock }),
      catalogDir,
      specsDir: '/srv/specs',
    })
    return { app: createApp({ ...deps, console: webConsole }), deps }
  }

  const page = (app: Hono, route: string, headers: Record<string, string> = {}) => Promise.resolve(app.request(route, { headers: { accept: 'text/html', ...headers } }))
  const cookieOf = (response: Response) => /flowforge_session=([^;]+)/.exec(response.headers.get('set-cookie') ?? '')?.[1]
  const csrfOf = (text: string) => /<meta name="csrf-token" content="([^"]+)">/.exec(text)?.[1]

  let nextPort = 4100
  async function running(name: string, extra: Record<string, unknown> = {}) {
    const plugin = await database.store.createPlugin({ forgehookId: name, source: 'api', manifest: sampleManifest(name), ...extra })
    return (await database.store.writeStatus(plugin.id, { status: 'running', healthStatus: 'healthy', hostPort: nextPort++ }))!
  }

  describe('without FORGE_API_TOKEN', () => {
    test('the dashboard lists every plugin, gives a session cookie and a strict policy', async () => {
      const { app } = consoleApp()
      await running('alpha', { labels: { team: 'payments' } })
      const failing = await database.store.createPlugin({ forgehookId: 'beta', source: 'sql', manifest: sampleManifest('beta') })
      await database.store.writeStatus(failing.id, { status: 'error', error: 'image not found: flowforge/beta:1.0.0' })
      const response = await page(app, '/')
      expect(response.status).toBe(200)
      const policy = response.headers.get('content-security-policy')!
      expect(policy).toContain("script-src 'self'")
      expect(policy).toContain("style-src 'self'")
      expect(policy).not.toContain('unsafe')
      expect(response.headers.get('x-frame-options')).toBe('DENY')
      expect(response.headers.get('set-cookie')).toMatch(/flowforge_session=.+; Max-Age=43200; Path=\/; HttpOnly; SameSite=Strict/)
      const text = await response.text()
      expect(csrfOf(text)).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(text).toMatch(/<tr data-plugin="alpha" data-phase="running">/)
      expect(text).toContain('image not found: flowforge/beta:1.0.0')
      expect(text).toMatch(/<b>1<\/b> error/)
      // No inline script or style anywhere.
      expect(text).not.toMatch(/<script(?![^>]*\bsrc=)/)
      expect(text).not.toMatch(/style=/)
    })

    test('the console\'s own reader of live events is not an open stream on /metrics', async () => {
      const { app, deps } = consoleApp()
      await page(app, '/')
      // The console's snapshot listens to the bus for as long as the daemon runs.
      expect(deps.events.subscriberCount).toBeGreaterThanOrEqual(1)
      const metrics = await (await app.request('/metrics')).text()
      expect(metrics.split('\n')).toContain('flowforge_event_stream_subscribers 0')
    })

    test('filters by phase, health, label and text, kept in the URL, 50 rows a page', async () => {
      const { app } = consoleApp()
      for (let index = 0; index < 60; index++) await running(`p-${String(index).padStart(2, '0')}`, { labels: { team: index % 2 === 0 ? 'even' : 'odd' } })
      await database.store.createPlugin({ forgehookId: 'waiting', source: 'api', manifest: sampleManifest('waiting') })
      const rows = async (query: string) => [...(await (await page(app, `/console/fragments/dashboard${query}`)).text()).matchAll(/<tr data-plugin="([^"]+)"/g)].map((match) => match[1])
      expect(await rows('')).toHaveLength(50)
      expect(await rows('?page=2')).toHaveLength(11)
      expect(await rows('?phase=installing')).toEqual(['waiting'])
      // A page past the last is the last.
      expect(await rows('?health=healthy&label=team%3Deven&page=2')).toHaveLength(30)
      expect(await rows('?label=team%3Dodd')).toHaveLength(30)
      expect(await rows('?q=P-0')).toHaveLength(10)
      const second = await (await page(app, '/?phase=running&page=1')).text()
      expect(second).toContain('href="/?phase=running&amp;page=2" rel="next"')
      expect(second).toContain('<option value="running" selected>')
    })

    test('RUNTIME=swarm: the dashboard and the plugin page say READY running/wanted, and the page lists the tasks with their nodes, errors redacted', async () => {
      const { app } = consoleApp(undefined, { runtimeName: 'swarm' })
      const plugin = await database.store.createPlugin({ forgehookId: 'spread', source: 'api', manifest: sampleManifest('spread'), replicas: 3, environment: { API_TOKEN: 'hunter2hunter2' } } as Parameters<TestDatabase['store']['createPlugin']>[0])
      await database.store.writeStatus(plugin.id, { status: 'running', replicasDesired: 3, replicasRunning: 2 })
      const base: PluginTask = {
        pluginId: plugin.id, taskId: 'task-1', slot: 1, nodeId: 'n1', nodeName: 'node-1', nodeState: 'ready', nodeAddress: '10.0.0.1', state: 'running', desiredState: 'running',
        containerId: '0123456789abcdef', error: null, message: 'started', health: 'healthy', hostPort: 4100, image: 'flowforge/test:1', createdAt: null, updatedAt: new Date(),
      }
      await database.store.tasks.replaceTasks(plugin.id, [
        base,
        { ...base, taskId: 'task-2', slot: 2, nodeId: 'n2', nodeName: 'node-2' },
        { ...base, taskId: 'task-3', slot: 3, nodeId: 'n3', nodeName: 'node-3', nodeState: 'down', state: 'failed', desiredState: 'shutdown', containerId: null, error: 'exited: token hunter2hunter2 refused', hostPort: null },
      ])
      // A row without replica counts (the docker runtime's): its one container, running.
      await database.store.writeStatus((await running('single')).id, { containerId: 'c-single' })
      const dashboard = await (await page(app, '/')).text()
      expect(dashboard).toMatch(/<tr data-plugin="spread"[^]*?<td class="ready">2\/3<\/td>/)
      expect(dashboard).toMatch(/<tr data-plugin="single"[^]*?<td class="ready">1\/1<\/td>/)
      const text = await (await page(app, '/plugin/spread')).text()
      expect(text).toMatch(/<dd id="status-ready">2\/3 /)
      expect([...text.matchAll(/<tr data-task="(task-\d)" data-node="(node-\d)" data-state="(\w+)">/g)].map((match) => match.slice(1).join(' '))).toEqual(['task-1 node-1 running', 'task-2 node-2 running', 'task-3 node-3 failed'])
      expect(text).toContain('(down)')
      expect(text).toContain('exited: token *** refused')
      expect(text).not.toContain('hunter2hunter2')
      // The status fragment the page fetches again on each event carries them too.
      const fragment = await (await page(app, '/console/fragments/plugin/spread/status')).text()
      expect(fragment).toContain('data-task="task-3"')
    })

    test('a plugin page redacts secrets as the API does, and a file-owned plugin is not editable', async () => {
      const { app } = consoleApp()
      await running('secretive', { environment: { API_TOKEN: 'hunter2-hunter2', PLAIN: 'visible' }, config: { password: 'pw-in-config' } })
      const text = await (await page(app, '/plugin/secretive')).text()
      expect(text).not.toContain('hunter2-hunter2')
      expect(text).not.toContain('pw-in-config')
      expect(text).toContain('API_TOKEN: &quot;***&quot;')
      expect(text).toContain('id="spec-editor"')
      await database.store.createPlugin({ forgehookId: 'from-file', source: 'file:team/a.yaml', manifest: sampleManifest('from-file') })
      const owned = await (await page(app, '/plugin/from-file')).text()
      expect(owned).toContain('/srv/specs/team/a.yaml')
      expect(owned).not.toContain('id="spec-editor"')
      expect((await page(app, '/plugin/nobody')).status).toBe(404)
    })

    test('the spec check places errors at their lines, keeps *** for stored secrets, and diffs', async () => {
      const { app } = consoleApp()
      await running('edited', { environment: { API_TOKEN: 'hunter2-hunter2' }, labels: { team: 'a' } })
      const cookie = `flowforge_session=${cookieOf(await page(app, '/'))}`
      const text = await (await page(app, '/plugin/edited', { cookie })).text()
      const csrf = csrfOf(text)!
      const yaml = /<textarea id="spec-editor"[^>]*>([^<]*)<\/textarea>/.exec(text)![1]!.replaceAll('&quot;', '"')
      const check = async (body: string, headers: Record<string, string> = { 'x-csrf-token': csrf }) =>
        app.request('/console/plugins/edited/spec/check', { method: 'POST', headers: { cookie, 'content-type': 'application/json', ...headers }, body: JSON.stringify({ yaml: body }) })
      const badPort = yaml.replace('port: 8080', 'port: eighty')
      const portLine = badPort.split('\n').findIndex((line) => line.includes('port: eighty')) + 1
      const first = await check(badPort)
      expect(first.status, await first.clone().text()).toBe(200)
      expect(await first.json()).toEqual({ ok: false, errors: [expect.objectContaining({ field: 'spec.manifest.port', line: portLine })] })
      const broken = (await (await check('metadata: [unclosed\n')).json()) as { errors: { line: number }[] }
      expect(broken.errors[0]!.line).toBeGreaterThanOrEqual(1)
      const renamed = (await (await check(yaml.replace('name: edited', 'name: other'))).json()) as { errors: { field: string; line: number }[] }
      expect(renamed.errors).toContainEqual(expect.objectContaining({ field: 'metadata.name' }))
      const relabelled = (await (await check(yaml.replace('team: a', 'team: b'))).json()) as { ok: true; changed: boolean; diff: string[]; document: any }
      expect(relabelled.ok).toBe(true)
      expect(relabelled.changed).toBe(true)
      expect(relabelled.diff).toEqual(expect.arrayContaining(['-    team: a', '+    team: b']))
      expect(relabelled.document.spec.environment.API_TOKEN).toBe('***')
      expect(JSON.stringify(relabelled)).not.toContain('hunter2')
      const newSecret = (await (await check(yaml.replace('"***"', 'another-secret-value'))).json()) as { notes: string[]; diff: string[] }
      expect(newSecret.notes).toEqual(['the hidden value of spec.environment.API_TOKEN changes'])
      // The diff shows *** on both sides; only the document (the browser's own input, for its PUT) carries the value.
      expect(JSON.stringify([newSecret.diff, newSecret.notes])).not.toContain('another-secret-value')
      // No CSRF token, or another session's: refused.
      expect((await check(yaml, {})).status).toBe(403)
      expect((await check(yaml, { 'x-csrf-token': 'x'.repeat(43) })).status).toBe(403)
    })

    test('the marketplace shows Install, Installed and Update, and reports a bad entry', async () => {
      const { app } = consoleApp()
      let text = await (await page(app, '/marketplace')).text()
      expect(text).toContain('data-install="greeter"')
      expect(text).toMatch(/name="env:GREETER_KEY" type="password"/)
      expect(text).toMatch(/name="env:LOG_LEVEL" type="text" value="info"/)
      expect(text).toContain('<code>broken.yaml</code>: manifest.id')
      await running('greeter', { manifest: sampleManifest('greeter', { version: '1.0.0' }) })
      text = await (await page(app, '/marketplace')).text()
      expect(text).toContain('Update to v2.0.0')
      expect(text).not.toContain('data-install="greeter"')
    })

    test('the specs and events pages, and their fragments', async () => {
      const { app } = consoleApp(undefined, {
        specs: { list: () => [{ path: 'bad.yaml', status: 'invalid', plugins: ['x'], errors: [{ message: 'Required', line: 7, column: 3, field: 'spec.manifest', document: 0 }], checkedAt: '2026-01-01T00:00:00.000Z' }] },
      })
      const specs = await (await page(app, '/specs')).text()
      expect(specs).toContain('<code>bad.yaml:7:3</code> (document 0) <b>spec.manifest</b>: Required')
      const alpha = await running('alpha')
      await database.store.logEvents(Array.from({ length: 60 }, (_, index) => ({ pluginId: alpha.id, forgehookId: 'alpha', type: index % 2 ? 'plugin:crashed' : 'plugin:started' })))
      const events = await (await page(app, '/events?type=plugin:crashed')).text()
      expect([...events.matchAll(/<tr data-event-id=/g)]).toHaveLength(30)
      const first = await (await page(app, '/events')).text()
      const older = /href="(\/events\?cursor=[^"]+)" rel="next"/.exec(first)![1]!.replaceAll('&amp;', '&')
      expect([...(await (await page(app, older)).text()).matchAll(/<tr data-event-id=/g)]).toHaveLength(10)
      expect((await page(app, '/events?cursor=garbage')).status).toBe(400)
    })

    test('/api takes the console cookie, and a write with it needs the CSRF token', async () => {
      const { app } = consoleApp()
      await running('target')
      const first = await page(app, '/')
      const cookie = `flowforge_session=${cookieOf(first)}`
      const csrf = csrfOf(await first.text())!
      const stop = (headers: Record<string, string>) => app.request('/api/v1/plugins/target/stop', { method: 'POST', headers: { cookie, ...headers } })
      const refused = await stop({})
      expect(refused.status).toBe(403)
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('csrf_token_invalid')
      expect((await database.store.requirePlugin('target')).desiredState).toBe('running')
      expect((await stop({ 'x-csrf-token': csrf, origin: 'http://evil.example', host: 'localhost' })).status).toBe(403)
      expect((await stop({ 'x-csrf-token': csrf })).status).toBe(200)
      expect((await database.store.requirePlugin('target')).desiredState).toBe('stopped')
      // A client without a cookie (curl) is as before: no token set, no check.
      expect((await app.request('/api/v1/plugins/target/start', { method: 'POST' })).status).toBe(200)
    })
  })

  describe('with FORGE_API_TOKEN', () => {
    async function logIn(app: Hono): Promise<{ cookie: string; csrf: string }> {
      const form = await app.request('/login?next=%2Fmarketplace', { headers: { accept: 'text/html' } })
      const loginCookie = /flowforge_login=([^;]+)/.exec(form.headers.get('set-cookie') ?? '')![1]
      const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())![1]!
      const answer = await app.request('/login', {
        method: 'POST',
        headers: { cookie: `flowforge_login=${loginCookie}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf, token: TOKEN, next: '/marketplace' }).toString(),
      })
      expect(answer.status).toBe(303)
      expect(answer.headers.get('location')).toBe('/marketplace')
      const cookie = `flowforge_session=${cookieOf(answer)}`
      const csrfToken = csrfOf(await (await page(app, '/', { cookie })).text())!
      return { cookie, csrf: csrfToken }
    }

    test('nothing but the login page without a session; the token makes one', async () => {
      const { app } = consoleApp(TOKEN)
      const redirected = await page(app, '/plugin/x?tab=1')
      expect(redirected.status).toBe(303)
      expect(redirected.headers.get('location')).toBe('/login?next=%2Fplugin%2Fx%3Ftab%3D1')
      expect((await page(app, '/console/fragments/dashboard')).status).toBe(401)
      expect((await page(app, '/marketplace')).status).toBe(303)
      const { cookie } = await logIn(app)
      expect((await page(app, '/', { cookie })).status).toBe(200)
      expect((await page(app, '/', { authorization: `Bearer ${TOKEN}` })).status).toBe(200)
      expect((await app.request('/api/v1/plugins', { headers: { cookie } })).status).toBe(200)
      // The proxied plugin pages take the token only, never the cookie.
      expect((await app.request('/plugins/x/', { headers: { cookie } })).status).toBe(401)
    })

    test('a wrong token, a login form without its cookie and an outside next are refused', async () => {
      const { app } = consoleApp(TOKEN)
      const form = await app.request('/login', { headers: { accept: 'text/html' } })
      const loginCookie = /flowforge_login=([^;]+)/.exec(form.headers.get('set-cookie') ?? '')![1]
      const csrf = /name="csrf" value="([^"]+)"/.exec(await form.text())![1]!
      const post = (fields: Record<string, string>, cookie = `flowforge_login=${loginCookie}`) =>
        app.request('/login', { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })
      const wrong = await post({ csrf, token: 'not-it' })
      expect(await wrong.text()).toContain('That is not the API token.')
      expect(wrong.headers.get('set-cookie') ?? '').not.toContain('flowforge_session')
      expect(await (await post({ csrf, token: TOKEN }, '')).text()).toContain('The login form expired')
      const outside = await post({ csrf, token: TOKEN, next: '//evil.example/' })
      expect(outside.headers.get('location')).toBe('/')
      const crossSite = await app.request('/login', {
        method: 'POST',
        headers: { cookie: `flowforge_login=${loginCookie}`, 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example', host: '127.0.0.1:4000' },
        body: new URLSearchParams({ csrf, token: TOKEN }).toString(),
      })
      expect(crossSite.status).toBe(403)
    })

    test('logout ends the session for the pages and for /api', async () => {
      const { app } = consoleApp(TOKEN)
      const { cookie, csrf } = await logIn(app)
      const noCsrf = await app.request('/logout', { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: '' })
      expect(noCsrf.status).toBe(403)
      const out = await app.request('/logout', { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf }).toString() })
      expect(out.status).toBe(303)
      expect(out.headers.get('location')).toBe('/login')
      expect((await page(app, '/', { cookie })).status).toBe(303)
      expect((await app.request('/api/v1/plugins', { headers: { cookie } })).status).toBe(401)
    })
  })
})
