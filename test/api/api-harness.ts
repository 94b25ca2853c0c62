// The API on the embedded database and the in-memory runtime, called with app.request()
// (no socket). The controller is a stub that records restarts, unless a test brings the real one.
import type { Hono } from 'hono'
import { createApp } from '../../src/api/app.js'
import type { ApiDependencies } from '../../src/api/deps.js'
import type { ControllerStats } from '../../src/controller/controller.js'
import type { LeadershipStatus } from '../../src/controller/leader-election.js'
import { EventBus } from '../../src/db/event-bus.js'
import { silentLogger } from '../../src/logger.js'
import type { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { systemClock } from '../../src/util/clock.js'
import { fakeRuntime, TEST_IMAGE } from '../helpers/controller-harness.js'
import type { TestDatabase } from '../helpers/databases.js'
import { countPlugins } from '../../src/db/plugin-counts.js'

export interface ControllerStub {
  restarts: { pluginId: string; reason: string }[]
  snapshot(): ControllerStats
  requestRestart(pluginId: string, reason: string): void
}

export function controllerStub(): ControllerStub {
  const restarts: ControllerStub['restarts'] = []
  return {
    restarts,
    snapshot: () => ({ dockerConnected: true, queueDepth: 0, processing: 0, reconciles: 0, reconcileErrors: 0, reconcileSecondsTotal: 0, resyncs: 0 }),
    requestRestart: (pluginId, reason) => void restarts.push({ pluginId, reason }),
  }
}

export interface ApiHarness {
  app: Hono
  deps: ApiDependencies
  runtime: FakeRuntime
  controller: ControllerStub
}

/** What a manager on the embedded engine reports: it alone leads. */
export function soleLeader(): LeadershipStatus {
  return { role: 'leader', managerId: 'test-manager', leader: 'test-manager', since: new Date(0), terms: 1 }
}

export function apiHarness(database: TestDatabase, overrides: Partial<ApiDependencies> = {}): ApiHarness {
  const runtime = fakeRuntime()
  const controller = controllerStub()
  const deps: ApiDependencies = {
    store: database.store,
    runtime,
    events: new EventBus(),
    logger: silentLogger(),
    clock: systemClock,
    database: { engine: 'embedded', ping: () => database.handle.ping() },
    countPlugins: () => countPlugins(database.handle.db),
    controller,
    leadership: soleLeader,
    proxyUsage: { record: () => undefined, totals: () => ({ requests: 0, errors: 0 }) },
    pluginHost: '127.0.0.1',
    hostPorts: { range: { from: 4100, to: 4999 }, allowAny: false },
    ...overrides,
  }
  return { app: createApp(deps), deps, runtime, controller }
}

export interface SendOptions {
  body?: unknown
  /** Sent as is (no JSON encoding). */
  rawBody?: string
  contentType?: string
  headers?: Record<string, string>
}

/** One request; a body is sent as JSON unless contentType says otherwise. */
export function send(app: Hono, method: string, path: string, options: SendOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers }
  let body: string | undefined = options.rawBody
  if (options.body !== undefined) body = JSON.stringify(options.body)
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json'
  return Promise.resolve(app.request(path, { method, headers, ...(body !== undefined ? { body } : {}) }))
}

/** The error shape every failure answers with. */
export interface ErrorAnswer {
  error: { code: string; message: string; details: { field: string; message: string }[] }
}

export async function errorOf(response: Response): Promise<ErrorAnswer> {
  return (await response.json()) as ErrorAnswer
}

export function pluginDocument(name: string, spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'flowforge.io/v1',
    kind: 'Plugin',
    metadata: { name, ...metadata },
    spec: { manifest: { name: `Plugin ${name}`, version: '1.0.0', image: TEST_IMAGE, port: 8080 }, ...spec },
  }
}

/** The plugin document as answered (loosely typed for assertions). */
export interface PluginAnswer {
  apiVersion: string
  kind: string
  metadata: { name: string; uid: string; generation: number; resourceVersion: string; labels: Record<string, string>; source: string; creationTimestamp: string; deletionTimestamp?: string }
  spec: { state: string; hostPort?: number; manifest: Record<string, unknown>; config: Record<string, unknown>; environment: Record<string, string> }
  status: Record<string, unknown> & { phase: string }
}
