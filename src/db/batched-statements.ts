// The statements of the store's group commit (statement-batcher.ts): several plugins' rows
// read, or status written, in one statement. A batch never waits for a row lock another
// session holds: it locks what it writes with SKIP LOCKED first, and what it could not
// lock goes down the single statement path (which waits, as it always did).
import { sql, type Kysely, type RawBuilder } from 'kysely'
import type { Database, PluginEventsTable, PluginRow, PluginRowUpdate } from './schema.js'
import type { Selectable } from 'kysely'

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
}

export interface StatusWrite {
  pluginId: string
  /** Status columns only (statusColumns()), at least one. */
  values: PluginRowUpdate
}

export interface EventRow {
  plugin_id: string | null
  forgehook_id: string
  event_type: string
  data: string
}

/** Whether a batch can carry this write: every column's type is known. */
export function batchable(write: StatusWrite): boolean {
  return Object.keys(write.values).every((column) => STATUS_COLUMN_TYPES[column] !== undefined)
}

/** Many rows by id in one SELECT; a missing id is absent from the map. */
export async function readPlugins(db: Kysely<Database>, pluginIds: string[]): Promise<Map<string, PluginRow>> {
  const rows = await db.selectFrom('plugins').selectAll().where('id', 'in', pluginIds).execute()
  return new Map(rows.map((row) => [row.id, row]))
}

/**
 * Status of several plugins in one statement, each with its own columns; the rows as
 * written, by id. A plugin that is missing from the answer was not written (no such row,
 * or another session holds it locked).
 */
export async function writeStatuses(db: Kysely<Database>, writes: StatusWrite[]): Promise<Map<string, PluginRow>> {
  const updates = updateClauses(writes, sql`RETURNING p.*`)
  const rows = await sql<PluginRow>`WITH ${lockClause(writes)}, ${sql.join(updates.ctes)} ${sql.join(
    updates.names.map((name) => sql`SELECT * FROM ${sql.raw(name)}`),
    sql` UNION ALL `,
  )}`.execute(db)
  return new Map(rows.rows.map((row) => [row.id, row]))
}

/**
 * Status and the events that explain it, of several plugins, in one statement: a plugin's
 * events are inserted only with its status (both or neither). Returns the events recorded,
 * oldest first; a plugin with none among them was not written (see writeStatuses). Every
 * event must carry its write's plugin id.
 */
export async function writeStatusesWithEvents(
  db: Kysely<Database>,
  writes: { write: StatusWrite; events: EventRow[] }[],
): Promise<Selectable<PluginEventsTable>[]> {
  const updates = updateClauses(
    writes.map(({ write }) => write),
    sql`RETURNING p.id`,
  )
  const events = writes.flatMap(({ events }) => events)
  const eventValues = events.map(
    (event, index) => sql`(${index}::integer, ${event.plugin_id}::uuid, ${event.forgehook_id}::varchar, ${event.event_type}::varchar, ${event.data}::jsonb)`,
  )
  const written = sql.join(
    updates.names.map((name) => sql`SELECT id FROM ${sql.raw(name)}`),
    sql` UNION ALL `,
  )
  const rows = await sql<Selectable<PluginEventsTable>>`WITH ${lockClause(writes.map(({ write }) => write))}, ${sql.join(updates.ctes)},
    written AS (${written}),
    inserted AS (
      INSERT INTO plugin_events (plugin_id, forgehook_id, event_type, data)
      SELECT e.plugin_id, e.forgehook_id, e.event_type, e.data
      FROM (VALUES ${sql.join(eventValues)}) AS e(n, plugin_id, forgehook_id, event_type, data)
      WHERE e.plugin_id IN (SELECT id FROM written)
      ORDER BY e.n
      RETURNING *
    )
    SELECT * FROM inserted ORDER BY id`.execute(db)
  return rows.rows
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
