// Store benchmark: the same operations on the embedded engine and, in the same run, on a
// real Postgres server (BENCH_DATABASE_URL, or TEST_DATABASE_URL), so the numbers compare.
// Prints a markdown table and writes the raw numbers to bench/results/store-<time>.json.
import pg from 'pg'
import { loadConfig, type Config } from '../src/config.js'
import { openDatabase, type DatabaseHandle } from '../src/db/database.js'
import { migrate } from '../src/db/migrator.js'
import { PluginStore } from '../src/db/plugin-store.js'
import { silentLogger } from '../src/logger.js'
import { fmt, percentile, runInPool, writeResults } from './results.js'

const PLUGINS = Number(process.env.BENCH_PLUGINS ?? 1000)
const CONCURRENCY = 8
const LATENCY_TRIALS = 200
const logger = silentLogger()

interface EngineResult {
  engine: string
  createPerSecond: number
  updatePerSecond: number
  listAllMs: number
  getByNameMs: number
  notifyP50Ms: number
  notifyP95Ms: number
  sqlPortNotifyP50Ms?: number
  sqlPortNotifyP95Ms?: number
}

/** Time from a committed write to the subscriber hearing of it. */
async function notifyLatencies(store: PluginStore, write: (round: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = []
  for (let round = 0; round < LATENCY_TRIALS; round++) {
    let heard: () => void = () => undefined
    const arrived = new Promise<void>((resolve) => (heard = resolve))
    const unsubscribe = store.subscribe({ onChange: (change) => change.name === 'latency' && heard(), onResync: () => undefined })
    const started = performance.now()
    await write(round)
    await arrived
    samples.push(performance.now() - started)
    unsubscribe()
  }
  return samples
}

async function benchEngine(engine: string, config: Config): Promise<EngineResult> {
  const database: DatabaseHandle = await openDatabase(config, logger, { sqlPortEphemeral: true })
  try {
    await migrate(database.db, config.migrationsDir, logger)
    const store = new PluginStore(database.db, database.changes, logger)
    const names = Array.from({ length: PLUGINS }, (_, index) => `bench-${index}`)
    const manifest = { name: 'Bench', version: '1.0.0', image: 'flowforge/bench:1', port: 8080 }

    let started = performance.now()
    await runInPool(names, CONCURRENCY, (name) => store.createPlugin({ forgehookId: name, source: 'api', manifest }))
    const createPerSecond = PLUGINS / ((performance.now() - started) / 1000)

    started = performance.now()
    await runInPool(names, CONCURRENCY, (name) => store.updateSpec(name, { config: { tuned: true } }))
    const updatePerSecond = PLUGINS / ((performance.now() - started) / 1000)

    started = performance.now()
    for (let round = 0; round < 20; round++) await store.listPlugins()
    const listAllMs = (performance.now() - started) / 20

    started = performance.now()
    for (let round = 0; round < 500; round++) await store.getPlugin(names[round % PLUGINS]!)
    const getByNameMs = (performance.now() - started) / 500

    await store.createPlugin({ forgehookId: 'latency', source: 'api', manifest })
    const notify = await notifyLatencies(store, (round) => store.updateSpec('latency', { config: { round } }))
    const result: EngineResult = {
      engine,
      createPerSecond,
      updatePerSecond,
      listAllMs,
      getByNameMs,
      notifyP50Ms: percentile(notify, 0.5),
      notifyP95Ms: percentile(notify, 0.95),
    }
    if (database.sqlAddress) {
      const client = new pg.Client({ host: database.sqlAddress.host, port: database.sqlAddress.port, user: 'postgres', database: 'postgres', password: database.sqlPassword })
      await client.connect()
      const overWire = await notifyLatencies(store, (round) =>
        client.query(`UPDATE plugins SET config = jsonb_build_object('wire', $1::int) WHERE forgehook_id = 'latency'`, [round]),
      )
      await client.end()
      result.sqlPortNotifyP50Ms = percentile(overWire, 0.5)
      result.sqlPortNotifyP95Ms = percentile(overWire, 0.95)
    }
    return result
  } finally {
    await database.close()
  }
}

async function serverConfig(url: string): Promise<{ config: Config; drop: () => Promise<void> }> {
  const name = `ff_bench_${Date.now()}`
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const target = new URL(url)
  target.pathname = `/${name}`
  return {
    config: loadConfig({ DATABASE_URL: target.toString() }),
    drop: async () => {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    },
  }
}

export async function benchStore(): Promise<EngineResult[]> {
  const results: EngineResult[] = []
  const embedded = { ...loadConfig({}), database: { kind: 'embedded' as const, dataDir: 'memory', sqlPort: 0 } }
  results.push(await benchEngine('embedded (PGlite)', embedded))
  const url = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL
  if (url) {
    const server = await serverConfig(url)
    try {
      results.push(await benchEngine('Postgres server', server.config))
    } finally {
      await server.drop()
    }
  } else {
    process.stderr.write('bench: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to compare with a Postgres server\n')
  }

  const lines = [
    `### Store (${PLUGINS} plugins, ${CONCURRENCY} concurrent writers, ${LATENCY_TRIALS} notification trials)`,
    '',
    '| engine | creates/s | spec updates/s | list all (ms) | get by name (ms) | write→notified p50 / p95 (ms) | SQL-port write→notified p50 / p95 (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (result) =>
        `| ${result.engine} | ${fmt(result.createPerSecond, 0)} | ${fmt(result.updatePerSecond, 0)} | ${fmt(result.listAllMs)} | ` +
        `${fmt(result.getByNameMs, 2)} | ${fmt(result.notifyP50Ms, 2)} / ${fmt(result.notifyP95Ms, 2)} | ` +
        `${fmt(result.sqlPortNotifyP50Ms, 2)} / ${fmt(result.sqlPortNotifyP95Ms, 2)} |`,
    ),
  ]
  process.stdout.write(lines.join('\n') + '\n')
  await writeResults('store', results)
  return results
}
