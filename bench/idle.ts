// Idle cost: the daemon in-process on the real Docker engine with N running plugins
// (flowforge-test/http:1, HTTP health checks) and default intervals. After the plugins run
// and are healthy, the bench sleeps for BENCH_IDLE_SECONDS (default 60) and measures what
// the daemon spent meanwhile: CPU time of the process (the daemon and its embedded
// database run in it), RSS, database queries per minute, Docker stats calls, and whether
// every running plugin was sampled every interval (samples per plugin against the rounds
// due, and the longest time one plugin went without a sample). With
// BENCH_IDLE_PROFILE=<dir>, V8's profiler runs over the window (it costs CPU itself: a
// run of its own) and the result names where the time went; the .cpuprofile goes to
// <dir>. With BENCH_IDLE_ALLOC_PROFILE=<dir>, V8's sampling heap profiler runs over the
// window instead (collected objects counted too) and the result names what allocated; the
// .heapprofile goes to <dir>. BENCH_IDLE_ALLOC_SURVIVORS=1 counts only what survived the
// young generation (what is promoted and fills the old one). Sizes 0
// (the peer: an idle daemon with nothing to manage), 20 and 200 run in the same run, so
// the table shows whether queries grow with the number of unchanged plugins. One full
// resync is measured after each window, apart from it. Each size runs in a child process
// of its own: RSS and CPU are then that daemon's, not what earlier sizes left behind.
import { spawn } from 'node:child_process'
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import Docker from 'dockerode'
import { loadConfig, type Config } from '../src/config.js'
import type { DatabaseHandle } from '../src/db/database.js'
import { silentLogger } from '../src/logger.js'
import { sleep } from '../src/util/backoff.js'
import { startDaemon, type Daemon } from '../src/main.js'
import { LABELS, type ContainerStats } from '../src/runtime/container-runtime.js'
import { DockerRuntime } from '../src/runtime/docker-runtime.js'
import { processCpuSeconds } from '../src/util/proc-stat.js'
import { samplingOf, startAllocationProfile, startGcCount, startProfile, StatsLog, type AllocationGroup, type GcTime, type ProfileGroup, type SamplingResult } from './idle-observations.js'
import { cleaningUpAfterInterrupt, cleanupOnInterrupt, insertPlugins, serverUrl, withServerDatabase, writeResults } from './controller-scale.js'
import { removeNetworks } from './docker-harness.js'

const WINDOW_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60)
const PROFILE_DIR = process.env.BENCH_IDLE_PROFILE || undefined
const ALLOCATION_PROFILE_DIR = process.env.BENCH_IDLE_ALLOC_PROFILE || undefined
const ALLOCATION_KIND = process.env.BENCH_IDLE_ALLOC_SURVIVORS === '1' ? 'survivors' : 'all'
const SIZES = (process.env.BENCH_IDLE_PLUGINS ?? '0,20,200').split(',').map(Number)
const IMAGE = 'flowforge-test/http:1'
/** One id per run, handed to the child processes: the containers of every size share it. */
const RUN_ID = process.env.BENCH_IDLE_RUN ?? String(process.pid)
/** Every container of this run carries this installation label... */
const INSTANCE = `bench-idle-${RUN_ID}`
/** ...and a name starting forgehook-<prefix>-, so cleanup finds them either way. */
const NAME_PREFIX = `idle${RUN_ID}`
const HOST_PORT_RANGE = '6100-6999'
const CONVERGE_TIMEOUT_MS = 10 * 60_000
const logger = silentLogger()
/** The daemon being measured, stopped first on Ctrl-C so it creates nothing after the cleanup. */
let running: Daemon | undefined

