// The only code that issues SQL against plugin state. Inputs write spec through createPlugin
// and updateSpec; only the reconciler calls writeStatus. Triggers keep generation and
// resource_version (see migrations/001).
import { sql, type Kysely, type Selectable } from 'kysely'
import type { Logger } from '../logger.js'
import { PLUGIN_RESTARTS_CHANNEL, type ChangeFeed, type ChangeListener } from './change-feed.js'
import type { EventBus } from './event-bus.js'
import { AlreadyExistsError, ConflictError, InvalidValueError, NotFoundError } from './errors.js'
import { isUuid } from '../util/uuid.js'
import type {
  Database,
  DesiredState,
  HealthStatus,
  JsonObject,
  PluginEventsTable,
  PluginMetricsTable,
  PluginPhase,
  PluginRow,
  PluginRowUpdate,
} from './schema.js'

/** A plugin as the rest of the program sees it: one row, camelCase. */
export interface Plugin {
  id: string
  forgehookId: string
  // spec
  manifest: JsonObject
  config: JsonObject
  environment: Record<string, string>
  desiredState: DesiredState
  requestedHostPort: number | null
  labels: Record<string, string>
  source: string
  deletionRequestedAt: Date | null
  // status
  status: PluginPhase
  containerId: string | null
  containerName: string | null
  hostPort: number | null
  healthStatus: HealthStatus
  lastHealthCheck: Date | null
  error: string | null
  restartCount: number
  observedGeneration: number
  installedAt: Date | null
  startedAt: Date | null
  stoppedAt: Date | null
  /** Crash-loop backoff: when the next restart is due. */
  nextRestartAt: Date | null
  // bookkeeping
  generation: number
  resourceVersion: number
  createdAt: Date
  updatedAt: Date
}

/** The desired-state half; every field but manifest may be left out on create. */
export interface PluginSpecFields {
  manifest: JsonObject
  config?: JsonObject
  environment?: Record<string, string>
  desiredState?: DesiredState
  requestedHostPort?: number | null
  labels?: Record<string, string>
}

export interface NewPlugin extends PluginSpecFields {
  /** Normally generated; given when adopting a container that carries its plugin id. */
  id?: string
  forgehookId: string
  /** 'api', 'sql', 'file:<path>', 'adopted'. */
  source: string
}

export type PluginSpecPatch = Partial<PluginSpecFields> & { source?: string }

/** The observed half, written only by the reconciler. */
export interface PluginStatusUpdate {
  status?: PluginPhase
  containerId?: string | null
  containerName?: string | null
  hostPort?: number | null
  healthStatus?: HealthStatus
  lastHealthCheck?: Date | null
  error?: string | null
  restartCount?: number
  observedGeneration?: number
  installedAt?: Date | null
  startedAt?: Date | null
  stoppedAt?: Date | null
  nextRestartAt?: Date | null
}

export interface PluginFilter {
  status?: PluginPhase | PluginPhase[]
  health?: HealthStatus | HealthStatus[]
  desiredState?: DesiredState
}

export interface PluginEvent {
  id: number
  pluginId: string | null
  forgehookId: string
  type: string
  data: JsonObject
  timestamp: Date
}

export interface NewPluginEvent {
  pluginId: string | null
  forgehookId: string
  type: string
  data?: JsonObject
}

export interface EventQuery {
  pluginId?: string
  /** Also finds the history of a plugin that was uninstalled (plugin_id is NULL then). */
  forgehookId?: string
  types?: string[]
  since?: Date
  /** Default 100, at most 1000. */
  limit?: number
  /** From a previous page's nextCursor. */
  cursor?: string
  /** Newest first (default) or oldest first. */
  order?: 'desc' | 'asc'
}

export interface Page<T> {
  items: T[]
  /** Present when there may be more. */
  nextCursor?: string
}

export interface MetricsSample {
  requestCount?: number
  errorCount?: number
  totalResponseTimeMs?: number
  avgResponseTimeMs?: number | null
  cpuUsagePercent?: number | null
  memoryUsageMb?: number | null
  recordedAt?: Date
}

export interface PluginMetrics extends Required<Omit<MetricsSample, 'recordedAt'>> {
  id: number
  pluginId: string
  recordedAt: Date
}

const MAX_PAGE = 1000

