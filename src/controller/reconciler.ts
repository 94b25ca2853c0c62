// reconcile(pluginId): re-read the row and the container, plan, execute, write status.
//
// The contract (written once, here):
// - It is level-triggered and idempotent: running it again right away changes nothing.
// - A thrown error means "retry with backoff" (the worker pool requeues the key).
// - A terminal problem (bad manifest, a name or port held by someone else) is recorded in
//   the row's status and not thrown; conflicts come back after `requeueAfterMs`.
// - `{ requeueAfterMs }` asks for the next look (crash-loop backoff, the 10-minute reset).
// - Status is written only when it differs from the row; events only for what happened.
import type { Logger } from '../logger.js'
import { InvalidValueError } from '../db/errors.js'
import type { NewPluginEvent, Plugin, PluginStatusUpdate, PluginStore } from '../db/plugin-store.js'
import {
  containerNameFor,
  ImageNotFoundError,
  isManaged,
  LABELS,
  NameConflictError,
  PortInUseError,
  type ContainerRuntime,
  type ContainerSpec,
  type ObservedContainer,
} from '../runtime/container-runtime.js'
import { buildContainerSpec, type ContainerSpecOptions } from '../spec/container-spec.js'
import { parseManifest } from '../spec/manifest.js'
import type { Clock } from '../util/clock.js'
import type { ContainerCache } from './container-cache.js'
import { CONFLICT_RETRY_MS, describePlan, nameConflictMessage, plan, planOrphanRemoval, type Action, type CrashLoopPolicy, type Plan, type PlanInput } from './plan.js'
import type { PortAllocator } from './port-allocator.js'
import { isUuid } from '../util/uuid.js'


export interface ReconcileResult {
  requeueAfterMs?: number
}

export interface ReconcilerOptions {
  store: PluginStore
  runtime: ContainerRuntime
  cache: ContainerCache
  ports: PortAllocator
  clock: Clock
  logger: Logger
  /** Bind address and installation label of the containers. */
  container: ContainerSpecOptions
  /** Grace period of `docker stop`. Default 10 s. */
  stopTimeoutSeconds: number
  crashLoop?: CrashLoopPolicy
  /** Pending one-off restarts by plugin id, with their reason; taken when executed. */
  restarts: Map<string, string>
}

/** Facts learned while executing, merged into the status at the end. */
interface Facts {
  containerId?: string | null
  containerName?: string | null
  installedAt?: Date
  startedAt?: Date
  stoppedAt?: Date
}

export class Reconciler {
  private reconciles = 0

  constructor(private readonly options: ReconcilerOptions) {}

  async reconcile(pluginId: string): Promise<ReconcileResult> {
    const { store, logger } = this.options
    // One child logger per reconcile: every line carries the plugin and a reconcile id.
    const log = logger.child({ pluginId, reconcileId: ++this.reconciles })
    const row = await store.getPlugin(pluginId)
    if (!row) return this.reconcileDeleted(pluginId, log)
    const pluginLog = log.child({ plugin: row.forgehookId })

    const container = await this.observe(containerNameFor(row.forgehookId))
    const port = row.deletionRequestedAt ? { ok: true as const, plugin: row, hostPort: row.hostPort ?? 0 } : await this.options.ports.resolve(row)
    if (!port.ok) return this.recordProblem(row, port.error, pluginLog, CONFLICT_RETRY_MS)
    const plugin = port.plugin

    const planned = plan({
      plugin,
      container,
      wanted: this.wanted(plugin, port.hostPort),
      now: this.options.clock.now(),
      crashLoop: this.options.crashLoop,
      restartRequested: this.options.restarts.get(plugin.id),
      containerOwnerGone: await this.ownerGone(container, plugin),
    })
    if (planned.events.some((event) => event.type === 'plugin:restarted')) this.options.restarts.delete(plugin.id)
    if (planned.actions.length > 0) pluginLog.info({ plan: describePlan(planned.actions) }, `reconciling ${plugin.forgehookId}`)
    return this.execute(plugin, planned, container, pluginLog)
  }

  /**
   * Whether the container under the plugin's name is ours (this installation's label) but
   * made for a plugin id that has no row any more. One read, only in that rare case.
   */
  private async ownerGone(container: ObservedContainer | undefined, plugin: Plugin): Promise<boolean> {
    if (!container || !isManaged(container)) return false
    if (container.labels[LABELS.instance] !== this.options.container.instance) return false
    const ownerId = container.labels[LABELS.pluginId]
    if (ownerId === plugin.id) return false
    if (!ownerId || !isUuid(ownerId)) return true
    return (await this.options.store.getPlugin(ownerId)) === undefined
  }

  private wanted(plugin: Plugin, hostPort: number): PlanInput['wanted'] {
    const parsed = parseManifest(plugin.manifest)
    if (!parsed.ok) return parsed
    const spec = buildContainerSpec(plugin, parsed.manifest, hostPort, this.options.container)
    return { ok: true, spec, pullPolicy: parsed.manifest.imagePullPolicy }
  }

