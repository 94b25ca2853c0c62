// Controller scale on the in-memory runtime: N plugins (default 10,000) from empty to
// converged, on the embedded engine and (with BENCH_DATABASE_URL or TEST_DATABASE_URL) a
// real server in the same run. Measures the controller and the store, not Docker: plugins
// per second, database round trips per plugin, and the cost of an idle resync afterwards.
// Each row runs in a child process of its own (this file as a script), so its CPU, RSS and
// peak RSS are that row's alone, and V8's process-wide WASM compiler setting can differ
// between rows: the embedded engine runs once with our memory settings and once with
// PGlite's defaults (shared_buffers 128 MB, TurboFan), the peer of what they cost in speed.
// Also home of the two helpers the other benchmarks share: a throwaway server database and
// the JSON results file.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { sql } from 'kysely'
import pg from 'pg'
import { Controller } from '../src/controller/controller.js'
import { loadConfig, type Config } from '../src/config.js'
import { openDatabase, type DatabaseHandle } from '../src/db/database.js'
import { migrate } from '../src/db/migrator.js'
import { PluginStore } from '../src/db/plugin-store.js'
import { silentLogger } from '../src/logger.js'
import { sleep } from '../src/util/backoff.js'
import { FakeRuntime } from '../src/runtime/fake-runtime.js'
import { systemClock } from '../src/util/clock.js'
import { processCpuSeconds } from '../src/util/proc-stat.js'
import { fmt, fmtMemory, processMemory, writeResults, type ProcessMemory } from './results.js'

export { writeResults }

const PLUGINS = Number(process.env.BENCH_SCALE_PLUGINS ?? 10_000)
const WORKERS = Number(process.env.BENCH_SCALE_WORKERS ?? 8)
const BENCH_IMAGE = 'flowforge/bench:1'
const logger = silentLogger()
/** Marks the server databases of runs on this machine: only their process ids can be checked here. */
const HOST_TAG = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8)

export interface ScaleResult {
  engine: string
  plugins: number
  workers: number
  seconds: number
  pluginsPerSecond: number
  /** Queries the controller sent between the INSERT and convergence (ours excluded), per plugin. */
  queriesPerPlugin: number
  queriesDuringConverge: number
  reconciles: number
  /** Reconciles that threw and were retried with backoff (lost port-allocation races, mostly). */
  failedReconciles: number
  idleResyncMs: number
  queriesInIdleResync: number
  dockerCallsInIdleResync: number
  /** CPU time of the row's process (controller and, embedded, the database) from the INSERT to convergence, per plugin. */
  cpuMsPerPlugin: number
  /** The row's process after the idle resync: RSS and its peak over the whole row (VmHWM). */
  memory?: ProcessMemory
}

/** A row of the table: which engine, and with which embedded memory settings. */
export type ScaleVariant = 'embedded' | 'embedded-optimized' | 'embedded-16mb' | 'embedded-128mb' | 'embedded-pglite-defaults' | 'server'

export const embeddedConfig = (): Config => ({ ...loadConfig({}), database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } })

/** The Postgres server of BENCH_DATABASE_URL or TEST_DATABASE_URL, if one is configured. */
export function serverUrl(): string | undefined {
  return process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL
}

const interruptTasks = new Set<() => Promise<void>>()

/**
 * Runs `task` if the bench is interrupted (Ctrl-C), before the process exits: a run cut
 * short must not leave containers or databases behind. Returns the unregister function.
 */
export function cleanupOnInterrupt(task: () => Promise<void>): () => void {
  if (interruptTasks.size === 0) process.on('SIGINT', runInterruptTasks)
  interruptTasks.add(task)
  return () => {
    interruptTasks.delete(task)
    if (interruptTasks.size === 0 && !interrupted) process.off('SIGINT', runInterruptTasks)
  }
}

let interrupted = false

/** True once Ctrl-C started the cleanup: work failing after that is the cleanup's doing. */
export function cleaningUpAfterInterrupt(): boolean {
  return interrupted
}

function runInterruptTasks(): void {
  // A second Ctrl-C (or the parent passing one on) must not cut the cleanup short.
  if (interrupted) return
  interrupted = true
  process.stderr.write('bench: interrupted, cleaning up\n')
  const tasks = [...interruptTasks].map((task) =>
    task().catch((error: unknown) => process.stderr.write(`bench: cleanup failed: ${(error as Error).message}\n`)),
  )
  void Promise.all(tasks).finally(() => process.exit(130))
}

/** Runs `work` with the URL of a fresh database on the server, dropped afterwards whatever happens. */
export async function withServerDatabase<T>(url: string, prefix: string, work: (databaseUrl: string) => Promise<T>): Promise<T> {
  const name = `${prefix}_${HOST_TAG}_${Date.now()}_${process.pid}`
  const admin = new pg.Client({ connectionString: url })
  // A lost admin connection fails the next query; as an unhandled event it would kill the run.
  admin.on('error', (error) => process.stderr.write(`bench: the admin connection to Postgres failed: ${error.message}\n`))
  await admin.connect()
  await dropDatabasesOfDeadRuns(admin, prefix)
  const drop = async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
  const unregister = cleanupOnInterrupt(drop)
  try {
    await admin.query(`CREATE DATABASE ${name}`)
    const target = new URL(url)
    target.pathname = `/${name}`
    try {
      return await work(target.toString())
    } finally {
      await drop()
    }
  } finally {
    unregister()
    await admin.end()
  }
}

