// Fault injection, cases 6-7 (issue #7): the Docker engine restarted, stopped for a minute
// and frozen (SIGSTOP) under a running manager. What must hold is what an operator sees:
// the manager process stays up, /readyz tells the truth, and once the engine is back every
// plugin row and `docker inspect` agree on the desired state again. The engine is always
// thawed and running again after each test (afterEach), whatever happened in it.
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, afterEach, describe, expect, test } from 'vitest'
import { containerIds, waitForDesiredState } from '../helpers/convergence.js'
import { eventually, inCi } from '../helpers/databases.js'
import { faultFixture, HTTP_MANIFEST, PRODUCTION_TIMINGS } from '../helpers/fault-fixture.js'
import { keepOutputOnFailure, waitForLog, type ManagerProcess } from '../helpers/manager-process.js'
import { canControlServices, freezeDockerd, processCpuSeconds, restoreDockerd, startDockerd, stopDockerd, thawDockerd } from '../helpers/services.js'

const fixture = await faultFixture({ instance: 'faults-engine', hostPortRange: '5400-5424', namePrefix: 'fe-' })
const services = await canControlServices()
test.runIf(inCi)('the fault suite can stop and start dockerd in CI', () => {
  expect(services.ok, services.reason).toBe(true)
})

interface Readiness {
  httpStatus: number
  body: { status: string; database: string; docker: string }
}

/** A manager on the test's database, its output kept if the test fails. */
async function startManager(env: Record<string, string>): Promise<ManagerProcess> {
  const manager = await fixture.spawnManager(env)
  keepOutputOnFailure(manager, 'docker-engine')
  await waitForLog(manager, 'controller running', 1, 60_000)
  return manager
}

async function readyz(manager: ManagerProcess): Promise<Readiness> {
  const response = await fetch(`${await manager.apiUrl()}/readyz`, { signal: AbortSignal.timeout(5_000) })
  return { httpStatus: response.status, body: (await response.json()) as Readiness['body'] }
}

async function declareStopped(name: string): Promise<void> {
  await fixture.client.query(`INSERT INTO plugins (forgehook_id, manifest, desired_state) VALUES ($1, $2, 'stopped')`, [name, JSON.stringify(HTTP_MANIFEST)])
}

