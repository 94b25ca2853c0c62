// A leader's term as main.ts builds it (controller, health monitor, metrics sampler, spec
// folder over one container cache) on the in-memory runtime and the embedded database.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { LeaderTerm } from '../../src/daemon/leader-term.js'
import { EventBus } from '../../src/db/event-bus.js'
import type { PluginStore } from '../../src/db/plugin-store.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { systemClock } from '../../src/util/clock.js'
import { manifest, TEST_IMAGE, waitForConverged } from '../helpers/controller-harness.js'
import { eventually, openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { captureLogs } from '../helpers/log-capture.js'

describe('a leader term', () => {
  let database: TestDatabase
  let specsDir: string
  let term: LeaderTerm | undefined
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
    process.on('unhandledRejection', onUnhandled)
  })
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled)
    await database?.close()
  })
  beforeEach(async () => {
    await database.reset()
    specsDir = await mkdtemp(path.join(tmpdir(), 'ff-term-specs-'))
    unhandled.length = 0
  })
  afterEach(async () => {
    await term?.stop()
    term = undefined
    await rm(specsDir, { recursive: true, force: true })
  })

  function startTerm(store: PluginStore, runtime: FakeRuntime, logger = captureLogs('warn').logger, healthInterval = '3600'): LeaderTerm {
    const config = loadConfig({ SPECS_DIR: specsDir, HOST_PORT_RANGE: '4300-4399', HEALTH_INTERVAL: healthInterval })
    return new LeaderTerm({ store, runtime, bus: new EventBus(), clock: systemClock, logger, controller: config.controller, specs: config.specs })
  }

  test('a Docker health change that cannot be written while the database is down is logged, and never an unhandled rejection', async () => {
    const runtime = new FakeRuntime({ images: [TEST_IMAGE] })
    let databaseDown = false
    // The store as the daemon uses it, but reads fail while "the database is down".
    const store = new Proxy(database.store, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver)
        if (property !== 'getPlugin' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value
        return async (...args: unknown[]) => {
          if (databaseDown) throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' })
          return value.apply(target, args)
        }
      },
    })
    const log = captureLogs('warn')
    term = startTerm(store, runtime, log.logger)
    await term.ready
    await database.store.createPlugin({ forgehookId: 'healthy', source: 'api', manifest: manifest() })
    await waitForConverged(database, 'healthy')

    databaseDown = true
    runtime.setHealth('forgehook-healthy', 'unhealthy')
    await eventually(() => log.messages().find((message) => message.startsWith('could not record health unhealthy')), 5_000, 'the failed write logged')
    // Give a rejection the microtask turns and the macrotask Node needs to report it.
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(unhandled).toEqual([])

    // Once the database is back, the next change is written.
    databaseDown = false
    runtime.setHealth('forgehook-healthy', 'healthy')
    await eventually(async () => ((await database.store.getPlugin('healthy'))?.healthStatus === 'healthy' ? true : undefined), 5_000, 'health written')
  })

  test('a restart the health monitor asks for (restartOnFailure) is carried out by the controller', async () => {
    const runtime = new FakeRuntime({ images: [TEST_IMAGE] })
    // The fake's containers listen nowhere: every HTTP health probe fails.
    term = startTerm(database.store, runtime, undefined, '0.2')
    await term.ready
    await database.store.createPlugin({ forgehookId: 'restartme', source: 'api', manifest: manifest({ healthCheck: { path: '/health', timeoutSeconds: 1, restartOnFailure: 1 } }) })
    const running = await waitForConverged(database, 'restartme')
    const restarted = await eventually(async () => {
      const page = await database.store.listEvents({ forgehookId: 'restartme', order: 'asc', limit: 100 })
      return page.items.find((event) => event.type === 'plugin:restarted')
    }, 10_000, 'restarted by the health monitor')
    expect(restarted.data).toMatchObject({ containerId: running.containerId, reason: 'health check /health failed 1 times in a row' })
  })
})
