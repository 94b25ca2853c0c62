// What a running plugin costs the manager: the compiled daemon as its own process (what
// `npm start` and the image run) on the real Docker engine, with N running plugins
// (BENCH_FOOTPRINT_N, default 0, 20 and 200; flowforge-test/http:1 with an HTTP health check,
// default intervals). For each N a fresh daemon: it loads the plugins, waits until all run,
// then idles for BENCH_FOOTPRINT_SECONDS (default 60). Read from /proc/<pid> of the daemon:
// CPU to bring the N plugins up, CPU in the idle window, RSS at the end and the peak (VmHWM).
// The daemon with 0 plugins is the peer; the cost per plugin is (value at N - value at 0) / N,
// so growth with N shows as a per-plugin figure that changes between 20 and 200.
// The embedded engine runs with its data folder initialised by an earlier start, as a daemon
// restarts in production (a first start also carries what PGlite's initdb left in memory);
// with BENCH_DATABASE_URL or TEST_DATABASE_URL the same sizes run on a server database.
// The embedded engine also runs with PGlite's memory defaults (shared_buffers 128 MB, TurboFan)
// at BENCH_FOOTPRINT_DEFAULTS_N (default 0 and 200; empty: not at all), the before of the
// memory settings; and with shared_buffers 16 MB (the default until issue 18's second
// memory pass) at BENCH_FOOTPRINT_16MB_N (default: not at all); and on both engines with V8's
// young generation kept at 1 MiB semi-spaces (bench/young-gen-1mb.mjs preloaded) at
// BENCH_FOOTPRINT_YOUNG_N (default: not at all).
import { spawnSync } from 'node:child_process'
import { rm } from 'node:fs/promises'
import path from 'node:path'
import { packageRoot } from '../src/config.js'
import { processCpuSeconds } from '../src/util/proc-stat.js'
import {
  BENCH_IMAGE,
  BENCH_INSTANCE,
  cleanupContainers,
  createServerDatabase,
  installCleanupHandlers,
  makeTempDir,
  serverUrl,
  sleep,
  waitUntil,
  type Engine,
} from './docker-harness.js'
import { countRunning, freePort, loadPlugins, readyzAnswers, spawnDaemon, type DaemonProcess } from './recovery.js'
import { fmt, fmtMemory, processMemory, writeResults, type ProcessMemory } from './results.js'

const sizesFrom = (raw: string) => raw.split(',').map((value) => value.trim()).filter(Boolean).map(Number)
const SIZES = sizesFrom(process.env.BENCH_FOOTPRINT_N ?? '0,20,200')
const DEFAULTS_SIZES = sizesFrom(process.env.BENCH_FOOTPRINT_DEFAULTS_N ?? '0,200')
const SIZES_16MB = sizesFrom(process.env.BENCH_FOOTPRINT_16MB_N ?? '')
const SIZES_YOUNG = sizesFrom(process.env.BENCH_FOOTPRINT_YOUNG_N ?? '')
const YOUNG_GEN_PRELOAD = path.join(packageRoot(), 'bench', 'young-gen-1mb.mjs')
const WINDOW_SECONDS = Number(process.env.BENCH_FOOTPRINT_SECONDS ?? 60)
const manifest = { name: 'Footprint', version: '1.0.0', image: BENCH_IMAGE, imagePullPolicy: 'IfNotPresent', port: 8080, healthCheck: { path: '/health' } }

/** Which daemon: the engine, and on the embedded one our memory settings or PGlite's defaults. */
export type FootprintVariant = 'embedded' | 'embedded-16mb' | 'embedded-young-gen-1mb' | 'embedded-pglite-defaults' | 'server' | 'server-young-gen-1mb'

const VARIANT_LABELS: Record<FootprintVariant, string> = {
  embedded: 'embedded (PGlite)',
  'embedded-16mb': 'embedded, shared_buffers 16 MB (EMBEDDED_SHARED_BUFFERS_MB=16)',
  'embedded-pglite-defaults': "embedded, PGlite's memory defaults (shared_buffers 128 MB, WASM optimized)",
  server: 'Postgres server',
  'embedded-young-gen-1mb': 'embedded, young generation 1 MiB semi-spaces (bench/young-gen-1mb.mjs)',
  'server-young-gen-1mb': 'Postgres server, young generation 1 MiB semi-spaces',
}