  /** The cached container, inspected once if the cache only has list data for it. */
  private async observe(containerName: string): Promise<ObservedContainer | undefined> {
    const { cache } = this.options
    const cached = cache.get(containerName)
    if (cached?.detailed) return cached.container
    if (!cached && cache.complete) return undefined
    const inspected = await this.options.runtime.inspect(cached?.container.id ?? containerName)
    if (inspected) this.options.cache.putDetailed(inspected)
    else this.options.cache.removeByName(containerName)
    return inspected
  }

  private async execute(plugin: Plugin, planned: Plan, container: ObservedContainer | undefined, log: Logger): Promise<ReconcileResult> {
    const { store } = this.options
    let current = plugin
    const facts: Facts = {}
    let containerId = container?.id
    let deleteRow = false
    // An image that may already be there is not looked up: create says when it is missing.
    let deferredPull: Extract<Action, { kind: 'pull' }> | undefined

    for (const action of planned.actions) {
      if (planned.transitionPhase && current.status !== planned.transitionPhase) {
        current = (await store.writeStatus(plugin.id, { status: planned.transitionPhase })) ?? current
      }
      if (action.kind === 'delete-row') {
        deleteRow = true
        continue
      }
      if (action.kind === 'pull' && action.policy !== 'Always') {
        deferredPull = action
        continue
      }
      const outcome = await this.perform(action, current, containerId, facts, log, deferredPull)
      if (outcome.kind === 'problem') return this.recordProblem(current, outcome.error, log, outcome.requeueAfterMs)
      containerId = outcome.containerId
    }

    const events = planned.events.map((event) => ({ pluginId: plugin.id, forgehookId: plugin.forgehookId, type: event.type, data: event.data }))
    if (deleteRow) {
      await store.logEvents(events)
      await store.deletePlugin(plugin.id)
      log.info(`uninstalled ${plugin.forgehookId}`)
      return {}
    }
    const wanted = { ...planned.status, ...facts, observedGeneration: plugin.generation }
    await this.writeFinalStatus(plugin, current, wanted, events, planned.events.length === 0)
    return planned.requeueAfterMs !== undefined ? { requeueAfterMs: planned.requeueAfterMs } : {}
  }

  private async perform(
    action: Action,
    plugin: Plugin,
    containerId: string | undefined,
    facts: Facts,
    log: Logger,
    deferredPull?: Extract<Action, { kind: 'pull' }>,
  ): Promise<{ kind: 'done'; containerId: string | undefined } | { kind: 'problem'; error: string; requeueAfterMs?: number }> {
    const { runtime, cache, clock } = this.options
    switch (action.kind) {
      case 'pull':
        await this.pull(action, plugin, log)
        return { kind: 'done', containerId }
      case 'create': {
        const created = await this.create(action.spec, plugin, log, deferredPull)
        if (created.kind === 'problem') return created
        facts.containerId = created.containerId
        facts.containerName = action.spec.name
        if (!plugin.installedAt) facts.installedAt = new Date(clock.now())
        return { kind: 'done', containerId: created.containerId }
      }
      case 'start': {
        if (!containerId) throw new Error('start planned without a container')
        const id = containerId
        const problem = await cache.whileActing(id, 'start', async () => {
          const refused = await this.start(id, plugin)
          if (!refused) await this.refresh(id)
          return refused
        })
        if (problem) return problem
        facts.startedAt = new Date(clock.now())
        facts.containerId = containerId
        return { kind: 'done', containerId }
      }
      case 'stop':
        if (!containerId) throw new Error('stop planned without a container')
        const id = containerId
        await cache.whileActing(id, 'stop', async () => {
          await runtime.stop(id, this.options.stopTimeoutSeconds)
          await this.refresh(id)
        })
        facts.stoppedAt = new Date(clock.now())
        return { kind: 'done', containerId }
      case 'remove':
        await runtime.remove(action.containerId)
        cache.removeById(action.containerId)
        if (action.containerId === containerId) facts.containerId = null
        return { kind: 'done', containerId: action.containerId === containerId ? undefined : containerId }
      case 'delete-row':
        return { kind: 'done', containerId }
    }
  }

  /**
   * Create, treating "name already in use" as "look at that container": Docker may have
   * created it while our call failed, or a crashed manager made it. Ours → use it;
   * anyone else's → a conflict, left untouched.
   */
  private async create(
    spec: ContainerSpec,
    plugin: Plugin,
    log: Logger,
    deferredPull: Extract<Action, { kind: 'pull' }> | undefined,
  ): Promise<{ kind: 'done'; containerId: string } | { kind: 'problem'; error: string; requeueAfterMs?: number }> {
    const { runtime } = this.options
    const { name } = spec
    try {
      const containerId = await runtime.create(spec).catch(async (error: unknown) => {
        // As `docker run` does: pull (per the policy) only when create finds no image.
        if (!(error instanceof ImageNotFoundError) || !deferredPull) throw error
        await this.pull(deferredPull, plugin, log)
        return runtime.create(spec)
      })
      // What we just made, as inspect would tell it: no second look needed.
      const { image, labels, hostPort, containerPort } = spec
      this.options.cache.putDetailed({ id: containerId, name, image, state: 'created', labels, hostPort, containerPort })
      return { kind: 'done', containerId }
    } catch (error) {
      if (!(error instanceof NameConflictError)) throw error
      const existing = await runtime.inspect(name)
      if (!existing) throw error
      this.options.cache.putDetailed(existing)
      if (isManaged(existing) && existing.labels[LABELS.pluginId] === plugin.id) return { kind: 'done', containerId: existing.id }
      return { kind: 'problem', error: nameConflictMessage(existing), requeueAfterMs: CONFLICT_RETRY_MS }
    }
  }

