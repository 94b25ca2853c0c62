// The live and pass-through parts of the API on a real socket: the WebSocket and SSE event
// streams, log following, the reverse proxy with its usage counters, and the probes. The
// app is built from these route factories alone, on the embedded database and fake runtime.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Hono } from 'hono'
import { soleLeader } from './api-harness.js'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import type { ApiDependencies } from '../../src/api/deps.js'
import { toErrorResponse } from '../../src/api/errors.js'
import { ProxyUsage, proxyRoutes } from '../../src/api/proxy.js'
import { logRoutes } from '../../src/api/routes/logs.js'
import { observabilityRoutes } from '../../src/api/routes/observability.js'
import { streamRoutes, type WireEvent } from '../../src/api/routes/stream.js'
import { startApiServer, type ApiServer } from '../../src/api/server.js'
import type { ControllerStats } from '../../src/controller/controller.js'
import { EventBus, type BusEvent } from '../../src/db/event-bus.js'
import { PluginStore, type Plugin } from '../../src/db/plugin-store.js'
import { silentLogger } from '../../src/logger.js'
import { LABELS } from '../../src/runtime/container-runtime.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { systemClock } from '../../src/util/clock.js'
import { eventually, openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'
import { countPlugins } from '../../src/db/plugin-counts.js'

const IMAGE = 'flowforge-test/http:1'
const HEARTBEAT_MS = 100

/** What the upstream plugin saw of one proxied request. */
interface EchoedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
}

let database: TestDatabase
let store: PluginStore
let events: EventBus
let runtime: FakeRuntime
let proxyUsage: ProxyUsage
let controllerStats: ControllerStats
let server: ApiServer
let baseUrl: string
let app: Hono
let deps: ApiDependencies
let upstream: Server
let upstreamPort: number

beforeAll(async () => {
  database = await openTestDatabase('embedded')
  events = new EventBus()
  const logger = silentLogger()
  // The helper's store has no bus; this one publishes what it records, like the daemon's.
  store = new PluginStore(database.handle.db, database.handle.changes, logger, events)
  runtime = new FakeRuntime({ images: [IMAGE] })
  proxyUsage = new ProxyUsage({ store, clock: systemClock, logger, flushIntervalMs: 60_000 })
  deps = {
    store,
    runtime,
    events,
    leadership: soleLeader,
    logger,
    clock: systemClock,
    database: { engine: 'embedded', ping: () => database.handle.ping() },
    countPlugins: () => countPlugins(database.handle.db),
    controller: { snapshot: () => ({ ...controllerStats }), requestRestart: () => undefined },
    proxyUsage,
    pluginHost: '127.0.0.1',
    hostPorts: { range: { from: 4100, to: 4999 }, allowAny: false },
  }
  app = new Hono()
  app.route('/', observabilityRoutes(deps))
  app.route('/', streamRoutes(deps, { heartbeatMs: HEARTBEAT_MS }))
  app.route('/', logRoutes(deps, { heartbeatMs: HEARTBEAT_MS }))
  app.route('/', proxyRoutes(deps, { timeoutMs: 500 }))
  app.onError((error, c) => {
    const answer = toErrorResponse(error)
    return c.json(answer.body, answer.status, answer.headers)
  })
  server = await startApiServer({ app, host: '127.0.0.1', port: 0, logger })
  baseUrl = `http://127.0.0.1:${server.address.port}`
  upstream = await startEchoUpstream()
  upstreamPort = (upstream.address() as AddressInfo).port
})

afterAll(async () => {
  await server?.close()
  upstream?.closeAllConnections()
  await new Promise((resolve) => upstream?.close(resolve))
  await database?.close()
})

beforeEach(async () => {
  await database.reset()
  controllerStats = { dockerConnected: true, queueDepth: 2, processing: 1, reconciles: 7, reconcileErrors: 1, reconcileSecondsTotal: 1.5, resyncs: 3 }
})