export interface FootprintResult {
  variant: FootprintVariant
  plugins: number
  /** From the load until all N ran (0 plugins: 0). */
  loadSeconds: number
  /** Daemon CPU from /readyz (every plugin loaded after it) until all N ran. */
  loadCpuMs: number
  windowSeconds: number
  /** Daemon CPU in the idle window. */
  windowCpuMs: number
  /** At the end of the window: RSS, and the daemon's peak over its life (VmHWM). */
  memory?: ProcessMemory
}

async function measure(variant: FootprintVariant, plugins: number): Promise<FootprintResult> {
  const engine: Engine = variant.startsWith('server') ? 'postgres' : 'embedded'
  const server = engine === 'postgres' ? await createServerDatabase('footprint') : undefined
  const dataDir = engine === 'embedded' ? await makeTempDir('footprint-data') : undefined
  const specsDir = await makeTempDir('footprint-specs')
  const port = await freePort()
  const apiBase = `http://127.0.0.1:${port}`
  const env: Record<string, string> = {
    ...(server ? { DATABASE_URL: server.connectionString } : { DATA_DIR: dataDir!, SQL_PORT: '0' }),
    ...(variant === 'embedded-pglite-defaults' ? { EMBEDDED_SHARED_BUFFERS_MB: '128', EMBEDDED_WASM_OPTIMIZE: 'true' } : {}),
    ...(variant === 'embedded-16mb' ? { EMBEDDED_SHARED_BUFFERS_MB: '16' } : {}),
    ...(variant.endsWith('young-gen-1mb') ? { NODE_OPTIONS: `--import=${YOUNG_GEN_PRELOAD}` } : {}),
    ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    PORT: String(port),
    SPECS_DIR: specsDir,
    MANAGER_INSTANCE: BENCH_INSTANCE,
    HOST_PORT_RANGE: '5600-5899',
    STOP_TIMEOUT: '2',
    LOG_LEVEL: 'info',
  }
  const daemons: DaemonProcess[] = []
  const stop = async (daemon: DaemonProcess) => {
    daemon.child.kill('SIGTERM')
    await daemon.exited
  }
  try {
    if (engine === 'embedded') {
      // A first start initialises the data folder (PGlite's initdb); the measured one opens it.
      const first = spawnDaemon(env, ['controller running'], 'compiled')
      daemons.push(first)
      await waitUntil('the first daemon', async () => (first.seen('controller running') ? true : undefined), 120_000)
      await stop(first)
    }
    const daemon = spawnDaemon(env, ['controller running'], 'compiled')
    daemons.push(daemon)
    const pid = daemon.child.pid!
    await waitUntil('/readyz', async () => ((await readyzAnswers(apiBase)) ? true : undefined), 120_000, 50)
    const cpuMs = () => (processCpuSeconds(pid) ?? Number.NaN) * 1000
    const loadCpuBefore = cpuMs()
    const loadStarted = performance.now()
    if (plugins > 0) {
      const names = Array.from({ length: plugins }, (_, index) => `${BENCH_INSTANCE}-fp-${index}`)
      await loadPlugins(engine, names, apiBase, server?.connectionString, manifest)
      await waitUntil(`${plugins} plugins running`, async () => ((await countRunning(apiBase)) >= plugins ? true : undefined), 600_000, 500)
    }
    const loadSeconds = (performance.now() - loadStarted) / 1000
    const loadCpuMs = cpuMs() - loadCpuBefore
    const windowCpuBefore = cpuMs()
    const windowStarted = performance.now()
    await sleep(WINDOW_SECONDS * 1000)
    const windowCpuMs = cpuMs() - windowCpuBefore
    const windowSeconds = (performance.now() - windowStarted) / 1000
    const memory = processMemory(pid)
    return { variant, plugins, loadSeconds, loadCpuMs, windowSeconds, windowCpuMs, memory }
  } finally {
    for (const daemon of daemons) daemon.child.kill('SIGKILL')
    await Promise.all(daemons.map((daemon) => daemon.exited))
    await cleanupContainers()
    await server?.drop()
    await Promise.all([dataDir, specsDir].map((dir) => dir && rm(dir, { recursive: true, force: true })))
  }
}

/** The cost of one running plugin at each N > 0, against the same variant's daemon with 0. */
export interface PluginCost {
  variant: FootprintVariant
  plugins: number
  loadCpuMsPerPlugin: number
  idleCpuMsPerPluginPerMinute: number
  rssKiBPerPlugin: number
  peakRssKiBPerPlugin: number
}

