/**
 * A duration as a person reads it in a log line, a status error or a forgectl message,
 * rounded to a tenth: 250 ms, 2.5 s, 90 s, 5 min. It stays in seconds up to two minutes, so
 * the growing delays of one backoff read in one unit.
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`
  const seconds = ms / 1000
  return seconds < 120 ? `${Number(seconds.toFixed(1))} s` : `${Number((seconds / 60).toFixed(1))} min`
}
