import type { LogEvent } from 'kysely'

/** Kysely's log hook as a query counter (benchmarks count round trips); nothing when not asked for. */
export function queryCounter(onQuery: (() => void) | undefined): { log?: (event: LogEvent) => void } {
  if (!onQuery) return {}
  return { log: (event) => event.level === 'query' && onQuery() }
}
