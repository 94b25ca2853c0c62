// Shared pieces of the Docker benchmarks: one identity per run (every container of this run
// is found by its name prefix or its installation label, its daemon's network by that label),
// cleanup that also runs on Ctrl-C, a ContainerRuntime that counts calls, the daemon started
// in-process, and small helpers.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import Docker from 'dockerode'
import pg from 'pg'
import { loadConfig } from '../src/config.js'
import { createLogger, silentLogger, type Logger } from '../src/logger.js'
import { startDaemon, type Daemon } from '../src/main.js'
import { LABELS, type ContainerRuntime, type ContainerSpec, type CreateOptions, type ImagePullPolicy, type RuntimeStreamItem } from '../src/runtime/container-runtime.js'
import { DockerRuntime } from '../src/runtime/docker-runtime.js'
import { processCpuSeconds } from '../src/util/proc-stat.js'

export const BENCH_IMAGE = 'flowforge-test/http:1'
/** MANAGER_INSTANCE of every daemon of this run, and the start of every container name. */
export const BENCH_INSTANCE = `bench-${process.pid}`
export type Engine = 'embedded' | 'postgres'

export const serverUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL
const dockerHost = loadConfig({ DOCKER_HOST: process.env.DOCKER_HOST }).controller.dockerHost
const socketPath = dockerHost.startsWith('unix://') ? dockerHost.slice('unix://'.length) : '/var/run/docker.sock'

export function dockerClient(): Docker {
  return new Docker({ socketPath })
}

// ---- cleanup: on success, on error, on Ctrl-C and on exit ----

/** Names like forgehook-bench-<pid>-x (ours, the limit) and bench-<pid>-compose_x_1 (compose). */
const nameFilter = (instance: string) => `^/(forgehook-)?${instance}-`
const cleanupTasks = new Set<() => Promise<void>>()
let handlersInstalled = false
let interrupting = false

/** Whether Ctrl-C (or SIGTERM) came: the cleanup is under way and ends the process itself. */
export function isInterrupted(): boolean {
  return interrupting
}

/** Runs at interruption (before the containers are removed); the returned function unregisters it. */
export function onInterrupt(task: () => Promise<void>): () => void {
  cleanupTasks.add(task)
  return () => cleanupTasks.delete(task)
}

/** Force-removes every container of a run (default: this one), by name prefix and by installation label. */
export async function cleanupContainers(instance = BENCH_INSTANCE): Promise<number> {
  const docker = dockerClient()
  const byName = await docker.listContainers({ all: true, filters: { name: [nameFilter(instance)] } })
  const byLabel = await docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${instance}`] } })
  const ids = [...new Set([...byName, ...byLabel].map((container) => container.Id))]
  await runInPool(ids, 8, async (id) => {
    await docker.getContainer(id).remove({ force: true }).catch((error: { statusCode?: number }) => {
      // 404: already gone; 409: its removal is already under way (the interrupt's cleanup
      // racing the normal one). Anything else would be a leak: let it fail loudly.
      if (error.statusCode !== 404 && error.statusCode !== 409) throw error
    })
  })
  await removeNetworks(instance)
  return ids.length
}

/**
 * The installation network a daemon makes (flowforge-<instance>), once no container is
 * attached to it. A removal racing ours (the interrupt's and the normal cleanup) can leave an
 * endpoint for a moment (403 "has active endpoints"): looked at again for up to 5 s, then
 * reported rather than thrown, since a network costs nothing while it waits.
 */
export async function removeNetworks(instance: string): Promise<void> {
  const docker = dockerClient()
  const networks = await docker.listNetworks({ filters: { label: [`${LABELS.instance}=${instance}`] } })
  for (const network of networks) {
    for (let attempt = 1; ; attempt++) {
      try {
        await docker.getNetwork(network.Id).remove()
        break
      } catch (error) {
        const statusCode = (error as { statusCode?: number }).statusCode
        if (statusCode === 404) break
        if (statusCode !== 403 || attempt === 10) {
          process.stderr.write(`bench: network ${network.Name} left behind: ${(error as Error).message}\n`)
          break
        }
        await sleep(500)
      }
    }
  }
}

export function installCleanupHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  const interrupted = (signal: string) => {
    // Once: under `npm run bench` a Ctrl-C reaches this process twice (from the terminal and
    // relayed by tsx), and a second signal without a handler would kill it mid-cleanup.
    if (interrupting) return
    interrupting = true
    process.stderr.write(`bench: ${signal}: removing this run's containers and databases\n`)
    const withDeadline = (task: () => Promise<void>) => Promise.race([task(), sleep(15_000)])
    const tasks = [...cleanupTasks].map((task) => withDeadline(task).catch((error: unknown) => process.stderr.write(`bench: cleanup step failed: ${String(error)}\n`)))
    void Promise.all(tasks)
      .then(() => cleanupContainers())
      .catch((error: unknown) => process.stderr.write(`bench: container cleanup failed: ${String(error)}\n`))
      .finally(() => process.exit(130))
  }
  process.on('SIGINT', () => interrupted('SIGINT'))
  process.on('SIGTERM', () => interrupted('SIGTERM'))
  // Last resort, synchronous: whatever an unexpected exit left behind.
  process.on('exit', () => {
    const listed = spawnSync('docker', ['ps', '-aq', '--filter', `name=${nameFilter(BENCH_INSTANCE)}`], { encoding: 'utf8' })
    const ids = (listed.stdout ?? '').split('\n').filter(Boolean)
    if (ids.length > 0) spawnSync('docker', ['rm', '-f', ...ids])
    const networks = (spawnSync('docker', ['network', 'ls', '-q', '--filter', `label=${LABELS.instance}=${BENCH_INSTANCE}`], { encoding: 'utf8' }).stdout ?? '').split('\n').filter(Boolean)
    if (networks.length > 0) spawnSync('docker', ['network', 'rm', ...networks])
  })
}