export interface IdleResult {
  engine: 'embedded (PGlite)' | 'Postgres server'
  plugins: number
  windowSeconds: number
  cpuSeconds: number
  cpuPercentOfOneCore: number
  rssMiB: number
  queries: number
  queriesPerMinute: number
  dockerStatsCalls: number
  /** Per running plugin: samples in the window against the rounds due; undefined without plugins. */
  sampling?: SamplingResult
  /** With BENCH_IDLE_PROFILE: CPU time in the window by owner (our file or a dependency), largest first. */
  profile?: ProfileGroup[]
  /** With BENCH_IDLE_ALLOC_PROFILE: bytes allocated in the window by owner, largest first. */
  allocations?: AllocationGroup[]
  rssPeakMiB?: number
  /** The daemon's GC pauses in the window (main thread). */
  gc?: GcTime
  /** CPU of the Docker engine meanwhile; the engine is shared, so others' work counts too. */
  dockerdCpuPercentOfOneCore?: number
  /** From the INSERT to every plugin running and healthy (the first health round is 30 s in). */
  readySeconds: number
  resyncMs: number
  resyncQueries: number
  resyncCpuMs: number
}

/** The Docker runtime, counting stats calls: the metrics sampler makes one per running plugin. */
class CountingDockerRuntime extends DockerRuntime {
  statsCalls = 0
  readonly statsLog = new StatsLog()

  override async stats(containerId: string): Promise<ContainerStats> {
    this.statsCalls += 1
    const stats = await super.stats(containerId)
    this.statsLog.record(containerId, performance.now())
    return stats
  }
}

/** Embedded unless the parent handed a server database over (BENCH_IDLE_DATABASE_URL). */
function idleConfig(specsDir: string): Config {
  const databaseUrl = process.env.BENCH_IDLE_DATABASE_URL
  const config = loadConfig({ PORT: '0', SPECS_DIR: specsDir, MANAGER_INSTANCE: INSTANCE, HOST_PORT_RANGE, LOG_LEVEL: 'silent', DATABASE_URL: databaseUrl })
  return databaseUrl ? config : { ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }
}