describe('event streams', () => {
  test('the WebSocket sends published and recorded events as JSON, and unsubscribes on close', async () => {
    const plugin = await createPlugin('ws-plugin')
    const socket = await openWebSocket('/api/v1/ws')
    const received: WireEvent[] = []
    socket.on('message', (data) => received.push(JSON.parse(String(data)) as WireEvent))

    events.publish(unstoredEvent())
    await store.logEvent({ pluginId: plugin.id, forgehookId: 'ws-plugin', type: 'installed', data: { image: IMAGE } })

    await eventually(() => (received.length >= 2 ? true : undefined), 5_000, 'two events on the WebSocket')
    expect(received[0]).toEqual({ id: null, pluginId: null, forgehookId: null, type: 'spec_rejected', data: { file: 'bad.yaml' }, timestamp: '2026-01-01T00:00:00.000Z' })
    expect(received[1]).toMatchObject({ pluginId: plugin.id, forgehookId: 'ws-plugin', type: 'installed', data: { image: IMAGE } })
    expect(received[1]!.id).toEqual(expect.any(Number))
    expect(Date.parse(received[1]!.timestamp)).not.toBeNaN()

    socket.close()
    await eventually(() => (events.subscriberCount === 0 ? true : undefined), 5_000, 'the WebSocket to unsubscribe')
  })

  test('the WebSocket passes only events matching ?plugin= and ?type=', async () => {
    const socket = await openWebSocket('/api/v1/ws?plugin=alpha&type=started,stopped')
    const received: WireEvent[] = []
    socket.on('message', (data) => received.push(JSON.parse(String(data)) as WireEvent))
    events.publish(busEvent('beta', 'started'))
    events.publish(busEvent('alpha', 'installed'))
    events.publish(busEvent('alpha', 'stopped'))
    await eventually(() => (received.length >= 1 ? true : undefined), 5_000, 'the matching event')
    // A last marker event that matches proves nothing else is still on its way.
    events.publish(busEvent('alpha', 'started'))
    await eventually(() => (received.length >= 2 ? true : undefined), 5_000, 'the marker event')
    expect(received.map((event) => `${event.forgehookId} ${event.type}`)).toEqual(['alpha stopped', 'alpha started'])
    socket.close()
    await eventually(() => (events.subscriberCount === 0 ? true : undefined))
  })

  test('GET /api/v1/ws without an upgrade answers 426 in the error shape', async () => {
    const response = await app.request('/api/v1/ws')
    expect(response.status).toBe(426)
    expect(await response.json()).toMatchObject({ error: { code: 'upgrade_required' } })
  })

  test('the SSE stream sends the same events, heartbeats, and unsubscribes when the client goes', async () => {
    const plugin = await createPlugin('sse-plugin')
    const stream = await openSse('/api/v1/events/stream?plugin=sse-plugin')
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(events.subscriberCount).toBe(1)

    events.publish(busEvent('other-plugin', 'installed'))
    await store.logEvent({ pluginId: plugin.id, forgehookId: 'sse-plugin', type: 'started', data: { attempt: 1 } })

    const [message] = await stream.waitForMessages(1)
    const event = JSON.parse(message!.data) as WireEvent
    expect(event).toMatchObject({ pluginId: plugin.id, forgehookId: 'sse-plugin', type: 'started', data: { attempt: 1 } })
    expect(message!.id).toBe(String(event.id))
    await eventually(() => (stream.text().includes(': heartbeat\n\n') ? true : undefined), 5_000, 'a heartbeat comment')

    stream.close()
    await eventually(() => (events.subscriberCount === 0 ? true : undefined), 5_000, 'the SSE stream to unsubscribe')
  })

  test('closing the server ends open WebSocket and SSE streams promptly', async () => {
    const logger = silentLogger()
    const second = await startApiServer({ app, host: '127.0.0.1', port: 0, logger })
    const socket = await openWebSocket('/api/v1/ws', second.address.port)
    const closedSocket = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)))
    const stream = await openSse('/api/v1/events/stream', second.address.port)
    expect(events.subscriberCount).toBe(2)
    const startedAt = Date.now()
    await second.close()
    expect(Date.now() - startedAt).toBeLessThan(3_000)
    expect(await closedSocket).toBe(1001)
    await stream.ended
    await eventually(() => (events.subscriberCount === 0 ? true : undefined), 5_000, 'both streams to unsubscribe')
  })

  test('a port in use is refused with a message naming the port and PORT', async () => {
    const starting = startApiServer({ app, host: '127.0.0.1', port: server.address.port, logger: silentLogger() })
    await expect(starting).rejects.toThrow(new RegExp(`port ${server.address.port} .*already in use.*PORT`))
  })
})

