// Cases 1 and 2 of the Docker benchmarks, each contender in the same run on the same image,
// the same N and the same host ports (5100 + i on 127.0.0.1):
//   1. cold converge: N plugin specs → all running. Ours (the daemon, in-process) against the
//      engine's limit (the same creates and starts straight through dockerode, at the same
//      concurrency as our workers, nothing else) and against `docker-compose up -d`.
//   2. no-op re-apply of the N unchanged specs: time and Docker calls that change anything,
//      against a second `docker-compose up -d` of the unchanged project.
// Between contenders every container is removed, so each starts cold (the image stays cached).
import { execFile } from 'node:child_process'
import { rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import { LABELS, type ContainerSpec } from '../src/runtime/container-runtime.js'
import { createOptionsFor } from '../src/runtime/docker-mapping.js'
import { loadConfig } from '../src/config.js'
import { containerOptionsOf } from '../src/daemon/leader-term.js'
import {
  BENCH_IMAGE,
  BENCH_INSTANCE,
  cleanupContainers,
  dockerClient,
  ensureInstallationNetwork,
  engineCpuSeconds,
  fmt,
  installCleanupHandlers,
  makeTempDir,
  MUTATING_ACTIONS,
  onInterrupt,
  runInPool,
  serverUrl,
  startBenchDaemon,
  waitUntil,
  waitForQuietMachine,
  watchDockerEvents,
  writeResults,
  type Engine,
} from './docker-harness.js'
import { fmtMemory, processMemory, resetPeakRss, type ProcessMemory } from './results.js'

const execFileAsync = promisify(execFile)
const FIRST_PORT = 5100
const CONVERGE_TIMEOUT_MS = 300_000
const COMPOSE_TIMEOUT_MS = 300_000

export interface ConvergeOptions {
  /** Default BENCH_CONVERGE_N, else 50 and 100. */
  sizes?: number[]
  /** Our reconcile workers, and the limit's concurrency. Default BENCH_CONVERGE_WORKERS, else 8 (RECONCILE_WORKERS' default). */
  workers?: number
  /** Default: the server when BENCH_DATABASE_URL / TEST_DATABASE_URL is set, else embedded. */
  engine?: Engine
}

export interface ConvergeResult {
  n: number
  workers: number
  engine: Engine
  oursSeconds: number
  /** The mean of the limit measured right before ours and right after it (each in limitRuns). */
  limitSeconds: number
  /** The limit before ours, then after it: the engine's speed drifts over a run (section 1 of docs/benchmarks.md). */
  limitRuns: [number, number]
  composeSeconds: number
  /** COMPOSE_PARALLEL_LIMIT used (see measureCompose). */
  composeParallelLimit: number
  oursOverLimit: number
  oursOverCompose: number
  /** Docker calls our daemon made while converging, by method. */
  oursConvergeCalls: Record<string, number>
  /** Docker calls after the converge until every started container was inspected (start-settler.ts), by method. */
  oursSettleCalls: Record<string, number>
  /** CPU seconds of dockerd + containerd while each contender converged, and of this process (our daemon) for ours. */
  engineCpuSeconds: { ours?: number; limit?: number; compose?: number }
  oursProcessCpuSeconds: number
  /** Waited for a quiet machine before the limit, ours, the limit again and compose. */
  quietMs: number[]
  /** From writing the spec file to our first create call. */
  oursFirstCreateMs: number
  /** Creates and starts in flight on average while converging: ours, and the limit's (before ours, after). */
  inFlight: { ours: number; limit: [number, number] }
  /** This process (our daemon in-process, tsx and the bench) once the no-op re-apply is done: RSS, and its peak since our daemon started (VmHWM reset then). */
  oursMemory?: ProcessMemory
  noop: {
    oursMs: number
    /** Of which the full resync (list rows, list containers, compare). */
    oursResyncMs: number
    oursMutatingCalls: number
    oursAllCalls: number
    oursMutatingEvents: number
    composeSeconds: number
    composeMutatingEvents: number
    composeUpToDateLines: number
  }
}

function pluginName(index: number): string {
  return `${BENCH_INSTANCE}-cv-${index}`
}

/** One YAML document per plugin, each pinned to its host port so all contenders bind the same ports. */
function specDocuments(n: number): string {
  return Array.from({ length: n }, (_, index) =>
    [
      'apiVersion: flowforge.io/v1',
      'kind: Plugin',
      `metadata: { name: ${pluginName(index)} }`,
      'spec:',
      '  state: running',
      `  hostPort: ${FIRST_PORT + index}`,
      `  manifest: { name: Bench ${index}, version: 1.0.0, image: "${BENCH_IMAGE}", imagePullPolicy: IfNotPresent, port: 8080 }`,
    ].join('\n'),
  ).join('\n---\n')
}

async function measureOurs(n: number, workers: number, engine: Engine) {
  // The peak is then this daemon's, not what an earlier size or contender left in the process.
  resetPeakRss()
  const bench = await startBenchDaemon({ engine, label: 'converge', workers, hostPortRange: '5100-5999' })
  const { daemon, runtime } = bench
  try {
    // The spec folder is the declared input, and one file of N documents is how a batch is
    // dropped in (like `kubectl apply -f` of a multi-document file): one watcher event, so
    // this times the daemon's work rather than N separate write-settle waits.
    const specFile = path.join(bench.specsDir, 'plugins.yaml')
    const text = specDocuments(n)
    runtime.reset()
    const engineCpuBefore = engineCpuSeconds()
    const processCpuBefore = process.cpuUsage()
    const started = performance.now()
    await writeFile(specFile, text)
    await waitUntil(`${n} plugins running`, async () => {
      const row = await sql<{ converged: string }>`
        SELECT count(*) AS converged FROM plugins WHERE status = 'running' AND observed_generation = generation`.execute(daemon.database.db)
      return Number(row.rows[0]?.converged) >= n ? true : undefined
    }, CONVERGE_TIMEOUT_MS)
    const seconds = (performance.now() - started) / 1000
    const engineCpu = cpuSince(engineCpuBefore)
    const processCpu = process.cpuUsage(processCpuBefore)
    const convergeCalls = { ...runtime.calls }
    // Where the wall time went: how long until the first create (reading the file, writing the
    // rows, the notification, the first reconcile), and how many creates and starts were in
    // flight on average (the limit keeps `workers` in flight all the time).
    const dockerCalls = runtime.mutating.filter((call) => call.method === 'create' || call.method === 'start')
    const firstCreateMs = Math.min(...dockerCalls.map((call) => call.startedAt)) - started
    const inFlight = dockerCalls.reduce((sum, call) => sum + (call.durationMs ?? 0), 0) / (seconds * 1000)
    await waitUntil('an idle queue', async () => (daemon.controller.queue.len() === 0 && daemon.controller.snapshot().processing === 0 ? true : undefined), 30_000, 20)
    // The inspects after the starts, which the daemon makes once its queue is idle (start-settler.ts): after the converge, not in it.
    await waitUntil('the started containers inspected', async () => (daemon.controller.cache.unsettled().length === 0 ? true : undefined), 90_000, 20)
    const settleCalls = Object.fromEntries(Object.entries(runtime.calls).map(([method, count]) => [method, count - (convergeCalls[method] ?? 0)]).filter(([, count]) => (count as number) > 0))

    // Case 2: the same content written again, read again, and a full resync on top.
    const events = await watchDockerEvents({ label: [`${LABELS.instance}=${BENCH_INSTANCE}`] })
    runtime.reset()
    const resyncsBefore = daemon.controller.snapshot().resyncs
    const noopStarted = performance.now()
    await writeFile(specFile, text)
    await daemon.specs.rescan()
    const resyncStarted = performance.now()
    daemon.controller.requestResync('bench')
    await waitUntil('the resync', async () => (daemon.controller.snapshot().resyncs > resyncsBefore ? true : undefined), 30_000, 2)
    const resyncMs = performance.now() - resyncStarted
    await waitUntil('an idle queue', async () => (daemon.controller.queue.len() === 0 && daemon.controller.snapshot().processing === 0 ? true : undefined), 30_000, 2)
    const noopMs = performance.now() - noopStarted
    // Anything the re-apply set off late (the watcher's own event after its settle time) counts too.
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    events.close()
    const memory = processMemory()
    return {
      seconds,
      memory,
      engineCpu,
      processCpuSeconds: (processCpu.user + processCpu.system) / 1e6,
      convergeCalls,
      settleCalls,
      firstCreateMs,
      inFlight,
      noop: {
        oursMs: noopMs,
        oursResyncMs: resyncMs,
        oursMutatingCalls: runtime.mutating.length,
        oursAllCalls: runtime.totalCalls,
        oursMutatingEvents: events.events.filter((event) => MUTATING_ACTIONS.has(event.action)).length,
      },
    }
  } finally {
    await bench.stop()
    await cleanupContainers()
  }
}

/**
 * The same containers our daemon makes, with the same create body: on the installation
 * network (its name as alias), with the default memory and pids limits and the bounded log,
 * created and started straight through dockerode. Before 2026-12-02 the limit made its
 * containers on the default bridge without limits, less work for the engine than ours.
 */
async function measureLimit(n: number, workers: number): Promise<{ seconds: number; engineCpu?: number; inFlight: number }> {
  const docker = dockerClient()
  // The daemon's own container options (leader-term.ts): its network, bind address and defaults.
  const options = containerOptionsOf(loadConfig({ MANAGER_INSTANCE: BENCH_INSTANCE }).controller)
  const network = options.network!
  const specs: ContainerSpec[] = Array.from({ length: n }, (_, index) => ({
    name: `forgehook-${BENCH_INSTANCE}-limit-${index}`,
    image: BENCH_IMAGE,
    env: { FORGEHOOK_CONFIG: '{}' },
    labels: { [LABELS.managed]: 'true', [LABELS.instance]: BENCH_INSTANCE, [LABELS.forgehookId]: `limit-${index}` },
    containerPort: 8080,
    hostPort: FIRST_PORT + index,
    hostIp: options.hostIp,
    network: { name: network, aliases: [`limit-${index}`] },
    ...(options.defaults ? { defaults: options.defaults } : {}),
  }))
  // Made before the clock starts, as our daemon makes it at its start (cleanupContainers removes it).
  await ensureInstallationNetwork(network)
  try {
    const engineCpuBefore = engineCpuSeconds()
    const started = performance.now()
    let busyMs = 0
    await runInPool(specs, workers, async (spec) => {
      const callStarted = performance.now()
      const container = await docker.createContainer(createOptionsFor(spec))
      await container.start()
      busyMs += performance.now() - callStarted
    })
    const seconds = (performance.now() - started) / 1000
    return { seconds, engineCpu: cpuSince(engineCpuBefore), inFlight: busyMs / (seconds * 1000) }
  } finally {
    await cleanupContainers()
  }
}

function composeFile(n: number): string {
  const defaults = containerOptionsOf(loadConfig({ MANAGER_INSTANCE: BENCH_INSTANCE }).controller).defaults
  const services = Array.from({ length: n }, (_, index) =>
    [
      `  p${index}:`,
      `    image: ${BENCH_IMAGE}`,
      `    ports: ["127.0.0.1:${FIRST_PORT + index}:8080"]`,
      // Compose's default network (a bridge of the project, the service's name as alias), the
      // memory and pids limits and the log bound: the containers are alike ours.
      ...(defaults?.memoryMb ? [`    mem_limit: ${defaults.memoryMb}m`] : []),
      ...(defaults?.pidsLimit ? [`    pids_limit: ${defaults.pidsLimit}`] : []),
      ...(defaults?.log ? [`    logging: { driver: json-file, options: { max-size: '${defaults.log.maxSize}', max-file: '${defaults.log.maxFiles}' } }`] : []),
      '    security_opt: [no-new-privileges]',
      "    environment: { FORGEHOOK_CONFIG: '{}' }",
    ].join('\n'),
  )
  return ["version: '2.4'", 'services:', ...services].join('\n') + '\n'
}

async function measureCompose(n: number) {
  const dir = await makeTempDir('compose')
  const project = `${BENCH_INSTANCE}-compose`
  const file = path.join(dir, 'docker-compose.yml')
  await writeFile(file, composeFile(n))
  // Compose v1 deadlocks when a project has more services than COMPOSE_PARALLEL_LIMIT (default
  // 64): services hold every slot while their own container tasks wait for one (docker/compose
  // #5864, #8226). N + 1 slots is the known workaround; below 64 services it is the default.
  const parallelLimit = Math.max(64, n + 1)
  const compose = (...args: string[]) =>
    execFileAsync('docker-compose', ['-p', project, '-f', file, ...args], {
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, COMPOSE_PARALLEL_LIMIT: String(parallelLimit) },
      // Never hang the benchmark: a stuck compose is killed and reported as a failure.
      timeout: COMPOSE_TIMEOUT_MS,
    })
  const down = async () => void (await compose('down', '-t', '2'))
  const unregister = onInterrupt(down)
  try {
    const engineCpuBefore = engineCpuSeconds()
    let started = performance.now()
    await compose('up', '-d')
    const seconds = (performance.now() - started) / 1000
    const engineCpu = cpuSince(engineCpuBefore)
    const events = await watchDockerEvents({ label: [`com.docker.compose.project=${project}`] })
    started = performance.now()
    const again = await compose('up', '-d')
    const againSeconds = (performance.now() - started) / 1000
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    events.close()
    const output = again.stdout + again.stderr
    return {
      seconds,
      engineCpu,
      parallelLimit,
      noopSeconds: againSeconds,
      noopMutatingEvents: events.events.filter((event) => MUTATING_ACTIONS.has(event.action)).length,
      upToDateLines: output.split('\n').filter((line) => line.includes('is up-to-date')).length,
    }
  } finally {
    unregister()
    await down()
    await cleanupContainers()
    await rm(dir, { recursive: true, force: true })
  }
}

