// Case 7: restart recovery. N running plugins (BENCH_RECOVERY_N, default 200), `kill -9` of
// the daemon, start it again: how long until /readyz answers and until the start resync has
// verified every status against Docker; and that no container was recreated or restarted.
// The daemon is a real process here (SIGKILL), node itself, so the pid we kill is the
// daemon's. Each round restarts it once in each way to start it (BENCH_RECOVERY_STARTS, default
// sources,modules,compiled), BENCH_RECOVERY_ROUNDS times (default 2): `compiled` runs
// dist/src/cli/forgectl.js, what `npm start` and the image run (the one-file build in
// dist/bundle/ when it is current, scripts/bundle-daemon.mjs); `modules` runs the same
// compiled code module by module (dist/src/cli/dispatch.js), what `compiled` was before the
// bundle; `sources` runs src/ through tsx's loader, what `npm run dev` runs;
// `compiled-node24` is `compiled` on the image's Node line, with its compile cache (included
// by default when that Node is installed, see NODE24).
// dist/ is brought up to date first (scripts/build-if-stale.mjs, npm start's prestart).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import path from 'node:path'
import pg from 'pg'
import { packageRoot } from '../src/config.js'
import { processCpuSeconds } from '../src/util/proc-stat.js'
import { containerNameFor, LABELS } from '../src/runtime/container-runtime.js'
import {
  BENCH_IMAGE,
  BENCH_INSTANCE,
  cleanupContainers,
  createServerDatabase,
  dockerClient,
  fmt,
  installCleanupHandlers,
  makeTempDir,
  MUTATING_ACTIONS,
  onInterrupt,
  runInPool,
  serverUrl,
  waitUntil,
  watchDockerEvents,
  writeResults,
  type Engine,
} from './docker-harness.js'
import { fmtMemory, processMemory, type ProcessMemory } from './results.js'

const PLUGINS = Number(process.env.BENCH_RECOVERY_N ?? 200)
const ROUNDS = Number(process.env.BENCH_RECOVERY_ROUNDS ?? 2)

/** How the daemon is started: `npm start`'s compiled dist/ (bundled), the same module by module, or the sources through tsx. */
export type DaemonStart = 'compiled' | 'modules' | 'sources' | 'compiled-node24'
const DAEMON_STARTS: readonly DaemonStart[] = ['compiled', 'modules', 'sources', 'compiled-node24']

/**
 * The image's Node line for `compiled-node24` (BENCH_NODE24, else where .ci/run installs it):
 * Node 22+ keeps V8's compiled code on disk (module.enableCompileCache, src/cli/forgectl.ts).
 */
const NODE24 = process.env.BENCH_NODE24 ?? '/opt/flowforge/node-24/bin/node'

export function daemonCommand(start: DaemonStart): string[] {
  if (start === 'compiled' || start === 'compiled-node24') return [path.join(packageRoot(), 'dist', 'src', 'cli', 'forgectl.js'), 'serve']
  if (start === 'modules') return [path.join(packageRoot(), 'dist', 'src', 'cli', 'dispatch.js'), 'serve']
  return ['--import', 'tsx', path.join(packageRoot(), 'src', 'cli', 'forgectl.ts'), 'serve']
}

function startsFromEnv(): DaemonStart[] {
  const starts = (process.env.BENCH_RECOVERY_STARTS ?? `sources,modules,compiled${existsSync(NODE24) ? ',compiled-node24' : ''}`).split(',').map((value) => value.trim())
  const unknown = starts.filter((start) => !DAEMON_STARTS.includes(start as DaemonStart))
  if (unknown.length > 0) throw new Error(`BENCH_RECOVERY_STARTS: unknown ${unknown.join(', ')} (one of ${DAEMON_STARTS.join(', ')})`)
  return starts as DaemonStart[]
}
const manifest = { name: 'Recovery', version: '1.0.0', image: BENCH_IMAGE, imagePullPolicy: 'IfNotPresent', port: 8080 }

