// API under load: the daemon in-process on the in-memory runtime with 1,000 converged
// plugins; autocannon (in a worker thread, so it does not share the daemon's event loop)
// hits GET /api/v1/plugins and GET /api/v1/plugins/<name> for BENCH_API_SECONDS each.
// The peer, measured in the same run: a bare Hono app on @hono/node-server answering the
// same bytes as static bodies, which is the HTTP stack's own limit on this machine.
import { mkdtemp, rm } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { serve } from '@hono/node-server'
import autocannon from 'autocannon'
import { Hono } from 'hono'
import { loadConfig, type Config } from '../src/config.js'
import { silentLogger } from '../src/logger.js'
import { startDaemon } from '../src/main.js'
import { FakeRuntime } from '../src/runtime/fake-runtime.js'
import { convergedCount, insertPlugins, serverUrl, withServerDatabase, writeResults } from './controller-scale.js'

const PLUGINS = Number(process.env.BENCH_API_PLUGINS ?? 1000)
const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 10)
const CONNECTIONS = 10
const BENCH_IMAGE = 'flowforge/bench:1'
/** The plugin the single-plugin route asks for: one from the middle of the list. */
const SINGLE_NAME = `api-${Math.floor(PLUGINS / 2)}`
const logger = silentLogger()

export interface ApiResult {
  target: string
  route: string
  connections: number
  requestsPerSecond: number
  latencyP50Ms: number
  latencyP99Ms: number
  responseBytes: number
  non2xx: number
  errors: number
}

/** Bodies of the two routes, taken from our daemon, for the bare-stack peer. */
interface Bodies {
  list: string
  single: string
}

async function load(target: string, route: string, url: string, connections = CONNECTIONS): Promise<ApiResult> {
  const result = await autocannon({ url, connections, duration: SECONDS, workers: 1 })
  return {
    target,
    route,
    connections,
    requestsPerSecond: result.requests.average,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    responseBytes: result.requests.total > 0 ? Math.round(result.throughput.total / result.requests.total) : 0,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  }
}

function daemonConfig(specsDir: string, databaseUrl?: string): Config {
  const config = loadConfig({
    PORT: '0',
    SPECS_DIR: specsDir,
    MANAGER_INSTANCE: 'bench-api',
    HOST_PORT_RANGE: '20000-21999',
    LOG_LEVEL: 'silent',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  })
  return databaseUrl ? config : { ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }
}

async function measureDaemon(engine: string, databaseUrl?: string): Promise<{ results: ApiResult[]; bodies: Bodies }> {
  const specsDir = await mkdtemp(path.join(os.tmpdir(), 'ff-bench-api-'))
  const daemon = await startDaemon(daemonConfig(specsDir, databaseUrl), logger, { runtime: new FakeRuntime({ images: [BENCH_IMAGE] }) })
  try {
    await daemon.ready
    await insertPlugins(daemon.database, PLUGINS, { name: 'Bench', version: '1.0.0', image: BENCH_IMAGE, port: 8080, imagePullPolicy: 'Never' }, 'api')
    while ((await convergedCount(daemon.database)) < PLUGINS) await new Promise((resolve) => setTimeout(resolve, 200))
    const base = `http://${daemon.apiAddress.host}:${daemon.apiAddress.port}`
    const bodies = { list: await fetchText(`${base}/api/v1/plugins`), single: await fetchText(`${base}/api/v1/plugins/${SINGLE_NAME}`) }
    const results = [
      await load(`FlowForge, ${engine}`, 'list', `${base}/api/v1/plugins`),
      // One client at a time: the service time itself, without queueing behind nine others.
      await load(`FlowForge, ${engine}`, 'list', `${base}/api/v1/plugins`, 1),
      await load(`FlowForge, ${engine}`, 'single', `${base}/api/v1/plugins/${SINGLE_NAME}`),
    ]
    return { results, bodies }
  } finally {
    await daemon.stop()
    await rm(specsDir, { recursive: true, force: true })
  }
}

async function fetchText(url: string): Promise<string> {
  const response = await fetch(url)
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`)
  return response.text()
}

/** The HTTP stack alone: the same framework and server, static bodies, no store. */
async function measureBareStack(bodies: Bodies): Promise<ApiResult[]> {
  const app = new Hono()
  const headers = { 'content-type': 'application/json' }
  app.get('/list', (c) => c.body(bodies.list, 200, headers))
  app.get('/single', (c) => c.body(bodies.single, 200, headers))
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }) as Server
  await new Promise<void>((resolve) => (server.listening ? resolve() : server.once('listening', () => resolve())))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  try {
    return [await load('bare Hono + @hono/node-server, static body', 'list', `${base}/list`), await load('bare Hono + @hono/node-server, static body', 'single', `${base}/single`)]
  } finally {
    await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())))
  }
}

export function apiTable(results: ApiResult[]): string {
  const kb = (bytes: number) => (bytes / 1024).toFixed(1)
  return [
    `### API under load (${PLUGINS} plugins, autocannon in a worker thread, ${SECONDS} s per row)`,
    '',
    '| route | served by | connections | requests/s | p50 (ms) | p99 (ms) | bytes per response (KiB) | non-2xx / errors |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...[...results]
      .sort((a, b) => a.route.localeCompare(b.route))
      .map(
        (result) =>
          `| ${result.route === 'list' ? 'GET /api/v1/plugins' : `GET /api/v1/plugins/${SINGLE_NAME}`} | ${result.target} | ${result.connections} | ` +
          `${result.requestsPerSecond.toFixed(0)} | ${result.latencyP50Ms} | ${result.latencyP99Ms} | ${kb(result.responseBytes)} | ${result.non2xx} / ${result.errors} |`,
      ),
  ].join('\n')
}

export async function benchApi(): Promise<{ results: ApiResult[]; table: string }> {
  const embedded = await measureDaemon('embedded (PGlite)')
  const results = [...embedded.results]
  const url = serverUrl()
  if (url) results.push(...(await withServerDatabase(url, 'ff_bench_api', async (databaseUrl) => (await measureDaemon('Postgres server', databaseUrl)).results)))
  else process.stderr.write('bench: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to measure on a Postgres server too\n')
  results.push(...(await measureBareStack(embedded.bodies)))
  const table = apiTable(results)
  await writeResults('api', { plugins: PLUGINS, seconds: SECONDS, connections: CONNECTIONS, results })
  return { results, table }
}
