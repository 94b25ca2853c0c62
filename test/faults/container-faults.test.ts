// Fault injection, cases 4-5 (issue #7): containers changed behind the manager's back, and
// containers that are not ours standing in a plugin's way. What must hold is what an
// operator sees: the plugin rows and audit trail, and `docker inspect`.
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, test } from 'vitest'
import { crashLoopDelayMs } from '../../src/controller/plan.js'
import { LABELS } from '../../src/runtime/container-runtime.js'
import { eventually } from '../helpers/databases.js'
import { docker } from '../helpers/docker.js'
import { watchDockerEvents } from '../helpers/docker-events.js'
import { faultFixture, HTTP_MANIFEST, type InspectedContainer, type PluginRow } from '../helpers/fault-fixture.js'

const INSTANCE = 'faults-docker'
const fixture = await faultFixture({ instance: INSTANCE, hostPortRange: '4950-4999', namePrefix: 'fd-' })

/** The plugin's row once `check` accepts it. */
function rowWhen(name: string, check: (row: PluginRow) => boolean, timeoutMs: number, what: string): Promise<PluginRow> {
  return eventually(async () => {
    const row = await fixture.plugin(name)
    return row && check(row) ? row : undefined
  }, timeoutMs, `${name}: ${what}`)
}

/** The audit trail written since `before` was read. */
async function eventsSince(name: string, before: string[]): Promise<string[]> {
  return (await fixture.eventTypes(name)).slice(before.length)
}