function meanOf(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : (a + b) / 2
}

function cpuSince(before: number | undefined): number | undefined {
  const now = engineCpuSeconds()
  return before === undefined || now === undefined ? undefined : now - before
}

function sizesFromEnv(): number[] {
  return (process.env.BENCH_CONVERGE_N ?? '50,100').split(',').map((value) => Number(value.trim())).filter((value) => value > 0)
}

export async function benchConverge(options: ConvergeOptions = {}): Promise<ConvergeResult[] & { table: string }> {
  installCleanupHandlers()
  const sizes = options.sizes ?? sizesFromEnv()
  const workers = options.workers ?? Number(process.env.BENCH_CONVERGE_WORKERS ?? 8)
  const engine = options.engine ?? (serverUrl ? 'postgres' : 'embedded')
  await cleanupContainers()
  const results: ConvergeResult[] = []
  for (const n of sizes) {
    // The limit on both sides of ours: a contender measured only before (or only after) the
    // other gets the engine in another state (its first containers of the run, a warm page
    // cache), and on this machine that alone moved the ratio by several percent.
    // Each starts on a quiet machine: the kernel's teardown of the last contender's 100
    // network namespaces goes on for seconds after their removal (waitForQuietMachine).
    const quietMs: number[] = []
    quietMs.push(await waitForQuietMachine())
    const limitBefore = await measureLimit(n, workers)
    quietMs.push(await waitForQuietMachine())
    const ours = await measureOurs(n, workers, engine)
    quietMs.push(await waitForQuietMachine())
    const limitAfter = await measureLimit(n, workers)
    const limitSeconds = (limitBefore.seconds + limitAfter.seconds) / 2
    quietMs.push(await waitForQuietMachine())
    const compose = await measureCompose(n)
    results.push({
      n,
      workers,
      engine,
      oursSeconds: ours.seconds,
      limitSeconds,
      limitRuns: [limitBefore.seconds, limitAfter.seconds],
      composeSeconds: compose.seconds,
      composeParallelLimit: compose.parallelLimit,
      oursOverLimit: ours.seconds / limitSeconds,
      oursOverCompose: ours.seconds / compose.seconds,
      oursConvergeCalls: ours.convergeCalls,
      oursSettleCalls: ours.settleCalls,
      engineCpuSeconds: { ours: ours.engineCpu, limit: meanOf(limitBefore.engineCpu, limitAfter.engineCpu), compose: compose.engineCpu },
      oursProcessCpuSeconds: ours.processCpuSeconds,
      oursFirstCreateMs: ours.firstCreateMs,
      quietMs,
      inFlight: { ours: ours.inFlight, limit: [limitBefore.inFlight, limitAfter.inFlight] },
      oursMemory: ours.memory,
      noop: { ...ours.noop, composeSeconds: compose.noopSeconds, composeMutatingEvents: compose.noopMutatingEvents, composeUpToDateLines: compose.upToDateLines },
    })
  }
  const table = convergeTable(results)
  process.stdout.write(table + '\n')
  await writeResults('converge', { image: BENCH_IMAGE, results })
  return Object.assign(results, { table })
}

