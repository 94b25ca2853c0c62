// The rollout case's numbers: what one run's answers come to (failures, the longest gap
// between two successful answers, when version 2 first and then only answered, where the
// switch spent the gap by the engine's events), the median and worst over the runs, and the
// markdown tables. No Docker here: bench/rollout.ts measures, this file counts.
import type { LoadResult } from './load-generator.js'
import { fmt, percentile } from './results.js'

export type Scenario = 'Recreate' | 'StartFirst' | 'compose'

/** A successful answer slower than this was held somewhere while nothing served (steady answers take ~10 ms here). */
export const HELD_MS = 300

/** An engine event of the plugin's (or the compose project's) containers, ms after the change. */
export interface TimedEvent {
  action: string
  name: string
  atMs: number
}

/** One update, as measured. Times are epoch ms (changedAt) or ms after the change. */
export interface RolloutSample {
  scenario: Scenario
  run: number
  changedAt: number
  /** Requests the load sent in all, the warm-up before the change included. */
  sent: number
  results: LoadResult[]
  /** Ours: the rollout complete and observed; compose: `docker-compose up -d` returned. */
  doneMs: number
  /** Ours: this process (the daemon, its proxy serving the load); compose: the CLI (GNU time). */
  cpuSeconds: number
  /** The same, as % of one core over the change to the end of the load. */
  cpuPercent: number
  /** Ours: this process while it only proxied the same load (the warm-up), % of one core. */
  proxyingCpuPercent?: number
  /** Ours: the daemon's longest event-loop stall in the window (a proxied request waits that long). */
  maxEventLoopDelayMs?: number
  peakRssMiB: number
  /** dockerd + containerd from the change to the end of the load. */
  engineCpuSeconds?: number
  /** Ours: the daemon's Docker calls that change anything, ms after the change. */
  dockerCalls: { method: string; atMs: number; durationMs?: number }[]
  events: TimedEvent[]
}

/** Where the longest gap went, by the engine's events (ms after the change). */
export interface SwitchTimeline {
  gapFromMs: number
  gapToMs: number
  /** The old container's stop: its SIGTERM (`kill`) and its end (`die`). */
  stopSentMs?: number
  diedMs?: number
  /** The new container's `start`, after the old one died. */
  newStartedMs?: number
  /** Ours: the switch's own calls, issued and returned; between stop and start are the renames and the cache's inspects. */
  calls?: { stopIssuedMs: number; stopReturnedMs: number; startIssuedMs: number; startReturnedMs: number; between: string[] }
}

export interface SampleMetrics {
  run: number
  /** Requests sent from the change to the end of the load, and how many of them failed. */
  sent: number
  failed: number
  failures: Record<string, number>
  longestGapMs: number
  firstV2Ms?: number
  onlyV2Ms?: number
  /** Answers of version 1 completed after the first of version 2 (the two alternating). */
  v1AfterV2: number
  /** Successful answers that took longer than HELD_MS (held while nothing served), and the slowest one. */
  heldAnswers: number
  slowestAnswerMs: number
  doneMs: number
  cpuSeconds: number
  cpuPercent: number
  proxyingCpuPercent?: number
  maxEventLoopDelayMs?: number
  peakRssMiB: number
  engineCpuSeconds?: number
  timeline: SwitchTimeline
}

