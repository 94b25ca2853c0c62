// Revision history (plugin_revisions): every generation's spec, written by a trigger in the
// same transaction as the spec change (migrations/004), whatever input made it. Read here
// for `forgectl rollout history` and `rollout undo`; pruned by the trigger to the last
// REVISION_HISTORY_LIMIT, which this store writes where the trigger reads it.
import type { Kysely, Selectable } from 'kysely'
import { NotFoundError } from './errors.js'
import type { PluginRevision } from './plugin-types.js'
import type { Database, PluginRevisionsTable } from './schema.js'

export class RevisionStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Newest first. */
  async list(pluginId: string): Promise<PluginRevision[]> {
    const rows = await this.db.selectFrom('plugin_revisions').selectAll().where('plugin_id', '=', pluginId).orderBy('revision', 'desc').execute()
    return rows.map(toRevision)
  }

  async require(pluginId: string, revision: number): Promise<PluginRevision> {
    const row = await this.db.selectFrom('plugin_revisions').selectAll().where('plugin_id', '=', pluginId).where('revision', '=', revision).executeTakeFirst()
    if (!row) throw new NotFoundError(`revision ${revision}`)
    return toRevision(row)
  }

  /** How many revisions the trigger keeps per plugin (REVISION_HISTORY_LIMIT); older ones go at the next change. */
  async setHistoryLimit(limit: number): Promise<void> {
    await this.db
      .insertInto('flowforge_settings')
      .values({ key: 'revision_history_limit', value: String(limit) })
      .onConflict((conflict) => conflict.column('key').doUpdateSet({ value: String(limit) }))
      .execute()
  }
}

function toRevision(row: Selectable<PluginRevisionsTable>): PluginRevision {
  return {
    pluginId: row.plugin_id,
    revision: row.revision,
    forgehookId: row.forgehook_id,
    source: row.source,
    spec: {
      manifest: row.manifest,
      config: row.config,
      environment: row.environment,
      desiredState: row.desired_state,
      requestedHostPort: row.requested_host_port,
      labels: row.labels,
      volumes: row.volumes,
      updatePolicy: row.update_policy,
      network: row.network ?? {},
      replicas: row.replicas ?? 1,
      placement: row.placement ?? {},
    },
    createdAt: row.created_at,
  }
}
