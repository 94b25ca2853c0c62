// The statements of the store's group commit (statement-batcher.ts): several plugins' rows
// read, status written, and status written with its events, all in one statement (one
// round trip, one commit), whatever mix of them the workers asked for at that moment. The
// statement's text is the same for every batch (the batch is its parameters), so it is
// prepared once per connection instead of parsed and planned each time. A
// batch never waits for a row lock another session holds: it locks what it writes with SKIP
// LOCKED first, and what it could not lock goes down the single statement path (which
// waits, as it always did).
import { CompiledQuery, type Kysely } from 'kysely'
import type { Database, PluginEventsTable, PluginRow, PluginRowUpdate } from './schema.js'
import type { Selectable } from 'kysely'
import { eventRow } from './plugin-rows.js'
import type { NewPluginEvent } from './plugin-types.js'
import { registerPrepared } from './prepared-statements.js'

/**
 * SQL types of the status columns a batch may write, each read from the batch's JSON with
 * its cast. A status column missing here (a new one) is written by the single statement.
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

/** One request of a mixed batch: a row read by id, or a status write (with the events that explain it, if any). */
export type HotRequest = { kind: 'read'; pluginId: string } | { kind: 'write'; write: StatusWrite; events: NewPluginEvent[] }

/** A read's row (undefined: no such plugin); a write's row as written and its events recorded (undefined: not written). */
export type HotResult = { kind: 'read'; row: PluginRow | undefined } | { kind: 'write'; written: { row: PluginRow; events: Selectable<PluginEventsTable>[] } | undefined }

/**
 * The one statement of every batch that writes: its text never changes, whatever the batch
 * holds, so each connection (and the embedded engine's session) parses and plans it once and
 * then only executes it (prepared-statements.ts). $1 is a JSON array of the writes, each
 * `{id, set: {column: value}, events: [eventRow(…)]}`; $2 a JSON array
 * of the ids to read. A column a write does not name keeps its value. The rows are locked
 * with SKIP LOCKED first: a row another session holds is not written here (see
 * runHotStatements). The plan must not depend on the batch or on the table's statistics:
 * - every row of plugins is found through its primary key as `id = ANY (ARRAY(subquery))`,
 *   which the planner takes for a few rows whatever it knows. Joined to the batch's rows
 *   (jsonb_array_elements, taken for 100) it chose a sequential scan of 10,000 plugins
 *   before the table was analyzed: 3 ms a statement instead of 0.3;
 * - the ids to read come as JSON, not a uuid[]: with an array the planner costs a plan of
 *   its own for 3 ids below the generic one (which assumes 10), keeps choosing its own for
 *   each execution, and plans every time after all.
 */
const HOT_WRITE_SQL = registerPrepared(
  'flowforge_hot_write',
  `WITH w AS (
  SELECT (x->>'id')::uuid AS id, x->'set' AS s, x->'events' AS ev, ord
  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(x, ord)
),
locked AS (SELECT id FROM plugins WHERE id = ANY (ARRAY(SELECT id FROM w)) FOR UPDATE SKIP LOCKED),
written AS (
  UPDATE plugins AS p SET
    ${Object.entries(STATUS_COLUMN_TYPES)
      .map(([column, type]) => `${column} = CASE WHEN w.s ? '${column}' THEN (w.s->>'${column}')::${type} ELSE p.${column} END`)
      .join(',\n    ')}
  FROM w
  WHERE p.id = w.id AND p.id = ANY (ARRAY(SELECT id FROM locked))
  RETURNING p.*
),
inserted AS (
  INSERT INTO plugin_events (plugin_id, forgehook_id, event_type, data)
  SELECT w.id, e->>'forgehook_id', e->>'event_type', (e->>'data')::jsonb
  FROM w CROSS JOIN LATERAL jsonb_array_elements(w.ev) WITH ORDINALITY AS el(e, n)
  WHERE w.id IN (SELECT id FROM written)
  ORDER BY w.ord, el.n
  RETURNING *
)
SELECT 'w'::text AS hot_kind, x.*,
  coalesce((SELECT jsonb_agg(to_jsonb(i) ORDER BY i.id) FROM inserted i WHERE i.plugin_id = x.id), '[]'::jsonb) AS hot_events
FROM written x
UNION ALL
SELECT 'r'::text, p.*, NULL::jsonb FROM plugins p WHERE p.id = ANY (ARRAY(SELECT jsonb_array_elements_text($2::jsonb)::uuid))`,
)

/** A batch of reads only: no data-modifying part, so it stays a read-only statement. */
const HOT_READ_SQL = registerPrepared(
  'flowforge_hot_read',
  `SELECT 'r'::text AS hot_kind, p.*, NULL::jsonb AS hot_events FROM plugins p WHERE p.id = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)::uuid))`,
)

type HotRow = PluginRow & { hot_kind: 'w' | 'r'; hot_events: (Omit<Selectable<PluginEventsTable>, 'timestamp'> & { timestamp: string })[] | null }

/**
 * Reads and status writes (with their events) of several plugins in one statement. Reads see
 * the rows as they were before the statement's writes. A write is made only if its row
 * could be locked at once (SKIP LOCKED); its events only with it. Every event must carry
 * its write's plugin id, and no two writes may name the same plugin.
 */
export async function runHotStatements(db: Kysely<Database>, requests: HotRequest[]): Promise<HotResult[]> {
  const writes = requests.flatMap((request) => (request.kind === 'write' ? [request] : []))
  const readIds = JSON.stringify([...new Set(requests.flatMap((request) => (request.kind === 'read' ? [request.pluginId] : [])))])
  let rows: HotRow[]
  if (writes.length === 0) {
    rows = (await db.executeQuery<HotRow>(CompiledQuery.raw(HOT_READ_SQL, [readIds]))).rows
  } else {
    // A Date goes as ISO 8601, which timestamptz reads; generations are numbers (type-parsers.ts).
    const batch = writes.map(({ write, events }) => ({ id: write.pluginId, set: write.values, events: events.map(eventRow) }))
    rows = (await db.executeQuery<HotRow>(CompiledQuery.raw(HOT_WRITE_SQL, [JSON.stringify(batch), readIds]))).rows
  }
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