describe.skipIf(!fixture.ready || !services.ok)('the Docker engine restarted, stopped and frozen under a running manager', () => {
  // Before the fixture's own cleanup, which needs a working engine to remove containers.
  afterEach(restoreDockerd, 120_000)
  afterAll(restoreDockerd, 120_000)

  test('dockerd restarted: the event stream reconnects, a full resync runs, and every plugin is back in its desired state, matching docker inspect', async () => {
    const manager = await startManager(PRODUCTION_TIMINGS)
    await fixture.declarePlugins([
      { name: 'fe-restart-a', manifest: HTTP_MANIFEST },
      { name: 'fe-restart-b', manifest: HTTP_MANIFEST },
    ])
    await declareStopped('fe-restart-off')
    const desired = { 'fe-restart-a': 'running', 'fe-restart-b': 'running', 'fe-restart-off': 'stopped' } as const
    const before = await waitForDesiredState(fixture, desired, 60_000)

    // Live-restore is off: dockerd stops every container on its way down.
    await stopDockerd()
    await startDockerd()

    await waitForLog(manager, 'docker event stream lost', 1, 30_000)
    await waitForLog(manager, 'docker event stream: reconnected', 1, 30_000)
    await waitForLog(manager, 'resync (docker: docker event stream reconnected', 1, 30_000)
    const after = await waitForDesiredState(fixture, desired, 30_000)
    // Started again, not recreated.
    expect(containerIds(after)).toEqual(containerIds(before))
    expect(manager.child.exitCode, 'the manager is still running').toBeNull()
  })

  test('dockerd stopped for 60 s: same manager process, /readyz degraded, low CPU, and a plugin declared meanwhile runs within 10 s of dockerd coming back', async () => {
    const manager = await startManager(PRODUCTION_TIMINGS)
    await fixture.declarePlugins([{ name: 'fe-outage-a', manifest: HTTP_MANIFEST }])
    await waitForDesiredState(fixture, { 'fe-outage-a': 'running' }, 60_000)
    expect(await readyz(manager)).toMatchObject({ httpStatus: 200, body: { status: 'ready', docker: 'ok' } })

    await stopDockerd()
    const outageStart = Date.now()
    const cpuAtStart = await processCpuSeconds(manager.pid)
    const degraded = await eventually(
      async () => {
        const readiness = await readyz(manager)
        return readiness.body.docker === 'unreachable' ? readiness : undefined
      },
      20_000,
      '/readyz to report Docker unreachable',
    )
    expect(degraded).toMatchObject({ httpStatus: 503, body: { status: 'degraded', database: 'ok', docker: 'unreachable' } })
    await fixture.declarePlugins([{ name: 'fe-outage-new', manifest: HTTP_MANIFEST }])
    await sleep(60_000 - (Date.now() - outageStart))

    const outageSeconds = (Date.now() - outageStart) / 1000
    const cpuShare = ((await processCpuSeconds(manager.pid)) - cpuAtStart) / outageSeconds
    expect(manager.child.exitCode, 'the manager is still running').toBeNull()
    expect(await readyz(manager)).toMatchObject({ httpStatus: 503, body: { status: 'degraded', docker: 'unreachable' } })
    expect(cpuShare, 'average share of one core used during the outage').toBeLessThan(0.1)

    await startDockerd()
    const backAt = Date.now()
    await waitForDesiredState(fixture, { 'fe-outage-a': 'running', 'fe-outage-new': 'running' }, 10_000)
    const convergedAfterMs = Date.now() - backAt
    expect(convergedAfterMs).toBeLessThanOrEqual(10_000)
    await eventually(async () => ((await readyz(manager)).httpStatus === 200 ? true : undefined), 10_000, '/readyz to report ready again')
  })

  test('dockerd frozen for 30 s: Docker calls time out, the API keeps answering, and a plugin declared during the freeze converges after the thaw', async () => {
    const manager = await startManager({ ...PRODUCTION_TIMINGS, DOCKER_TIMEOUT: '5' })
    const base = await manager.apiUrl()
    await fixture.declarePlugins([{ name: 'fe-freeze-a', manifest: HTTP_MANIFEST }])
    const before = await waitForDesiredState(fixture, { 'fe-freeze-a': 'running' }, 60_000)
    const outputBefore = manager.output().length

    await freezeDockerd()
    const frozenAt = Date.now()
    const apiAnswerMs: number[] = []
    const dockerReadiness = new Set<string>()
    try {
      await fixture.declarePlugins([{ name: 'fe-freeze-new', manifest: HTTP_MANIFEST }])
      // A user looks at the plugin and at /readyz every 2 s throughout the freeze.
      while (Date.now() - frozenAt < 30_000) {
        const asked = Date.now()
        const response = await fetch(`${base}/api/v1/plugins/fe-freeze-new`, { signal: AbortSignal.timeout(5_000) })
        expect(response.status).toBe(200)
        apiAnswerMs.push(Date.now() - asked)
        dockerReadiness.add((await readyz(manager)).body.docker)
        await sleep(2_000)
      }
    } finally {
      await thawDockerd()
    }
    // Each attempt to create the new plugin's container gave up after DOCKER_TIMEOUT (5 s)
    // and was retried: no worker waited on the frozen engine for the whole freeze.
    const timeouts = manager.output().slice(outputBefore).match(/reconcile of [0-9a-f-]+ failed: Docker engine at \S+ did not answer \(create forgehook-fe-freeze-new\)/g) ?? []
    expect(timeouts.length, 'timed-out create attempts logged during the freeze').toBeGreaterThanOrEqual(2)
    expect(Math.max(...apiAnswerMs), 'slowest API answer during the freeze (ms)').toBeLessThan(2_000)
    expect(dockerReadiness, '/readyz said Docker was unreachable during the freeze').toContain('unreachable')

    const after = await waitForDesiredState(fixture, { 'fe-freeze-a': 'running', 'fe-freeze-new': 'running' }, 30_000)
    expect(containerIds(after)['fe-freeze-a']).toBe(containerIds(before)['fe-freeze-a'])
    expect(manager.child.exitCode, 'the manager is still running').toBeNull()
  })
})
