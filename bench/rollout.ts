// The rollout case (docs/benchmarks.md, section 9): an image update under load. A plugin on
// flowforge-test/http:1 with an HTTP health check serves an open-loop load of
// BENCH_ROLLOUT_RATE requests/s (default 50: one request every 20 ms whatever the answers,
// each with a 2 s timeout) through the daemon's proxy; then its image becomes :2, with
// spec.update.strategy Recreate, and separately StartFirst. The peer is docker-compose's own
// recreate: one service on the same image, published on 127.0.0.1, the same load straight on
// that port, then the image in the file becomes :2 and `docker-compose up -d` runs again
// (stop the old container, rename it, create and start the new one, remove the old). Its
// port directly is the fair peer of our proxy: our numbers include the proxy hop, compose's
// include nothing. Measured from the change until version 2 has answered alone for 2 s (and
// our rollout is complete, or compose's command returned), then 1 s more: requests sent,
// failed (non-200 or no answer), the longest gap between two successful answers, the time to
// the first answer of version 2. BENCH_ROLLOUT_RUNS (default 3) runs of each, interleaved;
// median and worst.
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { LABELS } from '../src/runtime/container-runtime.js'
import { startOpenLoopLoad, type OpenLoopLoad } from './open-loop-load.js'
import { rolloutTable, summarizeRollout, type RolloutSample, type Scenario, type TimedEvent } from './rollout-report.js'
import {
  BENCH_INSTANCE,
  cleanupContainers,
  engineCpuSeconds,
  installCleanupHandlers,
  onInterrupt,
  serverUrl,
  sleep,
  startBenchDaemon,
  waitUntil,
  watchDockerEvents,
  writeResults,
  type BenchDaemon,
  type CountingRuntime,
  type DockerEventRecord,
  type Engine,
  type TimedCall,
} from './docker-harness.js'

const execFileAsync = promisify(execFile)
const RUNS = Number(process.env.BENCH_ROLLOUT_RUNS ?? 3)
const RATE = Number(process.env.BENCH_ROLLOUT_RATE ?? 50)
const REQUEST_TIMEOUT_MS = 2_000
/** Load before the change: the old version must be answering steadily. */
const WARMUP_MS = 2_000
/** Version 2 alone for this long counts as done... */
const STEADY_MS = 2_000
/** ...and the load goes on this much longer. */
const TAIL_MS = 1_000
const SCENARIO_TIMEOUT_MS = 120_000
/**
 * Inside the bench's 5100-5999, clear of the other cases (converge pins 5100+i for N ≤ 100,
 * latency 5400-5499, recovery 5500-5999) and of the tests' ranges (5300-5349, 5400-5649).
 */
const HOST_PORT_RANGE = '5200-5289'
const COMPOSE_PORT = 5290
const IMAGE = (version: number) => `flowforge-test/http:${version}`
const SCENARIOS: Scenario[] = ['Recreate', 'StartFirst', 'compose']

const epochNow = () => performance.timeOrigin + performance.now()

/** Until version 2 has been the only answer for STEADY_MS and `done()` holds. */
async function untilSteady(load: OpenLoopLoad, changedAt: number, done: () => Promise<boolean>): Promise<void> {
  await waitUntil('version 2 answering steadily', async () => {
    const after = load.results.filter((result) => result.doneAt >= changedAt)
    if (!after.some((result) => result.version === 2)) return undefined
    const lastOther = Math.max(changedAt, ...after.filter((result) => result.version !== 2).map((result) => result.doneAt))
    if (epochNow() - lastOther < STEADY_MS) return undefined
    return (await done()) ? true : undefined
  }, SCENARIO_TIMEOUT_MS, 100)
}

/** At least WARMUP_MS of load, the last second of it answered by version 1 alone, at the full rate. */
async function warmUp(load: OpenLoopLoad, what: string): Promise<void> {
  const startedAt = epochNow()
  await waitUntil(`${what}: version 1 answering steadily before the change`, async () => {
    const now = epochNow()
    if (now - startedAt < WARMUP_MS) return undefined
    const lastSecond = load.results.filter((result) => result.doneAt >= now - 1_000)
    return lastSecond.length >= RATE * 0.8 && lastSecond.every((result) => result.version === 1) ? true : undefined
  }, 30_000, 100)
}

/** Peak RSS of this process (the daemon), sampled every 100 ms until stopped. */
function sampleRss(): () => number {
  let peak = process.memoryUsage().rss
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100)
  return () => (clearInterval(timer), Math.max(peak, process.memoryUsage().rss) / 2 ** 20)
}

function cpuPercent(usage: NodeJS.CpuUsage, wallMs: number): number {
  return ((usage.user + usage.system) / 1e3 / wallMs) * 100
}

function eventsSince(events: DockerEventRecord[], changedAtPerf: number): TimedEvent[] {
  return events.filter((event) => event.receivedAt >= changedAtPerf).map((event) => ({ action: event.action, name: event.name, atMs: event.receivedAt - changedAtPerf }))
}