function dockerClient(config: Config): Docker {
  const host = config.controller.dockerHost
  return new Docker({ socketPath: host.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock' })
}

/** Force-removes every container of this run, found by installation label or by name. */
async function removeContainers(docker: Docker): Promise<number> {
  const byLabel = await docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${INSTANCE}`] } })
  const byName = await docker.listContainers({ all: true, filters: { name: [`^/forgehook-${NAME_PREFIX}-`] } })
  const ids = [...new Set([...byLabel, ...byName].map((container) => container.Id))]
  const removeEach = async (): Promise<void> => {
    for (let id = ids.pop(); id !== undefined; id = ids.pop()) {
      await docker
        .getContainer(id)
        .remove({ force: true })
        .catch((error: { statusCode?: number }) => {
          // Already gone, or already being removed by a cleanup racing this one.
          if (error.statusCode !== 404 && error.statusCode !== 409) throw error
        })
    }
  }
  const found = ids.length
  await Promise.all(Array.from({ length: 8 }, removeEach))
  // The daemon's installation network (flowforge-<instance>) goes with its containers.
  await removeNetworks(INSTANCE)
  return found
}

/** CPU seconds of dockerd so far, or undefined when /proc does not tell (another OS, no access). */
async function dockerdCpuSeconds(): Promise<number | undefined> {
  // No /proc (not Linux): no number, rather than a wrong one.
  for (const entry of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(entry)) continue
    // A process that exited since the listing has no comm any more: not dockerd.
    const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '')
    if (comm.trim() !== 'dockerd') continue
    return processCpuSeconds(entry)
  }
  return undefined
}

async function runningAndHealthy(database: DatabaseHandle): Promise<number> {
  const row = await database.db
    .selectFrom('plugins')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', '=', 'running')
    .where('health_status', '=', 'healthy')
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

async function runningContainerIds(database: DatabaseHandle): Promise<string[]> {
  const rows = await database.db.selectFrom('plugins').select('container_id').where('status', '=', 'running').execute()
  return rows.flatMap((row) => (row.container_id ? [row.container_id] : []))
}

const cpuMicros = (usage: NodeJS.CpuUsage) => usage.user + usage.system

async function measure(plugins: number, docker: Docker): Promise<IdleResult> {
  const specsDir = await mkdtemp(path.join(os.tmpdir(), 'ff-bench-idle-'))
  const config = idleConfig(specsDir)
  let queries = 0
  const runtime = new CountingDockerRuntime({ dockerHost: config.controller.dockerHost, requestTimeoutMs: config.controller.dockerTimeoutMs, logger })
  const daemon = await startDaemon(config, logger, { runtime, onQuery: () => (queries += 1) })
  running = daemon
  try {
    await daemon.ready
    const readyStarted = performance.now()
    if (plugins > 0) {
      const manifest = { name: 'Idle', version: '1.0.0', image: IMAGE, imagePullPolicy: 'Never', port: 8080, healthCheck: { path: '/health' } }
      await insertPlugins(daemon.database, plugins, manifest, NAME_PREFIX)
    }
    // The window starts in steady state: every plugin running and its health recorded once.
    while ((await runningAndHealthy(daemon.database)) < plugins) {
      if (performance.now() - readyStarted > CONVERGE_TIMEOUT_MS) throw new Error(`${plugins} plugins were not running and healthy after ${CONVERGE_TIMEOUT_MS / 1000} s`)
      await sleep(1000)
    }
    const readySeconds = (performance.now() - readyStarted) / 1000

    const queriesBefore = queries
    const statsBefore = runtime.statsCalls
    const dockerdBefore = await dockerdCpuSeconds()
    const stopProfile = PROFILE_DIR ? await startProfile() : undefined
    const stopAllocationProfile = ALLOCATION_PROFILE_DIR ? await startAllocationProfile(ALLOCATION_KIND) : undefined
    const stopGcCount = startGcCount()
    const cpuBefore = process.cpuUsage()
    const windowStarted = performance.now()
    await sleep(WINDOW_SECONDS * 1000)
    const cpuSeconds = cpuMicros(process.cpuUsage(cpuBefore)) / 1e6
    const windowEnded = performance.now()
    const gc = stopGcCount()
    const windowSeconds = (windowEnded - windowStarted) / 1000
    const profile = stopProfile ? await stopProfile(path.join(PROFILE_DIR!, `idle-${plugins}-${config.database.kind}.cpuprofile`)) : undefined
    const allocations = stopAllocationProfile
      ? await stopAllocationProfile(path.join(ALLOCATION_PROFILE_DIR!, `idle-${plugins}-${config.database.kind}-${ALLOCATION_KIND}.heapprofile`))
      : undefined
    const sampling = samplingOf(runtime.statsLog, await runningContainerIds(daemon.database), windowStarted, windowEnded, config.controller.healthIntervalMs)
    const dockerdAfter = await dockerdCpuSeconds()
    const windowQueries = queries - queriesBefore
    const rssMiB = process.memoryUsage().rss / 2 ** 20

    // One full resync, apart from the window: the periodic one (5 min) would fall outside it.
    const resyncsBefore = daemon.controller.snapshot().resyncs
    const resyncQueriesBefore = queries
    const resyncCpuBefore = process.cpuUsage()
    const resyncStarted = performance.now()
    daemon.controller.requestResync('bench')
    while (daemon.controller.snapshot().resyncs === resyncsBefore) await sleep(5)
    const resyncMs = performance.now() - resyncStarted

    return {
      engine: config.database.kind === 'embedded' ? 'embedded (PGlite)' : 'Postgres server',
      plugins,
      windowSeconds,
      cpuSeconds,
      cpuPercentOfOneCore: (cpuSeconds / windowSeconds) * 100,
      rssMiB,
      queries: windowQueries,
      queriesPerMinute: (windowQueries / windowSeconds) * 60,
      dockerStatsCalls: runtime.statsCalls - statsBefore,
      ...(sampling ? { sampling } : {}),
      ...(profile ? { profile } : {}),
      ...(allocations ? { allocations } : {}),
      rssPeakMiB: process.resourceUsage().maxRSS / 1024,
      gc,
      ...(dockerdBefore !== undefined && dockerdAfter !== undefined
        ? { dockerdCpuPercentOfOneCore: ((dockerdAfter - dockerdBefore) / windowSeconds) * 100 }
        : {}),
      readySeconds,
      resyncMs,
      resyncQueries: queries - resyncQueriesBefore,
      resyncCpuMs: cpuMicros(process.cpuUsage(resyncCpuBefore)) / 1000,
    }
  } finally {
    running = undefined
    await daemon.stop()
    await removeContainers(docker)
    await rm(specsDir, { recursive: true, force: true })
  }
}

export function idleTable(results: IdleResult[]): string {
  const fmt = (value: number | undefined, digits = 1) => (value === undefined ? 'n/a' : value.toFixed(digits))
  return [
    `### Idle cost on Docker (${IMAGE}, HTTP health checks, default intervals, ${WINDOW_SECONDS} s window in steady state)`,
    '',
    '| engine | running plugins | manager CPU (% of one core) | CPU in window (s) | of it GC pauses: all / full collections (ms) | RSS at end / peak (MiB) | DB queries/min | docker stats calls in window | samples per plugin, min–max / rounds due | plugins that missed a round (> 1.5 intervals unsampled) | longest time a plugin went unsampled (s) | dockerd CPU (% of one core, shared engine) | running + healthy after (s) | one full resync: ms / queries / CPU ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (result) =>
        `| ${result.engine} | ${result.plugins}${result.plugins === 0 ? ' (idle daemon, the peer)' : ''} | ${fmt(result.cpuPercentOfOneCore, 2)} | ${fmt(result.cpuSeconds, 2)} | ${gcCell(result.gc)} | ` +
        `${fmt(result.rssMiB, 0)} / ${fmt(result.rssPeakMiB, 0)} | ${fmt(result.queriesPerMinute)} | ${result.dockerStatsCalls} | ${samplingCells(result.sampling)} | ${fmt(result.dockerdCpuPercentOfOneCore)} | ` +
        `${fmt(result.readySeconds, 0)} | ${fmt(result.resyncMs)} / ${result.resyncQueries} / ${fmt(result.resyncCpuMs, 0)} |`,
    ),
    ...perPluginLines(results),
    ...profileLines(results),
    ...allocationLines(results),
  ].join('\n')
}

