// reconcile(pluginId): re-read the row and the containers, plan, execute, write status.
//
// The contract (written once, here):
// - It is level-triggered and idempotent: running it again right away changes nothing.
// - A thrown error means "retry with backoff" (the worker pool requeues the key).
// - A terminal problem (bad manifest, a name or port held by someone else) is recorded in
//   the row's status and not thrown; conflicts come back after `requeueAfterMs`.
// - `{ requeueAfterMs }` asks for the next look (crash-loop backoff, a rollout's next step).
// - Status is written only when it differs from the row; events only for what happened.
//
// Every decision is the planner's (plan.ts, plan-rollout.ts, plan-recovery.ts): this file
// gathers the facts it needs, has each action performed (action-performer.ts), and hands
// every typed failure back to it.
import type { Logger } from '../logger.js'
import { InvalidValueError } from '../db/errors.js'
import type { NewPluginEvent, Plugin, PluginStatusUpdate, PluginStore } from '../db/plugin-store.js'
import { isManaged, LABELS, rolloutNamesFor, type ContainerRuntime, type ObservedContainer } from '../runtime/container-runtime.js'
import { buildContainerSpec, canonicalJson, type ContainerSpecOptions, type WantedImage } from '../spec/container-spec.js'
import { parseManifest } from '../spec/manifest.js'
import type { HostPortPolicy } from '../spec/host-port-policy.js'
import { describeStoredSpecErrors, storedSpecErrors } from '../spec/stored-spec.js'
import type { Clock } from '../util/clock.js'
import { isUuid } from '../util/uuid.js'
import { ActionPerformer, type Run } from './action-performer.js'
import type { ContainerCache } from './container-cache.js'
import { ImageDigests } from './image-digests.js'
import { describePlan, describeRecovery } from './describe-plan.js'
import { plan, planOrphanRemoval } from './plan.js'
import { planRecovery } from './plan-recovery.js'
import { ROLLOUT_IN_PROGRESS, strategyFor } from './plan-rollout.js'
import { hasHttpHealthCheck } from './rollout-verdict.js'
import type { CandidateProbe, CrashLoopPolicy, Plan, RolloutFacts, RolloutSettings, WantedContainer } from './plan-types.js'
import type { PortAllocator, PortResolution } from './port-allocator.js'
import { NO_PROXY_TRAFFIC, type ProxyTraffic, type ReadinessProbe } from './readiness-probe.js'
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
  /** Whether a rollout's new container answers. */
  readiness: ReadinessProbe
  /** Where plugin ports are reached from the manager. */
  probeHost: string
  /** The proxy's requests in flight (start-first drain). Default: none. */
  traffic?: ProxyTraffic
  /** Which requested host ports a stored spec may have (HOST_PORT_RANGE, ALLOW_ANY_HOST_PORT). Default: any. */
  hostPorts?: HostPortPolicy
  rolloutSettings?: RolloutSettings
  /** What pulls found: the image an Always tag names now. Default: a fresh book. */
  digests?: ImageDigests
}

const PROBE_TIMEOUT_MS = 2_000

export class Reconciler {
  private reconciles = 0
  private readonly performer: ActionPerformer
  private readonly digests: ImageDigests

  constructor(private readonly options: ReconcilerOptions) {
    this.digests = options.digests ?? new ImageDigests()
    this.performer = new ActionPerformer({ ...options, digests: this.digests })
  }

  async reconcile(pluginId: string): Promise<ReconcileResult> {
    const { store, logger } = this.options
    // One child logger per reconcile: every line carries the plugin and a reconcile id.
    const log = logger.child({ pluginId, reconcileId: ++this.reconciles })
    const row = await store.getPlugin(pluginId)
    if (!row) return this.reconcileDeleted(pluginId, log)
    const pluginLog = log.child({ plugin: row.forgehookId })

    const names = rolloutNamesFor(row.forgehookId)
    const container = await this.observe(names.main)
    // A plugin being uninstalled needs no port; any other gets one (or the reason it cannot).
    const port = row.deletionRequestedAt ? { ok: true as const, plugin: row, hostPort: row.hostPort ?? 0 } : await this.resolvePorts(row)
    const plugin = port.ok ? port.plugin : row
    const wanted: WantedContainer = port.ok ? this.wanted(plugin, port.hostPort, container) : { ok: false, error: port.error }
    const planned = plan({
      plugin,
      container,
      wanted,
      portProblem: port.ok ? undefined : port.error,
      now: this.options.clock.now(),
      crashLoop: this.options.crashLoop,
      restartRequested: this.options.restarts.get(plugin.id),
      containerOwnerGone: await this.ownerGone(container, plugin),
      rollout: await this.rolloutFacts(plugin, container, wanted, names),
      ...(this.options.rolloutSettings ? { rolloutSettings: this.options.rolloutSettings } : {}),
      ...(this.options.container.network ? { installationNetwork: this.options.container.network } : {}),
    })
    if (planned.takesRestartRequest) this.options.restarts.take(plugin.id)
    if (planned.actions.length > 0) pluginLog.info({ plan: describePlan(planned) }, `reconciling ${plugin.forgehookId}`)
    const run: Run = { row: plugin, pluginId: plugin.id, forgehookId: plugin.forgehookId, mainName: names.main, containerId: container?.id, facts: {} }
    return this.execute(run, planned, pluginLog)
  }