describe.skipIf(!fixture.ready)('containers changed behind the manager’s back', () => {
  test('docker kill of a managed container: its status is in the database within 2 s with one audit event, and it restarts after the backoff; docker rm -f: it is recreated exactly once', async () => {
    // No periodic resync within the test: what it sees, it sees through Docker's events.
    await fixture.startManager({ RESYNC_INTERVAL: '300' })
    await fixture.declarePlugins([
      { name: 'fd-kill', manifest: HTTP_MANIFEST },
      { name: 'fd-rm', manifest: HTTP_MANIFEST },
    ])
    const killed = await rowWhen('fd-kill', (row) => row.status === 'running', 60_000, 'running')
    const removed = await rowWhen('fd-rm', (row) => row.status === 'running', 60_000, 'running')

    // docker kill: a crash the manager did not cause.
    const trailBeforeKill = await fixture.eventTypes('fd-kill')
    const killedAt = Date.now()
    await docker('kill', 'forgehook-fd-kill')
    const crashed = await rowWhen('fd-kill', (row) => row.status === 'error', 10_000, 'status error after docker kill')
    expect(Date.now() - killedAt, 'milliseconds from docker kill to the status in the database').toBeLessThanOrEqual(2_000)
    expect(crashed).toMatchObject({ restart_count: 1, container_id: killed.container_id })
    expect(crashed.error).toMatch(/exited with code 137/)
    await sleep(1_000) // a duplicate (from the kill and die events both) would be written by now
    expect(await eventsSince('fd-kill', trailBeforeKill)).toEqual(['plugin:crashed'])

    const restarted = await rowWhen('fd-kill', (row) => row.status === 'running', crashLoopDelayMs(1) + 10_000, 'running again after the backoff')
    expect(restarted.container_id, 'restarted, not recreated').toBe(killed.container_id)
    const afterRestart = (await fixture.inspect(killed.container_id!))!
    const waitedMs = Date.parse(afterRestart.startedAt) - Date.parse(afterRestart.finishedAt)
    expect(waitedMs, 'milliseconds between the kill and the restart').toBeGreaterThanOrEqual(crashLoopDelayMs(1))
    expect(waitedMs).toBeLessThan(crashLoopDelayMs(1) + 5_000)
    expect(await eventsSince('fd-kill', trailBeforeKill)).toEqual(['plugin:crashed', 'plugin:started'])

    // docker rm -f: the container is gone; exactly one replacement.
    const trailBeforeRemove = await fixture.eventTypes('fd-rm')
    const witness = watchDockerEvents([`label=${LABELS.instance}=${INSTANCE}`, 'container=forgehook-fd-rm', 'event=create'])
    try {
      await docker('rm', '-f', 'forgehook-fd-rm')
      const recreated = await rowWhen('fd-rm', (row) => row.status === 'running' && row.container_id !== removed.container_id, 30_000, 'running in a new container')
      await sleep(3_000) // a second replacement would show by now
      const holders = (await fixture.ourContainers()).filter((container) => container.name === 'forgehook-fd-rm')
      expect(holders.map((container) => [container.id, container.state])).toEqual([[recreated.container_id, 'running']])
      expect(holders[0]!.hostPort).toBe(removed.host_port)
      expect(witness.events()).toHaveLength(1)
      expect(await fixture.plugin('fd-rm')).toEqual(recreated)
      expect(await eventsSince('fd-rm', trailBeforeRemove)).toEqual(['plugin:recovered', 'plugin:started'])
    } finally {
      await witness.stop()
    }
  })

  test('a foreign container holding a plugin’s name and another installation’s container holding its port: both plugins show the conflict, and neither container is touched', async () => {
    const manager = await fixture.startManager()
    // Made while the manager runs: at start-up, unlabelled forgehook-* containers are
    // adopted by design (and only by the default installation; this one is not).
    const nameHolderId = await docker('run', '-d', '--name', 'forgehook-fd-x', 'flowforge-test/http:1')
    // Labelled like ours, for a plugin of the same name, by another installation on the
    // same engine; it publishes the host port that plugin fd-y asks for.
    const portHolderId = await docker(
      'run', '-d', '--name', 'forgehook-fd-elsewhere',
      '--label', `${LABELS.managed}=true`,
      '--label', `${LABELS.instance}=faults-elsewhere`,
      '--label', `${LABELS.forgehookId}=fd-y`,
      '--label', `${LABELS.pluginId}=${randomUUID()}`,
      '-p', '127.0.0.1:4999:8080',
      'flowforge-test/http:1',
    )
    const foreign = async (): Promise<(InspectedContainer | undefined)[]> => [await fixture.inspect(nameHolderId), await fixture.inspect(portHolderId)]
    const foreignBefore = await foreign()
    expect(foreignBefore.map((container) => container?.state)).toEqual(['running', 'running'])

    await fixture.declarePlugins([
      { name: 'fd-x', manifest: HTTP_MANIFEST },
      { name: 'fd-y', manifest: HTTP_MANIFEST, requestedHostPort: 4999 },
    ])
    const conflicts = async (): Promise<void> => {
      const nameTaken = await rowWhen('fd-x', (row) => row.status === 'error', 30_000, 'status error')
      expect(nameTaken.error).toContain('container name forgehook-fd-x is held by a container not managed by FlowForge')
      expect(nameTaken.container_id).not.toBe(nameHolderId)
      const portTaken = await rowWhen('fd-y', (row) => row.status === 'error', 30_000, 'status error')
      expect(portTaken.error).toMatch(/host port 4999 is already in use/)
      expect(portTaken.container_id).not.toBe(portHolderId)
    }
    await conflicts()
    // While the manager keeps looking (a resync every second), and after a kill -9 and a
    // start-up that lists every forgehook-* container.
    await sleep(3_000)
    await fixture.killManager(manager)
    await fixture.startManager()
    await sleep(3_000)
    await conflicts()

    expect(await foreign()).toEqual(foreignBefore)
    expect((await fixture.plugins()).map((row) => row.forgehook_id)).toEqual(['fd-x', 'fd-y'])
    // Reported once, not again at every look.
    expect((await fixture.eventTypes('fd-x')).filter((type) => type === 'plugin:error')).toHaveLength(1)
    expect((await fixture.eventTypes('fd-y')).filter((type) => type === 'plugin:error')).toHaveLength(1)
  })
})