// ---- a runtime that counts ----

export interface TimedCall {
  method: string
  startedAt: number
  /** Set when the call returns; the engine's event may arrive before that. */
  durationMs?: number
  finished: Promise<void>
}

/** Every call counted by method; calls that change anything are also timed (latency overhead). */
export class CountingRuntime implements ContainerRuntime {
  calls: Record<string, number> = {}
  mutating: TimedCall[] = []

  constructor(private readonly inner: ContainerRuntime) {}

  get totalCalls(): number {
    return Object.values(this.calls).reduce((sum, count) => sum + count, 0)
  }

  reset(): void {
    this.calls = {}
    this.mutating = []
  }

  private count(method: string): void {
    this.calls[method] = (this.calls[method] ?? 0) + 1
  }

  private timed<T>(method: string, call: () => Promise<T>): Promise<T> {
    this.count(method)
    const record: TimedCall = { method, startedAt: performance.now(), finished: Promise.resolve() }
    const result = call()
    record.finished = result.then(
      () => void (record.durationMs = performance.now() - record.startedAt),
      () => void (record.durationMs = performance.now() - record.startedAt),
    )
    this.mutating.push(record)
    return result
  }

  connect = () => (this.count('connect'), this.inner.connect())
  listManaged = () => (this.count('listManaged'), this.inner.listManaged())
  listByNamePrefix = () => (this.count('listByNamePrefix'), this.inner.listByNamePrefix())
  inspect = (idOrName: string) => (this.count('inspect'), this.inner.inspect(idOrName))
  // IfNotPresent and Never with the image present pull nothing (an image inspect); Always pulls.
  ensureImage = (image: string, policy: ImagePullPolicy) =>
    policy === 'Always' ? this.timed('ensureImage', () => this.inner.ensureImage(image, policy)) : (this.count('ensureImage'), this.inner.ensureImage(image, policy))
  create = (spec: ContainerSpec, options?: CreateOptions) => this.timed('create', () => this.inner.create(spec, options))
  rename = (containerId: string, name: string) => this.timed('rename', () => this.inner.rename(containerId, name))
  ensureVolume = (name: string, labels: Record<string, string>) => (this.count('ensureVolume'), this.inner.ensureVolume(name, labels))
  removeVolume = (name: string) => this.timed('removeVolume', () => this.inner.removeVolume(name))
  ensureNetwork = (name: string, labels: Record<string, string>) => (this.count('ensureNetwork'), this.inner.ensureNetwork(name, labels))
  connectNetwork = (containerId: string, network: string, aliases: string[]) => this.timed('connectNetwork', () => this.inner.connectNetwork(containerId, network, aliases))
  disconnectNetwork = (containerId: string, network: string) => this.timed('disconnectNetwork', () => this.inner.disconnectNetwork(containerId, network))
  listVolumes = (labels: Record<string, string>) => (this.count('listVolumes'), this.inner.listVolumes(labels))
  start = (containerId: string) => this.timed('start', () => this.inner.start(containerId))
  stop = (containerId: string, timeoutSeconds: number) => this.timed('stop', () => this.inner.stop(containerId, timeoutSeconds))
  remove = (containerId: string, options?: { anonymousVolumes?: boolean }) => this.timed('remove', () => this.inner.remove(containerId, options))
  logs = (containerId: string, options: { tail: number }) => (this.count('logs'), this.inner.logs(containerId, options))
  followLogs = (containerId: string, options: { tail: number; signal: AbortSignal }) => (this.count('followLogs'), this.inner.followLogs(containerId, options))
  stats = (containerId: string) => (this.count('stats'), this.inner.stats(containerId))
  events = (signal: AbortSignal): AsyncIterable<RuntimeStreamItem> => (this.count('events'), this.inner.events(signal))
}

