// The only code that issues SQL against plugin state. Inputs write spec through createPlugin
// and updateSpec; only the reconciler calls writeStatus. Triggers keep generation and
// resource_version (see migrations/001).
import { sql, type Kysely } from 'kysely'
import type { Logger } from '../logger.js'
import { PLUGIN_RESTARTS_CHANNEL, type ChangeFeed, type ChangeListener } from './change-feed.js'
import type { EventBus } from './event-bus.js'
import { RevisionStore } from './revision-store.js'
import { TaskStore } from './task-store.js'
import { batchable, runHotStatements, type HotRequest, type HotResult, type StatusWrite } from './batched-statements.js'
import { RETRY_ALONE, StatementBatcher } from './statement-batcher.js'
import { ConflictError, NotFoundError } from './errors.js'
import { isUuid } from '../util/uuid.js'
import type { Database, PluginRow, PluginRowUpdate } from './schema.js'
import type {
  EventQuery,
  MetricsSample,
  NewPlugin,
  NewPluginEvent,
  Page,
  Plugin,
  PluginEvent,
  PluginFilter,
  PluginMetrics,
  PluginSpecPatch,
  PluginStatusUpdate,
  PluginTombstone,
  RunningPlugin,
} from './plugin-types.js'
import {
  decodeCursor,
  encodeCursor,
  eventRow,
  specColumns,
  statusColumns,
  toArray,
  toEvent,
  toMetrics,
  toPlugin,
  translateError,
  whereIdOrName,
} from './plugin-rows.js'

export type { Plugin, PluginSpecFields, NewPlugin, PluginSpecPatch, PluginStatusUpdate, PluginFilter, PluginEvent, NewPluginEvent, EventQuery, Page, MetricsSample, PluginMetrics, PluginTombstone, PluginTask, RunningPlugin } from './plugin-types.js'

const MAX_PAGE = 1000
/** Most plugins in one batched statement (statement-batcher.ts). */
const MAX_BATCH = 64

export class PluginStore {
  /** Every generation's spec (plugin_revisions), on the same database. */
  readonly revisions: RevisionStore
  /** The Swarm tasks the swarm reconciler observed of each plugin (plugin_tasks), on the same database. */
  readonly tasks: TaskStore
  /**
   * Group commit of the controller's hot statements: reads by id, status writes, status with
   * its events. While one statement is in flight the next callers' requests wait and go out
   * together as one statement, whatever their kinds (with 8 workers at most 8 are waiting:
   * one statement for all of them rather than one per kind); a quiet store sends each at once.
   */
  private readonly hot: StatementBatcher<HotRequest, HotResult>

  constructor(
    private readonly db: Kysely<Database>,
    private readonly changes: ChangeFeed,
    private readonly logger: Logger,
    /** Told of every event recorded, for the live streams. Optional. */
    private readonly bus?: EventBus,
  ) {
    this.revisions = new RevisionStore(db)
    this.tasks = new TaskStore(db)
    this.hot = new StatementBatcher<HotRequest, HotResult>({
      maxBatch: MAX_BATCH,
      key: (request) => (request.kind === 'write' ? request.write.pluginId : undefined),
      many: async (requests) => {
        // A write the batch cannot carry (a column of unknown type, an event of another plugin) goes alone.
        const fits = requests.filter((request) => request.kind === 'read' || (batchable(request.write) && request.events.every((event) => event.pluginId === request.write.pluginId)))
        const results = new Map<HotRequest, HotResult>()
        if (fits.length > 0) for (const [index, result] of (await runHotStatements(this.db, fits)).entries()) results.set(fits[index]!, result)
        return requests.map((request) => {
          const result = results.get(request)
          if (result === undefined || (result.kind === 'write' && result.written === undefined)) return RETRY_ALONE
          if (result.kind === 'write') for (const event of result.written!.events) this.bus?.publish(toEvent(event))
          return result
        })
      },
      one: (request) => this.hotAlone(request),
    })
  }