export class PluginStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly changes: ChangeFeed,
    private readonly logger: Logger,
    /** Told of every event recorded, for the live streams. Optional. */
    private readonly bus?: EventBus,
  ) {}

  async createPlugin(input: NewPlugin): Promise<Plugin> {
    const row = await this.run(`plugin "${input.forgehookId}"`, () =>
      this.db
        .insertInto('plugins')
        .values({
          ...(input.id ? { id: input.id } : {}),
          forgehook_id: input.forgehookId,
          source: input.source,
          ...specColumns(input),
          manifest: JSON.stringify(input.manifest),
        })
        .returningAll()
        .executeTakeFirstOrThrow(),
    )
    return toPlugin(row)
  }

  /** By uuid or by forgehook_id. */
  async getPlugin(idOrName: string): Promise<Plugin | undefined> {
    const row = await this.db
      .selectFrom('plugins')
      .selectAll()
      .where(isUuid(idOrName) ? 'id' : 'forgehook_id', '=', idOrName)
      .executeTakeFirst()
    return row ? toPlugin(row) : undefined
  }

  async requirePlugin(idOrName: string): Promise<Plugin> {
    const plugin = await this.getPlugin(idOrName)
    if (!plugin) throw new NotFoundError(`plugin "${idOrName}"`)
    return plugin
  }

  async listPlugins(filter: PluginFilter = {}): Promise<Plugin[]> {
    let query = this.db.selectFrom('plugins').selectAll().orderBy('forgehook_id')
    if (filter.status !== undefined) query = query.where('status', 'in', toArray(filter.status))
    if (filter.health !== undefined) query = query.where('health_status', 'in', toArray(filter.health))
    if (filter.desiredState !== undefined) query = query.where('desired_state', '=', filter.desiredState)
    return (await query.execute()).map(toPlugin)
  }

  /**
   * Changes desired state. With `expectedResourceVersion`, the write happens only if nobody
   * wrote the plugin since it was read (ConflictError otherwise).
   */
  async updateSpec(idOrName: string, patch: PluginSpecPatch, options: { expectedResourceVersion?: number } = {}): Promise<Plugin> {
    const values: PluginRowUpdate = { ...specColumns(patch) }
    if (patch.source !== undefined) values.source = patch.source
    if (Object.keys(values).length === 0) return this.requirePlugin(idOrName)
    const row = await this.run(`plugin "${idOrName}"`, () => {
      let query = this.db.updateTable('plugins').set(values).where(whereIdOrName(idOrName), '=', idOrName)
      if (options.expectedResourceVersion !== undefined) {
        query = query.where('resource_version', '=', options.expectedResourceVersion)
      }
      return query.returningAll().executeTakeFirst()
    })
    if (row) return toPlugin(row)
    const current = await this.requirePlugin(idOrName)
    throw new ConflictError(`plugin "${current.forgehookId}"`, options.expectedResourceVersion ?? -1, current.resourceVersion)
  }

  /** Status columns only. Returns undefined when the plugin no longer exists. */
  async writeStatus(pluginId: string, update: PluginStatusUpdate): Promise<Plugin | undefined> {
    const values = statusColumns(update)
    if (Object.keys(values).length === 0) return this.getPlugin(pluginId)
    const row = await this.run(`plugin ${pluginId}`, () =>
      this.db.updateTable('plugins').set(values).where('id', '=', pluginId).returningAll().executeTakeFirst(),
    )
    return row ? toPlugin(row) : undefined
  }

  /**
   * The reconciler's last write of a reconcile: status columns and the events that explain
   * them in one statement, so one round trip and one commit instead of two. If that
   * statement fails (nothing of it is written then), the two writes are made apart, so each
   * keeps its own contract: events never throw (see logEvent), status errors are typed as
   * from writeStatus.
   */
  async writeStatusWithEvents(pluginId: string, update: PluginStatusUpdate, events: NewPluginEvent[]): Promise<void> {
    const values = statusColumns(update)
    const writesStatus = Object.keys(values).length > 0
    if (events.length === 0 || !writesStatus) {
      await this.logEvents(events)
      if (writesStatus) await this.writeStatus(pluginId, update)
      return
    }
    let recorded: PluginEvent[]
    try {
      const rows = await this.db
        .with('updated', (db) => db.updateTable('plugins').set(values).where('id', '=', pluginId).returning('id'))
        .with('inserted', (db) => db.insertInto('plugin_events').values(events.map(eventRow)).returningAll())
        .selectFrom('inserted')
        .selectAll()
        .orderBy('id')
        .execute()
      recorded = rows.map(toEvent)
    } catch (error) {
      this.logger.debug({ err: error, plugin: events[0]!.forgehookId }, 'status and events in one statement failed; writing them apart')
      await this.logEvents(events)
      await this.writeStatus(pluginId, update)
      return
    }
    for (const event of recorded) this.bus?.publish(event)
  }

  /** Refreshes last_health_check of many plugins in one statement (health unchanged). */
  async touchHealthChecks(pluginIds: string[], checkedAt: Date): Promise<void> {
    if (pluginIds.length === 0) return
    await this.db.updateTable('plugins').set({ last_health_check: checkedAt }).where('id', 'in', pluginIds).execute()
  }

  /** Marks the plugin for uninstall; the reconciler removes its container, then the row. */
  async requestDeletion(idOrName: string): Promise<Plugin> {
    const row = await this.db
      .updateTable('plugins')
      .set({ deletion_requested_at: sql<Date>`coalesce(deletion_requested_at, now())` })
      .where(whereIdOrName(idOrName), '=', idOrName)
      .returningAll()
      .executeTakeFirst()
    if (!row) throw new NotFoundError(`plugin "${idOrName}"`)
    return toPlugin(row)
  }

  /** Deletes the row; its events stay (plugin_id becomes NULL), its metrics go. */
  async deletePlugin(pluginId: string): Promise<boolean> {
    const result = await this.db.deleteFrom('plugins').where('id', '=', pluginId).executeTakeFirst()
    return result.numDeletedRows > 0n
  }

  /** Host ports assigned to, or requested by, any plugin. */
  async reservedHostPorts(): Promise<Set<number>> {
    const rows = await this.db
      .selectFrom('plugins')
      .select(['host_port', 'requested_host_port'])
      .where((eb) => eb.or([eb('host_port', 'is not', null), eb('requested_host_port', 'is not', null)]))
      .execute()
    const ports = new Set<number>()
    for (const row of rows) {
      if (row.host_port !== null) ports.add(row.host_port)
      if (row.requested_host_port !== null) ports.add(row.requested_host_port)
    }
    return ports
  }

  /** The name of the plugin that has this host port assigned, if any. */
  async pluginHoldingPort(hostPort: number): Promise<string | undefined> {
    const row = await this.db.selectFrom('plugins').select('forgehook_id').where('host_port', '=', hostPort).executeTakeFirst()
    return row?.forgehook_id
  }

  /** Which of these plugin ids belong to plugins that were deleted (tombstones). */
  async deletedPluginIds(pluginIds: string[]): Promise<Set<string>> {
    if (pluginIds.length === 0) return new Set()
    const rows = await this.db.selectFrom('plugin_tombstones').select('plugin_id').where('plugin_id', 'in', pluginIds).execute()
    return new Set(rows.map((row) => row.plugin_id))
  }

  /**
   * Appends to the audit trail. Never throws: a failed write is logged as a warning and
   * the caller's operation goes on (the guide's rule).
   */
  async logEvent(event: NewPluginEvent): Promise<PluginEvent | undefined> {
    return (await this.logEvents([event]))[0]
  }

  /** Several events in one statement, in order; never throws (see logEvent). */
  async logEvents(events: NewPluginEvent[]): Promise<PluginEvent[]> {
    if (events.length === 0) return []
    try {
      const rows = await this.db
        .insertInto('plugin_events')
        .values(events.map(eventRow))
        .returningAll()
        .execute()
      const recorded = rows.map(toEvent)
      for (const event of recorded) this.bus?.publish(event)
      return recorded
    } catch (error) {
      const types = events.map((event) => event.type).join(', ')
      this.logger.warn({ err: error, events: types, plugin: events[0]!.forgehookId }, 'could not record plugin events')
      return []
    }
  }

  async listEvents(query: EventQuery = {}): Promise<Page<PluginEvent>> {
    const limit = Math.min(Math.max(1, query.limit ?? 100), MAX_PAGE)
    const order = query.order ?? 'desc'
    let select = this.db.selectFrom('plugin_events').selectAll().orderBy('id', order).limit(limit + 1)
    if (query.pluginId !== undefined) select = select.where('plugin_id', '=', query.pluginId)
    if (query.forgehookId !== undefined) select = select.where('forgehook_id', '=', query.forgehookId)
    if (query.types !== undefined && query.types.length > 0) select = select.where('event_type', 'in', query.types)
    if (query.since !== undefined) select = select.where('timestamp', '>=', query.since)
    if (query.cursor !== undefined) select = select.where('id', order === 'desc' ? '<' : '>', decodeCursor(query.cursor))
    const rows = await select.execute()
    const items = rows.slice(0, limit).map(toEvent)
    const last = items[items.length - 1]
    return rows.length > limit && last ? { items, nextCursor: encodeCursor(last.id) } : { items }
  }

  /**
   * Asks whichever manager leads to restart the plugin's container once (a follower's
   * POST /restart). A notification only: lost if no leader listens at that moment, like
   * the leader's own pending restarts are lost when it crashes.
   */
  async sendRestartRequest(pluginId: string, reason: string): Promise<void> {
    const payload = JSON.stringify({ id: pluginId, reason })
    await this.run('restart request', async () => {
      await sql`SELECT pg_notify(${PLUGIN_RESTARTS_CHANNEL}, ${payload})`.execute(this.db)
    })
  }

  /** The events with these ids, oldest first (the live relay of other writers' events). */
  async eventsByIds(ids: number[]): Promise<PluginEvent[]> {
    if (ids.length === 0) return []
    const rows = await this.db.selectFrom('plugin_events').selectAll().where('id', 'in', ids).orderBy('id').execute()
    return rows.map(toEvent)
  }

  async recordMetrics(pluginId: string, sample: MetricsSample): Promise<void> {
    await this.recordMetricsBatch([{ pluginId, sample }])
  }

  /** Many samples in one statement: the sampler's write per round, whatever the plugin count. */
  async recordMetricsBatch(samples: { pluginId: string; sample: MetricsSample }[]): Promise<void> {
    if (samples.length === 0) return
    await this.run('metrics', () =>
      this.db
        .insertInto('plugin_metrics')
        .values(
          samples.map(({ pluginId, sample }) => ({
            plugin_id: pluginId,
            request_count: sample.requestCount ?? 0,
            error_count: sample.errorCount ?? 0,
            total_response_time_ms: sample.totalResponseTimeMs ?? 0,
            avg_response_time_ms: sample.avgResponseTimeMs ?? null,
            cpu_usage_percent: sample.cpuUsagePercent ?? null,
            memory_usage_mb: sample.memoryUsageMb ?? null,
            ...(sample.recordedAt ? { recorded_at: sample.recordedAt } : {}),
          })),
        )
        .execute(),
    )
  }

  async listMetrics(pluginId: string, options: { since?: Date; limit?: number } = {}): Promise<PluginMetrics[]> {
    let select = this.db
      .selectFrom('plugin_metrics')
      .selectAll()
      .where('plugin_id', '=', pluginId)
      .orderBy('recorded_at', 'desc')
      .orderBy('id', 'desc')
      .limit(Math.min(Math.max(1, options.limit ?? 100), MAX_PAGE))
    if (options.since !== undefined) select = select.where('recorded_at', '>=', options.since)
    return (await select.execute()).map(toMetrics)
  }

  /**
   * Deletes metrics recorded before `cutoff` in batches of `batchSize` rows, each its own
   * statement, so retention never holds long locks. Returns how many rows went.
   */
  async deleteMetricsBefore(cutoff: Date, batchSize = 1000): Promise<number> {
    let total = 0
    for (;;) {
      const result = await this.db
        .deleteFrom('plugin_metrics')
        .where('id', 'in', (eb) =>
          eb.selectFrom('plugin_metrics').select('id').where('recorded_at', '<', cutoff).orderBy('id').limit(batchSize),
        )
        .executeTakeFirst()
      const deleted = Number(result.numDeletedRows)
      total += deleted
      if (deleted < batchSize) return total
    }
  }

  /** Every committed change to plugins, however it was written (API, files, plain SQL). */
  subscribe(listener: ChangeListener): () => void {
    return this.changes.subscribe(listener)
  }

  /** False while writes may go unnoticed by subscribers (see ChangeFeed.connected). */
  get changeFeedConnected(): boolean {
    return this.changes.connected
  }

  /** Runs a write, turning constraint violations into typed errors. */
  private async run<T>(what: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write()
    } catch (error) {
      throw translateError(error, what)
    }
  }
}