export function pluginCosts(results: FootprintResult[]): PluginCost[] {
  const costs: PluginCost[] = []
  for (const result of results) {
    const peer = results.find((other) => other.variant === result.variant && other.plugins === 0)
    if (!peer || result.plugins === 0) continue
    const perPlugin = (value: number, peerValue: number) => (value - peerValue) / result.plugins
    const perMinute = (windowCpuMs: number, windowSeconds: number) => (windowCpuMs / windowSeconds) * 60
    costs.push({
      variant: result.variant,
      plugins: result.plugins,
      loadCpuMsPerPlugin: result.loadCpuMs / result.plugins,
      idleCpuMsPerPluginPerMinute: perPlugin(perMinute(result.windowCpuMs, result.windowSeconds), perMinute(peer.windowCpuMs, peer.windowSeconds)),
      rssKiBPerPlugin: perPlugin(result.memory?.rssMiB ?? Number.NaN, peer.memory?.rssMiB ?? Number.NaN) * 1024,
      peakRssKiBPerPlugin: perPlugin(result.memory?.peakRssMiB ?? Number.NaN, peer.memory?.peakRssMiB ?? Number.NaN) * 1024,
    })
  }
  return costs
}

export function footprintTable(results: FootprintResult[]): string {
  return [
    `### Footprint: the compiled daemon as its own process, N running plugins (${BENCH_IMAGE}, HTTP health checks, default intervals), ${WINDOW_SECONDS} s idle window`,
    '',
    '| daemon | running plugins | load: all running after (s) | load CPU (ms) | idle CPU in the window (ms) [% of one core] | RSS at end / peak (MiB) |',
    '|---|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${VARIANT_LABELS[r.variant]} | ${r.plugins}${r.plugins === 0 ? ' (the peer)' : ''} | ${fmt(r.loadSeconds, 1)} | ${fmt(r.loadCpuMs, 0)} | ` +
        `${fmt(r.windowCpuMs, 0)} [${fmt((r.windowCpuMs / 10 / r.windowSeconds), 2)}] | ${fmtMemory(r.memory)} |`,
    ),
    '',
    'Cost per running plugin, against the same daemon with 0 plugins:',
    '',
    '| daemon | at N | load CPU per plugin (ms) | idle CPU per plugin (ms per minute) | RSS per plugin (KiB) | peak RSS per plugin (KiB) |',
    '|---|---:|---:|---:|---:|---:|',
    ...pluginCosts(results).map(
      (c) =>
        `| ${VARIANT_LABELS[c.variant]} | ${c.plugins} | ${fmt(c.loadCpuMsPerPlugin, 1)} | ${fmt(c.idleCpuMsPerPluginPerMinute, 2)} | ${fmt(c.rssKiBPerPlugin, 0)} | ${fmt(c.peakRssKiBPerPlugin, 0)} |`,
    ),
  ].join('\n')
}

export async function benchFootprint(): Promise<FootprintResult[] & { table: string }> {
  installCleanupHandlers()
  // The daemon runs dist/: brought up to date first, as npm start's prestart does.
  const built = spawnSync(process.execPath, [path.join(packageRoot(), 'scripts', 'build-if-stale.mjs')], { stdio: 'inherit' })
  if (built.status !== 0) throw new Error('footprint: dist/ could not be built (scripts/build-if-stale.mjs)')
  await cleanupContainers()
  const runs: [FootprintVariant, number][] = [
    ...SIZES.map((plugins): [FootprintVariant, number] => ['embedded', plugins]),
    ...SIZES_16MB.map((plugins): [FootprintVariant, number] => ['embedded-16mb', plugins]),
    ...DEFAULTS_SIZES.map((plugins): [FootprintVariant, number] => ['embedded-pglite-defaults', plugins]),
    ...SIZES_YOUNG.map((plugins): [FootprintVariant, number] => ['embedded-young-gen-1mb', plugins]),
    ...(serverUrl ? SIZES.map((plugins): [FootprintVariant, number] => ['server', plugins]) : []),
    ...(serverUrl ? SIZES_YOUNG.map((plugins): [FootprintVariant, number] => ['server-young-gen-1mb', plugins]) : []),
  ]
  if (!serverUrl) process.stderr.write('bench: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to measure on a Postgres server too\n')
  const results: FootprintResult[] = []
  for (const [variant, plugins] of runs) {
    process.stderr.write(`bench: footprint ${variant}, ${plugins} plugins\n`)
    results.push(await measure(variant, plugins))
  }
  const table = footprintTable(results)
  await writeResults('footprint', { image: BENCH_IMAGE, windowSeconds: WINDOW_SECONDS, results, costs: pluginCosts(results) })
  return Object.assign(results, { table })
}
