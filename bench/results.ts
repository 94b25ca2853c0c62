// Small helpers every benchmark shares: the results file, percentiles, number formatting,
// bounded concurrency, a process's memory from /proc. No Docker or database here, so any case can import it.
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { packageRoot } from '../src/config.js'

/** Writes the raw numbers as bench/results/<case>-<time>.json; returns the path. */
export async function writeResults(caseName: string, data: unknown): Promise<string> {
  const dir = path.join(packageRoot(), 'bench', 'results')
  await mkdir(dir, { recursive: true })
  const file = path.join(dir, `${caseName}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  await writeFile(file, JSON.stringify(data, null, 2))
  return file
}

/** Nearest-rank percentile. */
export function percentile(samples: number[], fraction: number): number {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!
}

/** A number for a table cell; 'n/a' for a missing or non-finite one. */
export function fmt(value: number | undefined, digits = 1): string {
  return value !== undefined && Number.isFinite(value) ? value.toFixed(digits) : 'n/a'
}

export async function runInPool<T>(items: T[], concurrency: number, work: (item: T, index: number) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++
        await work(items[index]!, index)
      }
    }),
  )
}

/** A process's resident memory from /proc/<pid>/status, in MiB: now (VmRSS) and its peak (VmHWM). */
export interface ProcessMemory {
  rssMiB: number
  peakRssMiB: number
}

/** Undefined when the process is gone or there is no procfs (not Linux). */
export function processMemory(pid: number | 'self' = 'self'): ProcessMemory | undefined {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return undefined
  }
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN)
  return { rssMiB: kib('VmRSS') / 1024, peakRssMiB: kib('VmHWM') / 1024 }
}

/**
 * Sets this process's peak (VmHWM) back to its current RSS (proc(5), clear_refs "5"), so a
 * peak read later belongs to the work in between, not to what ran before in the process.
 * Returns false where that is not possible (no procfs, an old kernel).
 */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5')
    return true
  } catch {
    return false
  }
}

/** "RSS at the end / peak" in MiB for a table cell. */
export function fmtMemory(memory: ProcessMemory | undefined): string {
  return memory ? `${fmt(memory.rssMiB, 0)} / ${fmt(memory.peakRssMiB, 0)}` : 'n/a'
}
