// Fault injection, cases 8-9 (issue #7): Postgres restarted (idle and while plugins
// converge), stopped for a minute, and only the manager's LISTEN connection cut. What must
// hold is what an operator sees: the same manager process, running containers untouched
// (unreadable desired state is not empty desired state), honest HTTP answers, and changes
// applied promptly once the database is back. The cluster is always running again after
// each test (afterEach). The test's own queries go through a pool, which reconnects after
// a restart, as the fixture's single client cannot.
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest'
import { LISTEN_APPLICATION_NAME } from '../../src/db/postgres.js'
import { containerIds, waitForDesiredState, type Witnesses } from '../helpers/convergence.js'
import { eventually, inCi } from '../helpers/databases.js'
import { faultFixture, HTTP_MANIFEST, PRODUCTION_TIMINGS, SELECT_PLUGIN_ROWS, type InspectedContainer, type PluginRow } from '../helpers/fault-fixture.js'
import { keepOutputOnFailure, waitForLog, type ManagerProcess } from '../helpers/manager-process.js'
import { canControlServices, restartPostgres, restorePostgres, startPostgres, stopPostgres, terminateBackends } from '../helpers/services.js'

const fixture = await faultFixture({ instance: 'faults-db', hostPortRange: '5425-5449', namePrefix: 'fdb-' })
const services = await canControlServices()
test.runIf(inCi)('the fault suite can stop and start Postgres in CI', () => {
  expect(services.ok, services.reason).toBe(true)
})

/** The trigger that sends NOTIFY plugin_changes (migrations/001_create_plugins_table.sql). */
const NOTIFY_TRIGGER = 'plugins_notify_change'
/** What the daemon writes when its output has an error nobody handled. */
const UNHANDLED = /unhandled|uncaught/i

let pool: pg.Pool
const witnesses: Witnesses = {
  plugins: async () => (await pool.query<PluginRow>(`${SELECT_PLUGIN_ROWS} ORDER BY forgehook_id`)).rows,
  inspect: (idOrName) => fixture.inspect(idOrName),
}

async function declare(name: string): Promise<void> {
  await pool.query('INSERT INTO plugins (forgehook_id, manifest) VALUES ($1, $2)', [name, JSON.stringify(HTTP_MANIFEST)])
}

/** Waits until one plugin's row says running and so does `docker inspect` of its container. */
async function runningWithin(name: string, timeoutMs: number): Promise<void> {
  const running = async (): Promise<true | undefined> => {
    const row = (await witnesses.plugins()).find((candidate) => candidate.forgehook_id === name)
    if (row?.status !== 'running' || row.container_id === null) return undefined
    return (await fixture.inspect(row.container_id))?.state === 'running' ? true : undefined
  }
  await eventually(running, timeoutMs, `${name} running, row and docker inspect`)
}

/** A manager on the test's database, its output kept if the test fails. */
async function startManager(env: Record<string, string> = {}): Promise<ManagerProcess> {
  const manager = await fixture.spawnManager({ ...PRODUCTION_TIMINGS, ...env })
  keepOutputOnFailure(manager, 'database')
  await waitForLog(manager, 'controller running', 1, 60_000)
  return manager
}

/** Whether the process is the one started, alive, and never reported an unhandled error. */
function expectSameHealthyProcess(manager: ManagerProcess): void {
  expect(manager.child.exitCode, 'the manager is still running').toBeNull()
  expect(manager.child.signalCode).toBeNull()
  expect(manager.output()).not.toMatch(UNHANDLED)
}

function startTimes(containers: InspectedContainer[]): Record<string, { id: string; state: string; startedAt: string }> {
  return Object.fromEntries(containers.map(({ name, id, state, startedAt }) => [name, { id, state, startedAt }]))
}