export function sampleMetrics(sample: RolloutSample): SampleMetrics {
  const { results, changedAt } = sample
  // The warm-up is not counted (it ends with a second of version 1 alone).
  const measured = results.filter((result) => result.sentAt >= changedAt)
  const failures: Record<string, number> = {}
  for (const result of measured) {
    if (result.failure === undefined) continue
    const kind = result.status !== undefined ? String(result.status) : result.failure
    failures[kind] = (failures[kind] ?? 0) + 1
  }
  // The gap is the update's: from the last answer before the change on (the warm-up's own stalls on a busy machine are not it).
  const answered = results.filter((result) => result.failure === undefined).sort((a, b) => a.doneAt - b.doneAt)
  const lastBefore = answered.filter((result) => result.doneAt < changedAt).at(-1)
  const successes = answered.filter((result) => result.doneAt >= (lastBefore?.doneAt ?? changedAt))
  let gap = { fromAt: changedAt, toAt: changedAt }
  for (let index = 1; index < successes.length; index++) {
    const [before, after] = [successes[index - 1]!, successes[index]!]
    if (after.doneAt - before.doneAt > gap.toAt - gap.fromAt) gap = { fromAt: before.doneAt, toAt: after.doneAt }
  }
  const byDone = [...results].sort((a, b) => a.doneAt - b.doneAt)
  const firstV2 = byDone.find((result) => result.version === 2)
  const lastOther = byDone.filter((result) => result.doneAt >= changedAt && result.version !== 2).at(-1)
  const onlyV2 = byDone.find((result) => result.version === 2 && (lastOther === undefined || result.doneAt > lastOther.doneAt))
  const events = sample.events
  const stopSent = events.find((event) => event.action === 'kill')
  const died = events.find((event) => event.action === 'die')
  const newStarted = died ? events.find((event) => event.action === 'start' && event.atMs >= died.atMs) : undefined
  const calls = switchCalls(sample.dockerCalls)
  return {
    run: sample.run,
    sent: measured.length,
    failed: measured.filter((result) => result.failure !== undefined).length,
    failures,
    longestGapMs: gap.toAt - gap.fromAt,
    ...(firstV2 ? { firstV2Ms: firstV2.doneAt - changedAt } : {}),
    ...(onlyV2 ? { onlyV2Ms: onlyV2.doneAt - changedAt } : {}),
    v1AfterV2: firstV2 ? results.filter((result) => result.version === 1 && result.doneAt > firstV2.doneAt).length : 0,
    heldAnswers: measured.filter((result) => result.failure === undefined && result.doneAt - result.sentAt > HELD_MS).length,
    slowestAnswerMs: Math.max(0, ...measured.filter((result) => result.failure === undefined).map((result) => result.doneAt - result.sentAt)),
    doneMs: sample.doneMs,
    cpuSeconds: sample.cpuSeconds,
    cpuPercent: sample.cpuPercent,
    ...(sample.proxyingCpuPercent !== undefined ? { proxyingCpuPercent: sample.proxyingCpuPercent } : {}),
    ...(sample.maxEventLoopDelayMs !== undefined ? { maxEventLoopDelayMs: sample.maxEventLoopDelayMs } : {}),
    peakRssMiB: sample.peakRssMiB,
    ...(sample.engineCpuSeconds !== undefined ? { engineCpuSeconds: sample.engineCpuSeconds } : {}),
    timeline: {
      gapFromMs: gap.fromAt - changedAt,
      gapToMs: gap.toAt - changedAt,
      ...(stopSent ? { stopSentMs: stopSent.atMs } : {}),
      ...(died ? { diedMs: died.atMs } : {}),
      ...(newStarted ? { newStartedMs: newStarted.atMs } : {}),
      ...(calls ? { calls } : {}),
    },
  }
}

/** The old container's stop and the new one's start, and what ran between them (Recreate only). */
function switchCalls(calls: RolloutSample['dockerCalls']): SwitchTimeline['calls'] {
  const stopIndex = calls.findIndex((call) => call.method === 'stop')
  const startIndex = calls.findIndex((call, index) => index > stopIndex && call.method === 'start')
  const [stop, start] = [calls[stopIndex], calls[startIndex]]
  if (stopIndex < 0 || startIndex < 0 || stop?.durationMs === undefined || start?.durationMs === undefined) return undefined
  return {
    stopIssuedMs: stop.atMs,
    stopReturnedMs: stop.atMs + stop.durationMs,
    startIssuedMs: start.atMs,
    startReturnedMs: start.atMs + start.durationMs,
    between: calls.slice(stopIndex + 1, startIndex).map((call) => call.method),
  }
}

export interface MedianWorst {
  median: number
  worst: number
}

export interface RolloutRow {
  scenario: Scenario
  runs: SampleMetrics[]
  sent: MedianWorst
  failed: MedianWorst
  longestGapMs: MedianWorst
  firstV2Ms: MedianWorst
  onlyV2Ms: MedianWorst
  doneMs: MedianWorst
  cpuSeconds: MedianWorst
  cpuPercent: MedianWorst
  proxyingCpuPercent: MedianWorst
  maxEventLoopDelayMs: MedianWorst
  peakRssMiB: MedianWorst
  engineCpuSeconds: MedianWorst
  /** Over all runs. */
  failures: Record<string, number>
  v1AfterV2: number
  heldAnswers: MedianWorst
  slowestAnswerMs: MedianWorst
}

