// reconcile(pluginId): re-read the row and the container, plan, execute, write status.
//
// The contract (written once, here):
// - It is level-triggered and idempotent: running it again right away changes nothing.
// - A thrown error means "retry with backoff" (the worker pool requeues the key).
// - A terminal problem (bad manifest, a name or port held by someone else) is recorded in
//   the row's status and not thrown; conflicts come back after `requeueAfterMs`.
// - `{ requeueAfterMs }` asks for the next look (crash-loop backoff, the 10-minute reset).
// - Status is written only when it differs from the row; events only for what happened.
//
// Every decision is the planner's (plan.ts, plan-recovery.ts): this file gathers the facts
// it needs, performs the actions it returns one kind at a time, and hands every typed
// failure back to it.
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
  type ObservedContainer,
} from '../runtime/container-runtime.js'
import { buildContainerSpec, type ContainerSpecOptions } from '../spec/container-spec.js'
import { parseManifest } from '../spec/manifest.js'
import type { Clock } from '../util/clock.js'
import { isUuid } from '../util/uuid.js'
import type { ContainerCache } from './container-cache.js'
import { describePlan, describeRecovery } from './describe-plan.js'
import { plan, planOrphanRemoval } from './plan.js'
import { planRecovery } from './plan-recovery.js'
import type { Action, ActionFailure, CrashLoopPolicy, Plan, WantedContainer } from './plan-types.js'
import type { PortAllocator } from './port-allocator.js'
import type { RestartRequests } from './restart-requests.js'

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
  /** Pending one-off restarts; the plan that answers one takes it. */
  restarts: RestartRequests
}

/** One execution of a plan: whom it is about and what it learned on the way. */
interface Run {
  /** The row as last written (the transition phase changes it); absent when the row is gone. */
  row: Plugin | undefined
  pluginId: string | null
  forgehookId: string
  /** The plan's container: the one observed, then the one its create made. */
  containerId: string | undefined
  /** Facts learned while executing, merged into the status at the end. */
  facts: Pick<PluginStatusUpdate, 'containerId' | 'containerName' | 'installedAt' | 'startedAt' | 'stoppedAt'>
}

/** What performing one action came to: done, or a failure the planner decides on (with the error to rethrow). */
type Outcome = { kind: 'done' } | { kind: 'failed'; failure: ActionFailure; error: Error }