describe('logs', () => {
  test('without follow, the last `tail` lines come back as text', async () => {
    const { containerId } = await runningPlugin('log-plugin', 4500)
    runtime.writeLog(containerId, 'line one\nline two\nline three\n')
    const response = await app.request('/api/v1/plugins/log-plugin/logs?tail=2')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('line two\nline three\n')
    expect(await (await app.request('/api/v1/plugins/log-plugin/logs')).text()).toBe('line one\nline two\nline three\n')
  })

  test('follow=true streams the tail, then lines written afterwards, as server-sent events until the container stops', async () => {
    const { plugin, containerId } = await runningPlugin('follow-plugin', 4501)
    runtime.writeLog(containerId, 'before the follow\n')
    const stream = await openSse(`/api/v1/plugins/${plugin.id}/logs?follow=true&tail=10`)
    await stream.waitForMessages(1)
    runtime.writeLog(containerId, 'after the follow\nand another\n')
    const messages = await stream.waitForMessages(3)
    expect(messages.map((message) => message.data)).toEqual(['before the follow', 'after the follow', 'and another'])

    await runtime.stop(containerId, 1)
    await stream.ended
    expect(stream.messages().at(-1)).toMatchObject({ event: 'end' })
  })

  test('an unknown plugin, a plugin without container and a bad tail are answered in the error shape', async () => {
    await createPlugin('no-container')
    const unknown = await app.request('/api/v1/plugins/nobody/logs')
    expect(unknown.status).toBe(404)
    expect(await unknown.json()).toMatchObject({ error: { code: 'not_found' } })
    expect((await app.request('/api/v1/plugins/no-container/logs?follow=true')).status).toBe(404)
    const tooLong = await app.request('/api/v1/plugins/no-container/logs?tail=10001')
    expect(tooLong.status).toBe(400)
    expect(await tooLong.json()).toMatchObject({ error: { code: 'invalid_query', details: [{ field: 'tail' }] } })
  })
})