/** Median (the lower middle of an even count) and the worst, which is the largest for every column here. */
function medianWorst(values: (number | undefined)[]): MedianWorst {
  const present = values.map((value) => value ?? Number.NaN)
  if (present.some((value) => !Number.isFinite(value))) return { median: Number.NaN, worst: Number.NaN }
  return { median: percentile(present, 0.5), worst: Math.max(...present) }
}

export function summarizeRollout(scenario: Scenario, samples: RolloutSample[]): RolloutRow {
  const runs = samples.map(sampleMetrics)
  const failures: Record<string, number> = {}
  for (const run of runs) for (const [kind, count] of Object.entries(run.failures)) failures[kind] = (failures[kind] ?? 0) + count
  const column = (pick: (run: SampleMetrics) => number | undefined) => medianWorst(runs.map(pick))
  return {
    scenario,
    runs,
    sent: column((run) => run.sent),
    failed: column((run) => run.failed),
    longestGapMs: column((run) => run.longestGapMs),
    firstV2Ms: column((run) => run.firstV2Ms),
    onlyV2Ms: column((run) => run.onlyV2Ms),
    doneMs: column((run) => run.doneMs),
    cpuSeconds: column((run) => run.cpuSeconds),
    cpuPercent: column((run) => run.cpuPercent),
    proxyingCpuPercent: column((run) => run.proxyingCpuPercent),
    maxEventLoopDelayMs: column((run) => run.maxEventLoopDelayMs),
    peakRssMiB: column((run) => run.peakRssMiB),
    engineCpuSeconds: column((run) => run.engineCpuSeconds),
    failures,
    v1AfterV2: runs.reduce((sum, run) => sum + run.v1AfterV2, 0),
    heldAnswers: column((run) => run.heldAnswers),
    slowestAnswerMs: column((run) => run.slowestAnswerMs),
  }
}

const CONTENDER: Record<Scenario, string> = {
  Recreate: 'ours, `Recreate` (through the proxy)',
  StartFirst: 'ours, `StartFirst` (through the proxy)',
  compose: '`docker-compose up -d` (its own published port)',
}

export interface RolloutTargets {
  startFirstFailed: number
  startFirstMet: boolean
  recreateGapMs: number
  composeGapMs: number
  recreateMet: boolean
}

export function rolloutTargets(rows: RolloutRow[]): RolloutTargets {
  const row = (scenario: Scenario) => rows.find((candidate) => candidate.scenario === scenario)!
  const startFirstFailed = row('StartFirst').runs.reduce((sum, run) => sum + run.failed, 0)
  const recreateGapMs = row('Recreate').longestGapMs.median
  const composeGapMs = row('compose').longestGapMs.median
  return { startFirstFailed, startFirstMet: startFirstFailed === 0, recreateGapMs, composeGapMs, recreateMet: recreateGapMs <= composeGapMs }
}