/** `(create 100, start 100)`: the calls by method. */
function callList(calls: Record<string, number>): string {
  const entries = Object.entries(calls).sort(([a], [b]) => a.localeCompare(b))
  return entries.length === 0 ? '' : `(${entries.map(([method, count]) => `${method} ${count}`).join(', ')})`
}

function convergeTable(results: ConvergeResult[]): string {
  const engine = results[0]?.engine === 'postgres' ? 'Postgres server' : 'embedded (PGlite)'
  return [
    `### Cold converge: N specs → all running (${engine}; ${results[0]?.workers ?? 4} workers = the limit's concurrency)`,
    '',
    '| N | ours (s) | limit: dockerode create+start (s), mean [before ours, after] | docker-compose up -d (s) [COMPOSE_PARALLEL_LIMIT] | ours / limit | ours / compose | target (issue 18): ≤ 1.05× limit, < compose |',
    '|---:|---:|---:|---:|---:|---:|---|',
    ...results.map(
      (r) =>
        `| ${r.n} | ${fmt(r.oursSeconds, 2)} | ${fmt(r.limitSeconds, 2)} [${fmt(r.limitRuns[0], 2)}, ${fmt(r.limitRuns[1], 2)}] | ${fmt(r.composeSeconds, 2)} [${r.composeParallelLimit}] | ${fmt(r.oursOverLimit, 2)}× | ` +
        `${fmt(r.oursOverCompose, 2)}× | ${r.oursOverLimit <= 1.05 && r.oursOverCompose < 1 ? 'met' : 'missed'} |`,
    ),
    '',
    ...results.map((r) => `N = ${r.n}: waited for a quiet machine (under 10 % busy over 1 s) before the limit, ours, the limit again, compose: ${r.quietMs.map((ms) => fmt(ms / 1000, 1)).join(', ')} s.`),
    '',
    '| N | dockerd + containerd CPU (s): ours / limit / compose | Docker calls per plugin, ours (limit: 2) | then, until every start was inspected | our daemon process CPU (s) | our process RSS at end / peak (MiB; daemon in-process with tsx) | spec written → our first create (ms) | creates + starts in flight, mean: ours / limit [before, after] (of workers) |',
    '|---:|---:|---:|---:|---:|---:|---:|---|',
    ...results.map((r) => {
      const cpu = r.engineCpuSeconds
      const perPlugin = Object.values(r.oursConvergeCalls).reduce((sum, count) => sum + count, 0) / r.n
      const settlePerPlugin = Object.values(r.oursSettleCalls).reduce((sum, count) => sum + count, 0) / r.n
      return `| ${r.n} | ${fmt(cpu.ours ?? Number.NaN)} / ${fmt(cpu.limit ?? Number.NaN)} / ${fmt(cpu.compose ?? Number.NaN)} | ${fmt(perPlugin)} ${callList(r.oursConvergeCalls)} | ${fmt(settlePerPlugin)} ${callList(r.oursSettleCalls)} | ${fmt(r.oursProcessCpuSeconds)} | ${fmtMemory(r.oursMemory)} | ${fmt(r.oursFirstCreateMs, 0)} | ${fmt(r.inFlight.ours, 2)} / [${fmt(r.inFlight.limit[0], 2)}, ${fmt(r.inFlight.limit[1], 2)}] (${r.workers}) |`
    }),
    '',
    '### No-op re-apply of N unchanged specs',
    '',
    '| N | ours: rewrite + re-read + full resync (ms) | of which the resync (ms) | ours: Docker calls that change anything (counted / engine events) | ours: all Docker calls | docker-compose up -d again (s) | compose: engine events that change anything | compose "is up-to-date" |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.n} | ${fmt(r.noop.oursMs, 0)} | ${fmt(r.noop.oursResyncMs, 1)} | ${r.noop.oursMutatingCalls} / ${r.noop.oursMutatingEvents} | ${r.noop.oursAllCalls} | ` +
        `${fmt(r.noop.composeSeconds, 2)} | ${r.noop.composeMutatingEvents} | ${r.noop.composeUpToDateLines} / ${r.n} |`,
    ),
  ].join('\n')
}