/** A run killed outright (SIGKILL, a crash) cannot drop its database: the next run here does. */
async function dropDatabasesOfDeadRuns(admin: pg.Client, prefix: string): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${prefix}\\_${HOST_TAG}\\_%`])
  for (const { datname } of rows) {
    const pid = Number(/_(\d+)$/.exec(datname)?.[1])
    if (!Number.isInteger(pid) || processAlive(pid)) continue
    process.stderr.write(`bench: dropping ${datname}, left by an earlier run that did not finish\n`)
    await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`)
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but is not ours to signal; ESRCH: it is gone.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Every plugin in one multi-row INSERT, as an operator would load them in SQL. */
export async function insertPlugins(database: DatabaseHandle, count: number, manifest: object, prefix = 'bench'): Promise<void> {
  const json = JSON.stringify(manifest).replaceAll("'", "''")
  const values = Array.from({ length: count }, (_, index) => `('${prefix}-${index}', '${json}'::jsonb)`).join(',')
  await sql.raw(`INSERT INTO plugins (forgehook_id, manifest) VALUES ${values}`).execute(database.db)
}

/** How many plugins run at their latest generation. */
export async function convergedCount(database: DatabaseHandle): Promise<number> {
  const row = await database.db
    .selectFrom('plugins')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', '=', 'running')
    .whereRef('observed_generation', '=', 'generation')
    .executeTakeFirstOrThrow()
  return Number(row.n)
}


async function measure(engine: string, config: Config): Promise<ScaleResult> {
  const cpuAt = () => (processCpuSeconds('self') ?? Number.NaN) * 1000
  let queries = 0
  const database = await openDatabase(config, logger, { onQuery: () => (queries += 1) })
  let controller: Controller | undefined
  try {
    await migrate(database.db, config.migrationsDir, logger)
    const store = new PluginStore(database.db, database.changes, logger)
    const runtime = new FakeRuntime({ images: [BENCH_IMAGE] })
    controller = new Controller({
      store,
      runtime,
      clock: systemClock,
      logger,
      workers: WORKERS,
      resyncIntervalMs: 3_600_000,
      container: { hostIp: '127.0.0.1', instance: 'bench' },
      stopTimeoutSeconds: 1,
      portRange: { from: 10_000, to: 10_000 + PLUGINS + 100 },
      retryBaseMs: 100,
      retryMaxMs: 1_000,
    })
    await controller.start()

    const started = performance.now()
    const cpuBefore = cpuAt()
    const queriesBefore = queries
    let ourQueries = 0
    await insertPlugins(database, PLUGINS, { name: 'Bench', version: '1.0.0', image: BENCH_IMAGE, port: 8080, imagePullPolicy: 'Never' })
    ourQueries += 1
    // Watch the controller in memory and ask the database only when it looks done, so our
    // own polling neither loads the engine (PGlite shares this thread) nor skews the count.
    for (;;) {
      const stats = controller.snapshot()
      if (stats.reconciles >= PLUGINS && stats.processing === 0 && stats.queueDepth === 0) {
        ourQueries += 1
        if ((await convergedCount(database)) >= PLUGINS) break
      }
      await sleep(stats.reconciles >= PLUGINS ? 50 : 10)
    }
    const seconds = (performance.now() - started) / 1000
    const cpuMsPerPlugin = (cpuAt() - cpuBefore) / PLUGINS
    const queriesDuringConverge = queries - queriesBefore - ourQueries
    const { reconciles, reconcileErrors: failedReconciles } = controller.snapshot()

    runtime.resetCalls()
    const resyncsBefore = controller.snapshot().resyncs
    const queriesBeforeResync = queries
    const resyncStarted = performance.now()
    controller.requestResync('bench')
    while (controller.snapshot().resyncs === resyncsBefore) await sleep(5)
    const idleResyncMs = performance.now() - resyncStarted
    const queriesInIdleResync = queries - queriesBeforeResync
    const dockerCallsInIdleResync = runtime.mutatingCalls.length + runtime.inspectCalls
    return {
      engine,
      plugins: PLUGINS,
      workers: WORKERS,
      seconds,
      pluginsPerSecond: PLUGINS / seconds,
      queriesPerPlugin: queriesDuringConverge / PLUGINS,
      queriesDuringConverge,
      reconciles,
      failedReconciles,
      idleResyncMs,
      queriesInIdleResync,
      dockerCallsInIdleResync,
      cpuMsPerPlugin,
      memory: processMemory(),
    }
  } finally {
    await controller?.stop()
    await database.close()
  }
}