function whereIdOrName(idOrName: string): 'id' | 'forgehook_id' {
  return isUuid(idOrName) ? 'id' : 'forgehook_id'
}

function toArray<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value]
}

function specColumns(spec: Partial<PluginSpecFields>): PluginRowUpdate {
  const values: PluginRowUpdate = {}
  if (spec.manifest !== undefined) values.manifest = JSON.stringify(spec.manifest)
  if (spec.config !== undefined) values.config = JSON.stringify(spec.config)
  if (spec.environment !== undefined) values.environment = JSON.stringify(spec.environment)
  if (spec.desiredState !== undefined) values.desired_state = spec.desiredState
  if (spec.requestedHostPort !== undefined) values.requested_host_port = spec.requestedHostPort
  if (spec.labels !== undefined) values.labels = JSON.stringify(spec.labels)
  return values
}

const STATUS_COLUMNS = {
  status: 'status',
  containerId: 'container_id',
  containerName: 'container_name',
  hostPort: 'host_port',
  healthStatus: 'health_status',
  lastHealthCheck: 'last_health_check',
  error: 'error',
  restartCount: 'restart_count',
  observedGeneration: 'observed_generation',
  installedAt: 'installed_at',
  startedAt: 'started_at',
  stoppedAt: 'stopped_at',
  nextRestartAt: 'next_restart_at',
} as const satisfies Record<keyof PluginStatusUpdate, keyof PluginRow>

