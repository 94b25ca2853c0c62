// Case 3: reaction latency, 20 trials per trigger, on the embedded engine and (with
// BENCH_DATABASE_URL or TEST_DATABASE_URL) a Postgres server in the same run.
//   SQL UPDATE desired_state / PATCH / spec file edit → the container's state changed (the
//   engine's `stop` or `start` event); `docker kill` → status `error` in the database.
// Trials alternate stop and start so each one changes state. "Docker operation itself" is the
// stop/start (or kill) call timed around the Docker call of that very trial; overhead is end to
// end minus that. As a reference, the same stop/start straight through dockerode is timed too.
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { sql } from 'kysely'
import pg from 'pg'
import { containerNameFor, LABELS } from '../src/runtime/container-runtime.js'
import {
  BENCH_IMAGE,
  BENCH_INSTANCE,
  cleanupContainers,
  dockerClient,
  fmt,
  installCleanupHandlers,
  serverUrl,
  sleep,
  startBenchDaemon,
  summarize,
  waitUntil,
  watchDockerEvents,
  writeResults,
  type BenchDaemon,
  type Engine,
  type Summary,
} from './docker-harness.js'

const TRIALS = Number(process.env.BENCH_LATENCY_TRIALS ?? 20)
const STOP_TIMEOUT_SECONDS = 2
type Trigger = 'sql' | 'patch' | 'file' | 'kill'
type DesiredState = 'running' | 'stopped'

export interface LatencyRow {
  engine: Engine
  trigger: Trigger
  endToEnd: Summary
  dockerOp: Summary
  overhead: Summary
  /** Trigger → the daemon's Docker call issued (not for kill). */
  untilDockerCall?: Summary
  targetMs: number
  /** What the target bounds: the overhead (desired-state changes) or end to end (kill). */
  targetOn: 'overhead p95' | 'end to end p95'
  met: boolean
}

export interface LatencyResult {
  engine: Engine
  reference: { stop: Summary; start: Summary }
  rows: LatencyRow[]
}

const manifest = { name: 'Latency', version: '1.0.0', image: BENCH_IMAGE, imagePullPolicy: 'IfNotPresent', port: 8080 }
const nameOf = (what: string) => `${BENCH_INSTANCE}-${what}`

function fileDocument(state: DesiredState): string {
  return `apiVersion: flowforge.io/v1\nkind: Plugin\nmetadata: { name: ${nameOf('lat-file')} }\nspec:\n  state: ${state}\n  manifest: ${JSON.stringify(manifest)}\n`
}

/** Stop/start of a container of the same image straight through dockerode: what Docker alone takes. */
async function measureDockerAlone(): Promise<{ stop: Summary; start: Summary }> {
  const docker = dockerClient()
  const container = await docker.createContainer({
    name: nameOf('lat-ref'),
    Image: BENCH_IMAGE,
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '5499' }] }, SecurityOpt: ['no-new-privileges'] },
  })
  const stops: number[] = []
  const starts: number[] = []
  await container.start()
  for (let trial = 0; trial < TRIALS; trial++) {
    const stopping = trial % 2 === 0
    const started = performance.now()
    await (stopping ? container.stop({ t: STOP_TIMEOUT_SECONDS }) : container.start())
    ;(stopping ? stops : starts).push(performance.now() - started)
  }
  await container.remove({ force: true })
  return { stop: summarize(stops), start: summarize(starts) }
}

