// Small helpers every benchmark shares: the results file, percentiles, number formatting,
// bounded concurrency. No Docker or database here, so any case can import it.
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