/**
 * The daemon's inspects, timed like its changing calls (CountingRuntime only counts them):
 * the switch refreshes its cache with one after each step, inside the gap.
 */
function timeInspects(runtime: CountingRuntime): () => TimedCall[] {
  const calls: TimedCall[] = []
  const counted = runtime.inspect
  runtime.inspect = (idOrName: string) => {
    const call: TimedCall = { method: 'inspect', startedAt: performance.now(), finished: Promise.resolve() }
    calls.push(call)
    const result = counted(idOrName)
    call.finished = result.then(() => void (call.durationMs = performance.now() - call.startedAt), () => void (call.durationMs = performance.now() - call.startedAt))
    return result
  }
  return () => ((runtime.inspect = counted), calls)
}

// ---- ours ----

interface PluginAnswer {
  metadata: { generation: number }
  status: { phase: string; observedGeneration: number; rollout: { phase: string } | null }
}

async function runOurs(bench: BenchDaemon, strategy: 'Recreate' | 'StartFirst', run: number): Promise<RolloutSample> {
  const { daemon, runtime } = bench
  const api = `http://${daemon.apiAddress.host}:${daemon.apiAddress.port}`
  const name = `${BENCH_INSTANCE}-ro-${strategy.toLowerCase()}-${run}`
  const put = async (version: number) => {
    const manifest = { name: 'Rollout bench', version: `${version}.0.0`, image: IMAGE(version), imagePullPolicy: 'Never', port: 8080, healthCheck: { path: '/health' } }
    const document = { apiVersion: 'flowforge.io/v1', kind: 'Plugin', metadata: { name }, spec: { manifest, update: { strategy } } }
    const response = await fetch(`${api}/api/v1/plugins/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(document) })
    if (response.status !== 200 && response.status !== 201) throw new Error(`PUT ${name} answered ${response.status}: ${await response.text()}`)
  }
  const get = async () => (await (await fetch(`${api}/api/v1/plugins/${name}`)).json()) as PluginAnswer
  const converged = async () => {
    const plugin = await get()
    return plugin.status.phase === 'running' && plugin.status.observedGeneration === plugin.metadata.generation && (plugin.status.rollout === null || plugin.status.rollout.phase === 'complete')
  }
  await put(1)
  await waitUntil(`${name} running`, async () => ((await converged()) ? true : undefined), 60_000, 100)
  const events = await watchDockerEvents({ label: [`${LABELS.forgehookId}=${name}`] })
  const load = await startOpenLoopLoad({ url: `${api}/plugins/${name}/index.html`, requestsPerSecond: RATE, requestTimeoutMs: REQUEST_TIMEOUT_MS })
  try {
    const warmUpCpu = process.cpuUsage()
    const warmUpStarted = performance.now()
    await warmUp(load, name)
    // The daemon only proxying, the same load: the update's own CPU is what comes on top.
    const proxyingCpuPercent = cpuPercent(process.cpuUsage(warmUpCpu), performance.now() - warmUpStarted)
    runtime.reset()
    const stopTimingInspects = timeInspects(runtime)
    const rss = sampleRss()
    const loopDelay = monitorEventLoopDelay({ resolution: 10 })
    loopDelay.enable()
    const cpuBefore = process.cpuUsage()
    const engineCpuBefore = engineCpuSeconds()
    const changedAt = epochNow()
    const changedAtPerf = performance.now()
    await put(2)
    let doneAt: number | undefined
    await untilSteady(load, changedAt, async () => {
      if (doneAt === undefined && (await converged())) doneAt = epochNow()
      return doneAt !== undefined
    })
    await sleep(TAIL_MS)
    const { sent } = await load.stop()
    const cpu = process.cpuUsage(cpuBefore)
    const wallMs = performance.now() - changedAtPerf
    loopDelay.disable()
    const engineCpuAfter = engineCpuSeconds()
    const inspects = stopTimingInspects()
    const calls = [...runtime.mutating, ...inspects]
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((call) => ({ method: call.method, atMs: call.startedAt - changedAtPerf, durationMs: call.durationMs }))
    return {
      scenario: strategy,
      run,
      changedAt,
      sent,
      results: load.results,
      doneMs: doneAt! - changedAt,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      cpuPercent: cpuPercent(cpu, wallMs),
      proxyingCpuPercent,
      maxEventLoopDelayMs: loopDelay.max / 1e6,
      peakRssMiB: rss(),
      engineCpuSeconds: engineCpuBefore === undefined || engineCpuAfter === undefined ? undefined : engineCpuAfter - engineCpuBefore,
      dockerCalls: calls,
      events: eventsSince(events.events, changedAtPerf),
    }
  } finally {
    events.close()
    await load.stop()
    const response = await fetch(`${api}/api/v1/plugins/${name}`, { method: 'DELETE' })
    if (response.status !== 202 && response.status !== 200 && response.status !== 204) throw new Error(`DELETE ${name} answered ${response.status}`)
    await waitUntil(`${name} uninstalled`, async () => ((await fetch(`${api}/api/v1/plugins/${name}`)).status === 404 ? true : undefined), 60_000, 100)
  }
}

// ---- the peer: docker-compose's recreate ----

function composeFile(version: number): string {
  return [
    "version: '2.4'",
    'services:',
    '  web:',
    `    image: ${IMAGE(version)}`,
    `    ports: ["127.0.0.1:${COMPOSE_PORT}:8080"]`,
    // As converge's peer: the default bridge like ours, and our stop grace (STOP_TIMEOUT 2).
    '    network_mode: bridge',
    '    security_opt: [no-new-privileges]',
    '    stop_grace_period: 2s',
    "    environment: { FORGEHOOK_CONFIG: '{}' }",
  ].join('\n') + '\n'
}

async function runCompose(run: number): Promise<RolloutSample> {
  // Not makeTempDir: on Ctrl-C the folder must outlive `docker-compose down`, which reads its file.
  const dir = await mkdtemp(path.join(tmpdir(), 'ff-bench-rollout-compose-'))
  // Containers are named <project>_web_1: the run's name prefix, so the harness's cleanup finds them.
  const project = `${BENCH_INSTANCE}-ro${run}`
  const file = path.join(dir, 'docker-compose.yml')
  const timeFile = path.join(dir, 'time.txt')
  // GNU time: the CLI's own CPU and peak RSS, children included (compose v1 is one Python process).
  const compose = (...args: string[]) =>
    execFileAsync('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, 'docker-compose', '-p', project, '-f', file, ...args], { maxBuffer: 16 * 1024 * 1024, timeout: SCENARIO_TIMEOUT_MS })
  const down = async () => void (await compose('down', '-t', '2'))
  const unregister = onInterrupt(() => down().finally(() => rm(dir, { recursive: true, force: true })))
  try {
    await writeFile(file, composeFile(1))
    await compose('up', '-d')
    const url = `http://127.0.0.1:${COMPOSE_PORT}/index.html`
    await waitUntil('compose answering', async () => ((await fetch(url).then((response) => response.text()).catch(() => '')).includes('version 1') ? true : undefined), 30_000, 100)
    const events = await watchDockerEvents({ label: [`com.docker.compose.project=${project}`] })
    const load = await startOpenLoopLoad({ url, requestsPerSecond: RATE, requestTimeoutMs: REQUEST_TIMEOUT_MS })
    try {
      await warmUp(load, project)
      await writeFile(file, composeFile(2))
      const engineCpuBefore = engineCpuSeconds()
      const changedAt = epochNow()
      const changedAtPerf = performance.now()
      let doneAt: number | undefined
      let upFailed: unknown
      const up = compose('up', '-d').then(
        () => void (doneAt = epochNow()),
        (error: unknown) => void (upFailed = error),
      )
      await untilSteady(load, changedAt, async () => {
        if (upFailed !== undefined) throw upFailed
        return doneAt !== undefined
      })
      await up
      await sleep(TAIL_MS)
      const { sent } = await load.stop()
      const wallMs = performance.now() - changedAtPerf
      const engineCpuAfter = engineCpuSeconds()
      const [user, system, maxRssKiB] = (await readFile(timeFile, 'utf8')).trim().split(/\s+/).slice(-3).map(Number)
      return {
        scenario: 'compose',
        run,
        changedAt,
        sent,
        results: load.results,
        doneMs: doneAt! - changedAt,
        cpuSeconds: user! + system!,
        cpuPercent: ((user! + system!) * 1e3 / wallMs) * 100,
        peakRssMiB: maxRssKiB! / 1024,
        engineCpuSeconds: engineCpuBefore === undefined || engineCpuAfter === undefined ? undefined : engineCpuAfter - engineCpuBefore,
        dockerCalls: [],
        events: eventsSince(events.events, changedAtPerf),
      }
    } finally {
      events.close()
      await load.stop()
    }
  } finally {
    unregister()
    await down()
    await rm(dir, { recursive: true, force: true })
  }
}

// ---- the case ----

export async function benchRollout() {
  installCleanupHandlers()
  await cleanupContainers()
  const engine: Engine = serverUrl ? 'postgres' : 'embedded'
  const bench = await startBenchDaemon({ engine, label: 'rollout', workers: 8, hostPortRange: HOST_PORT_RANGE })
  const samples: RolloutSample[] = []
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const scenario of SCENARIOS) {
        process.stderr.write(`bench: rollout run ${run + 1}/${RUNS}: ${scenario}\n`)
        samples.push(scenario === 'compose' ? await runCompose(run) : await runOurs(bench, scenario, run))
      }
    }
  } finally {
    await bench.stop()
    await cleanupContainers()
  }
  const rows = SCENARIOS.map((scenario) => summarizeRollout(scenario, samples.filter((sample) => sample.scenario === scenario)))
  const table = rolloutTable(rows, { engine, runs: RUNS, rate: RATE })
  process.stdout.write(table + '\n')
  await writeResults('rollout', {
    images: [IMAGE(1), IMAGE(2)],
    engine,
    rate: RATE,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    runs: RUNS,
    rows,
    samples,
  })
  return Object.assign(rows, { table })
}