  /** A hot request in a statement of its own: a read, a status write, or status with events (see writeStatusWithEvents). */
  private async hotAlone(request: HotRequest): Promise<HotResult> {
    if (request.kind === 'read') return { kind: 'read', row: await this.db.selectFrom('plugins').selectAll().where('id', '=', request.pluginId).executeTakeFirst() }
    if (request.events.length === 0) {
      const row = await this.updateStatusRow(request.write)
      return { kind: 'write', written: row ? { row, events: [] } : undefined }
    }
    await this.writeStatusAndEventsAlone(request.write, request.events)
    return { kind: 'write', written: undefined }
  }

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
    // By id (every reconcile starts so): batched with the other workers' reads.
    const row = isUuid(idOrName)
      ? ((await this.hot.submit({ kind: 'read', pluginId: idOrName })) as Extract<HotResult, { kind: 'read' }>).row
      : await this.db.selectFrom('plugins').selectAll().where('forgehook_id', '=', idOrName).executeTakeFirst()
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

  /** Plugins whose status is running, by name, with only what the periodic rounds need. */
  async listRunningPlugins(): Promise<RunningPlugin[]> {
    const rows = await this.db
      .selectFrom('plugins')
      .select(['id', 'forgehook_id', 'host_port', 'health_status', 'generation'])
      .where('status', '=', 'running')
      .orderBy('forgehook_id')
      .execute()
    return rows.map((row) => ({ id: row.id, forgehookId: row.forgehook_id, hostPort: row.host_port, healthStatus: row.health_status, generation: row.generation }))
  }

  /** The manifests of these plugins, with the generation each is of; a plugin gone since has none. */
  async manifestsOf(pluginIds: string[]): Promise<Map<string, { generation: number; manifest: Plugin['manifest'] }>> {
    if (pluginIds.length === 0) return new Map()
    const rows = await this.db.selectFrom('plugins').select(['id', 'generation', 'manifest']).where('id', 'in', pluginIds).execute()
    return new Map(rows.map((row) => [row.id, { generation: row.generation, manifest: row.manifest }]))
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
    const result = (await this.hot.submit({ kind: 'write', write: { pluginId, values }, events: [] })) as Extract<HotResult, { kind: 'write' }>
    return result.written ? toPlugin(result.written.row) : undefined
  }

  /**
   * The reconciler's last write of a reconcile: status columns and the events that explain
   * them in one statement, so one round trip and one commit instead of two (and, under
   * load, one for several plugins). If that statement fails (nothing of it is written
   * then), the two writes are made apart, so each keeps its own contract: events never
   * throw (see logEvent), status errors are typed as from writeStatus.
   */
  async writeStatusWithEvents(pluginId: string, update: PluginStatusUpdate, events: NewPluginEvent[]): Promise<void> {
    const values = statusColumns(update)
    const writesStatus = Object.keys(values).length > 0
    if (events.length === 0 || !writesStatus) {
      await this.logEvents(events)
      if (writesStatus) await this.writeStatus(pluginId, update)
      return
    }
    await this.hot.submit({ kind: 'write', write: { pluginId, values }, events })
  }

  /** One plugin's status columns, in a statement of its own. */
  private updateStatusRow(write: StatusWrite): Promise<PluginRow | undefined> {
    return this.run(`plugin ${write.pluginId}`, () =>
      this.db.updateTable('plugins').set(write.values).where('id', '=', write.pluginId).returningAll().executeTakeFirst(),
    )
  }

  /** writeStatusWithEvents in a statement of its own (see there). */
  private async writeStatusAndEventsAlone(write: StatusWrite, events: NewPluginEvent[]): Promise<void> {
    let recorded: PluginEvent[]
    try {
      const rows = await this.db
        .with('updated', (db) => db.updateTable('plugins').set(write.values).where('id', '=', write.pluginId).returning('id'))
        .with('inserted', (db) => db.insertInto('plugin_events').values(events.map(eventRow)).returningAll())
        .selectFrom('inserted')
        .selectAll()
        .orderBy('id')
        .execute()
      recorded = rows.map(toEvent)
    } catch (error) {
      this.logger.debug({ err: error, plugin: events[0]!.forgehookId }, 'status and events in one statement failed; writing them apart')
      await this.logEvents(events)
      await this.updateStatusRow(write)
      return
    }
    for (const event of recorded) this.bus?.publish(event)
  }