  /** The row is gone (uninstalled, or deleted in SQL): remove the containers it had. */
  private async reconcileDeleted(pluginId: string, log: Logger): Promise<ReconcileResult> {
    const { cache, runtime, store } = this.options
    const containers = cache.allByPluginId(pluginId)
    // An adopted container carries no plugin id: its tombstone names it.
    const tombstone = await store.tombstone(pluginId)
    const adoptedId = tombstone?.containerId
    if (adoptedId && !containers.some((container) => container.id === adoptedId)) {
      const adopted = cache.getById(adoptedId)?.container ?? (await runtime.inspect(adoptedId))
      if (adopted && !isManaged(adopted)) containers.push(adopted)
    }
    const planned = planOrphanRemoval(pluginId, containers, tombstone)
    if (!planned.subject) return {}
    log.info({ plan: describePlan(planned) }, `removing the containers of deleted plugin ${planned.subject.forgehookId}`)
    const run: Run = { row: undefined, ...planned.subject, mainName: rolloutNamesFor(planned.subject.forgehookId).main, containerId: undefined, facts: {} }
    return this.execute(run, planned, log)
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

  /** The primary host port, then the extra ports' (manifest.ports), each assigned once and kept. */
  private async resolvePorts(row: Plugin): Promise<PortResolution> {
    const primary = await this.options.ports.resolve(row)
    if (!primary.ok) return primary
    const parsed = parseManifest(primary.plugin.manifest)
    const extras = parsed.ok ? parsed.manifest.ports : []
    if (extras.length === 0 && primary.plugin.extraPorts.length === 0) return primary
    const resolved = await this.options.ports.resolveExtras(primary.plugin, extras)
    return resolved.ok ? { ok: true, plugin: resolved.plugin, hostPort: primary.hostPort } : resolved
  }

  private wanted(plugin: Plugin, hostPort: number, main: ObservedContainer | undefined): WantedContainer {
    const parsed = parseManifest(plugin.manifest)
    if (!parsed.ok) return parsed
    // A row written in SQL is held to the document schema too (forbidden fields, env names, volumes).
    const invalid = storedSpecErrors(plugin, this.options.hostPorts)
    if (invalid.length > 0) return { ok: false, error: describeStoredSpecErrors(invalid) }
    const spec = buildContainerSpec(plugin, parsed.manifest, hostPort, this.options.container, this.wantedImage(parsed.manifest, main))
    return { ok: true, spec, pullPolicy: parsed.manifest.imagePullPolicy }
  }

  /** imagePullPolicy Always: the image the tag named at the last pull (a new push is drift); otherwise the tag alone. */
  private wantedImage(manifest: { image: string; imagePullPolicy: string }, main: ObservedContainer | undefined): WantedImage {
    return manifest.imagePullPolicy === 'Always' ? this.digests.wantedFor(manifest.image, main) : {}
  }

  /** What is observed of an update: the containers beside the plugin's own, and whether the new one answers. */
  private async rolloutFacts(plugin: Plugin, main: ObservedContainer | undefined, wanted: WantedContainer, names: { next: string; previous: string }): Promise<RolloutFacts> {
    const next = await this.observe(names.next)
    const previous = await this.observe(names.previous)
    const facts: RolloutFacts = { ...(next ? { next } : {}), ...(previous ? { previous } : {}) }
    const rollout = plugin.rollout
    const toHostPort = rollout?.toHostPort
    // After the switch toHostPort is the plugin's own port too: the candidate is then the wanted spec itself.
    if (wanted.ok && main && strategyFor(plugin, main) === 'StartFirst' && toHostPort !== undefined && rollout && ROLLOUT_IN_PROGRESS.has(rollout.phase)) {
      const parsed = parseManifest(plugin.manifest)
      if (parsed.ok) facts.candidate = buildContainerSpec(plugin, parsed.manifest, toHostPort, this.options.container, this.wantedImage(parsed.manifest, main))
    }
    // The new container: after a Recreate switch it is the plugin's own; start first, the next one.
    const candidate = previous ? main : next
    if (candidate?.state === 'running' && candidate.health === undefined && candidate.hostPort !== undefined) facts.probe = await this.probe(plugin, candidate.hostPort)
    if (rollout?.phase === 'draining' && rollout.fromHostPort !== undefined) facts.oldInFlight = (this.options.traffic ?? NO_PROXY_TRAFFIC).inFlight(rollout.fromHostPort)
    return facts
  }

  private async probe(plugin: Plugin, hostPort: number): Promise<CandidateProbe> {
    const { readiness, probeHost } = this.options
    if (!hasHttpHealthCheck(plugin)) return readiness.tcp(probeHost, hostPort, PROBE_TIMEOUT_MS)
    const parsed = parseManifest(plugin.manifest)
    const healthCheck = parsed.ok ? parsed.manifest.healthCheck : undefined
    const host = probeHost.includes(':') ? `[${probeHost}]` : probeHost
    const timeoutMs = (healthCheck?.timeoutSeconds ?? PROBE_TIMEOUT_MS / 1000) * 1000
    return readiness.http(`http://${host}:${hostPort}${healthCheck?.path ?? '/'}`, timeoutMs)
  }

  /** The cached container, inspected once if the cache only has list data for it, or only our start's answer (provisional). */
  private async observe(containerName: string): Promise<ObservedContainer | undefined> {
    const { cache } = this.options
    const cached = cache.get(containerName)
    if (cached?.detailed && !cached.provisional) return cached.container
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
      const outcome = await this.performer.perform(action, run)
      if (outcome.kind === 'done') continue
      if (!run.row) throw outcome.error
      const recovery = planRecovery(run.row, outcome.failure, planned)
      log.info({ recovery: describeRecovery(recovery) }, `${run.forgehookId}: ${action.kind} failed: ${outcome.error.message}`)
      if (recovery.kind === 'continue-with') {
        this.performer.created(run, action, recovery.containerId)
        continue
      }
      // Performed apart from the plan's own status and facts: what it meant to do did not happen.
      const aborted: Run = { ...run, facts: {} }
      for (const step of recovery.plan.actions) await this.performer.perform(step, aborted)
      const { error } = recovery.plan.status
      if (typeof error === 'string') log.warn({ error }, `${run.forgehookId}: ${error}`)
      // Nothing to record (a retry that only released a port): the generation stays unobserved.
      if (Object.keys(recovery.plan.status).length > 0) await this.record(aborted, run.row, recovery.plan)
      if (recovery.retry) throw outcome.error
      return requeue(recovery.plan)
    }
    const { error } = planned.status
    if (typeof error === 'string' && error !== original?.error) log.warn({ error }, `${run.forgehookId}: ${error}`)
    if (original && !planned.deleteRow) this.noteImageDigest(run)
    if (original) await this.record(run, original, planned)
    else await this.options.store.logEvents(this.events(run, planned))
    if (planned.deleteRow) log.info(`uninstalled ${run.forgehookId}`)
    return requeue(planned)
  }