export interface RecoveryResult {
  engine: Engine
  /** How the restarted daemon ran: compiled (dist/) or sources (tsx). */
  start: DaemonStart
  plugins: number
  /** Loading N plugins until all were running (first daemon; not the measured part). */
  loadSeconds: number
  /** From spawning the second daemon: its first log line (the process and its modules loaded). */
  firstLogMs: number
  readyzMs: number
  /** CPU time (user + system) the daemon had used when /readyz first answered: the work, less swayed by a busy machine. */
  cpuAtReadyzMs: number
  controllerRunningMs: number
  resyncStartMs: number
  /** The start resync itself, as the daemon logs it (list containers, load rows, compare). */
  resyncOwnMs: number
  /** Containers whose id changed or vanished: expected 0. */
  recreated: number
  /** Same id, new StartedAt: expected 0. */
  restarted: number
  /** Engine events that change anything, from the second spawn until verified. */
  mutatingEvents: number
  /** "reconciling <plugin>" lines of the second daemon for our plugins: expected 0. */
  reconcilesPlanned: number
  runningAfter: number
  /** The first daemon, after loading the N plugins until all ran: RSS, and its peak over its life (VmHWM). */
  loadMemory?: ProcessMemory
  /** The restarted daemon when measured (2 s after its start resync): RSS and its peak so far. */
  memory?: ProcessMemory
}

export interface DaemonProcess {
  child: ChildProcess
  output: () => string
  /** performance.now() when a log line containing `text` first arrived. */
  seen: (text: string) => number | undefined
  exited: Promise<void>
}