  /** Refreshes last_health_check of many plugins in one statement (health unchanged). */
  async touchHealthChecks(pluginIds: string[], checkedAt: Date): Promise<void> {
    if (pluginIds.length === 0) return
    await this.db.updateTable('plugins').set({ last_health_check: checkedAt }).where('id', 'in', pluginIds).execute()
  }

  /**
   * Marks the plugin for uninstall; the reconciler removes its container, then the row.
   * With `purgeVolumes`, its named volumes go too (they are kept otherwise).
   */
  async requestDeletion(idOrName: string, options: { purgeVolumes?: boolean } = {}): Promise<Plugin> {
    const row = await this.db
      .updateTable('plugins')
      .set({
        deletion_requested_at: sql<Date>`coalesce(deletion_requested_at, now())`,
        ...(options.purgeVolumes ? { purge_volumes: true } : {}),
      })
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
      // A start-first update holds a second port (status.rollout.toHostPort) while both containers run.
      .select(['host_port', 'requested_host_port', sql<string | null>`rollout->>'toHostPort'`.as('rollout_port')])
      .where((eb) => eb.or([eb('host_port', 'is not', null), eb('requested_host_port', 'is not', null), eb(sql`rollout->>'toHostPort'`, 'is not', null)]))
      .execute()
    const ports = new Set<number>()
    for (const row of rows) {
      if (row.host_port !== null) ports.add(row.host_port)
      if (row.requested_host_port !== null) ports.add(row.requested_host_port)
      if (row.rollout_port !== null && Number.isInteger(Number(row.rollout_port))) ports.add(Number(row.rollout_port))
    }
    // The host ports of extra ports (manifest.ports), kept in status.extra_ports.
    const extras = await sql<{ host_port: number | null }>`
      SELECT CASE WHEN e.value->>'hostPort' ~ '^[0-9]{1,5}$' THEN (e.value->>'hostPort')::integer END AS host_port
      FROM plugins p, jsonb_array_elements(p.extra_ports) AS e(value)`.execute(this.db)
    for (const row of extras.rows) if (row.host_port !== null) ports.add(row.host_port)
    return ports
  }

  /** The name of the plugin that has this host port assigned, if any. */
  async pluginHoldingPort(hostPort: number): Promise<string | undefined> {
    const row = await this.db.selectFrom('plugins').select('forgehook_id').where('host_port', '=', hostPort).executeTakeFirst()
    return row?.forgehook_id
  }

  /** Which of these plugin ids belong to plugins that were deleted (tombstones). */
  /**
   * Asks the controller to roll out the current generation again after it was rolled back
   * (no new generation: the spec is unchanged).
   */
  async requestRolloutRetry(idOrName: string): Promise<Plugin> {
    const row = await this.db
      .updateTable('plugins')
      .set({ rollout_retry_at: sql<Date>`now()` })
      .where(whereIdOrName(idOrName), '=', idOrName)
      .returningAll()
      .executeTakeFirst()
    if (!row) throw new NotFoundError(`plugin "${idOrName}"`)
    return toPlugin(row)
  }

  /** What is known of a deleted plugin, including the container it had. */
  async tombstone(pluginId: string): Promise<PluginTombstone | undefined> {
    const row = await this.db.selectFrom('plugin_tombstones').selectAll().where('plugin_id', '=', pluginId).executeTakeFirst()
    if (!row) return undefined
    return { pluginId: row.plugin_id, forgehookId: row.forgehook_id, containerId: row.container_id, containerName: row.container_name, deletedAt: row.deleted_at }
  }

  /** The tombstones of deleted plugins that had one of these containers (an adopted container has no plugin id label). */
  async tombstonesOfContainers(containerIds: string[]): Promise<PluginTombstone[]> {
    if (containerIds.length === 0) return []
    const rows = await this.db.selectFrom('plugin_tombstones').selectAll().where('container_id', 'in', containerIds).execute()
    return rows.map((row) => ({ pluginId: row.plugin_id, forgehookId: row.forgehook_id, containerId: row.container_id, containerName: row.container_name, deletedAt: row.deleted_at }))
  }

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