describe('reverse proxy', () => {
  test('GET passes through with the rest of the path and the query; Authorization stays behind; X-Forwarded-* are added', async () => {
    await proxiedPlugin('echo')
    const response = await fetch(`${baseUrl}/plugins/echo/api/items%2Fone?limit=5&sort=name`, {
      headers: { Authorization: 'Bearer flowforge-secret-token', 'X-Custom': 'kept' },
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('x-upstream')).toBe('echo')
    const echoed = (await response.json()) as EchoedRequest
    expect(echoed).toMatchObject({ method: 'GET', url: '/api/items%2Fone?limit=5&sort=name' })
    expect(echoed.headers.authorization).toBeUndefined()
    expect(echoed.headers['x-custom']).toBe('kept')
    expect(echoed.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(echoed.headers['x-forwarded-proto']).toBe('http')
    expect(echoed.headers['x-forwarded-host']).toBe(`127.0.0.1:${server.address.port}`)
    expect(echoed.headers.host).toBe(`127.0.0.1:${upstreamPort}`)
  })

  test('POST streams its body to the plugin and the answer back', async () => {
    await proxiedPlugin('echo')
    const body = JSON.stringify({ greeting: 'hello', padding: 'x'.repeat(200_000) })
    const response = await fetch(`${baseUrl}/plugins/echo/submit`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } })
    const echoed = (await response.json()) as EchoedRequest
    expect(echoed).toMatchObject({ method: 'POST', url: '/submit', body })
    expect(echoed.headers['content-type']).toBe('application/json')
  })

  test('an unknown plugin is 404, a stopped one 503, an unreachable one 502, a silent one 504', async () => {
    const unknown = await fetch(`${baseUrl}/plugins/nobody/`)
    expect(unknown.status).toBe(404)
    expect(await unknown.json()).toMatchObject({ error: { code: 'not_found' } })

    const stopped = await createPlugin('stopped-plugin')
    await store.writeStatus(stopped.id, { status: 'stopped', hostPort: await freePort() })
    const notRunning = await fetch(`${baseUrl}/plugins/stopped-plugin/`)
    expect(notRunning.status).toBe(503)
    expect(await notRunning.json()).toMatchObject({ error: { code: 'plugin_not_running' } })

    const down = await createPlugin('down-plugin')
    await store.writeStatus(down.id, { status: 'running', hostPort: await freePort() })
    const unreachable = await fetch(`${baseUrl}/plugins/down-plugin/anything`)
    expect(unreachable.status).toBe(502)
    expect(await unreachable.json()).toMatchObject({ error: { code: 'bad_gateway' } })

    await proxiedPlugin('echo')
    const silent = await fetch(`${baseUrl}/plugins/echo/silent`)
    expect(silent.status).toBe(504)
    expect(await silent.json()).toMatchObject({ error: { code: 'upstream_timeout' } })
  })

  test('flush writes one plugin_metrics row per plugin with the counts and average since the last flush', async () => {
    await proxyUsage.flush()
    const echo = await proxiedPlugin('echo')
    const down = await createPlugin('down-plugin')
    await store.writeStatus(down.id, { status: 'running', hostPort: await freePort() })
    const totalsBefore = proxyUsage.totals()

    for (const path of ['a', 'b', 'fail']) await (await fetch(`${baseUrl}/plugins/echo/${path}`)).arrayBuffer()
    await (await fetch(`${baseUrl}/plugins/down-plugin/`)).arrayBuffer()

    expect(await proxyUsage.flush()).toBe(2)
    const [echoRow, ...olderEchoRows] = await store.listMetrics(echo.id)
    expect(olderEchoRows).toEqual([])
    expect(echoRow).toMatchObject({ requestCount: 3, errorCount: 1 })
    expect(echoRow!.avgResponseTimeMs).toBeCloseTo(echoRow!.totalResponseTimeMs / 3, 2)
    const downRows = await store.listMetrics(down.id)
    expect(downRows).toHaveLength(1)
    expect(downRows[0]).toMatchObject({ requestCount: 1, errorCount: 1 })
    expect(proxyUsage.totals()).toEqual({ requests: totalsBefore.requests + 4, errors: totalsBefore.errors + 2 })

    // Nothing new since: no rows.
    expect(await proxyUsage.flush()).toBe(0)
    expect(await store.listMetrics(echo.id)).toHaveLength(1)
  })

  test('stop writes what is left, leaving out a plugin deleted since its requests', async () => {
    const usage = new ProxyUsage({ store, clock: systemClock, logger: silentLogger(), flushIntervalMs: 60_000 })
    usage.start()
    const kept = await createPlugin('kept-plugin')
    const deleted = await createPlugin('deleted-plugin')
    usage.record(kept.id, { durationMs: 10, error: false })
    usage.record(kept.id, { durationMs: 21, error: true })
    usage.record(deleted.id, { durationMs: 5, error: false })
    await store.deletePlugin(deleted.id)

    await usage.stop()
    expect(await store.listMetrics(kept.id)).toEqual([
      expect.objectContaining({ requestCount: 2, errorCount: 1, totalResponseTimeMs: 31, avgResponseTimeMs: 15.5 }),
    ])
    expect(usage.totals()).toEqual({ requests: 3, errors: 1 })
  })
})