function gcCell(gc: GcTime | undefined): string {
  return gc ? `${gc.totalMs.toFixed(0)} / ${gc.majorMs.toFixed(0)} (${gc.majorCount})` : 'n/a'
}

/** CPU ms per running plugin per minute: the whole daemon's, and net of the idle daemon (0 plugins) on the same engine when this run measured one. */
function perPluginLines(results: IdleResult[]): string[] {
  const cpuMsPerMinute = (result: IdleResult) => (result.cpuSeconds * 1000 * 60) / result.windowSeconds
  const lines = results
    .filter((result) => result.plugins > 0)
    .map((result) => {
      const peer = results.find((other) => other.plugins === 0 && other.engine === result.engine)
      const gross = cpuMsPerMinute(result) / result.plugins
      const net = peer ? (cpuMsPerMinute(result) - cpuMsPerMinute(peer)) / result.plugins : undefined
      return `- ${result.engine}, ${result.plugins} plugins: ${gross.toFixed(2)} ms of CPU per plugin per minute${net === undefined ? '' : `, ${net.toFixed(2)} beyond the idle daemon's`}`
    })
  return lines.length === 0 ? [] : ['', 'Cost per running plugin:', '', ...lines]
}

function samplingCells(sampling: SamplingResult | undefined): string {
  if (!sampling) return '– | – | –'
  return `${sampling.samplesMin}–${sampling.samplesMax} / ${sampling.roundsDue.toFixed(1)} | ${sampling.pluginsBehind} | ${sampling.longestGapSeconds.toFixed(1)}`
}

/** With BENCH_IDLE_PROFILE: the largest self times of each size's window. */
function profileLines(results: IdleResult[]): string[] {
  const profiled = results.filter((result) => result.profile)
  if (profiled.length === 0) return []
  return [
    '',
    'Where the CPU went in the window (V8 profile; each sample to the innermost frame of ours or of a dependency on its stack; ms):',
    '',
    ...profiled.map((result) => {
      const total = result.profile!.reduce((sum, group) => sum + group.selfMs, 0)
      const top = result.profile!.slice(0, 10).map((group) => `${group.group} ${group.selfMs.toFixed(0)} (${((group.selfMs / total) * 100).toFixed(0)} %)`)
      return `- ${result.engine}, ${result.plugins} plugins, ${total.toFixed(0)} ms sampled: ${top.join(', ')}`
    }),
  ]
}

