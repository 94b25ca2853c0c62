// The CPU rate of a container between two reads of its counters: `docker stats`' own
// arithmetic, with our previous read in place of the precpu_stats Docker would wait a
// second for. Over a sampling interval it is the average of that interval, not of one
// second of it.
import type { CpuCounters } from '../runtime/container-runtime.js'

/**
 * Percent of one CPU (200 = two CPUs busy), or undefined when the two reads give no rate:
 * no host time passed between them, or the container's counter went back (it restarted in
 * place, or it is not running and reports zeros).
 */
export function cpuPercentBetween(earlier: CpuCounters, later: CpuCounters): number | undefined {
  const containerDelta = later.containerNanos - earlier.containerNanos
  const systemDelta = later.systemNanos - earlier.systemNanos
  if (systemDelta <= 0 || containerDelta < 0 || later.systemNanos === 0) return undefined
  return (containerDelta / systemDelta) * later.onlineCpus * 100
}
