import { describe, expect, test } from 'vitest'
import { cpuPercentBetween } from '../../src/controller/cpu-rate.js'

describe('CPU rate between two stats reads', () => {
  test('is the container time over the host time, times the CPUs, as docker stats computes it', () => {
    // 0.5 ms of container time over 10 ms of host time on 2 CPUs: 10 % of one CPU.
    const earlier = { containerNanos: 1_000_000, systemNanos: 10_000_000, onlineCpus: 2 }
    const later = { containerNanos: 1_500_000, systemNanos: 20_000_000, onlineCpus: 2 }
    expect(cpuPercentBetween(earlier, later)).toBe(10)
  })

  test('is zero for a container that used no CPU in between', () => {
    const earlier = { containerNanos: 7, systemNanos: 10_000_000, onlineCpus: 1 }
    expect(cpuPercentBetween(earlier, { ...earlier, systemNanos: 20_000_000 })).toBe(0)
  })

  test('gives no rate when no host time passed, the counter went back, or the container stopped', () => {
    const earlier = { containerNanos: 5_000_000, systemNanos: 10_000_000, onlineCpus: 1 }
    expect(cpuPercentBetween(earlier, earlier)).toBeUndefined()
    // Restarted in place: its cgroup counts from zero again.
    expect(cpuPercentBetween(earlier, { containerNanos: 1_000, systemNanos: 20_000_000, onlineCpus: 1 })).toBeUndefined()
    // Not running: Docker reports zeros.
    expect(cpuPercentBetween(earlier, { containerNanos: 0, systemNanos: 0, onlineCpus: 1 })).toBeUndefined()
  })
})