export function rolloutTable(rows: RolloutRow[], setting: { engine: string; runs: number; rate: number }): string {
  const pair = (value: MedianWorst, digits = 0) => `${fmt(value.median, digits)} / ${fmt(value.worst, digits)}`
  const kinds = (failures: Record<string, number>) =>
    Object.entries(failures)
      .sort((a, b) => b[1] - a[1])
      .map(([kind, count]) => `${kind} ×${count}`)
      .join(', ') || '–'
  const middle = (row: RolloutRow, pick: (timeline: SwitchTimeline) => number | undefined) => {
    const values = row.runs.map((run) => pick(run.timeline))
    return values.every((value) => value !== undefined && Number.isFinite(value)) ? fmt(percentile(values as number[], 0.5), 0) : '–'
  }
  const targets = rolloutTargets(rows)
  const engine = setting.engine === 'postgres' ? 'Postgres server' : 'embedded (PGlite)'
  return [
    `### Image update under load: flowforge-test/http:1 → :2 at ${setting.rate} requests/s, ${setting.runs} runs each (${engine}; median / worst)`,
    '',
    '| contender | requests sent after the change | failed | longest gap without a successful answer (ms) | change → first version-2 answer (ms) | change → version 2 only (ms) | change → done (ms) | failures, all runs |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (row) =>
        `| ${CONTENDER[row.scenario]} | ${fmt(row.sent.median, 0)} | ${pair(row.failed)} | ${pair(row.longestGapMs)} | ${pair(row.firstV2Ms)} | ${pair(row.onlyV2Ms)} | ${pair(row.doneMs)} | ${kinds(row.failures)} |`,
    ),
    '',
    `Targets: start-first 0 failed: **${targets.startFirstMet ? 'met' : 'missed'}** (${targets.startFirstFailed} over all runs); ` +
      `our Recreate gap ≤ compose's: **${targets.recreateMet ? 'met' : 'missed'}** (median ${fmt(targets.recreateGapMs, 0)} ms against ${fmt(targets.composeGapMs, 0)} ms).`,
    '',
    'CPU and RSS from the change to the end of the load: ours is the daemon\'s process (its proxy serving the load included; the load runs in a process of its own), ' +
      'beside the same process while it only proxied the load before the change; compose\'s is its CLI (GNU time).',
    '',
    `| contender | failed, each run | longest gap (ms), each run | successful answers slower than ${HELD_MS} ms | slowest successful answer (ms) | the daemon's longest event-loop stall (ms) | CPU during the update: s [% of one core] | only proxying (% of one core) | peak RSS (MiB) | dockerd + containerd CPU (s) |`,
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (row) =>
        `| ${CONTENDER[row.scenario]} | ${row.runs.map((run) => run.failed).join(', ')} | ${row.runs.map((run) => fmt(run.longestGapMs, 0)).join(', ')} | ` +
        `${pair(row.heldAnswers)} | ${pair(row.slowestAnswerMs)} | ${row.scenario === 'compose' ? '–' : pair(row.maxEventLoopDelayMs)} | ` +
        `${pair(row.cpuSeconds, 2)} [${pair(row.cpuPercent, 0)}] | ${row.scenario === 'compose' ? '–' : pair(row.proxyingCpuPercent, 0)} | ${pair(row.peakRssMiB, 0)} | ${pair(row.engineCpuSeconds, 2)} |`,
    ),
    '',
    'Where the longest gap went (ms after the change, medians; the container events as the engine reported them here):',
    '',
    '| contender | last answer before the gap | old container: `kill` (stop sent) | `die` | new container `start` | first answer after the gap |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows
      .filter((row) => row.scenario !== 'StartFirst')
      .map(
        (row) =>
          `| ${CONTENDER[row.scenario]} | ${middle(row, (timeline) => timeline.gapFromMs)} | ${middle(row, (timeline) => timeline.stopSentMs)} | ${middle(row, (timeline) => timeline.diedMs)} | ` +
          `${middle(row, (timeline) => timeline.newStartedMs)} | ${middle(row, (timeline) => timeline.gapToMs)} |`,
      ),
    '',
    ...recreateCallsTable(rows.find((row) => row.scenario === 'Recreate'), middle),
  ].join('\n')
}

/** Our Recreate switch by the daemon's own Docker calls: what the gap is made of. */
function recreateCallsTable(row: RolloutRow | undefined, middle: (row: RolloutRow, pick: (timeline: SwitchTimeline) => number | undefined) => string): string[] {
  if (!row || row.runs.some((run) => run.timeline.calls === undefined)) return []
  const between = [...new Set(row.runs.map((run) => run.timeline.calls!.between.join(', ')))].join(' | ')
  const span = (pick: (calls: NonNullable<SwitchTimeline['calls']>, timeline: SwitchTimeline) => number) => middle(row, (timeline) => pick(timeline.calls!, timeline))
  return [
    `Our \`Recreate\` switch by the daemon's own Docker calls (ms, medians; between stop and start: ${between}):`,
    '',
    '| gap opens → stop issued | stop (issued → returned) | stop returned → start issued | start (issued → returned) | start returned → first answer | the gap |',
    '|---:|---:|---:|---:|---:|---:|',
    `| ${span((calls, timeline) => calls.stopIssuedMs - timeline.gapFromMs)} | ${span((calls) => calls.stopReturnedMs - calls.stopIssuedMs)} | ${span((calls) => calls.startIssuedMs - calls.stopReturnedMs)} | ` +
      `${span((calls) => calls.startReturnedMs - calls.startIssuedMs)} | ${span((calls, timeline) => timeline.gapToMs - calls.startReturnedMs)} | ${span((_, timeline) => timeline.gapToMs - timeline.gapFromMs)} |`,
  ]
}
