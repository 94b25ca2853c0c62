// Case 10 of the fault suite: two managers on one database, the leader SIGKILLed in the middle
// of an apply. The follower takes over well within Kubernetes' 15 s lease, finishes the apply,
// and at no moment are there two containers for one plugin.
import { expect, test } from 'vitest'
import { LABELS } from '../../src/runtime/container-runtime.js'
import { eventually } from '../helpers/databases.js'
import { docker } from '../helpers/docker.js'
import { waitForDesiredState } from '../helpers/convergence.js'
import { faultFixture, HTTP_MANIFEST } from '../helpers/fault-fixture.js'
import { waitForLog, type ManagerProcess } from '../helpers/manager-process.js'

const INSTANCE = 'faults-leader'
const fixture = await faultFixture({ instance: INSTANCE, hostPortRange: '5500-5549', namePrefix: 'fl-' })
const PLUGINS = Array.from({ length: 10 }, (_, index) => ({ name: `fl-${index}`, manifest: HTTP_MANIFEST }))

interface Readiness {
  role: string
  manager: string
  leader: string | null
}

async function readiness(manager: ManagerProcess): Promise<Readiness> {
  const response = await fetch(`${await manager.apiUrl()}/readyz`)
  return (await response.json()) as Readiness
}

/** Plugin id label → how many containers carry it, over every container of this instance. */
async function containersPerPlugin(): Promise<Map<string, number>> {
  const lines = (await docker('ps', '-a', '--filter', `label=${LABELS.instance}=${INSTANCE}`, '--format', `{{.Label "${LABELS.pluginId}"}}`))
    .split('\n')
    .filter(Boolean)
  const counts = new Map<string, number>()
  for (const pluginId of lines) counts.set(pluginId, (counts.get(pluginId) ?? 0) + 1)
  return counts
}

test.runIf(fixture.ready)(
  'two managers, leader SIGKILLed mid-apply: the other leads within 15 s, all 10 plugins run, never two containers for one plugin; a restart asked of a follower is done by the leader',
  async () => {
    const first = await fixture.spawnManager({ MANAGER_ID: 'm1' })
    await waitForLog(first, 'leading: this manager (m1)')
    await waitForLog(first, 'controller running')
    const second = await fixture.spawnManager({ MANAGER_ID: 'm2' })
    await waitForLog(second, 'following: m1 leads')
    expect(await readiness(second)).toMatchObject({ role: 'follower', manager: 'm2', leader: 'm1' })
    expect(await readiness(first)).toMatchObject({ role: 'leader', manager: 'm1', leader: 'm1' })

    // Watch for duplicates the whole time, not only at the end.
    let worst = 0
    let watching = true
    const watcher = (async () => {
      while (watching) {
        for (const count of (await containersPerPlugin()).values()) worst = Math.max(worst, count)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    })()

    try {
      await fixture.declarePlugins(PLUGINS)
      await eventually(async () => ((await containersPerPlugin()).size > 0 ? true : undefined), 30_000, 'the first container')
      const killedAt = Date.now()
      await fixture.killManager(first)

      await waitForLog(second, 'leading: this manager (m2)', 1, 15_000)
      const takeoverMs = Date.now() - killedAt
      expect(takeoverMs).toBeLessThan(15_000)

      // All ten running under the new leader, each row matching docker inspect (id, state, port).
      const converged = await waitForDesiredState(fixture, Object.fromEntries(PLUGINS.map((plugin) => [plugin.name, 'running'])), 60_000)
      expect(await fixture.ourContainers()).toHaveLength(PLUGINS.length)
      for (const { row, container } of converged) expect(container.name).toBe(`forgehook-${row.forgehook_id}`)
    } finally {
      watching = false
      await watcher
    }
    expect(worst).toBe(1)

    // The old leader comes back as a follower of the new one.
    const again = await fixture.spawnManager({ MANAGER_ID: 'm1' })
    await waitForLog(again, 'following: m2 leads')
    expect(await readiness(again)).toMatchObject({ role: 'follower', leader: 'm2' })
    const metrics = await (await fetch(`${await second.apiUrl()}/metrics`)).text()
    expect(metrics).toContain('flowforge_leader{manager="m2",leader="m2"} 1')

    // A restart asked of the follower is carried out by the leader: same container, new start.
    const target = (await fixture.ourContainers()).find((container) => container.name === 'forgehook-fl-0')!
    const restart = await fetch(`${await again.apiUrl()}/api/v1/plugins/fl-0/restart`, { method: 'POST' })
    expect(restart.status).toBe(202)
    await eventually(
      async () => {
        const now = await fixture.inspect(target.id)
        return now?.state === 'running' && now.startedAt !== target.startedAt ? true : undefined
      },
      30_000,
      'fl-0 restarted by the leader',
    )
    // The audit event is written once the restart's reconcile ends, just after the start.
    await eventually(async () => ((await fixture.eventTypes('fl-0')).includes('plugin:restarted') ? true : undefined), 10_000, 'the plugin:restarted event')
  },
)