async function createPlugins(bench: BenchDaemon, runSql: (text: string) => Promise<void>, apiBase: string): Promise<string[]> {
  const json = JSON.stringify(manifest)
  const killNames = Array.from({ length: TRIALS }, (_, index) => nameOf(`kill-${index}`))
  const rows = [nameOf('lat-sql'), ...killNames]
  await runSql(`INSERT INTO plugins (forgehook_id, manifest) VALUES ${rows.map((name) => `('${name}', '${json}'::jsonb)`).join(', ')}`)
  const put = await fetch(`${apiBase}/api/v1/plugins/${nameOf('lat-api')}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name: nameOf('lat-api') }, spec: { manifest } }),
  })
  if (put.status !== 201) throw new Error(`PUT answered ${put.status}: ${await put.text()}`)
  await writeFile(path.join(bench.specsDir, 'lat-file.yaml'), fileDocument('running'))
  const all = [...rows, nameOf('lat-api'), nameOf('lat-file')]
  await waitUntil(`${all.length} plugins running`, async () => {
    const settled = await Promise.all(all.map((name) => isSettled(bench, name, 'running')))
    return settled.every(Boolean) ? true : undefined
  }, 120_000, 100)
  return killNames
}

async function isSettled(bench: BenchDaemon, name: string, state: DesiredState | 'error'): Promise<boolean> {
  const plugin = await bench.daemon.store.getPlugin(name)
  return plugin !== undefined && plugin.status === state && plugin.observedGeneration === plugin.generation
}

async function waitForQuiet(bench: BenchDaemon, name: string, state: DesiredState): Promise<void> {
  const { controller } = bench.daemon
  await waitUntil(`${name} ${state}`, async () => ((await isSettled(bench, name, state)) && controller.queue.len() === 0 && controller.snapshot().processing === 0 ? true : undefined), 30_000, 20)
}

interface TrialSamples {
  endToEnd: number[]
  dockerOp: number[]
  overhead: number[]
  untilDockerCall: number[]
}

async function measureDesiredStateChanges(
  bench: BenchDaemon,
  trigger: Exclude<Trigger, 'kill'>,
  change: (state: DesiredState) => Promise<void>,
  events: Awaited<ReturnType<typeof watchDockerEvents>>,
): Promise<TrialSamples> {
  const name = nameOf(trigger === 'sql' ? 'lat-sql' : trigger === 'patch' ? 'lat-api' : 'lat-file')
  const containerName = containerNameFor(name)
  const samples: TrialSamples = { endToEnd: [], dockerOp: [], overhead: [], untilDockerCall: [] }
  for (let trial = 0; trial < TRIALS; trial++) {
    const target: DesiredState = trial % 2 === 0 ? 'stopped' : 'running'
    const method = target === 'stopped' ? 'stop' : 'start'
    await waitForQuiet(bench, name, target === 'stopped' ? 'running' : 'stopped')
    await sleep(50)
    const callsBefore = bench.runtime.mutating.length
    const changed = events.waitFor((event) => event.name === containerName && event.action === method)
    const started = performance.now()
    await change(target)
    const endToEnd = (await changed).receivedAt - started
    const call = bench.runtime.mutating.slice(callsBefore).find((candidate) => candidate.method === method)
    if (!call) throw new Error(`${trigger} trial ${trial}: the engine reported ${method} but the daemon made no ${method} call`)
    await call.finished
    const callEnd = call.startedAt + call.durationMs!
    const eventAt = started + endToEnd
    samples.endToEnd.push(endToEnd)
    samples.dockerOp.push(call.durationMs!)
    // Ours = before the call was issued, plus whatever came after the call returned (the event
    // usually arrives before the response, then this second part is zero).
    samples.overhead.push(call.startedAt - started + Math.max(0, eventAt - callEnd))
    samples.untilDockerCall.push(call.startedAt - started)
  }
  await waitForQuiet(bench, name, TRIALS % 2 === 0 ? 'running' : 'stopped')
  return samples
}

/** `docker kill` of a running plugin → status `error` in the database, polled every 10 ms; one plugin per trial (no crash-loop backoff in the way). */
async function measureKills(bench: BenchDaemon, names: string[]): Promise<TrialSamples> {
  const docker = dockerClient()
  const samples: TrialSamples = { endToEnd: [], dockerOp: [], overhead: [], untilDockerCall: [] }
  for (const name of names) {
    await waitForQuiet(bench, name, 'running')
    await sleep(50)
    const started = performance.now()
    await docker.getContainer(containerNameFor(name)).kill()
    const killMs = performance.now() - started
    await waitUntil(`${name} error`, async () => ((await bench.daemon.store.getPlugin(name))?.status === 'error' ? true : undefined), 10_000, 10)
    const endToEnd = performance.now() - started
    samples.endToEnd.push(endToEnd)
    samples.dockerOp.push(killMs)
    samples.overhead.push(endToEnd - killMs)
  }
  return samples
}

async function benchEngine(engine: Engine): Promise<LatencyResult> {
  const bench = await startBenchDaemon({ engine, label: 'latency', workers: 8, hostPortRange: '5400-5498' })
  const { daemon } = bench
  const apiBase = `http://${daemon.apiAddress.host}:${daemon.apiAddress.port}`
  // On a server the SQL comes from a separate client, as an operator's psql would; embedded has
  // no SQL port here, so it goes through the daemon's own handle (NOTIFY is in-process there).
  const client = bench.connectionString ? new pg.Client({ connectionString: bench.connectionString }) : undefined
  await client?.connect()
  // Literal SQL only (names and the manifest are ours): no parameter typing differences between the engines.
  const runSql = async (text: string) => void (client ? await client.query(text) : await sql.raw(text).execute(daemon.database.db))
  const events = await watchDockerEvents({ label: [`${LABELS.instance}=${BENCH_INSTANCE}`] })
  try {
    const killNames = await createPlugins(bench, runSql, apiBase)
    const reference = await measureDockerAlone()
    const triggers: [Exclude<Trigger, 'kill'>, (state: DesiredState) => Promise<void>][] = [
      ['sql', (state) => runSql(`UPDATE plugins SET desired_state = '${state}' WHERE forgehook_id = '${nameOf('lat-sql')}'`)],
      [
        'patch',
        async (state) => {
          const response = await fetch(`${apiBase}/api/v1/plugins/${nameOf('lat-api')}`, {
            method: 'PATCH',
            headers: { 'content-type': 'application/merge-patch+json' },
            body: JSON.stringify({ spec: { state } }),
          })
          if (response.status !== 200) throw new Error(`PATCH answered ${response.status}: ${await response.text()}`)
        },
      ],
      ['file', (state) => writeFile(path.join(bench.specsDir, 'lat-file.yaml'), fileDocument(state))],
    ]
    const rows: LatencyRow[] = []
    const desiredTargetMs = engine === 'postgres' ? 100 : 2_000
    for (const [trigger, change] of triggers) {
      const samples = await measureDesiredStateChanges(bench, trigger, change, events)
      const overhead = summarize(samples.overhead)
      rows.push({ engine, trigger, endToEnd: summarize(samples.endToEnd), dockerOp: summarize(samples.dockerOp), overhead, untilDockerCall: summarize(samples.untilDockerCall), targetMs: desiredTargetMs, targetOn: 'overhead p95', met: overhead.p95 < desiredTargetMs })
    }
    const kills = await measureKills(bench, killNames)
    const killEndToEnd = summarize(kills.endToEnd)
    rows.push({ engine, trigger: 'kill', endToEnd: killEndToEnd, dockerOp: summarize(kills.dockerOp), overhead: summarize(kills.overhead), targetMs: 1_000, targetOn: 'end to end p95', met: killEndToEnd.p95 < 1_000 })
    return { engine, reference, rows }
  } finally {
    events.close()
    await client?.end()
    await bench.stop()
    await cleanupContainers()
  }
}

export async function benchLatency(): Promise<LatencyResult[] & { table: string }> {
  installCleanupHandlers()
  await cleanupContainers()
  const engines: Engine[] = serverUrl ? ['embedded', 'postgres'] : ['embedded']
  if (!serverUrl) process.stderr.write('bench: set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to measure on a Postgres server too\n')
  const results: LatencyResult[] = []
  for (const engine of engines) results.push(await benchEngine(engine))
  const table = latencyTable(results)
  process.stdout.write(table + '\n')
  await writeResults('latency', { image: BENCH_IMAGE, trials: TRIALS, stopTimeoutSeconds: STOP_TIMEOUT_SECONDS, results })
  return Object.assign(results, { table })
}

const TRIGGER_TEXT: Record<Trigger, string> = {
  sql: 'SQL UPDATE desired_state → container stopped/started',
  patch: 'PATCH {"spec":{"state"}} → container stopped/started',
  file: 'spec file edit → container stopped/started',
  kill: 'docker kill → status error in the database',
}

function latencyTable(results: LatencyResult[]): string {
  const engineText = (engine: Engine) => (engine === 'postgres' ? 'Postgres server' : 'embedded (PGlite)')
  const pair = (summary: Summary | undefined, digits = 0) => (summary ? `${fmt(summary.p50, digits)} / ${fmt(summary.p95, digits)}` : '–')
  return [
    `### Reaction latency (${TRIALS} trials each, alternating stop and start; STOP_TIMEOUT ${STOP_TIMEOUT_SECONDS} s; ms, p50 / p95)`,
    '',
    '| engine | trigger → observed | end to end | Docker operation (in the trial) | overhead (end to end − Docker op) | trigger → Docker call issued | target | met |',
    '|---|---|---:|---:|---:|---:|---|---|',
    ...results.flatMap((result) =>
      result.rows.map(
        (row) =>
          `| ${engineText(row.engine)} | ${TRIGGER_TEXT[row.trigger]} | ${pair(row.endToEnd)} | ${pair(row.dockerOp)} | ${pair(row.overhead)} | ${pair(row.untilDockerCall)} | ` +
          `${row.targetOn} < ${row.targetMs} ms | ${row.met ? 'yes' : 'no'} |`,
      ),
    ),
    '',
    '| engine | Docker alone (dockerode, same image): stop / start p50 (ms) | p95 (ms) |',
    '|---|---:|---:|',
    ...results.map((result) => `| ${engineText(result.engine)} | ${fmt(result.reference.stop.p50, 0)} / ${fmt(result.reference.start.p50, 0)} | ${fmt(result.reference.stop.p95, 0)} / ${fmt(result.reference.start.p95, 0)} |`),
  ].join('\n')
}