export function spawnDaemon(env: Record<string, string>, watchFor: string[], start: DaemonStart): DaemonProcess {
  const child = spawn(start === 'compiled-node24' ? NODE24 : process.execPath, daemonCommand(start), {
    cwd: packageRoot(),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // A daemon outliving the benchmark would recreate the containers the cleanup removes.
  const killOnExit = () => child.kill('SIGKILL')
  process.on('exit', killOnExit)
  const unregister = onInterrupt(async () => void child.kill('SIGKILL'))
  const exited = new Promise<void>((resolve) => child.on('exit', () => (process.off('exit', killOnExit), unregister(), resolve())))
  let output = ''
  const seenAt = new Map<string, number>()
  const collect = (chunk: Buffer) => {
    if (!seenAt.has('')) seenAt.set('', performance.now())
    output += chunk.toString()
    for (const text of watchFor) if (!seenAt.has(text) && output.includes(text)) seenAt.set(text, performance.now())
  }
  child.stdout!.on('data', collect)
  child.stderr!.on('data', collect)
  return { child, output: () => output, seen: (text) => seenAt.get(text), exited }
}

export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

export async function readyzAnswers(apiBase: string): Promise<boolean> {
  try {
    return (await fetch(`${apiBase}/readyz`, { signal: AbortSignal.timeout(1_000) })).status === 200
  } catch (error) {
    // Not listening yet (connection refused) or slow: not ready; anything else is a bug here.
    if (error instanceof TypeError || (error as Error).name === 'TimeoutError') return false
    throw error
  }
}

/** Loads the plugins: in one INSERT on the server, through the API on the embedded engine (its SQL port is off). */
export async function loadPlugins(engine: Engine, names: string[], apiBase: string, connectionString: string | undefined, pluginManifest: object = manifest): Promise<void> {
  if (engine === 'postgres') {
    // One statement, as an operator would load plugins in SQL.
    const client = new pg.Client({ connectionString })
    await client.connect()
    const json = JSON.stringify(pluginManifest)
    await client.query(`INSERT INTO plugins (forgehook_id, manifest) VALUES ${names.map((name) => `('${name}', '${json}'::jsonb)`).join(', ')}`).finally(() => client.end())
    return
  }
  // Embedded: the SQL port is off, so the documents go through the API.
  await runInPool(names, 8, async (name) => {
    const response = await fetch(`${apiBase}/api/v1/plugins/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name }, spec: { manifest: pluginManifest } }),
    })
    if (response.status !== 201) throw new Error(`PUT ${name} answered ${response.status}: ${await response.text()}`)
  })
}

export async function countRunning(apiBase: string): Promise<number> {
  const response = await fetch(`${apiBase}/api/v1/plugins?status=running`)
  const body = (await response.json()) as { items: { metadata: { name: string } }[] }
  return body.items.filter((item) => item.metadata.name.startsWith(`${BENCH_INSTANCE}-`)).length
}

/** Container id and State.StartedAt of each of our containers, by name. */
async function containerStates(): Promise<Map<string, { id: string; startedAt: string }>> {
  const docker = dockerClient()
  const listed = await docker.listContainers({ all: true, filters: { label: [`${LABELS.instance}=${BENCH_INSTANCE}`] } })
  const states = new Map<string, { id: string; startedAt: string }>()
  await runInPool(listed, 8, async (entry) => {
    const info = await docker.getContainer(entry.Id).inspect()
    states.set(info.Name.replace(/^\//, ''), { id: info.Id, startedAt: info.State.StartedAt })
  })
  return states
}

async function measure(engine: Engine): Promise<RecoveryResult[]> {
  const server = engine === 'postgres' ? await createServerDatabase('recovery') : undefined
  const dataDir = engine === 'embedded' ? await makeTempDir('recovery-data') : undefined
  const specsDir = await makeTempDir('recovery-specs')
  // A compile cache of this run only: the first Node 24 restart finds it empty (as after an
  // upgrade), the next ones find what the earlier wrote.
  const compileCacheDir = await makeTempDir('recovery-compile-cache')
  const port = await freePort()
  const apiBase = `http://127.0.0.1:${port}`
  const env: Record<string, string> = {
    ...(server ? { DATABASE_URL: server.connectionString } : { DATA_DIR: dataDir!, SQL_PORT: '0' }),
    ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    PORT: String(port),
    SPECS_DIR: specsDir,
    NODE_COMPILE_CACHE: compileCacheDir,
    MANAGER_INSTANCE: BENCH_INSTANCE,
    HOST_PORT_RANGE: '5500-5999',
    STOP_TIMEOUT: '2',
    LOG_LEVEL: 'info',
  }
  const names = Array.from({ length: PLUGINS }, (_, index) => `${BENCH_INSTANCE}-rc-${index}`)
  const daemons: DaemonProcess[] = []
  try {
    const first = spawnDaemon(env, ['controller running'], 'compiled')
    daemons.push(first)
    await waitUntil('the first daemon', async () => (first.seen('controller running') ? true : undefined), 60_000)
    const loadStarted = performance.now()
    await loadPlugins(engine, names, apiBase, server?.connectionString)
    await waitUntil(`${PLUGINS} plugins running`, async () => ((await countRunning(apiBase)) >= PLUGINS ? true : undefined), 600_000, 500)
    const loadSeconds = (performance.now() - loadStarted) / 1000
    const loadMemory = processMemory(first.child.pid!)

    const results: RecoveryResult[] = []
    let running = first
    for (let round = 0; round < ROUNDS; round++) {
      for (const start of startsFromEnv()) {
        running.child.kill('SIGKILL')
        await running.exited
        const next = await restart(start)
        results.push({ ...next.result, loadSeconds, loadMemory })
        running = next
      }
    }
    return results
  } finally {
    for (const daemon of daemons) daemon.child.kill('SIGKILL')
    await Promise.all(daemons.map((daemon) => daemon.exited))
    await cleanupContainers()
    await server?.drop()
    await Promise.all([dataDir, specsDir, compileCacheDir].map((dir) => dir && rm(dir, { recursive: true, force: true })))
  }

  /** Starts the daemon again (the previous one is dead) and measures its recovery. */
  async function restart(start: DaemonStart): Promise<DaemonProcess & { result: Omit<RecoveryResult, 'loadSeconds' | 'loadMemory'> }> {
    const before = await containerStates()
    const events = await watchDockerEvents({ label: [`${LABELS.instance}=${BENCH_INSTANCE}`] })
    const spawnedAt = performance.now()
    const second = spawnDaemon(env, ['controller running', 'resync (start)'], start)
    daemons.push(second)
    const readyAt = await waitUntil('/readyz', async () => ((await readyzAnswers(apiBase)) ? performance.now() : undefined), 60_000, 20)
    const cpuAtReadyzMs = (processCpuSeconds(second.child.pid!) ?? Number.NaN) * 1000
    const resyncAt = await waitUntil('the start resync', async () => second.seen('resync (start)'), 60_000, 5)
    // Whatever the restart would set off (a recreate, a restart) shows within moments of the resync.
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    events.close()
    const memory = processMemory(second.child.pid!)

    const after = await containerStates()
    let recreated = 0
    let restarted = 0
    for (const name of names.map(containerNameFor)) {
      const was = before.get(name)
      const now = after.get(name)
      if (!was || !now || was.id !== now.id) recreated += 1
      else if (was.startedAt !== now.startedAt) restarted += 1
    }
    const resyncLine = second.output().split('\n').find((line) => line.includes('resync (start)'))
    const resyncOwnMs = resyncLine ? Number((JSON.parse(resyncLine) as { ms?: number }).ms) : Number.NaN
    const reconcilesPlanned = second.output().split('\n').filter((line) => line.includes(`"msg":"reconciling ${BENCH_INSTANCE}-rc-`)).length
    const result = {
      engine,
      start,
      plugins: PLUGINS,
      firstLogMs: (second.seen('') ?? Number.NaN) - spawnedAt,
      readyzMs: readyAt - spawnedAt,
      cpuAtReadyzMs,
      controllerRunningMs: (second.seen('controller running') ?? Number.NaN) - spawnedAt,
      resyncStartMs: resyncAt - spawnedAt,
      resyncOwnMs,
      recreated,
      restarted,
      mutatingEvents: events.events.filter((event) => MUTATING_ACTIONS.has(event.action)).length,
      reconcilesPlanned,
      runningAfter: await countRunning(apiBase),
      memory,
    }
    return Object.assign(second, { result })
  }
}

/** `engine` defaults to the server when BENCH_DATABASE_URL / TEST_DATABASE_URL is set, else embedded. */
export async function benchRecovery(options: { engine?: Engine } = {}): Promise<RecoveryResult[] & { table: string }> {
  installCleanupHandlers()
  const built = spawnSync(process.execPath, [path.join(packageRoot(), 'scripts', 'build-if-stale.mjs')], { stdio: 'inherit' })
  if (built.status !== 0) throw new Error('recovery: dist/ could not be built (scripts/build-if-stale.mjs)')
  await cleanupContainers()
  const results = await measure(options.engine ?? (serverUrl ? 'postgres' : 'embedded'))
  const table = [
    `### Restart recovery: ${PLUGINS} running plugins, kill -9 of the daemon, started again (times from the spawn); compiled = npm start (dist/bundle/ when current), modules = dist/src module by module, sources = src/ through tsx`,
    '',
    '| engine | daemon | first log line (ms) | /readyz 200 (ms) | daemon CPU until /readyz (ms) | every status verified: resync (start) logged (ms) | of which the resync itself (ms) | containers recreated | restarted | engine events that change anything | reconciles planned | running after | daemon RSS / peak (MiB) | target: none recreated; compiled /readyz ≤ 400 ms (issue 18) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...results.map(
      (r) =>
        `| ${r.engine === 'postgres' ? 'Postgres server' : 'embedded (PGlite)'} | ${r.start} | ${fmt(r.firstLogMs, 0)} | ${fmt(r.readyzMs, 0)} | ${fmt(r.cpuAtReadyzMs, 0)} | ${fmt(r.resyncStartMs, 0)} | ${fmt(r.resyncOwnMs, 0)} | ` +
        `${r.recreated} | ${r.restarted} | ${r.mutatingEvents} | ${r.reconcilesPlanned} | ${r.runningAfter} / ${r.plugins} | ${fmtMemory(r.memory)} | ${r.recreated === 0 && r.restarted === 0 ? 'met' : 'missed'}${r.start.startsWith('compiled') ? `; ${r.readyzMs <= 400 ? 'met' : 'missed'}` : ''} |`,
    ),
    '',
    `The first daemon (compiled), after loading the ${PLUGINS} plugins until all ran: RSS / peak ${fmtMemory(results[0]?.loadMemory)} MiB (load: ${fmt(results[0]?.loadSeconds ?? Number.NaN, 1)} s).`,
  ].join('\n')
  process.stdout.write(table + '\n')
  await writeResults('recovery', { image: BENCH_IMAGE, results })
  return Object.assign(results, { table })
}