/** With BENCH_IDLE_ALLOC_PROFILE: the largest allocators of each size's window, KiB per minute. */
function allocationLines(results: IdleResult[]): string[] {
  const profiled = results.filter((result) => result.allocations)
  if (profiled.length === 0) return []
  return [
    '',
    ALLOCATION_KIND === 'all'
      ? 'What allocated in the window (V8 sampling heap profiler, collected objects included; each sample to the innermost frame of ours or of a dependency; KiB per minute):'
      : 'What survived the young generation in the window (V8 sampling heap profiler, objects a scavenge freed left out; each sample to the innermost frame of ours or of a dependency; KiB per minute):',
    '',
    ...profiled.map((result) => {
      const perMinute = (bytes: number) => (bytes / 1024) * (60 / result.windowSeconds)
      const total = result.allocations!.reduce((sum, group) => sum + group.bytes, 0)
      const top = result.allocations!.slice(0, 10).map((group) => `${group.group} ${perMinute(group.bytes).toFixed(0)} (${((group.bytes / total) * 100).toFixed(0)} %)`)
      return `- ${result.engine}, ${result.plugins} plugins, ${perMinute(total).toFixed(0)} KiB a minute sampled: ${top.join(', ')}`
    }),
  ]
}

/** The child measuring now; Ctrl-C is passed on to it so it stops its daemon first. */
let current: ReturnType<typeof spawn> | undefined

/** Measures one size in a child process (this file run as a script) and returns its result. */
function measureInChild(plugins: number, databaseUrl?: string): Promise<IdleResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), String(plugins)], {
    env: { ...process.env, BENCH_IDLE_RUN: RUN_ID, BENCH_IDLE_DATABASE_URL: databaseUrl ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  current = child
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => {
      current = undefined
      if (code !== 0) return reject(new Error(`the idle bench for ${plugins} plugins exited with code ${code}`))
      resolve(JSON.parse(output.trim().split('\n').pop()!) as IdleResult)
    })
  })
}

export async function benchIdle(): Promise<{ results: IdleResult[]; table: string }> {
  const docker = dockerClient(loadConfig({ DOCKER_HOST: process.env.DOCKER_HOST }))
  const images = await docker.listImages({ filters: { reference: [IMAGE] } })
  if (images.length === 0) throw new Error(`the image ${IMAGE} is missing: run bash test/images/build.sh first`)
  // Ctrl-C must not leave 200 containers behind: the child cleans up, then so do we.
  const unregister = cleanupOnInterrupt(async () => {
    const child = current
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGINT')
      await exited
    }
    await removeContainers(docker)
  })
  try {
    const results: IdleResult[] = []
    for (const plugins of SIZES) results.push(await measureInChild(plugins))
    // The largest size once more on a server: the manager's own cost without PGlite in it.
    const url = serverUrl()
    if (url) results.push(await withServerDatabase(url, 'ff_bench_idle', (databaseUrl) => measureInChild(Math.max(...SIZES), databaseUrl)))
    const table = idleTable(results)
    await writeResults('idle', { windowSeconds: WINDOW_SECONDS, image: IMAGE, results })
    return { results, table }
  } finally {
    unregister()
    await removeContainers(docker)
  }
}

/** As a script (the child): measure one size, print its result as one JSON line. */
async function measureOneSize(plugins: number): Promise<void> {
  const docker = dockerClient(loadConfig({ DOCKER_HOST: process.env.DOCKER_HOST }))
  cleanupOnInterrupt(async () => {
    // The containers go even if the daemon cannot stop cleanly (its database dropped meanwhile).
    await running?.stop().catch((error: unknown) => process.stderr.write(`bench: the daemon did not stop cleanly: ${(error as Error).message}\n`))
    await removeContainers(docker)
  })
  try {
    process.stdout.write(JSON.stringify(await measure(plugins, docker)) + '\n')
  } catch (error) {
    // Interrupted: the cleanup stopped the daemon under the measurement, and exits when done.
    if (cleaningUpAfterInterrupt()) return
    throw error
  }
  process.exit(0)
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await measureOneSize(Number(process.argv[2]))