  /**
   * status.imageDigest: the registry digest of the image the plugin's container runs, as a
   * pull of this manager found it. Unknown (nothing pulled it since the start) leaves the
   * recorded one, unless the container is a new one.
   */
  private noteImageDigest(run: Run): void {
    const containerId = run.containerId
    const imageId = containerId === undefined ? undefined : this.options.cache.getById(containerId)?.container.imageId
    const digest = imageId === undefined ? undefined : this.digests.digestOf(imageId)
    if (digest !== undefined) run.facts.imageDigest = digest
    else if (run.facts.containerId !== undefined) run.facts.imageDigest = null
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
    const { reservedHostPort, ...facts } = run.facts
    const wanted: PluginStatusUpdate = { ...planned.status, ...facts }
    // A port reserved for a start-first update is kept in the rollout it belongs to.
    if (reservedHostPort !== undefined && wanted.rollout) wanted.rollout = { ...wanted.rollout, toHostPort: reservedHostPort }
    if (!planned.leavesGenerationUnobserved) wanted.observedGeneration = original.generation
    const changes = differingFields(current, wanted)
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

/** The fields of `wanted` whose value differs from the row (a status write sends only those). */
export function differingFields(plugin: Plugin, wanted: PluginStatusUpdate): PluginStatusUpdate {
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
  // JSONB (status.rollout): equal when the same JSON, whatever the key order Postgres gives back.
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') return canonicalJson(a) === canonicalJson(b)
  return a === b
}