function putPlugin(manager: ManagerProcess, name: string): Promise<Response> {
  const document = { apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name }, spec: { manifest: { name, version: '1.0.0', ...HTTP_MANIFEST } } }
  return manager.apiUrl().then((base) =>
    fetch(`${base}/api/v1/plugins/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(document),
      signal: AbortSignal.timeout(15_000),
    }),
  )
}

async function expectRefusedForTheDatabase(response: Response): Promise<void> {
  const body = (await response.json()) as { error?: { code: string; message: string } }
  expect({ status: response.status, code: body.error?.code }).toEqual({ status: 503, code: 'unavailable' })
  expect(body.error?.message).toMatch(/database/)
  expect(response.headers.get('retry-after')).toBe('5')
}

describe.skipIf(!fixture.ready || !services.ok)('Postgres restarted, stopped and cut off under a running manager', () => {
  beforeEach(() => {
    pool = new pg.Pool({ connectionString: fixture.connectionString, max: 2, connectionTimeoutMillis: 5_000 })
    // Idle connections die with every restart; the pool replaces them.
    pool.on('error', () => undefined)
  })
  // Before the fixture's own cleanup, which drops the test's database on this server.
  afterEach(async () => {
    await restorePostgres()
    await pool.end()
  }, 120_000)
  afterAll(restorePostgres, 120_000)

  test('Postgres restarted while idle: same manager process, no unhandled error, LISTEN re-armed, and a plugin declared right after runs within 5 s', async () => {
    const manager = await startManager()
    await declare('fdb-idle-a')
    const before = await waitForDesiredState(witnesses, { 'fdb-idle-a': 'running' }, 60_000)

    await restartPostgres()
    await declare('fdb-idle-b')
    const changedAt = Date.now()
    const after = await waitForDesiredState(witnesses, { 'fdb-idle-a': 'running', 'fdb-idle-b': 'running' }, 5_000)
    expect(Date.now() - changedAt).toBeLessThanOrEqual(5_000)

    await waitForLog(manager, 'listening for plugin changes on Postgres again', 1, 10_000)
    expect(containerIds(after)['fdb-idle-a']).toBe(containerIds(before)['fdb-idle-a'])
    expectSameHealthyProcess(manager)
  })

  test('Postgres restarted while six plugins converge: same manager process, no unhandled error, one container each, and a plugin declared right after runs within 5 s', async () => {
    const names = Array.from({ length: 6 }, (_, index) => `fdb-busy-${index + 1}`)
    const manager = await startManager()
    await pool.query(`INSERT INTO plugins (forgehook_id, manifest) SELECT name, $2 FROM unnest($1::text[]) AS name`, [names, JSON.stringify(HTTP_MANIFEST)])
    await waitForLog(manager, 'reconciling fdb-busy-', 1, 30_000)

    await restartPostgres()
    await declare('fdb-busy-late')
    const changedAt = Date.now()
    await runningWithin('fdb-busy-late', 5_000)
    expect(Date.now() - changedAt).toBeLessThanOrEqual(5_000)
    await waitForDesiredState(witnesses, Object.fromEntries([...names, 'fdb-busy-late'].map((name) => [name, 'running'])), 30_000)

    const containers = await fixture.ourContainers()
    expect(containers.map((container) => container.name).sort()).toEqual([...names, 'fdb-busy-late'].map((name) => `forgehook-${name}`).sort())
    await waitForLog(manager, 'listening for plugin changes on Postgres again', 1, 10_000)
    expectSameHealthyProcess(manager)
  })

  test('Postgres down for 60 s: running containers left alone (same ids, same StartedAt), API writes answer 503 naming the database, /readyz degraded, and a write after recovery is applied', async () => {
    const manager = await startManager()
    await declare('fdb-down-a')
    await declare('fdb-down-b')
    await waitForDesiredState(witnesses, { 'fdb-down-a': 'running', 'fdb-down-b': 'running' }, 60_000)
    const before = startTimes(await fixture.ourContainers())

    await stopPostgres()
    const downAt = Date.now()
    await expectRefusedForTheDatabase(await putPlugin(manager, 'fdb-down-new'))
    const readiness = await fetch(`${await manager.apiUrl()}/readyz`, { signal: AbortSignal.timeout(10_000) })
    expect(readiness.status).toBe(503)
    expect(await readiness.json()).toMatchObject({ status: 'degraded', database: 'unreachable' })

    // Through the whole outage, every 10 s: nothing stopped, restarted or recreated.
    while (Date.now() - downAt < 60_000) {
      await sleep(Math.min(10_000, 60_000 - (Date.now() - downAt)))
      expect(startTimes(await fixture.ourContainers())).toEqual(before)
    }
    // Now on a fresh connection attempt (refused), not one the shutdown ended.
    await expectRefusedForTheDatabase(await putPlugin(manager, 'fdb-down-new'))
    expectSameHealthyProcess(manager)

    await startPostgres()
    // Written once the manager leads again, after its start-up resync: only the LISTEN
    // connection (re-armed after a minute of failed attempts) tells it of this write.
    await waitForLog(manager, 'controller running', 2, 30_000)
    const accepted = await putPlugin(manager, 'fdb-down-new')
    expect(accepted.status).toBe(201)
    const acceptedAt = Date.now()
    await waitForDesiredState(witnesses, { 'fdb-down-a': 'running', 'fdb-down-b': 'running', 'fdb-down-new': 'running' }, 30_000)
    expect(Date.now() - acceptedAt, 'the write after recovery ran within 5 s').toBeLessThanOrEqual(5_000)
    const after = startTimes(await fixture.ourContainers())
    expect({ 'forgehook-fdb-down-a': after['forgehook-fdb-down-a'], 'forgehook-fdb-down-b': after['forgehook-fdb-down-b'] }).toEqual(before)
    await eventually(
      async () => ((await fetch(`${await manager.apiUrl()}/readyz`)).status === 200 ? true : undefined),
      10_000,
      '/readyz to report ready again',
    )
    expectSameHealthyProcess(manager)
  })

  test('only the LISTEN connection killed: noticed, re-armed, a resync logged, and a change that sends no notification converges within one resync interval (5 s)', async () => {
    const manager = await startManager({ RESYNC_INTERVAL: '5' })
    await declare('fdb-listen-a')
    await waitForDesiredState(witnesses, { 'fdb-listen-a': 'running' }, 60_000)

    const database = new URL(fixture.connectionString).pathname.slice(1)
    expect(await terminateBackends(database, LISTEN_APPLICATION_NAME)).toBe(1)
    await waitForLog(manager, 'the Postgres LISTEN connection was lost', 1, 10_000)
    await waitForLog(manager, 'listening for plugin changes on Postgres again', 1, 30_000)
    await waitForLog(manager, 'resync (database: the LISTEN connection was re-established)', 1, 10_000)

    await pool.query(`ALTER TABLE plugins DISABLE TRIGGER ${NOTIFY_TRIGGER}`)
    try {
      await declare('fdb-listen-quiet')
      const changedAt = Date.now()
      await waitForDesiredState(witnesses, { 'fdb-listen-a': 'running', 'fdb-listen-quiet': 'running' }, 15_000)
      // One resync interval, plus the create and start that follow it.
      expect(Date.now() - changedAt).toBeLessThanOrEqual(5_000 + 2_500)
    } finally {
      await pool.query(`ALTER TABLE plugins ENABLE TRIGGER ${NOTIFY_TRIGGER}`)
    }
    expectSameHealthyProcess(manager)
  })
})
