// Plugins as Swarm services on a real 3-node swarm (test/helpers/swarm-cluster.ts): the
// daemon with RUNTIME=swarm against the manager node, host-mode ports and DNS round robin
// (this kernel has no IPVS for the routing mesh or virtual IPs), images from the cluster's
// registry. What Swarm does (placement, restarts, rescheduling, rollback) is Swarm's; what is
// tested is that the manager asks for it once and records what happened.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import type { Plugin } from '../../src/db/plugin-store.js'
import { startDaemon, type Daemon } from '../../src/main.js'
import { createServerDatabase, eventually, inCi, postgresUrl } from '../helpers/databases.js'
import { captureLogs } from '../helpers/log-capture.js'
import { probeSwarmTools, requireSwarmInCi, startSwarmCluster, type SwarmCluster } from '../helpers/swarm-cluster.js'

const tools = await probeSwarmTools()
requireSwarmInCi(tools)

const INSTANCE = 'it-swarm'

interface ServiceInspect {
  ID: string
  Version: { Index: number }
  UpdatedAt: string
  Spec: { Mode: { Replicated: { Replicas: number } }; Labels: Record<string, string>; TaskTemplate: { ContainerSpec: { Image: string } } }
  UpdateStatus?: { State: string; Message?: string }
}

describe.skipIf(!tools.available)('plugins as services on a 3-node swarm', () => {
  let cluster: SwarmCluster
  let daemon: Daemon | undefined
  let dataDir: string
  const logs = captureLogs('debug')

  async function startManager(dataDirectory = dataDir): Promise<Daemon> {
    const started = await startDaemon({ ...managerConfig(), database: { kind: 'embedded', dataDir: dataDirectory, sqlPort: 0 } }, logs.logger)
    await started.ready
    return started
  }

  function managerConfig(extra: Record<string, string> = {}) {
    return loadConfig({
      PORT: '0',
      SPECS_DIR: '/nonexistent-swarm-specs',
      MANAGER_INSTANCE: INSTANCE,
      RUNTIME: 'swarm',
      DOCKER_HOST: cluster.managerHost,
      SWARM_PUBLISH_MODE: 'host',
      SWARM_ENDPOINT_MODE: 'dnsrr',
      SWARM_POLL_INTERVAL: '1',
      SWARM_RESTART_DELAY: '1',
      HOST_PORT_RANGE: '4960-4989',
      STOP_TIMEOUT: '2',
      ...extra,
    })
  }

  async function inspect(name: string): Promise<ServiceInspect | undefined> {
    try {
      return (JSON.parse(await cluster.docker(0, 'service', 'inspect', `forgehook-${name}`)) as ServiceInspect[])[0]
    } catch {
      return undefined
    }
  }

  /** Swarm writes an update's progress into the service (its version moves): wait until none is under way. */
  async function settled(names: string[]): Promise<ServiceInspect[]> {
    return eventually(async () => {
      const services = await Promise.all(names.map(inspect))
      return services.every((service) => service && !/^(updating|rollback_started)$/.test(service.UpdateStatus?.State ?? '')) ? (services as ServiceInspect[]) : undefined
    }, 150_000, `no update under way on ${names.join(', ')}`)
  }

  async function taskNodes(name: string): Promise<string[]> {
    const out = await cluster.docker(0, 'service', 'ps', '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}', `forgehook-${name}`)
    return out
      .split('\n')
      .filter((line) => line.includes('Running'))
      .map((line) => line.split(' ')[0]!)
      .sort()
  }

  async function row(name: string): Promise<Plugin> {
    const found = await daemon!.store.getPlugin(name)
    if (!found) throw new Error(`no plugin ${name}`)
    return found
  }

  async function until(name: string, check: (plugin: Plugin) => boolean, what: string, timeoutMs = 60_000): Promise<Plugin> {
    try {
      return await eventually(async () => {
        const plugin = await row(name)
        return check(plugin) ? plugin : undefined
      }, timeoutMs, `${name}: ${what}`)
    } catch (error) {
      // What the row and the service last said, for the post-mortem.
      const last = await daemon?.store.getPlugin(name)
      const service = await inspect(name)
      const seen = last && { source: last.source, status: last.status, error: last.error, generation: last.generation, observedGeneration: last.observedGeneration, replicas: `${last.replicasRunning}/${last.replicasDesired}`, rollout: last.rollout }
      throw new Error(`${(error as Error).message}; the row: ${JSON.stringify(seen)}; the service: ${JSON.stringify(service && { version: service.Version.Index, updateStatus: service.UpdateStatus, specHash: service.Spec.Labels['io.flowforge.spec-hash'] })}`)
    }
  }

  async function eventTypes(name: string): Promise<{ type: string; data: Record<string, unknown> }[]> {
    const page = await daemon!.store.listEvents({ forgehookId: name, order: 'asc', limit: 1000 })
    return page.items.map((event) => ({ type: event.type, data: event.data as Record<string, unknown> }))
  }

  function manifest(image: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { name: 'Swarm test', image: cluster.imageRef(image), port: 8080, ...extra }
  }

  beforeAll(async () => {
    cluster = await startSwarmCluster({ nodes: 3 })
    dataDir = join(cluster.dir, 'manager-data')
    writeFileSync(join(cluster.dir, 'marker'), 'swarm plugins test')
    daemon = await startManager()
  }, 300_000)

  afterAll(async () => {
    // The daemon's log, for a failure's post-mortem (CI keeps test-results/).
    writeFileSync(join(process.cwd(), 'test-results', 'swarm-daemon.log'), logs.lines.map((line) => JSON.stringify(line)).join('\n'))
    await daemon?.stop()
    await cluster?.stop()
  }, 180_000)

  test('replicas: 3 on 3 nodes: 3 tasks on 3 nodes, 3/3 in the status, one row per task in SQL and the drift report empty', async () => {
    await daemon!.store.createPlugin({ forgehookId: 'web', source: 'api', manifest: manifest('flowforge-test/http:1'), replicas: 3 } as Parameters<Daemon['store']['createPlugin']>[0])
    const running = await until('web', (plugin) => plugin.replicasRunning === 3 && plugin.status === 'running', '3/3 running', 120_000)
    expect(running.replicasDesired).toBe(3)
    expect(await taskNodes('web')).toEqual(cluster.nodes.map((node) => node.name).sort())
    const tasks = await daemon!.store.tasks.listTasks(running.id)
    expect(tasks.filter((task) => task.state === 'running').map((task) => task.nodeName).sort()).toEqual(cluster.nodes.map((node) => node.name).sort())
    // Each task answers on its own node's address.
    for (const node of cluster.nodes) {
      const answer = await fetch(`http://${node.ip}:${running.hostPort}/health`, { signal: AbortSignal.timeout(5_000) })
      expect(answer.status).toBe(200)
    }
    const drift = await sql<{ forgehook_id: string }>`SELECT forgehook_id FROM plugin_replicas WHERE running < desired`.execute(daemon!.database.db)
    expect(drift.rows).toEqual([])
    const types = (await eventTypes('web')).map((event) => event.type)
    expect(types.filter((type) => type === 'plugin:installed')).toHaveLength(1)
  })

  test('scale to 1 and back: one service update each, the status follows', async () => {
    const before = (await inspect('web'))!
    await daemon!.store.updateSpec('web', { replicas: 1 } as Parameters<Daemon['store']['updateSpec']>[1])
    await until('web', (plugin) => plugin.replicasDesired === 1 && plugin.replicasRunning === 1, '1/1')
    const scaledDown = (await inspect('web'))!
    expect(scaledDown.Spec.Mode.Replicated.Replicas).toBe(1)
    expect(scaledDown.ID).toBe(before.ID)
    await daemon!.store.updateSpec('web', { replicas: 3 } as Parameters<Daemon['store']['updateSpec']>[1])
    await until('web', (plugin) => plugin.replicasDesired === 3 && plugin.replicasRunning === 3, '3/3 again', 120_000)
    const updates = (await eventTypes('web')).filter((event) => event.type === 'plugin:updated')
    expect(updates.map((event) => event.data.replicas)).toEqual([1, 3])
    expect(logs.messages().filter((message) => message === 'updated service forgehook-web')).toHaveLength(2)
  })

  test('a restart through the API replaces every task once, with no spec change', async () => {
    const before = (await inspect('web'))!
    const oldTasks = (await daemon!.store.tasks.listTasks((await row('web')).id)).filter((task) => task.state === 'running').map((task) => task.taskId)
    expect(oldTasks).toHaveLength(3)
    const answer = await fetch(`http://${daemon!.apiAddress.host}:${daemon!.apiAddress.port}/api/v1/plugins/web/restart`, { method: 'POST' })
    expect(answer.status).toBeLessThan(300)
    await eventually(async () => {
      const running = (await daemon!.store.tasks.listTasks((await row('web')).id)).filter((task) => task.state === 'running' && task.desiredState === 'running')
      return running.length === 3 && running.every((task) => !oldTasks.includes(task.taskId)) ? running : undefined
    }, 120_000, 'three new tasks')
    const after = (await inspect('web'))!
    expect(after.Spec.Labels['io.flowforge.spec-hash']).toBe(before.Spec.Labels['io.flowforge.spec-hash'])
    expect((await eventTypes('web')).filter((event) => event.type === 'plugin:restarted')).toHaveLength(1)
    await until('web', (plugin) => plugin.replicasRunning === 3 && plugin.status === 'running', '3/3 after the restart')
  })

  test('the proxy reaches the tasks on their nodes, and a task that is gone is passed over', async () => {
    const api = `http://${daemon!.apiAddress.host}:${daemon!.apiAddress.port}`
    for (let i = 0; i < 3; i++) expect((await fetch(`${api}/plugins/web/health`)).status).toBe(200)
    const plugin = await until('web', (current) => current.replicasRunning === 3, '3/3')
    const victim = (await daemon!.store.tasks.listTasks(plugin.id)).find((task) => task.state === 'running' && task.containerId !== null)!
    const nodeIndex = cluster.nodes.findIndex((node) => node.name === victim.nodeName)
    // Its container gone on its node, before the manager has seen it: the rows still list it.
    await cluster.docker(nodeIndex, 'rm', '-f', victim.containerId!)
    const statuses = []
    for (let i = 0; i < 6; i++) statuses.push((await fetch(`${api}/plugins/web/health`)).status)
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200])
    await until('web', (current) => current.replicasRunning === 3, '3/3 again after Swarm replaced the task', 60_000)
  })

  test('a drained node: its task moves to the free node, and the status and the audit trail say so', async () => {
    await daemon!.store.createPlugin({ forgehookId: 'drainme', source: 'api', manifest: manifest('flowforge-test/http:1'), replicas: 2 } as Parameters<Daemon['store']['createPlugin']>[0])
    await until('drainme', (plugin) => plugin.replicasRunning === 2, '2/2', 120_000)
    const nodes = await taskNodes('drainme')
    const drainedIndex = cluster.nodes.findIndex((node) => node.name === nodes[0])
    const free = cluster.nodes.find((node) => !nodes.includes(node.name))!
    await cluster.drain(drainedIndex)
    try {
      await eventually(async () => {
        const now = await taskNodes('drainme')
        return now.length === 2 && now.includes(free.name) ? now : undefined
      }, 60_000, 'the task moved to the free node')
      await until('drainme', (plugin) => plugin.replicasRunning === 2, '2/2 after the drain')
      const moved = await eventually(async () => (await eventTypes('drainme')).find((event) => event.type === 'plugin:task-rescheduled'), 30_000, 'a task-rescheduled event')
      expect(moved.data).toMatchObject({ fromNode: cluster.nodes[drainedIndex]!.name, toNode: free.name, reason: `node ${cluster.nodes[drainedIndex]!.name} is drained` })
    } finally {
      await cluster.activate(drainedIndex)
    }
  })

  test('kill -9 of a worker\'s dockerd: seen down, its task rescheduled, never more running than there are', async () => {
    const plugin = await row('drainme')
    const nodes = await taskNodes('drainme')
    const victimIndex = cluster.nodes.findIndex((node, index) => index > 0 && nodes.includes(node.name))
    expect(victimIndex).toBeGreaterThan(0)
    const victim = cluster.nodes[victimIndex]!
    await cluster.killNode(victimIndex)
    try {
      await cluster.waitForNodeState(victimIndex, 'down', 60_000)
      // The lost task stops counting at once; then Swarm places it elsewhere.
      const down = await eventually(async () => (await eventTypes('drainme')).find((event) => event.type === 'plugin:node-down' && event.data.node === victim.name), 30_000, 'a node-down event')
      expect(down.data.state).toBe('down')
      await until('drainme', (current) => current.replicasRunning === 2 && current.status === 'running', '2/2 on the other nodes', 90_000)
      const tasks = await daemon!.store.tasks.listTasks(plugin.id)
      const runningNodes = tasks.filter((task) => task.state === 'running' && task.nodeState === 'ready').map((task) => task.nodeName)
      expect(runningNodes).not.toContain(victim.name)
      expect(runningNodes).toHaveLength(2)
      const rescheduled = (await eventTypes('drainme')).filter((event) => event.type === 'plugin:task-rescheduled' && event.data.fromNode === victim.name)
      expect(rescheduled[0]?.data.reason).toBe(`node ${victim.name} is down`)
    } finally {
      await cluster.restartNode(victimIndex)
    }
  })

  test('the manager stopped and started again: no service created, updated or removed', async () => {
    const before = await settled(['web', 'drainme'])
    const logged = logs.lines.length
    await daemon!.stop()
    daemon = undefined
    daemon = await startManager()
    // A few polls and a resync's worth of reconciles.
    await new Promise((resolve) => setTimeout(resolve, 4_000))
    const after = await Promise.all(['web', 'drainme'].map(inspect))
    expect(after.map((service) => [service!.ID, service!.Version.Index, service!.UpdatedAt])).toEqual(before.map((service) => [service!.ID, service!.Version.Index, service!.UpdatedAt]))
    expect(logs.messages().slice(logged).filter((message) => /^(created|updated|removed) service/.test(message))).toEqual([])
  })

  test('the database lost (a manager on an empty one): every service is adopted with its replicas, placement and update config, and none is updated', async () => {
    await daemon!.store.createPlugin({
      forgehookId: 'placed',
      source: 'api',
      manifest: manifest('flowforge-test/http:1'),
      replicas: 2,
      placement: { constraints: ['node.role==worker'], maxReplicasPerNode: 1 },
      updatePolicy: { strategy: 'StartFirst', healthyTimeoutSeconds: 9 },
    } as Parameters<Daemon['store']['createPlugin']>[0])
    await until('placed', (plugin) => plugin.replicasRunning === 2, '2/2 on the workers', 120_000)
    expect(await taskNodes('placed')).toEqual(cluster.nodes.slice(1).map((node) => node.name).sort())
    const names = ['web', 'drainme', 'placed']
    const declared = await Promise.all(names.map(async (name) => {
      const { replicas, placement, updatePolicy, hostPort } = await row(name)
      return { replicas, placement, updatePolicy, hostPort }
    }))
    const before = await settled(names)
    await daemon!.stop()
    daemon = undefined
    const logged = logs.lines.length
    daemon = await startManager(join(cluster.dir, 'manager-data-empty'))
    for (const name of names) await until(name, (plugin) => plugin.source === 'adopted' && plugin.observedGeneration === plugin.generation, 'adopted and reconciled', 120_000)
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const adopted = await Promise.all(names.map(async (name) => {
      const { replicas, placement, updatePolicy, hostPort } = await row(name)
      return { replicas, placement, updatePolicy, hostPort }
    }))
    expect(adopted).toEqual(declared)
    const after = await Promise.all(names.map(inspect))
    expect(after.map((service) => [service!.ID, service!.Version.Index, service!.UpdatedAt])).toEqual(before.map((service) => [service!.ID, service!.Version.Index, service!.UpdatedAt]))
    expect(logs.messages().slice(logged).filter((message) => /^(created|updated|removed) service/.test(message))).toEqual([])
    await until('placed', (plugin) => plugin.replicasRunning === 2 && plugin.status === 'running', '2/2 in the new database')
  })

  test('a spec change is exactly one service update; a broken image with start-first is rolled back by Swarm, and the status says so and why', async () => {
    await daemon!.store.createPlugin({
      forgehookId: 'rollme',
      source: 'api',
      manifest: manifest('flowforge-test/http:1'),
      updatePolicy: { strategy: 'StartFirst', healthyTimeoutSeconds: 5 },
    } as Parameters<Daemon['store']['createPlugin']>[0])
    const first = await until('rollme', (plugin) => plugin.replicasRunning === 1 && plugin.observedGeneration === plugin.generation, '1/1', 120_000)
    const before = (await inspect('rollme'))!

    await daemon!.store.updateSpec('rollme', { environment: { VERSION: '2' } })
    await until('rollme', (plugin) => plugin.generation > first.generation && plugin.observedGeneration === plugin.generation && plugin.replicasRunning === 1, 'the env change rolled out', 120_000)
    const changed = (await inspect('rollme'))!
    expect(changed.ID).toBe(before.ID)
    expect(changed.UpdatedAt).not.toBe(before.UpdatedAt)
    expect((await eventTypes('rollme')).filter((event) => event.type === 'plugin:updated')).toHaveLength(1)

    await daemon!.store.updateSpec('rollme', { manifest: manifest('flowforge-test/crash:1') })
    const rolledBack = await until('rollme', (plugin) => plugin.rollout?.phase === 'rolled-back', 'rolled back by Swarm', 180_000)
    expect(rolledBack.error).toMatch(/Swarm rolled the update back/)
    const service = (await inspect('rollme'))!
    expect(service.Spec.TaskTemplate.ContainerSpec.Image).toBe(cluster.imageRef('flowforge-test/http:1'))
    expect(service.UpdateStatus?.State).toMatch(/^rollback_/)
    await until('rollme', (plugin) => plugin.replicasRunning === 1 && plugin.status === 'running', 'the old spec serves', 60_000)
    const events = await eventTypes('rollme')
    expect(events.filter((event) => event.type === 'plugin:rolled-back')).toHaveLength(1)
    // Held: the rolled-back spec is not sent again.
    const held = (await inspect('rollme'))!.Version.Index
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect((await inspect('rollme'))!.Version.Index).toBe(held)
  })

  test('logs through the API are the service\'s: every task\'s lines, on whichever node it runs, the tail and then followed', async () => {
    const script = 'echo "up on $(hostname)"; i=0; while true; do i=$((i+1)); echo "tick $i on $(hostname)"; sleep 1; done'
    await daemon!.store.createPlugin({ forgehookId: 'talker', source: 'api', manifest: manifest('flowforge-test/http:1', { command: ['/bin/sh', '-c', script] }), replicas: 2 } as Parameters<Daemon['store']['createPlugin']>[0])
    const plugin = await until('talker', (current) => current.replicasRunning === 2, '2/2', 120_000)
    const tasks = (await daemon!.store.tasks.listTasks(plugin.id)).filter((task) => task.state === 'running')
    // A task's hostname is its container's short id; the two run on two nodes, at most one of them the manager.
    const hostnames = tasks.map((task) => task.containerId!.slice(0, 12)).sort()
    expect(new Set(tasks.map((task) => task.nodeName)).size).toBe(2)
    const api = `http://${daemon!.apiAddress.host}:${daemon!.apiAddress.port}/api/v1/plugins/talker/logs`
    const text = await eventually(async () => {
      const answer = await fetch(`${api}?tail=100`)
      expect(answer.status).toBe(200)
      const body = await answer.text()
      return hostnames.every((hostname) => body.includes(`up on ${hostname}`)) ? body : undefined
    }, 30_000, 'both tasks\' first lines in the logs')
    expect(text).toMatch(/tick \d+ on /)

    const following = new AbortController()
    const stream = await fetch(`${api}?follow=true&tail=0`, { signal: following.signal })
    expect(stream.status).toBe(200)
    const seen = new Set<string>()
    const reader = stream.body!.getReader()
    const decoder = new TextDecoder()
    try {
      const deadline = Date.now() + 30_000
      while (seen.size < hostnames.length && Date.now() < deadline) {
        const { value, done } = await reader.read()
        if (done) break
        for (const match of decoder.decode(value, { stream: true }).matchAll(/tick \d+ on (\w+)/g)) seen.add(match[1]!)
      }
    } finally {
      following.abort()
    }
    expect([...seen].sort()).toEqual(hostnames)
    await daemon!.store.requestDeletion('talker')
    await eventually(async () => ((await inspect('talker')) === undefined ? true : undefined), 60_000, 'talker removed')
  })

  test('uninstall removes the service and the row', async () => {
    await daemon!.store.requestDeletion('rollme')
    await eventually(async () => ((await daemon!.store.getPlugin('rollme')) === undefined ? true : undefined), 60_000, 'the row deleted')
    await eventually(async () => ((await inspect('rollme')) === undefined ? true : undefined), 30_000, 'the service removed')
  })

  test.runIf(Boolean(postgresUrl) || inCi)('two managers on one Postgres database: one leads, the follower serves the API (logs too), takes over when the leader stops, and no service is made twice', async () => {
    await daemon!.stop()
    daemon = undefined
    const database = await createServerDatabase()
    const managers: Daemon[] = []
    const start = async (managerId: string) => {
      const started = await startDaemon({ ...managerConfig({ MANAGER_ID: managerId }), database: { kind: 'postgres', connectionString: database.connectionString } }, logs.logger)
      managers.push(started)
      await started.ready
      return started
    }
    try {
      const first = await start('m1')
      expect(first.leadership().role).toBe('leader')
      const second = await start('m2')
      expect(second.leadership()).toMatchObject({ role: 'follower', leader: 'm1' })
      // The leader adopted what the embedded manager left (its rows are in the other database).
      const names = ['web', 'drainme', 'placed']
      for (const name of names) {
        await eventually(async () => ((await second.store.getPlugin(name))?.source === 'adopted' ? true : undefined), 60_000, `${name} adopted by m1`)
      }
      const ids = await Promise.all(names.map(async (name) => (await inspect(name))!.ID))

      // Declared through the follower's API; the leader makes it.
      const api = (manager: Daemon) => `http://${manager.apiAddress.host}:${manager.apiAddress.port}/api/v1`
      const put = await fetch(`${api(second)}/plugins/ha`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name: 'ha' }, spec: { manifest: manifest('flowforge-test/http:1'), replicas: 2 } }),
      })
      expect(put.status, await put.clone().text()).toBeLessThan(300)
      const made = await eventually(async () => {
        const plugin = await second.store.getPlugin('ha')
        return plugin?.replicasRunning === 2 ? plugin : undefined
      }, 120_000, 'ha 2/2 under m1')
      const haId = (await inspect('ha'))!.ID
      // The follower reads the logs through the swarm manager too (its runtime connects at the first read).
      expect((await fetch(`${api(second)}/plugins/ha/logs?tail=5`)).status).toBe(200)

      await first.stop()
      managers.splice(managers.indexOf(first), 1)
      await eventually(() => (second.leadership().role === 'leader' ? true : undefined), 30_000, 'm2 leading')
      await second.store.updateSpec('ha', { replicas: 3 } as Parameters<Daemon['store']['updateSpec']>[1])
      await eventually(async () => {
        const plugin = await second.store.getPlugin('ha')
        return plugin?.replicasRunning === 3 && plugin.observedGeneration === plugin.generation ? plugin : undefined
      }, 120_000, 'ha 3/3 under m2')
      // The service the first leader made, scaled by the second: one, never made again.
      const serviceNames = (await cluster.docker(0, 'service', 'ls', '--format', '{{.Name}}')).split('\n')
      expect(serviceNames.filter((name) => name === 'forgehook-ha')).toHaveLength(1)
      expect((await inspect('ha'))!.ID).toBe(haId)
      expect(await Promise.all(names.map(async (name) => (await inspect(name))!.ID))).toEqual(ids)
      expect(made.id).toBe((await second.store.getPlugin('ha'))!.id)
      expect(logs.messages().filter((message) => message.startsWith('created service forgehook-ha '))).toHaveLength(1)
    } finally {
      for (const manager of managers) await manager.stop()
      await database.drop()
    }
  })
})