// ---- databases and the daemon ----

/** A new database on the server, dropped by `drop` (also on Ctrl-C). */
export async function createServerDatabase(label: string): Promise<{ connectionString: string; drop: () => Promise<void> }> {
  if (!serverUrl) throw new Error('set BENCH_DATABASE_URL or TEST_DATABASE_URL for a Postgres server')
  const name = `ff_bench_${label}_${randomBytes(4).toString('hex')}`
  const admin = async (text: string) => {
    const client = new pg.Client({ connectionString: serverUrl, connectionTimeoutMillis: 5_000 })
    await client.connect()
    await client.query(text).finally(() => client.end())
  }
  await admin(`CREATE DATABASE ${name}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  const drop = () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  const unregister = onInterrupt(drop)
  return { connectionString: url.toString(), drop: async () => (unregister(), await drop()) }
}

export async function makeTempDir(label: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `ff-bench-${label}-`))
  onInterrupt(() => rm(dir, { recursive: true, force: true }))
  return dir
}

export interface BenchDaemon {
  daemon: Daemon
  runtime: CountingRuntime
  specsDir: string
  engine: Engine
  /** The server database's connection string (postgres only). */
  connectionString?: string
  /** Stops the daemon and drops its database; containers are the caller's to remove. */
  stop(): Promise<void>
}

export interface BenchDaemonOptions {
  engine: Engine
  label: string
  workers: number
  hostPortRange: string
}

/** The daemon in this process, on the real Docker engine behind a CountingRuntime; resolves once ready. */
export async function startBenchDaemon(options: BenchDaemonOptions): Promise<BenchDaemon> {
  const specsDir = await makeTempDir(`${options.label}-specs`)
  const server = options.engine === 'postgres' ? await createServerDatabase(options.label) : undefined
  const env = {
    PORT: '0',
    SPECS_DIR: specsDir,
    MANAGER_INSTANCE: BENCH_INSTANCE,
    HOST_PORT_RANGE: options.hostPortRange,
    STOP_TIMEOUT: '2',
    RECONCILE_WORKERS: String(options.workers),
    DOCKER_HOST: dockerHost,
    ...(server ? { DATABASE_URL: server.connectionString } : {}),
  }
  const loaded = loadConfig(env)
  const config = server ? loaded : { ...loaded, database: { kind: 'embedded' as const, dataDir: 'memory', sqlPort: 0 } }
  const logger = benchLogger()
  const runtime = new CountingRuntime(new DockerRuntime({ dockerHost, requestTimeoutMs: config.controller.dockerTimeoutMs, logger }))
  const daemon = await startDaemon(config, logger, { runtime }).catch(async (error: unknown) => {
    await server?.drop()
    throw error
  })
  const stopAndDrop = async () => {
    await daemon.stop()
    await server?.drop()
    await rm(specsDir, { recursive: true, force: true })
  }
  // Interrupted, the daemon must stop first: running, it would recreate what the cleanup removes.
  const unregister = onInterrupt(stopAndDrop)
  const stop = () => (unregister(), stopAndDrop())
  try {
    await daemon.ready
  } catch (error) {
    await stop()
    throw error
  }
  return { daemon, runtime, specsDir, engine: options.engine, connectionString: server?.connectionString, stop }
}

/** BENCH_LOG_LEVEL=info shows the daemon's log on stderr; silent by default. */
function benchLogger(): Logger {
  const level = process.env.BENCH_LOG_LEVEL
  if (!level) return silentLogger()
  return createLogger(loadConfig({ LOG_LEVEL: level }).logLevel, process.stderr)
}

// ---- Docker events, as a witness of what changed and when ----

export interface DockerEventRecord {
  action: string
  type: string
  name: string
  /** performance.now() when the event arrived here. */
  receivedAt: number
}

/** Records the engine's events matching `filters` until `close()`; `waitFor` resolves on a matching one. */
export async function watchDockerEvents(filters: Record<string, string[]>) {
  const stream = (await dockerClient().getEvents({ filters })) as unknown as NodeJS.ReadableStream & { destroy(): void }
  const events: DockerEventRecord[] = []
  const waiters = new Set<{ match: (event: DockerEventRecord) => boolean; resolve: (event: DockerEventRecord) => void }>()
  let buffered = ''
  stream.on('data', (chunk: Buffer) => {
    // Chunks do not align with JSON objects: split on newlines.
    const lines = (buffered + chunk.toString()).split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines.filter(Boolean)) {
      const raw = JSON.parse(line) as { Action: string; Type: string; Actor?: { Attributes?: Record<string, string> } }
      const event = { action: raw.Action, type: raw.Type, name: raw.Actor?.Attributes?.name ?? '', receivedAt: performance.now() }
      events.push(event)
      for (const waiter of waiters) if (waiter.match(event)) (waiters.delete(waiter), waiter.resolve(event))
    }
  })
  stream.on('error', (error) => process.stderr.write(`bench: the Docker event stream failed: ${error.message}\n`))
  return {
    events,
    waitFor(match: (event: DockerEventRecord) => boolean, timeoutMs = 30_000): Promise<DockerEventRecord> {
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (event: DockerEventRecord) => (clearTimeout(timer), resolve(event)) }
        const timer = setTimeout(() => (waiters.delete(waiter), reject(new Error(`no matching Docker event within ${timeoutMs} ms`))), timeoutMs)
        waiters.add(waiter)
      })
    },
    close: () => stream.destroy(),
  }
}

/**
 * CPU seconds dockerd and containerd have used so far (Linux /proc; undefined elsewhere): on a
 * small machine the engine's own CPU is what a contender's extra calls cost.
 */
export function engineCpuSeconds(): number | undefined {
  const pids = (spawnSync('pidof', ['dockerd', 'containerd'], { encoding: 'utf8' }).stdout ?? '').split(/\s+/).filter(Boolean)
  if (pids.length === 0) return undefined
  return pids.reduce((sum, pid) => sum + (processCpuSeconds(pid) ?? 0), 0)
}

/** The installation network as the daemon makes it (DockerRuntime.ensureNetwork, with the controller's labels). */
export async function ensureInstallationNetwork(name: string): Promise<void> {
  const runtime = new DockerRuntime({ dockerHost, logger: silentLogger() })
  await runtime.connect()
  await runtime.ensureNetwork(name, { [LABELS.managed]: 'true', [LABELS.instance]: BENCH_INSTANCE })
}

/** Busy share of the whole machine's CPU time (all cores) over `ms`, from /proc/stat. */
async function machineBusyShare(ms: number): Promise<number> {
  const read = async () => {
    const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0)
    return { total, idle: fields[3]! + fields[4]! }
  }
  const before = await read()
  await sleep(ms)
  const after = await read()
  const total = after.total - before.total
  return total > 0 ? 1 - (after.idle - before.idle) / total : 0
}

/**
 * Waits until the machine is quiet (under 10 % busy over a second), at most `maxMs`: after
 * 100 containers are removed the kernel goes on tearing their network namespaces down for
 * several seconds, and a contender started meanwhile pays for it. Returns the ms waited.
 */
export async function waitForQuietMachine(maxMs = 30_000): Promise<number> {
  const started = performance.now()
  let busy = await machineBusyShare(1_000)
  while (busy > 0.1 && performance.now() - started < maxMs) busy = await machineBusyShare(1_000)
  return performance.now() - started
}

/** Events that mean the engine changed something (image pulls included). */
export const MUTATING_ACTIONS = new Set(['create', 'start', 'stop', 'kill', 'die', 'destroy', 'restart', 'rename', 'update', 'pull', 'pause', 'unpause'])

// ---- numbers and small helpers ----

export { fmt, percentile, runInPool, writeResults } from './results.js'
import { percentile, runInPool } from './results.js'

export interface Summary {
  p50: number
  p95: number
  min: number
  max: number
  samples: number[]
}

export function summarize(samples: number[]): Summary {
  return { p50: percentile(samples, 0.5), p95: percentile(samples, 0.95), min: Math.min(...samples), max: Math.max(...samples), samples }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every `intervalMs` until it returns a value, or throws after `timeoutMs`. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