describe('probes and metrics', () => {
  test('/healthz is always ok', async () => {
    controllerStats.dockerConnected = false
    const response = await app.request('/healthz')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: 'ok' })
  })

  test('/readyz is 200 with the database and Docker up, 503 naming whichever is not', async () => {
    const ready = await app.request('/readyz')
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready', database: 'ok', docker: 'ok', role: 'leader', manager: 'test-manager', leader: 'test-manager' })

    controllerStats.dockerConnected = false
    const degraded = await app.request('/readyz')
    expect(degraded.status).toBe(503)
    expect(await degraded.json()).toMatchObject({ status: 'degraded', database: 'ok', docker: 'unreachable' })

    controllerStats.dockerConnected = true
    const databaseDown = observabilityRoutes({ ...deps, database: { engine: 'embedded', ping: () => Promise.reject(new Error('connection refused')) } })
    const noDatabase = await databaseDown.request('/readyz')
    expect(noDatabase.status).toBe(503)
    expect(await noDatabase.json()).toMatchObject({ status: 'degraded', database: 'unreachable', docker: 'ok' })
  })

  test('/readyz on a follower: ready without Docker (standby), naming the leader; /metrics says it follows', async () => {
    controllerStats.dockerConnected = false
    const follower = observabilityRoutes({
      ...deps,
      leadership: () => ({ role: 'follower', managerId: 'm2', leader: 'm1', since: new Date(0), terms: 0 }),
    })
    const ready = await follower.request('/readyz')
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready', database: 'ok', docker: 'standby', role: 'follower', manager: 'm2', leader: 'm1' })
    const metrics = await (await follower.request('/metrics')).text()
    expect(metrics).toContain('flowforge_leader{manager="m2",leader="m1"} 0')
    controllerStats.dockerConnected = true
    expect(await (await app.request('/metrics')).text()).toContain('flowforge_leader{manager="test-manager",leader="test-manager"} 1')
  })

  test('/metrics is Prometheus text with controller, plugin, proxy and stream figures', async () => {
    const healthy = await createPlugin('metrics-a')
    await store.writeStatus(healthy.id, { status: 'running', healthStatus: 'healthy' })
    await createPlugin('metrics-b')
    const { requests, errors } = proxyUsage.totals()
    const socket = await openWebSocket('/api/v1/ws')

    // Plugin counts are kept between changes and taken again at most every 2 s: the writes
    // above show once their notifications are in and that floor has passed.
    const response = await eventually(async () => {
      const answer = await app.request('/metrics')
      const body = await answer.clone().text()
      return body.includes('flowforge_plugins{phase="running"} 1') && body.includes('flowforge_plugins{phase="installing"} 1') ? answer : undefined
    }, 5_000, 'the plugin counts in /metrics')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    const text = await response.text()
    const lines = text.split('\n')
    for (const expected of [
      'flowforge_reconciles_total 7',
      'flowforge_reconcile_errors_total 1',
      'flowforge_reconcile_duration_seconds_total 1.5',
      'flowforge_work_queue_depth 2',
      'flowforge_reconciles_in_flight 1',
      'flowforge_resyncs_total 3',
      'flowforge_docker_connected 1',
      'flowforge_plugins{phase="running"} 1',
      'flowforge_plugins{phase="installing"} 1',
      'flowforge_plugins{phase="error"} 0',
      'flowforge_plugins_by_health{health="healthy"} 1',
      'flowforge_plugins_by_health{health="unknown"} 1',
      `flowforge_proxy_requests_total ${requests}`,
      `flowforge_proxy_errors_total ${errors}`,
      'flowforge_event_stream_subscribers 1',
      'flowforge_database_info{engine="embedded"} 1',
      '# TYPE flowforge_reconciles_total counter',
      '# TYPE flowforge_work_queue_depth gauge',
    ]) {
      expect(lines).toContain(expected)
    }
    socket.close()
    await eventually(() => (events.subscriberCount === 0 ? true : undefined))
  })
})

// ---- helpers

async function createPlugin(name: string): Promise<Plugin> {
  return store.createPlugin({ forgehookId: name, source: 'api', manifest: sampleManifest(name) })
}

