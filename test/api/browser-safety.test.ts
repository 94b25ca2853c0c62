// What a web page in the operator's browser can make the API do, token or not: the requests a
// browser sends for a cross-site form, a cross-site fetch and WebSocket, a DNS-rebinding page
// and a plugin's own page under /plugins/NAME/, made for real on a socket, and refused.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import { createApp } from '../../src/api/app.js'
import { API_SECURITY_HEADERS } from '../../src/api/browser-guard.js'
import { PROXIED_CONTENT_POLICY } from '../../src/api/proxy.js'
import { startApiServer, type ApiServer } from '../../src/api/server.js'
import { EventBus } from '../../src/db/event-bus.js'
import { PluginStore } from '../../src/db/plugin-store.js'
import { silentLogger } from '../../src/logger.js'
import { systemClock } from '../../src/util/clock.js'
import { openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'
import { controllerStub, soleLeader } from './api-harness.js'
import { fakeRuntime } from '../helpers/controller-harness.js'
import { countPlugins } from '../../src/db/plugin-counts.js'

const TOKEN = 'a-token-of-sixteen-or-more'

for (const token of [undefined, TOKEN]) {
  describe(`a browser against the API ${token ? 'with' : 'without'} a token`, () => {
    let database: TestDatabase
    let store: PluginStore
    let server: ApiServer
    let upstream: Server
    let base: string
    let own: string

    beforeAll(async () => {
      database = await openTestDatabase('embedded')
      const logger = silentLogger()
      store = new PluginStore(database.handle.db, database.handle.changes, logger, new EventBus())
      const app = createApp({
        store,
        runtime: fakeRuntime(),
        events: new EventBus(),
        logger,
        clock: systemClock,
        database: { engine: 'embedded', ping: () => database.handle.ping() },
        countPlugins: () => countPlugins(database.handle.db),
        controller: controllerStub(),
        leadership: soleLeader,
        proxyUsage: { record: () => undefined, totals: () => ({ requests: 0, errors: 0 }) },
        pluginHost: '127.0.0.1',
        hostPorts: { range: { from: 4100, to: 4999 }, allowAny: false },
        allowedHosts: ['flowforge.example.com'],
        maxStreams: 2,
        ...(token ? { apiToken: token } : {}),
      })
      server = await startApiServer({ app, host: '127.0.0.1', port: 0, logger })
      base = `http://127.0.0.1:${server.address.port}`
      own = base
      // A plugin whose page tries the API from the API's own origin.
      upstream = createServer((_request, response) => {
        response.writeHead(200, { 'content-type': 'text/html' })
        response.end('<script>fetch("/api/v1/plugins/install", {method: "POST"})</script>')
      })
      await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
      const page = await store.createPlugin({ forgehookId: 'page', source: 'api', manifest: sampleManifest('page') })
      await store.writeStatus(page.id, { status: 'running', hostPort: (upstream.address() as AddressInfo).port })
      await store.createPlugin({ forgehookId: 'victim', source: 'api', manifest: sampleManifest('victim') })
    })
    afterAll(async () => {
      await server?.close()
      await new Promise((resolve) => upstream?.close(resolve))
      await database?.close()
    })

    /** A request with the headers a browser would add, plus the token when the test has one. */
    function browser(route: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Response> {
      const headers: Record<string, string> = { ...init.headers }
      if (token) headers.authorization = `Bearer ${token}`
      return fetch(`${base}${route}`, { method: init.method ?? 'GET', headers, ...(init.body !== undefined ? { body: init.body } : {}) })
    }

    async function victimState(): Promise<string> {
      return (await store.requirePlugin('victim')).desiredState
    }

    test('a cross-site form POST /api/v1/plugins/victim/stop is refused, by Origin or by Sec-Fetch-Site, and nothing changes', async () => {
      const form = { 'content-type': 'application/x-www-form-urlencoded' }
      for (const headers of [
        { ...form, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
        { ...form, origin: 'http://evil.example' },
        { ...form, 'sec-fetch-site': 'cross-site' },
        // A page of the same site on another port (a plugin's own port, 127.0.0.1:4100).
        { ...form, origin: 'http://127.0.0.1:4100', 'sec-fetch-site': 'same-site' },
        { ...form, origin: 'http://127.0.0.1:4100' },
        { ...form, origin: 'null' },
      ]) {
        const answer = await browser('/api/v1/plugins/victim/stop', { method: 'POST', headers, body: 'x=1' })
        expect(answer.status, JSON.stringify(headers)).toBe(403)
        expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('cross_origin')
      }
      expect(await victimState()).toBe('running')
    })

    test('the same request from the API\'s own origin, or from curl (no Origin), is served', async () => {
      const sameOrigin = await browser('/api/v1/plugins/victim/stop', { method: 'POST', headers: { origin: own, 'sec-fetch-site': 'same-origin' } })
      expect(sameOrigin.status).toBe(200)
      expect(await victimState()).toBe('stopped')
      const curl = await browser('/api/v1/plugins/victim/start', { method: 'POST' })
      expect(curl.status).toBe(200)
      expect(await victimState()).toBe('running')
    })

    test('DNS rebinding: a Host that is no name of ours is refused on every route, install included; our names are served', async () => {
      const rebound = { host: `evil.example:${server.address.port}`, origin: `http://evil.example:${server.address.port}` }
      const install = JSON.stringify({ manifest: { id: 'rebound', image: 'attacker/root:1', port: 80 } })
      for (const [method, route] of [
        ['POST', '/api/v1/plugins/install'],
        ['GET', '/api/v1/plugins'],
        ['GET', '/api/v1/events/stream'],
        ['GET', '/healthz'],
        ['GET', '/metrics'],
        ['GET', '/plugins/page/'],
      ] as const) {
        const answer = await rawRequest(server.address.port, method, route, rebound, method === 'POST' ? install : undefined)
        expect(answer.status, `${method} ${route}`).toBe(403)
        expect(answer.body, route).toContain('host_not_allowed')
      }
      expect(await store.getPlugin('rebound')).toBeUndefined()
      for (const host of ['localhost', `localhost:${server.address.port}`, '127.0.0.1', `[::1]:${server.address.port}`, 'flowforge.example.com:4000', 'app.localhost']) {
        expect((await rawRequest(server.address.port, 'GET', '/healthz', { host })).status, host).toBe(200)
      }
    })

    test('/api/v1/ws refuses a handshake from another origin and accepts its own', async () => {
      const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
      const wsUrl = `${base.replace('http', 'ws')}/api/v1/ws`
      expect(await handshake(wsUrl, { ...auth, origin: 'http://evil.example' })).toBe(403)
      expect(await handshake(wsUrl, { ...auth, origin: 'null' })).toBe(403)
      expect(await handshake(wsUrl, { ...auth, origin: own })).toBe(101)
      expect(await handshake(wsUrl, auth)).toBe(101)
    })

    test('a plugin\'s page is sandboxed (opaque origin), and what its script sends to the API (Origin: null) is refused', async () => {
      const page = await browser('/plugins/page/')
      expect(page.status).toBe(200)
      expect(page.headers.get('content-security-policy')).toContain(PROXIED_CONTENT_POLICY)
      expect(page.headers.get('content-security-policy')).not.toContain('allow-same-origin')
      expect(page.headers.get('x-content-type-options')).toBe('nosniff')
      expect(page.headers.get('x-frame-options')).toBeNull()
      await page.text()
      const fromPage = await browser('/api/v1/plugins/install', { method: 'POST', headers: { origin: 'null', 'content-type': 'application/json' }, body: '{}' })
      expect(fromPage.status).toBe(403)
    })

    test('answers that are not proxied content carry nosniff, no-referrer and a CSP that allows nothing', async () => {
      const answers = [await browser('/api/v1/plugins'), await browser('/api/v1/plugins/nope'), await browser('/healthz'), await fetch(`${base}/api/v1/plugins`)]
      for (const answer of answers) {
        for (const [name, value] of Object.entries(API_SECURITY_HEADERS)) expect(answer.headers.get(name), `${answer.url} ${name}`).toBe(value)
        await answer.text()
      }
    })

    test('WebSocket messages over 64 KiB close the connection; the streams are capped with a clear 503', async () => {
      const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
      const socket = new WebSocket(`${base.replace('http', 'ws')}/api/v1/ws`, { headers: auth })
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject))
      const closed = new Promise<number>((resolve) => socket.once('close', resolve))
      socket.send('x'.repeat(64 * 1024 + 1))
      expect(await closed).toBe(1009)

      const abort = new AbortController()
      const open = [await browser('/api/v1/events/stream'), await browser('/api/v1/events/stream')]
      const third = await browser('/api/v1/events/stream')
      expect(third.status).toBe(503)
      expect(await third.json()).toMatchObject({ error: { code: 'too_many_streams' } })
      expect(third.headers.get('retry-after')).toBe('10')
      expect(await handshake(`${base.replace('http', 'ws')}/api/v1/ws`, auth)).toBe(503)
      for (const answer of open) await answer.body?.cancel()
      abort.abort()
      // Slots come back when the clients go.
      const start = Date.now()
      let again = await browser('/api/v1/events/stream')
      while (again.status === 503 && Date.now() - start < 5_000) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        again = await browser('/api/v1/events/stream')
      }
      expect(again.status).toBe(200)
      await again.body?.cancel()
    })
  })
}

/** A request with a Host of our choosing (fetch sets its own). */
async function rawRequest(port: number, method: string, route: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  const { request } = await import('node:http')
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, method, path: route, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) } }, (response) => {
      let text = ''
      response.on('data', (chunk: Buffer) => (text += chunk.toString()))
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }))
    })
    outgoing.on('error', reject)
    outgoing.end(body)
  })
}

function handshake(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers })
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