  private async start(containerId: string, plugin: Plugin): Promise<{ kind: 'problem'; error: string; requeueAfterMs?: number } | undefined> {
    try {
      await this.options.runtime.start(containerId)
      return undefined
    } catch (error) {
      if (!(error instanceof PortInUseError)) throw error
      if (plugin.requestedHostPort !== null) {
        return { kind: 'problem', error: `requested ${error.message}`, requeueAfterMs: CONFLICT_RETRY_MS }
      }
      // An allocated port turned out to be taken by something outside FlowForge: give it
      // up, so the next attempt allocates another (and recreates the container with it).
      await this.options.ports.release(plugin)
      throw error
    }
  }

  /** ImageNotFoundError propagates: recorded as the plugin's error, retried with backoff. */
  private async pull(action: Extract<Action, { kind: 'pull' }>, plugin: Plugin, log: Logger): Promise<void> {
    await this.options.runtime.ensureImage(action.image, action.policy).catch(async (error: unknown) => {
      if (error instanceof ImageNotFoundError) await this.recordProblem(plugin, error.message, log)
      throw error
    })
  }

  private async refresh(containerId: string): Promise<void> {
    const inspected = await this.options.runtime.inspect(containerId)
    if (inspected) this.options.cache.putDetailed(inspected)
    else this.options.cache.removeById(containerId)
  }

  /** A problem that retrying right away will not fix: status error, one event, maybe a later look. */
  private async recordProblem(plugin: Plugin, error: string, log: Logger, requeueAfterMs?: number): Promise<ReconcileResult> {
    log.warn({ error }, `${plugin.forgehookId}: ${error}`)
    const events = plugin.error === error ? [] : [{ pluginId: plugin.id, forgehookId: plugin.forgehookId, type: 'plugin:error', data: { error } }]
    await this.writeFinalStatus(plugin, plugin, { status: 'error', error, observedGeneration: plugin.generation }, events, false)
    return requeueAfterMs !== undefined ? { requeueAfterMs } : {}
  }

  /**
   * Records the reconcile's events and writes only the status fields that differ, in one
   * statement; a phase change no event describes gets its own event.
   */
  private async writeFinalStatus(
    original: Plugin,
    current: Plugin,
    wanted: PluginStatusUpdate,
    events: NewPluginEvent[],
    auditPhaseChange: boolean,
  ): Promise<void> {
    const changes = differingFields(current, wanted)
    if (Object.keys(changes).length === 0) {
      await this.options.store.logEvents(events)
      return
    }
    try {
      await this.options.store.writeStatusWithEvents(original.id, changes, events)
    } catch (error) {
      if (!(error instanceof InvalidValueError)) throw error
      throw new Error(`cannot record the status of ${original.forgehookId}: ${error.message}`)
    }
    if (auditPhaseChange && wanted.status !== undefined && wanted.status !== original.status) {
      await this.options.store.logEvent({
        pluginId: original.id,
        forgehookId: original.forgehookId,
        type: 'plugin:phase',
        data: { from: original.status, to: wanted.status },
      })
    }
  }

  /** The row is gone (uninstalled, or deleted in SQL): remove the container we made for it. */
  private async reconcileDeleted(pluginId: string, log: Logger): Promise<ReconcileResult> {
    const container = this.options.cache.findByPluginId(pluginId)
    const actions = planOrphanRemoval(container)
    if (!container || actions.length === 0) return {}
    const forgehookId = container.labels[LABELS.forgehookId] ?? container.name
    log.info({ plan: describePlan(actions) }, `removing the container of deleted plugin ${forgehookId}`)
    if (container.state === 'running') await this.options.runtime.stop(container.id, this.options.stopTimeoutSeconds)
    await this.options.runtime.remove(container.id)
    this.options.cache.removeById(container.id)
    await this.options.store.logEvent({ pluginId: null, forgehookId, type: 'plugin:uninstalled', data: { containerId: container.id, pluginId } })
    return {}
  }
}

function differingFields(plugin: Plugin, wanted: PluginStatusUpdate): PluginStatusUpdate {
  const changes: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(wanted)) {
    if (value === undefined) continue
    const currentValue = (plugin as unknown as Record<string, unknown>)[field]
    if (!sameValue(currentValue, value)) changes[field] = value
  }
  return changes as PluginStatusUpdate
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime()
  return a === b
}
