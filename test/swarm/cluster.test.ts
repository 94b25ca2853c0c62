// The test swarm itself (test/helpers/swarm-cluster.ts): three dockerd nodes in network
// namespaces on one machine, one manager and two workers. What the Swarm runtime's tests
// rely on is proved here: the nodes are Ready, a service spreads one task per node with the
// image from the cluster's registry, host-mode published ports answer at each node's
// address, an attachable overlay network carries traffic between nodes (dnsrr: this kernel
// has no IPVS, so no VIPs and no routing mesh), a drained node's task moves, a node whose
// dockerd is killed is seen Down within Swarm's heartbeat window and its task rescheduled,
// and stop() leaves nothing behind.
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { probeSwarmTools, requireSwarmInCi, startSwarmCluster, swarmLeftovers, type SwarmCluster } from '../helpers/swarm-cluster.js'

const tools = await probeSwarmTools()
requireSwarmInCi(tools)

const IMAGE = 'flowforge-test/http:1'
const WEB_PORT = 18080
const HEARTBEAT = '2s'

interface Task {
  id: string
  nodeId: string
  state: string
}

async function eventually<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    await sleep(200)
  }
  throw new Error(`timed out after ${timeoutMs} ms: ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`)
}

describe.skipIf(!tools.available)(`a ${3}-node Docker Swarm on this machine (${tools.reason})`, () => {
  let cluster: SwarmCluster | undefined

  /** The tasks Swarm wants running, with their node and state. */
  async function tasks(service: string): Promise<Task[]> {
    const c = cluster!
    const ids = (await c.docker(0, 'service', 'ps', '-q', '--filter', 'desired-state=running', service)).split('\n').filter(Boolean)
    if (ids.length === 0) return []
    const lines = (await c.docker(0, 'inspect', '--format', '{{.ID}} {{.NodeID}} {{.Status.State}}', ...ids)).split('\n')
    return lines.map((line) => {
      const [id = '', nodeId = '', state = ''] = line.split(' ')
      return { id, nodeId, state }
    })
  }

  /** Waits until `count` tasks of the service run on distinct nodes; returns their node ids. */
  async function runningOnDistinctNodes(service: string, count: number, timeoutMs = 60_000): Promise<string[]> {
    return eventually(`${count} tasks of ${service} running on ${count} nodes`, timeoutMs, async () => {
      const all = await tasks(service)
      const running = all.filter((task) => task.state === 'running')
      const nodes = new Set(running.map((task) => task.nodeId))
      return all.length === count && running.length === count && nodes.size === count ? [...nodes] : undefined
    })
  }

  function nodeIndex(nodeId: string): number {
    const index = cluster!.nodes.findIndex((node) => node.nodeId === nodeId)
    expect(index, `node ${nodeId} is one of the cluster's`).toBeGreaterThanOrEqual(0)
    return index
  }

  beforeAll(async () => {
    cluster = await startSwarmCluster({ nodes: 3, images: [IMAGE], dispatcherHeartbeat: HEARTBEAT })
    console.log(`test swarm ${cluster.prefix} started in ${cluster.timings.startMs} ms ${JSON.stringify(cluster.timings.phases)}`)
  }, 180_000)

  afterAll(async () => {
    // Also after a failed test or a failed start: everything goes (stop() is safe twice).
    await cluster?.stop()
  }, 120_000)

  test('three nodes, Ready and Active, one manager and two workers with their own names, addresses and engines', async () => {
    const c = cluster!
    expect(c.nodes).toHaveLength(3)
    expect(c.managerHost).toBe(c.nodes[0]!.dockerHost)
    expect(c.managerHost).toMatch(/^unix:\/\/\//)
    expect(c.registry).toBe(`${c.bridgeIp}:5000`)
    const lines = (await c.docker(0, 'node', 'ls', '--format', '{{.ID}} {{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}')).split('\n').sort()
    const expected = c.nodes.map((node) => `${node.nodeId} ${node.name} Ready Active${node.role === 'manager' ? ' Leader' : ''}`.trim()).sort()
    expect(lines.map((line) => line.trim())).toEqual(expected)
    expect(c.nodes.map((node) => node.role)).toEqual(['manager', 'worker', 'worker'])
    expect(new Set(c.nodes.map((node) => node.ip)).size).toBe(3)
    expect(new Set(c.nodes.map((node) => node.name)).size).toBe(3)
    // Each node answers on its own socket with its own engine, and knows its own node id.
    for (const [i, node] of c.nodes.entries()) {
      expect(await c.docker(i, 'info', '--format', '{{.Name}} {{.Swarm.NodeID}} {{.Swarm.NodeAddr}}')).toBe(`${node.name} ${node.nodeId} ${node.ip}`)
    }
    // No default route in a node's namespace: nothing can leave the machine.
    const { execFile } = await import('node:child_process')
    const routes = await new Promise<string>((resolve, reject) =>
      execFile('ip', ['-n', c.nodes[1]!.netns, 'route', 'show'], (error, stdout) => (error ? reject(error) : resolve(stdout))),
    )
    expect(routes).not.toMatch(/default/)
  })

  test('an overlay network and a 3-replica service: one task per node, image from the registry, host-mode port answering /health at every node, tasks reaching each other over the overlay (dnsrr)', async () => {
    const c = cluster!
    await c.docker(0, 'network', 'create', '--driver', 'overlay', '--attachable', 'ffsw-test-net')
    const started = Date.now()
    await c.docker(
      0,
      'service',
      'create',
      '--detach',
      '--quiet',
      '--name',
      'web',
      '--network',
      'ffsw-test-net',
      '--replicas',
      '3',
      '--publish',
      `mode=host,target=8080,published=${WEB_PORT}`,
      '--endpoint-mode',
      'dnsrr',
      '--placement-pref',
      'spread=node.id',
      '--replicas-max-per-node',
      '1',
      c.imageRef(IMAGE),
    )
    const nodeIds = await runningOnDistinctNodes('web', 3)
    expect(nodeIds.sort()).toEqual(c.nodes.map((node) => node.nodeId).sort())

    // Every node answers on its own address, from the host.
    for (const node of c.nodes) {
      const body = await eventually(`GET http://${node.ip}:${WEB_PORT}/health`, 30_000, async () => {
        const response = await fetch(`http://${node.ip}:${WEB_PORT}/health`, { signal: AbortSignal.timeout(2_000) })
        return response.status === 200 ? (await response.text()).trim() : undefined
      })
      expect(body).toBe('ok')
    }
    console.log(`web: 3 tasks on 3 nodes answering in ${Date.now() - started} ms`)

    // The containers run the registry's image, pinned by digest (the workers pulled it).
    const registry = c.registry.replace(/\./g, '\\.')
    expect(await c.docker(0, 'service', 'inspect', 'web', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}')).toMatch(
      new RegExp(`^${registry}/flowforge-test/http:1@sha256:[0-9a-f]{64}$`),
    )
    for (const [i] of c.nodes.entries()) {
      const container = await c.docker(i, 'ps', '-q', '--filter', 'label=com.docker.swarm.service.name=web')
      expect(await c.docker(i, 'inspect', '--format', '{{.Config.Image}}', container)).toMatch(new RegExp(`^${registry}/flowforge-test/http:1@sha256:[0-9a-f]{64}$`))
      // A repo digest of the registry's: the node got it from there (a `docker load` leaves none).
      const imageId = await c.docker(i, 'inspect', '--format', '{{.Image}}', container)
      expect(await c.docker(i, 'image', 'inspect', '--format', '{{json .RepoDigests}}', imageId)).toMatch(new RegExp(`"${registry}/flowforge-test/http@sha256:`))
    }

    // Over the overlay: from node 0's task, tasks.web resolves to three addresses (dnsrr), and each answers.
    const container = await c.docker(0, 'ps', '-q', '--filter', 'label=com.docker.swarm.service.name=web')
    const lookup = await c.docker(0, 'exec', container, '/bin/busybox', 'nslookup', 'tasks.web')
    const addresses = [...lookup.matchAll(/Address:\s*(\d+\.\d+\.\d+\.\d+)$/gm)].map((match) => match[1]!).filter((address) => !address.startsWith('127.'))
    expect(new Set(addresses).size, lookup).toBe(3)
    for (const address of addresses) {
      // (busybox wget without -T: its -T crashes this busybox build.)
      expect(await c.docker(0, 'exec', container, '/bin/busybox', 'wget', '-q', '-O', '-', `http://${address}:8080/health`)).toBe('ok')
    }

    await c.docker(0, 'service', 'rm', 'web')
    await eventually('web removed from every node', 60_000, async () => {
      for (const [i] of c.nodes.entries()) if ((await c.docker(i, 'ps', '-q', '--filter', 'label=com.docker.swarm.service.name=web')) !== '') return undefined
      return true
    })
  })

  // Two replicas, at most one per node, on three nodes: there is always a free node to move to.
  // (A host-mode port allows one task per node, so the 3-replica web service could not move.)
  let drained = -1

  test('drain a worker: its task moves to the free node; activate brings the node back', async () => {
    const c = cluster!
    await c.docker(0, 'service', 'create', '--detach', '--quiet', '--name', 'moves', '--network', 'ffsw-test-net', '--replicas', '2', '--replicas-max-per-node', '1', '--endpoint-mode', 'dnsrr', c.imageRef(IMAGE))
    const before = await runningOnDistinctNodes('moves', 2)
    // At most one of the two tasks is on the manager: drain a worker that holds one.
    drained = before.map(nodeIndex).find((i) => c.nodes[i]!.role === 'worker')!
    const free = c.nodes.findIndex((node) => !before.includes(node.nodeId))
    const started = Date.now()
    await c.drain(drained)
    const after = await runningOnDistinctNodes('moves', 2, 60_000)
    console.log(`drain of node ${drained}: task moved to node ${free} in ${Date.now() - started} ms`)
    expect(after).not.toContain(c.nodes[drained]!.nodeId)
    expect(after).toContain(c.nodes[free]!.nodeId)
    expect(await c.docker(0, 'node', 'inspect', c.nodes[drained]!.nodeId, '--format', '{{.Spec.Availability}}')).toBe('drain')
    // The drained node's container is gone, not just its task.
    await eventually(`no moves container left on node ${drained}`, 30_000, async () =>
      (await c.docker(drained, 'ps', '-q', '--filter', 'label=com.docker.swarm.service.name=moves')) === '' ? true : undefined,
    )
    await c.activate(drained)
    expect(await c.docker(0, 'node', 'inspect', c.nodes[drained]!.nodeId, '--format', '{{.Spec.Availability}}')).toBe('active')
  })

  test(`kill -9 of a worker's dockerd: Down within the heartbeat window (dispatcher heartbeat ${HEARTBEAT}), its task rescheduled; restartNode brings it back Ready`, async () => {
    const c = cluster!
    expect(drained, 'the drain test ran').toBeGreaterThanOrEqual(0)
    const before = await runningOnDistinctNodes('moves', 2)
    expect(await c.docker(0, 'info', '--format', '{{json .Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}')).toBe(String(2_000_000_000))
    // After the drain, the tasks are on the manager and on the other worker.
    const victim = before.map(nodeIndex).find((i) => c.nodes[i]!.role === 'worker' && i !== drained)!
    expect(victim, 'a worker other than the drained one holds a task').toBeGreaterThan(0)
    const killedAt = Date.now()
    await c.killNode(victim)
    const downAfter = await c.waitForNodeState(victim, 'down', 60_000)
    const after = await runningOnDistinctNodes('moves', 2, 60_000)
    const rescheduledAfter = Date.now() - killedAt
    console.log(`kill -9 of node ${victim}'s dockerd: Down after ${downAfter} ms, task rescheduled after ${rescheduledAfter} ms`)
    // Swarm marks a node down after missing its heartbeats: 3 periods plus jitter (~6-8 s at 2 s).
    expect(downAfter).toBeLessThan(20_000)
    expect(after).not.toContain(c.nodes[victim]!.nodeId)
    expect(after).toContain(c.nodes[drained]!.nodeId)

    const restarted = Date.now()
    await c.restartNode(victim)
    console.log(`restartNode(${victim}): Ready again after ${Date.now() - restarted} ms`)
    expect(await c.docker(0, 'node', 'inspect', c.nodes[victim]!.nodeId, '--format', '{{.Status.State}} {{.Spec.Availability}}')).toBe('ready active')
    // Back without live-restore: the old container of the moved task does not run there any more.
    await eventually(`no moves container running on node ${victim}`, 60_000, async () =>
      (await c.docker(victim, 'ps', '-q', '--filter', 'label=com.docker.swarm.service.name=moves')) === '' ? true : undefined,
    )
    expect((await runningOnDistinctNodes('moves', 2)).sort()).toEqual(after.sort())
    await c.docker(0, 'service', 'rm', 'moves')
  })

  test('stop() removes processes, mounts, namespaces, veths, the bridge, the firewall rule, the registry, cgroups and the folder; a second stop() is harmless', async () => {
    const c = cluster!
    await c.stop()
    console.log(`test swarm ${c.prefix} stopped in ${c.timings.stopMs} ms`)
    expect(await swarmLeftovers(c.prefix)).toEqual([])
    await c.stop()
    expect(await swarmLeftovers(c.prefix)).toEqual([])
  })
})

describe.skipIf(!tools.available)('a start that fails', () => {
  test('cleans up what it made and says why', async () => {
    const error = await startSwarmCluster({ nodes: 2, images: ['flowforge-test/no-such-image:1'] }).then(
      () => undefined,
      (e: Error) => e,
    )
    expect(error?.message).toMatch(/no-such-image/)
    const prefix = /test swarm (ffsw[0-9a-z]+) did not start/.exec(String(error?.message))?.[1]
    expect(prefix, String(error?.message)).toBeDefined()
    expect(await swarmLeftovers(prefix!)).toEqual([])
  }, 120_000)
})
