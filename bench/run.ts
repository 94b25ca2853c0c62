// npm run bench [case ...]: every benchmark, each measuring its peer or limit in the same
// run. Prints one markdown table per case; raw numbers go to bench/results/*.json.
// Cases: store, scale, api, console, idle, footprint, converge, latency, recovery, rollout (default: all, in this order),
// and swarm (root only: a 3-node test swarm; run only when named).
// A real Postgres server is used beside the embedded one when BENCH_DATABASE_URL (or
// TEST_DATABASE_URL) is set.
import { benchApi } from './api.js'
import { benchConsole } from './console.js'
import { benchControllerScale } from './controller-scale.js'
import { benchConverge } from './converge.js'
import { benchFootprint } from './footprint.js'
import { isInterrupted } from './docker-harness.js'
import { benchIdle } from './idle.js'
import { benchLatency } from './latency.js'
import { benchRecovery } from './recovery.js'
import { benchRollout } from './rollout.js'
import { benchStore } from './store.js'
import { benchSwarm } from './swarm.js'

const CASES: Record<string, () => Promise<{ table: string } | unknown>> = {
  store: benchStore,
  scale: benchControllerScale,
  api: benchApi,
  console: benchConsole,
  idle: benchIdle,
  footprint: benchFootprint,
  converge: () => benchConverge(),
  latency: benchLatency,
  recovery: benchRecovery,
  rollout: benchRollout,
  swarm: benchSwarm,
}
/** Run when no case is named: swarm needs root and brings up a swarm of its own. */
const DEFAULT_CASES = Object.keys(CASES).filter((name) => name !== 'swarm')

const requested = process.argv.slice(2)
const unknown = requested.filter((name) => !(name in CASES))
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown case(s) ${unknown.join(', ')}; known: ${Object.keys(CASES).join(', ')}\n`)
  process.exit(2)
}
const tables: string[] = []
for (const name of requested.length > 0 ? requested : DEFAULT_CASES) {
  process.stderr.write(`\nbench: ${name}\n`)
  // Interrupted, a case fails as its daemon and containers go: the cleanup then ends the process (exit 130).
  const result = await CASES[name]!().catch(async (error: unknown) => {
    if (isInterrupted()) await new Promise(() => undefined)
    throw error
  })
  const table = (result as { table?: unknown }).table
  if (typeof table === 'string') {
    process.stdout.write(table + '\n')
    tables.push(table)
  }
}
if (tables.length > 1) process.stdout.write(`\n## All results\n\n${tables.join('\n\n')}\n`)
process.exit(0)
