// Swarm tasks as the swarm reconciler observes them (plugin_tasks, migrations/007): observed
// state, like the plugins row's status columns, written only by the reconciler. Each write
// replaces one plugin's tasks as a whole, so the table always holds one observation per
// plugin, never a mix of two. No trigger and no NOTIFY: nothing reconciles on these rows.
import type { Kysely, Selectable } from 'kysely'
import { InvalidValueError, NotFoundError } from './errors.js'
import type { PluginTask } from './plugin-types.js'
import type { Database, PluginTasksTable } from './schema.js'

type TaskRow = Selectable<PluginTasksTable>

export class TaskStore {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Makes the plugin's rows exactly `tasks` (every task carries this plugin id): new ones
   * inserted, changed ones updated, the rest deleted, in one transaction. When the stored
   * rows already are `tasks` nothing is written (one indexed read): the reconciler may call
   * this on every pass. Returns whether it wrote. NotFoundError when the plugin is gone;
   * InvalidValueError for a task id given twice, or a state the table does not know.
   */
  async replaceTasks(pluginId: string, tasks: PluginTask[]): Promise<boolean> {
    const wanted = tasks.map((task) => toRow({ ...task, pluginId }))
    const taskIds = new Set(wanted.map((row) => row.task_id))
    if (taskIds.size !== wanted.length) throw new InvalidValueError(`the tasks of plugin ${pluginId} name a task id twice`, 'taskId')
    const stored = await this.db.selectFrom('plugin_tasks').selectAll().where('plugin_id', '=', pluginId).execute()
    if (fingerprint(stored) === fingerprint(wanted)) return false
    try {
      await this.db.transaction().execute(async (trx) => {
        let gone = trx.deleteFrom('plugin_tasks').where('plugin_id', '=', pluginId)
        if (taskIds.size > 0) gone = gone.where('task_id', 'not in', [...taskIds])
        await gone.execute()
        if (wanted.length === 0) return
        await trx
          .insertInto('plugin_tasks')
          .values(wanted)
          .onConflict((conflict) =>
            conflict.column('task_id').doUpdateSet((eb) => ({
              plugin_id: eb.ref('excluded.plugin_id'),
              slot: eb.ref('excluded.slot'),
              node_id: eb.ref('excluded.node_id'),
              node_name: eb.ref('excluded.node_name'),
              node_state: eb.ref('excluded.node_state'),
              node_address: eb.ref('excluded.node_address'),
              state: eb.ref('excluded.state'),
              desired_state: eb.ref('excluded.desired_state'),
              container_id: eb.ref('excluded.container_id'),
              error: eb.ref('excluded.error'),
              message: eb.ref('excluded.message'),
              health: eb.ref('excluded.health'),
              host_port: eb.ref('excluded.host_port'),
              image: eb.ref('excluded.image'),
              created_at: eb.ref('excluded.created_at'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute()
      })
    } catch (error) {
      // The plugin's row was deleted (by its uninstall, or in SQL) since it was read.
      const pgError = error as { code?: string; message?: string }
      if (pgError.code === '23503') throw new NotFoundError(`plugin ${pluginId}`)
      // A state or port the table does not know (its CHECK constraints, migrations/007).
      if (pgError.code === '23514') throw new InvalidValueError(`the tasks of plugin ${pluginId}: ${pgError.message}`)
      throw error
    }
    return true
  }

  /** One plugin's tasks: by slot, then oldest first. */
  async listTasks(pluginId: string): Promise<PluginTask[]> {
    const rows = await this.db
      .selectFrom('plugin_tasks')
      .selectAll()
      .where('plugin_id', '=', pluginId)
      .orderBy('slot', (order) => order.asc().nullsLast())
      .orderBy('created_at', (order) => order.asc().nullsLast())
      .orderBy('task_id')
      .execute()
    return rows.map(toTask)
  }

  /** Every plugin's tasks, grouped by plugin (in plugin id order), each group as listTasks orders it. */
  async listAllTasks(): Promise<PluginTask[]> {
    const rows = await this.db
      .selectFrom('plugin_tasks')
      .selectAll()
      .orderBy('plugin_id')
      .orderBy('slot', (order) => order.asc().nullsLast())
      .orderBy('created_at', (order) => order.asc().nullsLast())
      .orderBy('task_id')
      .execute()
    return rows.map(toTask)
  }
}

function toRow(task: PluginTask): TaskRow {
  return {
    plugin_id: task.pluginId,
    task_id: task.taskId,
    slot: task.slot,
    node_id: task.nodeId,
    node_name: task.nodeName,
    node_state: task.nodeState,
    node_address: task.nodeAddress,
    state: task.state,
    desired_state: task.desiredState,
    container_id: task.containerId,
    error: task.error,
    message: task.message,
    health: task.health,
    host_port: task.hostPort,
    image: task.image,
    created_at: task.createdAt,
    updated_at: task.updatedAt,
  }
}

function toTask(row: TaskRow): PluginTask {
  return {
    pluginId: row.plugin_id,
    taskId: row.task_id,
    slot: row.slot,
    nodeId: row.node_id,
    nodeName: row.node_name,
    nodeState: row.node_state as PluginTask['nodeState'],
    nodeAddress: row.node_address,
    state: row.state as PluginTask['state'],
    desiredState: row.desired_state as PluginTask['desiredState'],
    containerId: row.container_id,
    error: row.error,
    message: row.message,
    health: row.health,
    hostPort: row.host_port,
    image: row.image,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

/** The rows as one string, independent of their order: equal strings, equal table contents. */
function fingerprint(rows: TaskRow[]): string {
  const cells = rows.map((row) => [
    row.task_id,
    row.plugin_id,
    row.slot,
    row.node_id,
    row.node_name,
    row.node_state,
    row.node_address,
    row.state,
    row.desired_state,
    row.container_id,
    row.error,
    row.message,
    row.health,
    row.host_port,
    row.image,
    row.created_at?.getTime() ?? null,
    row.updated_at.getTime(),
  ])
  return JSON.stringify(cells.sort((left, right) => (left[0]! < right[0]! ? -1 : left[0]! > right[0]! ? 1 : 0)))
}