export function controllerScaleTable(results: ScaleResult[]): string {
  return [
    `### Controller scale on the in-memory runtime (${PLUGINS} plugins, ${WORKERS} workers)`,
    '',
    '| engine | empty → converged (s) | plugins/s | DB round trips per plugin | reconciles (failed, retried) | idle resync (ms) | queries in an idle resync | Docker calls in an idle resync (besides the one list) | process CPU per plugin (ms) | process RSS at end / peak (MiB) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (result) =>
        `| ${result.engine} | ${result.seconds.toFixed(2)} | ${result.pluginsPerSecond.toFixed(0)} | ${result.queriesPerPlugin.toFixed(2)} | ` +
        `${result.reconciles} (${result.failedReconciles}) | ${result.idleResyncMs.toFixed(1)} | ${result.queriesInIdleResync} | ${result.dockerCallsInIdleResync} | ` +
        `${fmt(result.cpuMsPerPlugin, 2)} | ${fmtMemory(result.memory)} |`,
    ),
  ].join('\n')
}

/** BENCH_SCALE_VARIANTS (default: embedded,embedded-pglite-defaults, and server when one is configured; also embedded-optimized, embedded-16mb, embedded-128mb). */
function variantsFromEnv(): ScaleVariant[] {
  const requested = process.env.BENCH_SCALE_VARIANTS?.split(',').map((value) => value.trim()).filter(Boolean)
  return (requested ?? ['embedded', 'embedded-pglite-defaults', 'server']) as ScaleVariant[]
}

/** The engine's label and configuration of a row; the server's database URL comes from the parent. */
function variantConfig(variant: ScaleVariant, databaseUrl: string | undefined): { engine: string; config: Config } {
  if (variant === 'server') return { engine: 'Postgres server', config: loadConfig({ DATABASE_URL: databaseUrl }) }
  if (variant === 'embedded') return { engine: 'embedded (PGlite)', config: embeddedConfig() }
  // One setting at a time, and both at PGlite's defaults: what each costs in speed.
  const [label, sharedBuffersMiB, wasmOptimize] = {
    'embedded-optimized': ['embedded (PGlite), WASM optimized (EMBEDDED_WASM_OPTIMIZE=true)', undefined, true],
    'embedded-16mb': ['embedded (PGlite), shared_buffers 16 MB (EMBEDDED_SHARED_BUFFERS_MB=16)', 16, false],
    'embedded-128mb': ['embedded (PGlite), shared_buffers 128 MB (EMBEDDED_SHARED_BUFFERS_MB=128)', 128, false],
    'embedded-pglite-defaults': ["embedded (PGlite), PGlite's memory defaults: shared_buffers 128 MB, WASM optimized", 128, true],
  }[variant] as [string, number | undefined, boolean]
  const config = embeddedConfig()
  return {
    engine: label,
    config: { ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0, ...(sharedBuffersMiB ? { sharedBuffersMiB } : {}), wasmOptimize } },
  }
}

/** The child measuring now; Ctrl-C is passed on to it. */
let currentChild: ReturnType<typeof spawn> | undefined

/** Runs one row in a child process (this file as a script) and returns its result. */
function measureInChild(variant: ScaleVariant, databaseUrl?: string): Promise<ScaleResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), variant], {
    env: { ...process.env, BENCH_SCALE_CHILD_DATABASE_URL: databaseUrl ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  currentChild = child
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => {
      currentChild = undefined
      if (code !== 0) return reject(new Error(`the scale bench (${variant}) exited with code ${code}`))
      resolve(JSON.parse(output.trim().split('\n').pop()!) as ScaleResult)
    })
  })
}

export async function benchControllerScale(): Promise<{ results: ScaleResult[]; table: string }> {
  const unregister = cleanupOnInterrupt(async () => {
    const child = currentChild
    if (!child || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGINT')
    await exited
  })
  try {
    const results: ScaleResult[] = []
    const url = serverUrl()
    for (const variant of variantsFromEnv()) {
      if (variant !== 'server') {
        results.push(await measureInChild(variant))
        continue
      }
      if (url) results.push(await withServerDatabase(url, 'ff_bench_scale', (databaseUrl) => measureInChild('server', databaseUrl)))
      else process.stderr.write('bench: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to measure on a Postgres server too\n')
    }
    const table = controllerScaleTable(results)
    await writeResults('controller-scale', { plugins: PLUGINS, workers: WORKERS, results })
    return { results, table }
  } finally {
    unregister()
  }
}

/** As a script (the child): measure one row, print its result as one JSON line. */
async function measureOneVariant(variant: ScaleVariant): Promise<void> {
  const { engine, config } = variantConfig(variant, process.env.BENCH_SCALE_CHILD_DATABASE_URL || undefined)
  process.stdout.write(JSON.stringify(await measure(engine, config)) + '\n')
  process.exit(0)
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await measureOneVariant(process.argv[2] as ScaleVariant)
