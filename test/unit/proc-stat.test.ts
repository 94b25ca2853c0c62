// /proc/<pid>/stat read in one place (Linux only, like the daemon's own data-folder lock).
import { existsSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { procStatFields, processCpuSeconds } from '../../src/util/proc-stat.js'

describe.skipIf(!existsSync('/proc/self/stat'))('/proc/<pid>/stat', () => {
  test('this process: a running state, CPU time used so far, and a start time', () => {
    const fields = procStatFields(process.pid)!
    expect(fields[0]).toMatch(/^[RS]$/)
    expect(Number(fields[19])).toBeGreaterThan(0)
    const usage = process.cpuUsage()
    const seconds = processCpuSeconds(process.pid)!
    // Ticks of 1/100 s: within a tick or two of what Node reports.
    expect(Math.abs(seconds - (usage.user + usage.system) / 1e6)).toBeLessThan(0.05)
  })

  test('a process that does not exist has no fields and no CPU time', () => {
    expect(procStatFields(2 ** 30)).toBeUndefined()
    expect(processCpuSeconds(2 ** 30)).toBeUndefined()
  })
})
