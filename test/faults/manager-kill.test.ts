// Fault injection, cases 1-3 (issue #7): the manager killed with SIGKILL at bad moments and
// started again. What must hold is what an operator sees: the containers `docker inspect`
// shows, the engine's own event log (`docker events`), and the plugin rows.
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, test } from 'vitest'
import { crashLoopDelayMs } from '../../src/controller/plan.js'
import { LABELS } from '../../src/runtime/container-runtime.js'
import { eventually } from '../helpers/databases.js'
import { watchDockerEvents, type DockerEvent } from '../helpers/docker-events.js'
import { CRASH_MANIFEST, faultFixture, HTTP_MANIFEST, type PluginRow } from '../helpers/fault-fixture.js'
import { waitForLog } from '../helpers/manager-process.js'

const INSTANCE = 'faults-kill'
const OUR_CONTAINERS = `label=${LABELS.instance}=${INSTANCE}`
/** What Docker reports when a container is made, started, stopped or removed. */
const LIFECYCLE = new Set(['create', 'start', 'restart', 'kill', 'die', 'stop', 'destroy'])

const fixture = await faultFixture({ instance: INSTANCE, hostPortRange: '4900-4949', namePrefix: 'fk-' })

/** mulberry32: the same kill moments on every run, so a failure can be replayed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

function allRunning(rows: PluginRow[], count: number): PluginRow[] | undefined {
  return rows.length === count && rows.every((row) => row.status === 'running' && row.container_id !== null) ? rows : undefined
}

function lifecycleOf(events: DockerEvent[]): string[] {
  return events.filter((event) => LIFECYCLE.has(event.action)).map((event) => `${event.action} ${event.name}`)
}

describe.skipIf(!fixture.ready)('the manager killed with SIGKILL and started again', () => {
  test('killed right after the first container create of a 10-plugin apply, then restarted: exactly 10 containers, and the rows match docker inspect', async () => {
    const names = Array.from({ length: 10 }, (_, index) => `fk-apply-${String(index + 1).padStart(2, '0')}`)
    const first = await fixture.startManager()
    const witness = watchDockerEvents([OUR_CONTAINERS])
    try {
      await fixture.declarePlugins(names.map((name) => ({ name, manifest: HTTP_MANIFEST })))
      await witness.waitFor((event) => event.action === 'create', 30_000, 'the first container create')
      await fixture.killManager(first)
      const createdBeforeRestart = witness.events().filter((event) => event.action === 'create').length
      expect(createdBeforeRestart, 'the kill came in the middle of the apply').toBeLessThan(names.length)

      await fixture.startManager()
      await eventually(async () => allRunning(await fixture.plugins(), names.length), 60_000, 'ten plugins running')
      // A few periodic resyncs (RESYNC_INTERVAL=1): a late duplicate or replacement shows now.
      await sleep(3_000)

      const rows = await fixture.plugins()
      const containers = await fixture.ourContainers()
      expect(containers.map((container) => container.name).sort()).toEqual(names.map((name) => `forgehook-${name}`))
      const byName = new Map(containers.map((container) => [container.name, container]))
      for (const row of rows) {
        const container = byName.get(`forgehook-${row.forgehook_id}`)
        expect({ plugin: row.forgehook_id, id: container?.id, state: container?.state, hostPort: container?.hostPort }).toEqual({
          plugin: row.forgehook_id,
          id: row.container_id,
          state: row.status,
          hostPort: row.host_port,
        })
      }
      // Every plugin's container was made once (the killed manager's included) and none removed.
      const events = witness.events()
      expect(events.filter((event) => event.action === 'create')).toHaveLength(names.length)
      expect(events.filter((event) => event.action === 'destroy')).toEqual([])
    } finally {
      await witness.stop()
    }
  })

  test('killed with SIGKILL and restarted ten times in steady state: no container is recreated or restarted', async () => {
    const random = seededRandom(7)
    const names = ['fk-steady-a', 'fk-steady-b', 'fk-steady-c', 'fk-steady-d']
    let manager = await fixture.startManager()
    await fixture.declarePlugins(names.map((name) => ({ name, manifest: HTTP_MANIFEST })))
    const rowsBefore = await eventually(async () => allRunning(await fixture.plugins(), names.length), 60_000, 'four plugins running')
    const before = await fixture.ourContainers()
    expect(before).toHaveLength(names.length)

    const witness = watchDockerEvents([OUR_CONTAINERS])
    try {
      for (let round = 0; round < 10; round++) {
        await fixture.killManager(manager)
        manager = await fixture.spawnManager()
        // Half of the kills land while the new manager is still starting (observing Docker,
        // adopting), the other half while it runs.
        if (random() < 0.5) {
          await waitForLog(manager, 'FlowForge plugin manager started', 1, 60_000)
          await sleep(random() * 500)
        } else {
          await waitForLog(manager, 'controller running', 1, 60_000)
          await sleep(random() * 1_000)
        }
      }
      await fixture.killManager(manager)
      const last = await fixture.startManager()
      await sleep(3_000)
      expect(last.child.exitCode, 'the last manager is still running').toBeNull()

      const after = await fixture.ourContainers()
      const summary = (containers: typeof before) =>
        containers.map(({ id, name, state, startedAt, restartCount }) => ({ id, name, state, startedAt, restartCount })).sort((a, b) => a.name.localeCompare(b.name))
      expect(summary(after)).toEqual(summary(before))
      expect(await fixture.plugins()).toEqual(rowsBefore)
      expect(lifecycleOf(witness.events())).toEqual([])
    } finally {
      await witness.stop()
    }
  })

  test('a crash-looping plugin while the manager is killed at random moments: restart_count never goes down, the backoff holds across restarts, no hot loop', async () => {
    const random = seededRandom(20261127)
    const name = 'fk-crash'
    const witness = watchDockerEvents([OUR_CONTAINERS, `container=forgehook-${name}`])
    let manager = await fixture.startManager()
    const windowStart = Date.now()
    await fixture.declarePlugins([{ name, manifest: CRASH_MANIFEST }])

    // The row as it moves, sampled every 100 ms through every kill and restart.
    const samples: { restartCount: number; nextRestartAt: number | null }[] = []
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        const row = await fixture.plugin(name)
        if (row) samples.push({ restartCount: row.restart_count, nextRestartAt: row.next_restart_at?.getTime() ?? null })
        await sleep(100)
      }
    })()
    const starts = () => witness.events().filter((event) => event.action === 'start')

    try {
      for (let kill = 0; kill < 5; kill++) {
        await sleep(4_000 + random() * 8_000)
        await fixture.killManager(manager)
        manager = await fixture.startManager()
      }
      // Starts at about 0, 11, 32 and 73 s (10 s, 20 s, 40 s of backoff after 1 s runs).
      await eventually(() => (starts().length >= 4 ? true : undefined), 150_000, 'the fourth start of the crash-looping container')
      await sleep(1_500) // its crash is recorded too
    } finally {
      sampling = false
      await sampler
      await witness.stop()
    }
    const windowMs = Date.now() - windowStart
    const events = witness.events()
    const startTimes = starts().map((event) => event.timeMs)
    const dies = events.filter((event) => event.action === 'die')

    // One container all along: crashes restart it, they never recreate it.
    expect(events.filter((event) => event.action === 'create')).toHaveLength(1)
    expect(new Set(events.map((event) => event.containerId)).size).toBe(1)

    // restart_count never goes down, and counts exactly the crashes seen so far.
    const counts = samples.map((sample) => sample.restartCount)
    const decreases = counts.flatMap((count, index) => (index > 0 && count < counts[index - 1]! ? [`${counts[index - 1]} → ${count} at sample ${index}`] : []))
    expect(decreases).toEqual([])
    const finalCount = counts.at(-1)!
    expect(finalCount).toBeGreaterThanOrEqual(startTimes.length - 1)
    expect(finalCount).toBeLessThanOrEqual(dies.length)

    // Each crash got one restart time, and no restarted manager moved it.
    const dueByCount = new Map<number, Set<number>>()
    for (const sample of samples) {
      if (sample.nextRestartAt === null) continue
      const due = dueByCount.get(sample.restartCount) ?? new Set<number>()
      dueByCount.set(sample.restartCount, due.add(sample.nextRestartAt))
    }
    expect([...dueByCount].filter(([, due]) => due.size > 1).map(([count, due]) => `restart ${count}: ${[...due].map((ms) => new Date(ms).toISOString()).join(', ')}`)).toEqual([])

    // Restart k came no earlier than its recorded time, and at least the k-th backoff
    // (10 s, 20 s, 40 s ...) after the start before it.
    for (let restart = 1; restart < startTimes.length; restart++) {
      const due = [...(dueByCount.get(restart) ?? [])][0]
      expect(due, `next_restart_at of restart ${restart} was recorded`).toBeDefined()
      expect(startTimes[restart]!, `restart ${restart} waited for next_restart_at`).toBeGreaterThanOrEqual(due!)
      expect(startTimes[restart]! - startTimes[restart - 1]!, `backoff before restart ${restart}`).toBeGreaterThanOrEqual(crashLoopDelayMs(restart))
    }

    // No hot loop: no more starts in the window than the backoff allows (each run lasts 1 s).
    let allowed = 1
    for (let elapsed = crashLoopDelayMs(1) + 1_000; elapsed <= windowMs; elapsed += crashLoopDelayMs(allowed) + 1_000) allowed += 1
    expect(startTimes.length).toBeLessThanOrEqual(allowed)
  })
})
