// Controller scale on the in-memory runtime: N plugins from empty to converged, on the
// embedded engine and (with BENCH_DATABASE_URL or TEST_DATABASE_URL) a real server in the
// same run. Measures the controller and the store, not Docker.
import pg from 'pg'
import { Controller } from '../src/controller/controller.js'
import { loadConfig, type Config } from '../src/config.js'
import { openDatabase } from '../src/db/database.js'
import { migrate } from '../src/db/migrator.js'
import { PluginStore } from '../src/db/plugin-store.js'
import { silentLogger } from '../src/logger.js'
import { FakeRuntime } from '../src/runtime/fake-runtime.js'
import { systemClock } from '../src/util/clock.js'

const PLUGINS = Number(process.env.BENCH_SCALE_PLUGINS ?? 1000)
const logger = silentLogger()

export interface ScaleResult {
  engine: string
  plugins: number
  seconds: number
  pluginsPerSecond: number
  idleResyncMs: number
  dockerCallsInIdleResync: number
}

async function measure(engine: string, config: Config): Promise<ScaleResult> {
  const database = await openDatabase(config, logger)
  try {
    await migrate(database.db, config.migrationsDir, logger)
    const store = new PluginStore(database.db, database.changes, logger)
    const runtime = new FakeRuntime({ images: ['flowforge/bench:1'] })
    const controller = new Controller({
      store,
      runtime,
      clock: systemClock,
      logger,
      workers: 8,
      resyncIntervalMs: 3_600_000,
      container: { hostIp: '127.0.0.1', instance: 'bench' },
      stopTimeoutSeconds: 1,
      portRange: { from: 10_000, to: 10_000 + PLUGINS + 100 },
      retryBaseMs: 100,
      retryMaxMs: 1_000,
    })
    await controller.start()
    const started = performance.now()
    const manifest = JSON.stringify({ image: 'flowforge/bench:1', port: 8080 })
    // One multi-row INSERT, as an operator would load plugins in SQL.
    const values = Array.from({ length: PLUGINS }, (_, index) => `('bench-${index}', '${manifest}'::jsonb)`).join(',')
    const { sql } = await import('kysely')
    await sql.raw(`INSERT INTO plugins (forgehook_id, manifest) VALUES ${values}`).execute(database.db)
    for (;;) {
      const converged = await database.db
        .selectFrom('plugins')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('status', '=', 'running')
        .whereRef('observed_generation', '=', 'generation')
        .executeTakeFirstOrThrow()
      if (Number(converged.n) >= PLUGINS) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const seconds = (performance.now() - started) / 1000
    while (controller.snapshot().processing > 0 || controller.queue.len() > 0) await new Promise((resolve) => setTimeout(resolve, 20))

    runtime.resetCalls()
    const before = controller.snapshot().resyncs
    const resyncStarted = performance.now()
    controller.requestResync('bench')
    while (controller.snapshot().resyncs === before) await new Promise((resolve) => setTimeout(resolve, 5))
    const idleResyncMs = performance.now() - resyncStarted
    const dockerCalls = runtime.mutatingCalls.length + runtime.inspectCalls
    await controller.stop()
    return { engine, plugins: PLUGINS, seconds, pluginsPerSecond: PLUGINS / seconds, idleResyncMs, dockerCallsInIdleResync: dockerCalls }
  } finally {
    await database.close()
  }
}

export async function benchControllerScale(): Promise<ScaleResult[]> {
  const results: ScaleResult[] = []
  results.push(await measure('embedded (PGlite)', { ...loadConfig({}), database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }))
  const url = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL
  if (url) {
    const name = `ff_bench_scale_${Date.now()}`
    const admin = new pg.Client({ connectionString: url })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
    const target = new URL(url)
    target.pathname = `/${name}`
    try {
      results.push(await measure('Postgres server', loadConfig({ DATABASE_URL: target.toString() })))
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.end()
    }
  }
  const lines = [
    `### Controller scale on the in-memory runtime (${PLUGINS} plugins, 8 workers)`,
    '',
    '| engine | empty → converged (s) | plugins/s | idle resync (ms) | Docker calls in an idle resync (besides the one list) |',
    '|---|---:|---:|---:|---:|',
    ...results.map(
      (result) =>
        `| ${result.engine} | ${result.seconds.toFixed(2)} | ${result.pluginsPerSecond.toFixed(0)} | ${result.idleResyncMs.toFixed(1)} | ${result.dockerCallsInIdleResync} |`,
    ),
  ]
  process.stdout.write(lines.join('\n') + '\n')
  return results
}
