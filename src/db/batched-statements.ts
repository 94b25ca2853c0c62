// The statements of the store's group commit (statement-batcher.ts): several plugins' rows
// read, status written, and status written with its events, all in one statement (one
// round trip, one commit), whatever mix of them the workers asked for at that moment. A
// batch never waits for a row lock another session holds: it locks what it writes with SKIP
// LOCKED first, and what it could not lock goes down the single statement path (which
// waits, as it always did).
import { sql, type Kysely, type RawBuilder } from 'kysely'
import type { Database, PluginEventsTable, PluginRow, PluginRowUpdate } from './schema.js'
import type { Selectable } from 'kysely'
import { eventRow } from './plugin-rows.js'
import type { NewPluginEvent } from './plugin-types.js'

/**
 * SQL types of the status columns a batch may write: a VALUES list has no column types of
 * its own. A status column missing here (a new one) is written by the single statement.
 */
const STATUS_COLUMN_TYPES: Record<string, string> = {
  status: 'varchar',
  container_id: 'varchar',
  container_name: 'varchar',
  host_port: 'integer',
  health_status: 'varchar',
  last_health_check: 'timestamptz',
  error: 'text',
  restart_count: 'integer',
  observed_generation: 'bigint',
  installed_at: 'timestamptz',
  started_at: 'timestamptz',
  stopped_at: 'timestamptz',
  next_restart_at: 'timestamptz',
  rollout: 'jsonb',
  image_digest: 'text',
  extra_ports: 'jsonb',
  replicas_desired: 'integer',
  replicas_running: 'integer',
}

export interface StatusWrite {
  pluginId: string
  /** Status columns only (statusColumns()), at least one. */
  values: PluginRowUpdate
}

/** Whether a batch can carry this write: every column's type is known. */
export function batchable(write: StatusWrite): boolean {
  return Object.keys(write.values).every((column) => STATUS_COLUMN_TYPES[column] !== undefined)
}

/** The rows to write, locked for this statement unless another session holds them. */
function lockClause(writes: StatusWrite[]): RawBuilder<unknown> {
  const ids = sql.join(writes.map((write) => sql`${write.pluginId}::uuid`))
  return sql`locked AS (SELECT id FROM plugins WHERE id IN (${ids}) FOR UPDATE SKIP LOCKED)`
}

/** One UPDATE … FROM (VALUES …) per set of columns written, named u0, u1, …. */
function updateClauses(writes: StatusWrite[], returning: RawBuilder<unknown>): { ctes: RawBuilder<unknown>[]; names: string[] } {
  const groups = new Map<string, StatusWrite[]>()
  for (const write of writes) {
    const columns = Object.keys(write.values).sort().join(',')
    groups.set(columns, [...(groups.get(columns) ?? []), write])
  }
  const ctes: RawBuilder<unknown>[] = []
  const names: string[] = []
  for (const [columnList, group] of groups) {
    const columns = columnList.split(',')
    const name = `u${names.length}`
    const rows = group.map((write) => {
      const values = write.values as Record<string, unknown>
      const cells = columns.map((column) => sql`${values[column] ?? null}::${sql.raw(STATUS_COLUMN_TYPES[column]!)}`)
      return sql`(${write.pluginId}::uuid, ${sql.join(cells)})`
    })
    const assignments = sql.raw(columns.map((column) => `${column} = v.${column}`).join(', '))
    const valueColumns = sql.raw(['id', ...columns].join(', '))
    ctes.push(sql`${sql.raw(name)} AS (
      UPDATE plugins AS p SET ${assignments}
      FROM (VALUES ${sql.join(rows)}) AS v(${valueColumns})
      WHERE p.id = v.id AND p.id IN (SELECT id FROM locked)
      ${returning}
    )`)
    names.push(name)
  }
  return { ctes, names }
}

/** One request of a mixed batch: a row read by id, or a status write (with the events that explain it, if any). */
export type HotRequest = { kind: 'read'; pluginId: string } | { kind: 'write'; write: StatusWrite; events: NewPluginEvent[] }