function statusColumns(update: PluginStatusUpdate): PluginRowUpdate {
  const values: Record<string, unknown> = {}
  for (const [field, column] of Object.entries(STATUS_COLUMNS)) {
    const value = update[field as keyof PluginStatusUpdate]
    if (value !== undefined) values[column] = value
  }
  return values as PluginRowUpdate
}

export function toPlugin(row: PluginRow): Plugin {
  return {
    id: row.id,
    forgehookId: row.forgehook_id,
    manifest: row.manifest,
    config: row.config,
    environment: row.environment,
    desiredState: row.desired_state,
    requestedHostPort: row.requested_host_port,
    labels: row.labels,
    source: row.source,
    deletionRequestedAt: row.deletion_requested_at,
    status: row.status,
    containerId: row.container_id,
    containerName: row.container_name,
    hostPort: row.host_port,
    healthStatus: row.health_status,
    lastHealthCheck: row.last_health_check,
    error: row.error,
    restartCount: row.restart_count,
    observedGeneration: row.observed_generation,
    installedAt: row.installed_at,
    startedAt: row.started_at,
    stoppedAt: row.stopped_at,
    nextRestartAt: row.next_restart_at,
    generation: row.generation,
    resourceVersion: row.resource_version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

function eventRow(event: NewPluginEvent) {
  return { plugin_id: event.pluginId, forgehook_id: event.forgehookId, event_type: event.type, data: JSON.stringify(event.data ?? {}) }
}

function toEvent(row: Selectable<PluginEventsTable>): PluginEvent {
  return {
    id: row.id,
    pluginId: row.plugin_id,
    forgehookId: row.forgehook_id,
    type: row.event_type,
    data: row.data,
    timestamp: row.timestamp,
  }
}

function toMetrics(row: Selectable<PluginMetricsTable>): PluginMetrics {
  return {
    id: row.id,
    pluginId: row.plugin_id,
    requestCount: row.request_count,
    errorCount: row.error_count,
    totalResponseTimeMs: row.total_response_time_ms,
    avgResponseTimeMs: row.avg_response_time_ms,
    cpuUsagePercent: row.cpu_usage_percent,
    memoryUsageMb: row.memory_usage_mb,
    recordedAt: row.recorded_at,
  }
}

function encodeCursor(id: number): string {
  return Buffer.from(`e:${id}`).toString('base64url')
}

function decodeCursor(cursor: string): number {
  const match = /^e:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
  if (!match) throw new InvalidValueError(`invalid cursor "${cursor}"`, 'cursor')
  return Number(match[1])
}

const CONSTRAINT_MESSAGES: Record<string, { field: string; message: string }> = {
  plugins_forgehook_id_dns_label: {
    field: 'forgehookId',
    message: 'the plugin name must be a DNS label: lower-case letters, digits and "-", at most 63 characters',
  },
  idx_plugins_host_port: { field: 'hostPort', message: 'that host port is already assigned to another plugin' },
  plugins_container_name_key: { field: 'containerName', message: 'that container name belongs to another plugin' },
  plugins_desired_state_check: { field: 'desiredState', message: 'desired state must be "running" or "stopped"' },
  plugins_requested_host_port_range: { field: 'hostPort', message: 'host port must be from 1 to 65535' },
  plugins_host_port_range: { field: 'hostPort', message: 'host port must be from 1 to 65535' },
}

/** Maps Postgres constraint errors (same codes on pg and PGlite) to typed errors. */
export function translateError(error: unknown, what: string): unknown {
  const pgError = error as { code?: string; constraint?: string; message?: string }
  if (pgError.code === '23505' && pgError.constraint === 'plugins_forgehook_id_key') return new AlreadyExistsError(what)
  const known = pgError.constraint ? CONSTRAINT_MESSAGES[pgError.constraint] : undefined
  if (known && (pgError.code === '23505' || pgError.code === '23514')) return new InvalidValueError(known.message, known.field)
  if (pgError.code === '23514' || pgError.code === '23502' || pgError.code === '22P02') {
    return new InvalidValueError(`${what}: ${pgError.message}`)
  }
  return error
}
