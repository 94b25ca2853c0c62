// Issue 17, item 7: N plugins as services on a 3-node test swarm (test/helpers/swarm-cluster.ts,
// root only), against `docker stack deploy` of the same N services (a compose file) on the
// same swarm, in the same run:
//   1. cold converge: N specs → every service 1/1 running;
//   2. no-op re-apply: the same N again → time, and how many services were updated (none is the target).
// Ours: the daemon in-process (embedded database, RUNTIME=swarm, host-mode ports, dnsrr), its
// calls to the swarm manager counted by method, its CPU from process.cpuUsage(). The stack's
// services are removed before ours start, so both start cold on the same cached images.
// BENCH_SWARM_N (default 50).
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { loadConfig } from '../src/config.js'
import { silentLogger } from '../src/logger.js'
import { startDaemon } from '../src/main.js'
import { DockerSwarmRuntime } from '../src/swarm/docker-swarm-runtime.js'
import type { ServiceRuntime } from '../src/swarm/service-runtime.js'
import { startSwarmCluster, type SwarmCluster } from '../test/helpers/swarm-cluster.js'
import { fmt, writeResults } from './results.js'

const execFileAsync = promisify(execFile)
const N = Number(process.env.BENCH_SWARM_N ?? 50)
const FIRST_PORT = 6100
const TIMEOUT_MS = 600_000
const IMAGE = 'flowforge-test/http:1'

interface Contender {
  name: string
  coldMs: number
  noopMs: number
  /** Services whose UpdatedAt moved during the no-op re-apply (ours: and a manager restart after it). */
  noopUpdates: number
  /** From the start until the last service was created (the stack: the deploy command's own time). */
  createdMs: number
  /** Ours: a manager restarted on its database, until /readyz (its resync done). */
  restartReadyMs?: number
  callsPerPlugin?: number
  calls?: Record<string, number>
  cpuMs?: number
}

/** Every method call of a ServiceRuntime, counted; `lastAnswered` has when each method's last call answered. */
function counting(runtime: ServiceRuntime, counts: Record<string, number>, lastAnswered: Record<string, number>, spentMs: Record<string, number> = {}): ServiceRuntime {
  return new Proxy(runtime, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown
      if (typeof value !== 'function' || property === 'events') return typeof value === 'function' ? value.bind(target) : value
      return async (...args: unknown[]) => {
        counts[String(property)] = (counts[String(property)] ?? 0) + 1
        const began = performance.now()
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
        } finally {
          lastAnswered[String(property)] = performance.now()
          spentMs[String(property)] = (spentMs[String(property)] ?? 0) + (performance.now() - began)
        }
      }
    },
  })
}

async function servicesRunning(cluster: SwarmCluster, prefix: string): Promise<number> {
  const out = await cluster.docker(0, 'service', 'ls', '--filter', `name=${prefix}`, '--format', '{{.Replicas}}')
  return out.split('\n').filter((line) => /^1\/1/.test(line.trim())).length
}

async function updatedAts(cluster: SwarmCluster, prefix: string): Promise<Map<string, string>> {
  const ids = (await cluster.docker(0, 'service', 'ls', '--filter', `name=${prefix}`, '-q')).split('\n').filter(Boolean)
  if (ids.length === 0) return new Map()
  const out = await cluster.docker(0, 'service', 'inspect', '--format', '{{.ID}} {{.UpdatedAt}}', ...ids)
  return new Map(out.split('\n').map((line) => line.split(' ', 2) as [string, string]))
}