const DONE: Outcome = { kind: 'done' }

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
    // A plugin being uninstalled needs no port; any other gets one (or the reason it cannot).
    const port = row.deletionRequestedAt ? { ok: true as const, plugin: row, hostPort: row.hostPort ?? 0 } : await this.options.ports.resolve(row)
    const plugin = port.ok ? port.plugin : row
    const planned = plan({
      plugin,
      container,
      wanted: port.ok ? this.wanted(plugin, port.hostPort) : { ok: false, error: port.error },
      portProblem: port.ok ? undefined : port.error,
      now: this.options.clock.now(),
      crashLoop: this.options.crashLoop,
      restartRequested: this.options.restarts.get(plugin.id),
      containerOwnerGone: await this.ownerGone(container, plugin),
    })
    if (planned.takesRestartRequest) this.options.restarts.take(plugin.id)
    if (planned.actions.length > 0) pluginLog.info({ plan: describePlan(planned) }, `reconciling ${plugin.forgehookId}`)
    const run: Run = { row: plugin, pluginId: plugin.id, forgehookId: plugin.forgehookId, containerId: container?.id, facts: {} }
    return this.execute(run, planned, pluginLog)
  }

  /** The row is gone (uninstalled, or deleted in SQL): remove the container we made for it. */
  private async reconcileDeleted(pluginId: string, log: Logger): Promise<ReconcileResult> {
    const container = this.options.cache.findByPluginId(pluginId)
    const planned = planOrphanRemoval(pluginId, container)
    if (!container || !planned.subject) return {}
    log.info({ plan: describePlan(planned) }, `removing the container of deleted plugin ${planned.subject.forgehookId}`)
    return this.execute({ row: undefined, ...planned.subject, containerId: container.id, facts: {} }, planned, log)
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

  private wanted(plugin: Plugin, hostPort: number): WantedContainer {
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

  private async execute(run: Run, planned: Plan, log: Logger): Promise<ReconcileResult> {
    const original = run.row
    const acts = planned.actions.length > 0 || planned.deleteRow !== undefined
    if (run.row && planned.transitionPhase && acts && run.row.status !== planned.transitionPhase) {
      run.row = (await this.options.store.writeStatus(run.row.id, { status: planned.transitionPhase })) ?? run.row
    }
    for (const action of planned.actions) {
      const outcome = await this.perform(action, run)
      if (outcome.kind === 'done') continue
      if (!run.row) throw outcome.error
      const recovery = planRecovery(run.row, outcome.failure)
      log.info({ recovery: describeRecovery(recovery) }, `${run.forgehookId}: ${action.kind} failed: ${outcome.error.message}`)
      if (recovery.kind === 'continue-with') {
        this.created(run, action, recovery.containerId)
        continue
      }
      // Performed apart from the plan's own status and facts: what it meant to do did not happen.
      const aborted: Run = { ...run, facts: {} }
      for (const step of recovery.plan.actions) await this.perform(step, aborted)
      const { error } = recovery.plan.status
      if (typeof error === 'string') log.warn({ error }, `${run.forgehookId}: ${error}`)
      // Nothing to record (a retry that only released a port): the generation stays unobserved.
      if (Object.keys(recovery.plan.status).length > 0) await this.record(aborted, run.row, recovery.plan)
      if (recovery.retry) throw outcome.error
      return requeue(recovery.plan)
    }
    const { error } = planned.status
    if (typeof error === 'string' && error !== original?.error) log.warn({ error }, `${run.forgehookId}: ${error}`)
    if (original) await this.record(run, original, planned)
    else await this.options.store.logEvents(this.events(run, planned))
    if (planned.deleteRow) log.info(`uninstalled ${run.forgehookId}`)
    return requeue(planned)
  }

  /** One action, by kind; a known failure comes back as an outcome for the planner. */
  private async perform(action: Action, run: Run): Promise<Outcome> {
    const { runtime, cache, clock } = this.options
    switch (action.kind) {
      case 'pull':
        return this.imageOutcome(() => runtime.ensureImage(action.image, action.policy))
      case 'create':
        return this.create(action, run)
      case 'start': {
        const containerId = required(run.containerId, action)
        const outcome = await cache.whileActing(containerId, 'start', async () => {
          try {
            await runtime.start(containerId)
          } catch (error) {
            if (error instanceof PortInUseError) return { kind: 'failed' as const, failure: { kind: 'port-in-use' as const, error: error.message }, error }
            throw error
          }
          await this.refresh(containerId)
          return DONE
        })
        if (outcome.kind === 'done') Object.assign(run.facts, { startedAt: new Date(clock.now()), containerId })
        return outcome
      }
      case 'stop':
        await cache.whileActing(action.containerId, 'stop', async () => {
          await runtime.stop(action.containerId, this.options.stopTimeoutSeconds)
          await this.refresh(action.containerId)
        })
        run.facts.stoppedAt = new Date(clock.now())
        return DONE
      case 'remove':
        await runtime.remove(action.containerId)
        cache.removeById(action.containerId)
        if (action.containerId === run.containerId) {
          run.containerId = undefined
          run.facts.containerId = null
        }
        return DONE
      case 'release-port':
        if (run.row) await this.options.ports.release(run.row)
        return DONE
    }
  }

  /** Create; a missing image is pulled per `missingImage` and the create tried once more, as `docker run` does. */
  private async create(action: Extract<Action, { kind: 'create' }>, run: Run): Promise<Outcome> {
    const { runtime, cache } = this.options
    const { spec } = action
    try {
      const outcome = await this.imageOutcome(async () => {
        const containerId = await runtime.create(spec).catch(async (error: unknown) => {
          if (!(error instanceof ImageNotFoundError) || !action.missingImage) throw error
          await runtime.ensureImage(spec.image, action.missingImage)
          return runtime.create(spec)
        })
        // What we just made, as inspect would tell it: no second look needed.
        const { image, labels, hostPort, containerPort } = spec
        cache.putDetailed({ id: containerId, name: spec.name, image, state: 'created', labels, hostPort, containerPort })
        this.created(run, action, containerId)
      })
      return outcome
    } catch (error) {
      if (!(error instanceof NameConflictError)) throw error
      // Docker may have created it while our call failed, or a crashed manager made it: look.
      const holder = await runtime.inspect(spec.name)
      if (holder) cache.putDetailed(holder)
      return { kind: 'failed', failure: { kind: 'name-taken', holder }, error }
    }
  }

  /** The plan's create is done, by us or (continue-with) found done already. */
  private created(run: Run, action: Action, containerId: string): void {
    if (action.kind !== 'create') throw new Error(`continue-with after a failed ${action.kind}`)
    run.containerId = containerId
    run.facts.containerId = containerId
    run.facts.containerName = action.spec.name
    if (!run.row?.installedAt) run.facts.installedAt = new Date(this.options.clock.now())
  }

  private async imageOutcome(operation: () => Promise<void>): Promise<Outcome> {
    try {
      await operation()
      return DONE
    } catch (error) {
      if (error instanceof ImageNotFoundError) return { kind: 'failed', failure: { kind: 'image-missing', error: error.message }, error }
      throw error
    }
  }

  private async refresh(containerId: string): Promise<void> {
    const inspected = await this.options.runtime.inspect(containerId)
    if (inspected) this.options.cache.putDetailed(inspected)
    else this.options.cache.removeById(containerId)
  }

  /**
   * Records the plan's events with the status fields that differ from the row, in one
   * statement; or, for a plan that deletes the row, the events and then the deletion.
   */
  private async record(run: Run, original: Plugin, planned: Plan): Promise<void> {
    const { store } = this.options
    const events = this.events(run, planned)
    if (planned.deleteRow) {
      await store.logEvents(events)
      await store.deletePlugin(original.id)
      return
    }
    const current = run.row ?? original
    const changes = differingFields(current, { ...planned.status, ...run.facts, observedGeneration: original.generation })
    if (Object.keys(changes).length === 0) {
      await store.logEvents(events)
      return
    }
    try {
      await store.writeStatusWithEvents(original.id, changes, events)
    } catch (error) {
      if (!(error instanceof InvalidValueError)) throw error
      throw new Error(`cannot record the status of ${original.forgehookId}: ${error.message}`, { cause: error })
    }
  }

  private events(run: Run, planned: Plan): NewPluginEvent[] {
    return planned.events.map((event) => ({ pluginId: run.pluginId, forgehookId: run.forgehookId, type: event.type, data: event.data }))
  }
}

function requeue(planned: Plan): ReconcileResult {
  return planned.requeueAfterMs !== undefined ? { requeueAfterMs: planned.requeueAfterMs } : {}
}

function required(containerId: string | undefined, action: Action): string {
  if (!containerId) throw new Error(`${action.kind} planned without a container`)
  return containerId
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