/** A read's row (undefined: no such plugin); a write's row as written and its events recorded (undefined: not written). */
export type HotResult = { kind: 'read'; row: PluginRow | undefined } | { kind: 'write'; written: { row: PluginRow; events: Selectable<PluginEventsTable>[] } | undefined }

/**
 * Reads and status writes (with their events) of several plugins in one statement. Reads see
 * the rows as they were before the statement's writes. A write is made only if its row
 * could be locked at once (see lockClause); its events only with it. Every event must carry
 * its write's plugin id, and no two writes may name the same plugin.
 */
export async function runHotStatements(db: Kysely<Database>, requests: HotRequest[]): Promise<HotResult[]> {
  const writes = requests.flatMap((request) => (request.kind === 'write' ? [request] : []))
  const readIds = [...new Set(requests.flatMap((request) => (request.kind === 'read' ? [request.pluginId] : [])))]
  const parts: RawBuilder<unknown>[] = []
  const ctes: RawBuilder<unknown>[] = []
  if (writes.length > 0) {
    const updates = updateClauses(
      writes.map(({ write }) => write),
      sql`RETURNING p.*`,
    )
    ctes.push(lockClause(writes.map(({ write }) => write)), ...updates.ctes)
    ctes.push(sql`written AS (${sql.join(updates.names.map((name) => sql`SELECT * FROM ${sql.raw(name)}`), sql` UNION ALL `)})`)
    const events = writes.flatMap(({ events }) => events.map(eventRow))
    let eventsOf = sql`'[]'::jsonb`
    if (events.length > 0) {
      const eventValues = events.map(
        (event, index) => sql`(${index}::integer, ${event.plugin_id}::uuid, ${event.forgehook_id}::varchar, ${event.event_type}::varchar, ${event.data}::jsonb)`,
      )
      ctes.push(sql`inserted AS (
        INSERT INTO plugin_events (plugin_id, forgehook_id, event_type, data)
        SELECT e.plugin_id, e.forgehook_id, e.event_type, e.data
        FROM (VALUES ${sql.join(eventValues)}) AS e(n, plugin_id, forgehook_id, event_type, data)
        WHERE e.plugin_id IN (SELECT id FROM written)
        ORDER BY e.n
        RETURNING *
      )`)
      eventsOf = sql`coalesce((SELECT jsonb_agg(to_jsonb(i) ORDER BY i.id) FROM inserted i WHERE i.plugin_id = w.id), '[]'::jsonb)`
    }
    parts.push(sql`SELECT 'w'::text AS hot_kind, w.*, ${eventsOf} AS hot_events FROM written w`)
  }
  if (readIds.length > 0) {
    parts.push(sql`SELECT 'r'::text AS hot_kind, p.*, NULL::jsonb AS hot_events FROM plugins p WHERE p.id IN (${sql.join(readIds.map((id) => sql`${id}::uuid`))})`)
  }
  const statement = sql<PluginRow & { hot_kind: 'w' | 'r'; hot_events: (Omit<Selectable<PluginEventsTable>, 'timestamp'> & { timestamp: string })[] | null }>`${
    ctes.length > 0 ? sql`WITH ${sql.join(ctes)} ` : sql``
  }${sql.join(parts, sql` UNION ALL `)}`
  const { rows } = await statement.execute(db)
  const written = new Map<string, { row: PluginRow; events: Selectable<PluginEventsTable>[] }>()
  const read = new Map<string, PluginRow>()
  for (const { hot_kind: kind, hot_events: events, ...row } of rows) {
    if (kind === 'r') {
      read.set(row.id, row)
      continue
    }
    // to_jsonb gives the event's timestamp as text.
    written.set(row.id, { row, events: (events ?? []).map((event) => ({ ...event, timestamp: new Date(event.timestamp) })) })
  }
  return requests.map((request) =>
    request.kind === 'read' ? { kind: 'read', row: read.get(request.pluginId) } : { kind: 'write', written: written.get(request.write.pluginId) },
  )
}