/** A plugin whose container runs on the fake runtime, with its id in the status. */
async function runningPlugin(name: string, hostPort: number): Promise<{ plugin: Plugin; containerId: string }> {
  const plugin = await createPlugin(name)
  const containerId = await runtime.create({
    name: `forgehook-${name}`,
    image: IMAGE,
    env: {},
    labels: { [LABELS.managed]: 'true', [LABELS.pluginId]: plugin.id },
    containerPort: 8080,
    hostPort,
    hostIp: '127.0.0.1',
  })
  await runtime.start(containerId)
  await store.writeStatus(plugin.id, { status: 'running', containerId, hostPort })
  return { plugin, containerId }
}

/** A running plugin whose host port is the echo upstream. */
async function proxiedPlugin(name: string): Promise<Plugin> {
  const plugin = await createPlugin(name)
  await store.writeStatus(plugin.id, { status: 'running', hostPort: upstreamPort })
  return plugin
}

function unstoredEvent(): BusEvent {
  return { id: null, pluginId: null, forgehookId: null, type: 'spec_rejected', data: { file: 'bad.yaml' }, timestamp: new Date('2026-01-01T00:00:00Z') }
}

function busEvent(forgehookId: string, type: string): BusEvent {
  return { id: null, pluginId: null, forgehookId, type, data: {}, timestamp: new Date() }
}

/** Opens a WebSocket and waits until the server has subscribed it. */
async function openWebSocket(path: string, port = server.address.port): Promise<WebSocket> {
  const subscribersBefore = events.subscriberCount
  const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve())
    socket.once('error', reject)
  })
  await eventually(() => (events.subscriberCount > subscribersBefore ? true : undefined), 5_000, 'the WebSocket to subscribe')
  return socket
}

interface SseMessage {
  event?: string
  id?: string
  data: string
}

interface SseClient {
  response: Response
  /** Everything received so far, comments included. */
  text(): string
  messages(): SseMessage[]
  waitForMessages(count: number): Promise<SseMessage[]>
  /** Resolves when the server ends the stream (or close() was called). */
  ended: Promise<void>
  close(): void
}

/** A plain fetch reading text/event-stream, as a browser's EventSource would. */
async function openSse(path: string, port = server.address.port): Promise<SseClient> {
  const controller = new AbortController()
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: controller.signal })
  expect(response.status).toBe(200)
  let received = ''
  const decoder = new TextDecoder()
  const reader = response.body!.getReader()
  const ended = (async () => {
    try {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) received += decoder.decode(chunk.value, { stream: true })
    } catch (error) {
      // Our own abort ends the read with an AbortError; anything else (the server cutting the connection) also ends it.
      if (!controller.signal.aborted && !(error instanceof TypeError)) throw error
    }
  })()
  const messages = () => parseSse(received)
  return {
    response,
    text: () => received,
    messages,
    waitForMessages: (count) => eventually(() => (messages().length >= count ? messages() : undefined), 5_000, `${count} SSE messages`),
    ended,
    close: () => controller.abort(),
  }
}

function parseSse(text: string): SseMessage[] {
  const complete = text.slice(0, text.lastIndexOf('\n\n') + 1)
  const messages: SseMessage[] = []
  for (const block of complete.split('\n\n')) {
    const fields = block.split('\n').filter((line) => line !== '' && !line.startsWith(':'))
    if (fields.length === 0) continue
    const message: SseMessage = { data: '' }
    const data: string[] = []
    for (const field of fields) {
      const colon = field.indexOf(':')
      const name = field.slice(0, colon)
      const value = field.slice(colon + 1).replace(/^ /, '')
      if (name === 'data') data.push(value)
      if (name === 'event') message.event = value
      if (name === 'id') message.id = value
    }
    message.data = data.join('\n')
    messages.push(message)
  }
  return messages
}

/**
 * The stand-in plugin: answers with what it received as JSON; /fail answers 500, /silent
 * never answers.
 */
async function startEchoUpstream(): Promise<Server> {
  const echo = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      if (request.url === '/silent') return
      const echoed: EchoedRequest = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') }
      response.writeHead(request.url === '/fail' ? 500 : 200, { 'Content-Type': 'application/json', 'X-Upstream': 'echo' })
      response.end(JSON.stringify(echoed))
    })
  })
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  return echo
}

/** A port nothing listens on: bound once, then released. */
async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}
