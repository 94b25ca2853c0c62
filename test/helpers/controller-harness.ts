// A controller on the in-memory runtime and an embedded database, with short intervals.
import { Controller, type ControllerOptions } from '../../src/controller/controller.js'
import type { ReadinessProbe } from '../../src/controller/readiness-probe.js'
import type { Plugin } from '../../src/db/plugin-store.js'
import { silentLogger, type Logger } from '../../src/logger.js'
import { containerNameFor, type ContainerRuntime, type ObservedContainer } from '../../src/runtime/container-runtime.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { systemClock } from '../../src/util/clock.js'
import { eventually, type TestDatabase } from './databases.js'

export const TEST_IMAGE = 'flowforge/test:1'

export const ALWAYS_READY: ReadinessProbe = {
  http: async (url) => ({ ok: true, detail: `GET ${new URL(url).pathname} answered 200 (test)` }),
  tcp: async (_host, port) => ({ ok: true, detail: `port ${port} accepts connections (test)` }),
}

export function controllerOptions(database: TestDatabase, runtime: ContainerRuntime, overrides: Partial<ControllerOptions> = {}): ControllerOptions {
  return {
    store: database.store,
    runtime,
    clock: systemClock,
    logger: overrides.logger ?? silentLogger(),
    workers: 4,
    resyncIntervalMs: 3_600_000,
    container: { hostIp: '127.0.0.1', instance: 'test' },
    stopTimeoutSeconds: 1,
    portRange: { from: 4100, to: 4199 },
    retryBaseMs: 50,
    retryMaxMs: 400,
    crashLoop: { initialDelayMs: 300, maxDelayMs: 1_200, resetAfterMs: 60_000 },
    // The fake's containers listen nowhere: a rollout's new container is ready as soon as it runs.
    readiness: ALWAYS_READY,
    rolloutSettings: { stableWindowMs: 100, drainTimeoutMs: 1_000, minDrainMs: 50 },
    ...overrides,
  }
}

export async function startController(database: TestDatabase, runtime: ContainerRuntime, overrides: Partial<ControllerOptions> = {}): Promise<Controller> {
  const controller = new Controller(controllerOptions(database, runtime, overrides))
  await controller.start()
  return controller
}

export function fakeRuntime(images: string[] = [TEST_IMAGE, 'flowforge/test:2']): FakeRuntime {
  return new FakeRuntime({ images })
}

export function manifest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'Test plugin', version: '1.0.0', image: TEST_IMAGE, port: 8080, ...overrides }
}

/** Waits until the plugin row satisfies `check`. */
export function waitForPlugin(database: TestDatabase, name: string, check: (plugin: Plugin) => boolean, what: string, timeoutMs = 5_000): Promise<Plugin> {
  return eventually(async () => {
    const plugin = await database.store.getPlugin(name)
    return plugin && check(plugin) ? plugin : undefined
  }, timeoutMs, `${name}: ${what}`)
}

export function waitForConverged(database: TestDatabase, name: string, timeoutMs = 5_000): Promise<Plugin> {
  return waitForPlugin(
    database,
    name,
    (plugin) => plugin.observedGeneration === plugin.generation && plugin.status === plugin.desiredState,
    'converged',
    timeoutMs,
  )
}

export async function containerOf(runtime: ContainerRuntime, name: string): Promise<ObservedContainer | undefined> {
  return runtime.inspect(containerNameFor(name))
}

export async function eventTypes(database: TestDatabase, name: string): Promise<string[]> {
  const page = await database.store.listEvents({ forgehookId: name, order: 'asc', limit: 1000 })
  return page.items.map((event) => event.type)
}

export type { Logger }
