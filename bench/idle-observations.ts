// What the idle bench sees besides CPU and RSS: when each plugin's stats were read (is
// every running plugin sampled every interval?) and, on request, a CPU profile of the
// window grouped by where the time went (HTTP probes, Docker calls, database, GC...).
import { Session } from 'node:inspector/promises'
import { writeFile } from 'node:fs/promises'
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'

export interface GcTime {
  /** Pauses of the main thread for garbage collection in the window, ms. */
  totalMs: number
  /** Of which full (mark-compact) collections, ms, and how many. */
  majorMs: number
  majorCount: number
}

/** Counts V8's GC pauses from now on (cheap: one entry per collection); the returned function stops and sums them. */
export function startGcCount(): () => GcTime {
  const time: GcTime = { totalMs: 0, majorMs: 0, majorCount: 0 }
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
      time.totalMs += entry.duration
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        time.majorMs += entry.duration
        time.majorCount += 1
      }
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  return () => {
    // Entries not yet delivered to the callback.
    for (const entry of observer.takeRecords() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
      time.totalMs += entry.duration
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        time.majorMs += entry.duration
        time.majorCount += 1
      }
    }
    observer.disconnect()
    return time
  }
}

/** Successful stats reads by container id, as performance.now() times. */
export class StatsLog {
  private readonly reads = new Map<string, number[]>()

  record(containerId: string, at: number): void {
    const times = this.reads.get(containerId)
    if (times) times.push(at)
    else this.reads.set(containerId, [at])
  }

  /** Reads of one container between `from` and `to`. */
  between(containerId: string, from: number, to: number): number[] {
    return (this.reads.get(containerId) ?? []).filter((at) => at >= from && at <= to)
  }
}

export interface SamplingResult {
  /** Metrics rounds due in the window (window / interval). */
  roundsDue: number
  /** Fewest and most samples any running plugin got in the window. */
  samplesMin: number
  samplesMax: number
  /** Plugins that went more than 1.5 intervals without a sample (they missed a round), window edges included. */
  pluginsBehind: number
  /** Longest time one plugin went without a sample, window edges included (a plugin never sampled: the window). */
  longestGapSeconds: number
}

export function samplingOf(log: StatsLog, containerIds: string[], from: number, to: number, intervalMs: number): SamplingResult | undefined {
  if (containerIds.length === 0) return undefined
  const roundsDue = (to - from) / intervalMs
  let samplesMin = Infinity
  let samplesMax = 0
  let pluginsBehind = 0
  let longestGapMs = 0
  for (const containerId of containerIds) {
    const times = log.between(containerId, from, to)
    samplesMin = Math.min(samplesMin, times.length)
    samplesMax = Math.max(samplesMax, times.length)
    const edges = [from, ...times, to]
    let gapMs = 0
    for (let index = 1; index < edges.length; index += 1) gapMs = Math.max(gapMs, edges[index]! - edges[index - 1]!)
    if (gapMs > 1.5 * intervalMs) pluginsBehind += 1
    longestGapMs = Math.max(longestGapMs, gapMs)
  }
  return { roundsDue, samplesMin, samplesMax, pluginsBehind, longestGapSeconds: longestGapMs / 1000 }
}

export interface ProfileGroup {
  group: string
  selfMs: number
}

/** Starts V8's sampling profiler; the returned function stops it and groups self time by module. */
export async function startProfile(): Promise<(writeTo?: string) => Promise<ProfileGroup[]>> {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 1000 })
  await session.post('Profiler.start')
  return async (writeTo) => {
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    if (writeTo) await writeFile(writeTo, JSON.stringify(profile))
    return cpuByOwner(profile)
  }
}

/**
 * V8's sampling heap profiler over the window (a sample every 32 KiB allocated on average).
 * `all`: every allocation, collected or not: what allocates in an idle daemon. `survivors`:
 * only objects no young-generation collection freed, so promoted to the old generation (and
 * collected there or still live): what fills the old generation and starts the full
 * collections. The returned function stops it and groups the sampled bytes by owner, as
 * cpuByOwner groups time.
 */
export async function startAllocationProfile(kind: 'all' | 'survivors' = 'all'): Promise<(writeTo?: string) => Promise<AllocationGroup[]>> {
  const session = new Session()
  session.connect()
  await session.post('HeapProfiler.enable')
  await session.post('HeapProfiler.startSampling', { samplingInterval: 32 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: kind === 'all' })
  return async (writeTo) => {
    const { profile } = await session.post('HeapProfiler.stopSampling')
    session.disconnect()
    if (writeTo) await writeFile(writeTo, JSON.stringify(profile))
    return allocationByOwner(profile)
  }
}

export interface AllocationGroup {
  group: string
  /** Sampled bytes allocated in the window (an estimate: the sum of the samples' sizes scaled by the sampling). */
  bytes: number
}

interface HeapProfileNode {
  callFrame: { functionName: string; url: string }
  selfSize: number
  children?: HeapProfileNode[]
}

/** Each node's self size to the innermost frame of ours or of a dependency on its stack, as cpuByOwner does. */
export function allocationByOwner(profile: { head?: HeapProfileNode }): AllocationGroup[] {
  const bytes = new Map<string, number>()
  const walk = (node: HeapProfileNode, owner: string | undefined): void => {
    const own = ownerFrame(node.callFrame.url) ?? owner
    if (node.selfSize > 0) {
      const group = own ?? (node.callFrame.functionName.startsWith('(') ? node.callFrame.functionName : 'node internals')
      bytes.set(group, (bytes.get(group) ?? 0) + node.selfSize)
    }
    for (const child of node.children ?? []) walk(child, own)
  }
  if (profile.head) walk(profile.head, undefined)
  return [...bytes.entries()].map(([group, total]) => ({ group, bytes: total })).sort((a, b) => b.bytes - a.bytes)
}

export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[]
  samples?: number[]
  timeDeltas?: number[]
}

/**
 * Each sample goes to its owner: the innermost frame on its stack in src/ or bench/ or in a
 * dependency (not tsx), so Node's own code counts for whoever called it; samples with no
 * such frame (socket reads, HTTP parsing, timers) are 'node internals'.
 */
export function cpuByOwner(profile: CpuProfile): ProfileGroup[] {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const parents = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id)
  const ownerOf = (id: number): string => {
    for (let current: number | undefined = id; current !== undefined; current = parents.get(current)) {
      const owner = ownerFrame(nodes.get(current)!.callFrame.url)
      if (owner) return owner
    }
    const name = nodes.get(id)?.callFrame.functionName ?? ''
    return name.startsWith('(') ? name : 'node internals'
  }
  const selfMicros = new Map<string, number>()
  const samples = profile.samples ?? []
  const deltas = profile.timeDeltas ?? []
  for (let index = 0; index < samples.length; index += 1) {
    const owner = ownerOf(samples[index]!)
    if (owner === '(idle)') continue
    // A sample's time is the delta to the next one.
    selfMicros.set(owner, (selfMicros.get(owner) ?? 0) + (deltas[index + 1] ?? 0))
  }
  return [...selfMicros.entries()].map(([group, micros]) => ({ group, selfMs: micros / 1000 })).sort((a, b) => b.selfMs - a.selfMs)
}

function ownerFrame(url: string): string | undefined {
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (dependency && dependency[1] !== 'tsx') return dependency[1]
  const source = /\/(src|bench)\/(.+?)\.ts/.exec(url)
  return source ? `${source[1]}/${source[2]}` : undefined
}