function changed(before: Map<string, string>, after: Map<string, string>): number {
  return [...after].filter(([id, at]) => before.get(id) !== at).length
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench swarm: timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

async function removeServices(cluster: SwarmCluster, prefix: string): Promise<void> {
  const ids = (await cluster.docker(0, 'service', 'ls', '--filter', `name=${prefix}`, '-q')).split('\n').filter(Boolean)
  if (ids.length > 0) await cluster.docker(0, 'service', 'rm', ...ids)
  await waitFor(`the ${prefix} tasks gone`, async () => (await cluster.docker(0, 'ps', '-q', '--filter', `name=${prefix}`)) === '')
}

async function stackDeploy(cluster: SwarmCluster): Promise<Contender> {
  const lines = ['version: "3.8"', 'services:']
  for (let i = 0; i < N; i++) {
    lines.push(`  p${i}:`, `    image: ${cluster.imageRef(IMAGE)}`, '    deploy:', '      replicas: 1', '      endpoint_mode: dnsrr', '    ports:', `      - { target: 8080, published: ${FIRST_PORT + i}, mode: host }`)
  }
  const file = join(cluster.dir, 'stack.yml')
  await writeFile(file, lines.join('\n') + '\n')
  const deploy = () => execFileAsync('docker', ['-H', cluster.managerHost, 'stack', 'deploy', '--resolve-image', 'never', '-c', file, 'bench'], { maxBuffer: 16 * 1024 * 1024 })
  const started = performance.now()
  await deploy()
  const createdMs = performance.now() - started
  await waitFor('the stack running', async () => (await servicesRunning(cluster, 'bench_')) === N)
  const coldMs = performance.now() - started
  const before = await updatedAts(cluster, 'bench_')
  const again = performance.now()
  await deploy()
  const noopMs = performance.now() - again
  await new Promise((resolve) => setTimeout(resolve, 2_000))
  const noopUpdates = changed(before, await updatedAts(cluster, 'bench_'))
  await execFileAsync('docker', ['-H', cluster.managerHost, 'stack', 'rm', 'bench'])
  await removeServices(cluster, 'bench_')
  return { name: '`docker stack deploy`', coldMs, createdMs, noopMs, noopUpdates }
}

async function manager(cluster: SwarmCluster): Promise<Contender> {
  const calls: Record<string, number> = {}
  const answered: Record<string, number> = {}
  const spent: Record<string, number> = {}
  const runtime = counting(new DockerSwarmRuntime({ dockerHost: cluster.managerHost, logger: silentLogger() }), calls, answered, spent)
  const config = loadConfig({ PORT: '0', SPECS_DIR: '/nonexistent-bench-swarm', MANAGER_INSTANCE: 'bench-swarm', RUNTIME: 'swarm', DOCKER_HOST: cluster.managerHost, SWARM_PUBLISH_MODE: 'host', SWARM_ENDPOINT_MODE: 'dnsrr', HOST_PORT_RANGE: `${FIRST_PORT}-${FIRST_PORT + N + 10}`, LOG_LEVEL: 'silent' })
  const dataDir = join(cluster.dir, 'bench-manager-data')
  const start = () => startDaemon({ ...config, database: { kind: 'embedded', dataDir, sqlPort: 0 } }, silentLogger(), { serviceRuntime: runtime })
  let daemon = await start()
  try {
    await daemon.ready
    for (const key of Object.keys(calls)) delete calls[key]
    for (const key of Object.keys(spent)) delete spent[key]
    const cpuBefore = process.cpuUsage()
    const started = performance.now()
    for (let i = 0; i < N; i++) {
      await daemon.store.createPlugin({ forgehookId: `p${i}`, source: 'api', manifest: { name: `p${i}`, image: cluster.imageRef(IMAGE), port: 8080 }, requestedHostPort: FIRST_PORT + i })
    }
    const declaredMs = performance.now() - started
    await waitFor('the plugins running', async () => (await daemon.store.listPlugins()).filter((plugin) => plugin.replicasRunning === 1).length === N)
    const coldMs = performance.now() - started
    const cpu = process.cpuUsage(cpuBefore)
    const createdMs = (answered.createService ?? started) - started
    const coldCalls = { ...calls }
    const before = await updatedAts(cluster, 'forgehook-p')
    // The no-op re-apply: every spec written again unchanged (no new generation, so nothing to reconcile).
    const again = performance.now()
    for (let i = 0; i < N; i++) await daemon.store.updateSpec(`p${i}`, { manifest: { name: `p${i}`, image: cluster.imageRef(IMAGE), port: 8080 } })
    const noopMs = performance.now() - again
    // Then the manager restarted on its database: a resync reconciles every row against its service.
    await daemon.stop()
    const restarted = performance.now()
    daemon = await start()
    await daemon.ready
    const restartReadyMs = performance.now() - restarted
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    const noopUpdates = changed(before, await updatedAts(cluster, 'forgehook-p'))
    const mutating = (coldCalls.createService ?? 0) + (coldCalls.updateService ?? 0) + (coldCalls.removeService ?? 0)
    const total = Object.values(coldCalls).reduce((sum, count) => sum + count, 0)
    console.log(`bench swarm: the ${N} rows written in ${fmt(declaredMs / 1000, 2)} s; createService: ${calls.createService ?? 0} calls, the last answered at ${fmt(createdMs / 1000, 2)} s; ms per call: ${Object.entries(spent).map(([method, ms]) => `${method} ${fmt(ms / (calls[method] || 1), 1)}`).join(', ')}`)
    return { name: 'flowforge (RUNTIME=swarm)', coldMs, createdMs, noopMs, restartReadyMs, noopUpdates, callsPerPlugin: total / N, calls: { ...coldCalls, mutating }, cpuMs: (cpu.user + cpu.system) / 1000 }
  } finally {
    await daemon.stop()
    await removeServices(cluster, 'forgehook-p')
  }
}

export async function benchSwarm(): Promise<{ table: string }> {
  const cluster = await startSwarmCluster({ nodes: 3, images: [IMAGE] })
  try {
    const stack = await stackDeploy(cluster)
    const ours = await manager(cluster)
    await writeResults('swarm', { n: N, stack, ours, clusterStartMs: cluster.timings.startMs })
    const row = (contender: Contender, ratio: string) =>
      `| ${contender.name} | ${fmt(contender.createdMs / 1000, 2)} s | ${fmt(contender.coldMs / 1000, 2)} s | ${ratio} | ${fmt(contender.noopMs / 1000, 2)} s | ${contender.restartReadyMs === undefined ? '—' : `${fmt(contender.restartReadyMs / 1000, 2)} s`} | ${contender.noopUpdates} | ${contender.callsPerPlugin === undefined ? '—' : fmt(contender.callsPerPlugin, 2)} | ${contender.cpuMs === undefined ? '—' : `${fmt(contender.cpuMs, 0)} ms`} |`
    const table = [
      `### Swarm converge, N = ${N} services on 3 nodes (${new Date().toISOString()})`,
      '',
      '| contender | all services created | cold converge (all 1/1) | vs stack deploy | no-op re-apply | restart to ready | services updated by the no-op | manager calls per plugin | manager CPU (cold) |',
      '|---|---|---|---|---|---|---|---|---|',
      row(stack, '1.00×'),
      row(ours, `${fmt(ours.coldMs / stack.coldMs, 2)}×`),
      '',
      `Manager calls during the cold converge, by method: ${Object.entries(ours.calls ?? {}).map(([method, count]) => `${method} ${count}`).join(', ')}.`,
    ].join('\n')
    return { table }
  } finally {
    await cluster.stop()
  }
}
