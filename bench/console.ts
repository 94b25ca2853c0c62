// The web console at 1,000 plugins: the daemon in-process on the in-memory runtime with 1,000
// converged plugins; autocannon (a worker thread) asks for the dashboard page (GET /, 50 rows
// and the counts of all 1,000), its live fragment (what the page's script fetches on each
// event), and, as the peer in the same run, the JSON list GET /api/v1/plugins (all 1,000, from
// the API's cache of serialized bodies). One client (the service time) and ten. Then the page
// right after a change: each request follows a status write, so the console's snapshot of
// the rows is read again every time (its worst case). Target: the page under 200 ms.
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import { loadConfig, type Config } from '../src/config.js'
import { silentLogger } from '../src/logger.js'
import { startDaemon } from '../src/main.js'
import { FakeRuntime } from '../src/runtime/fake-runtime.js'
import { convergedCount, insertPlugins, serverUrl, withServerDatabase, writeResults } from './controller-scale.js'
import { fmt, percentile } from './results.js'

const PLUGINS = Number(process.env.BENCH_CONSOLE_PLUGINS ?? 1000)
const SECONDS = Number(process.env.BENCH_CONSOLE_SECONDS ?? 10)
const AFTER_CHANGE_REQUESTS = 100
const BENCH_IMAGE = 'flowforge/bench:1'
const logger = silentLogger()

export interface ConsoleResult {
  engine: string
  route: string
  connections: number
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  responseKiB: number
  non2xx: number
}

function daemonConfig(specsDir: string, databaseUrl?: string): Config {
  const config = loadConfig({
    PORT: '0',
    SPECS_DIR: specsDir,
    MANAGER_INSTANCE: 'bench-console',
    HOST_PORT_RANGE: '22000-23999',
    LOG_LEVEL: 'silent',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  })
  return databaseUrl ? config : { ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }
}

async function load(engine: string, route: string, url: string, connections: number): Promise<ConsoleResult> {
  const result = await autocannon({ url, connections, duration: SECONDS, workers: 1, headers: { accept: 'text/html' } })
  return {
    engine,
    route,
    connections,
    requestsPerSecond: result.requests.average,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    responseKiB: result.requests.total > 0 ? result.throughput.total / result.requests.total / 1024 : 0,
    non2xx: result.non2xx + result.errors + result.timeouts,
  }
}

async function measure(engine: string, databaseUrl?: string): Promise<ConsoleResult[]> {
  const specsDir = await mkdtemp(path.join(os.tmpdir(), 'ff-bench-console-'))
  const daemon = await startDaemon(daemonConfig(specsDir, databaseUrl), logger, { runtime: new FakeRuntime({ images: [BENCH_IMAGE] }) })
  try {
    await daemon.ready
    await insertPlugins(daemon.database, PLUGINS, { name: 'Bench', version: '1.0.0', image: BENCH_IMAGE, port: 8080, imagePullPolicy: 'Never' }, 'console')
    while ((await convergedCount(daemon.database)) < PLUGINS) await new Promise((resolve) => setTimeout(resolve, 200))
    const base = `http://${daemon.apiAddress.host}:${daemon.apiAddress.port}`
    const results: ConsoleResult[] = []
    for (const connections of [1, 10]) {
      results.push(await load(engine, 'GET / (dashboard page)', `${base}/`, connections))
      results.push(await load(engine, 'GET /console/fragments/dashboard', `${base}/console/fragments/dashboard`, connections))
      results.push(await load(engine, 'GET /api/v1/plugins (JSON, peer)', `${base}/api/v1/plugins`, connections))
    }
    results.push(await afterEachChange(engine, base, daemon.store))
    return results
  } finally {
    await daemon.stop()
    await rm(specsDir, { recursive: true, force: true })
  }
}

/** Each page request right after a status write: the snapshot is read again every time. */
async function afterEachChange(engine: string, base: string, store: Awaited<ReturnType<typeof startDaemon>>['store']): Promise<ConsoleResult> {
  const plugins = await store.listPlugins()
  const timings: number[] = []
  let bytes = 0
  let failed = 0
  for (let index = 0; index < AFTER_CHANGE_REQUESTS; index++) {
    const plugin = plugins[index % plugins.length]!
    await store.writeStatus(plugin.id, { restartCount: index + 1 })
    // The change reaches the console through its NOTIFY, as any write does.
    await new Promise((resolve) => setTimeout(resolve, 20))
    const started = performance.now()
    const response = await fetch(`${base}/`, { headers: { accept: 'text/html' } })
    const text = await response.text()
    timings.push(performance.now() - started)
    bytes += text.length
    if (!response.ok) failed += 1
  }
  const seconds = timings.reduce((sum, each) => sum + each, 0) / 1000
  return {
    engine,
    route: 'GET / right after each change (rows read again)',
    connections: 1,
    requestsPerSecond: AFTER_CHANGE_REQUESTS / seconds,
    latencyP50Ms: percentile(timings, 0.5),
    latencyP99Ms: percentile(timings, 0.99),
    responseKiB: bytes / AFTER_CHANGE_REQUESTS / 1024,
    non2xx: failed,
  }
}

export function consoleTable(results: ConsoleResult[]): string {
  return [
    `### Web console at ${PLUGINS} plugins (autocannon in a worker thread, ${SECONDS} s per row; target: the page under 200 ms)`,
    '',
    '| route | engine | connections | requests/s | p50 (ms) | p99 (ms) | KiB per answer | non-2xx / errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (result) =>
        `| ${result.route} | ${result.engine} | ${result.connections} | ${result.requestsPerSecond.toFixed(0)} | ${fmt(result.latencyP50Ms)} | ${fmt(result.latencyP99Ms)} | ${fmt(result.responseKiB)} | ${result.non2xx} |`,
    ),
  ].join('\n')
}

export async function benchConsole(): Promise<{ results: ConsoleResult[]; table: string }> {
  const results = await measure('embedded (PGlite)')
  const url = serverUrl()
  if (url) results.push(...(await withServerDatabase(url, 'ff_bench_console', (databaseUrl) => measure('Postgres server', databaseUrl))))
  else process.stderr.write('bench: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to measure on a Postgres server too\n')
  const table = consoleTable(results)
  await writeResults('console', { plugins: PLUGINS, seconds: SECONDS, results })
  return { results, table }
}
