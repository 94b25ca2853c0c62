// reconcile(pluginId) on the swarm runtime: one row, its one service. The same contract as
// the container reconciler (src/controller/reconciler.ts): level-triggered and idempotent, a
// thrown error is a retry with backoff, a terminal problem is recorded in the row's status,
// status is written only when it differs, events only for what happened.
//
// What differs: Swarm runs the replicas, restarts them (its restart policy replaces our
// crash-loop backoff), places them, and rolls an update forward or back by itself. We create
// the service, update it when the hash of what we would send differs from its label, and
// write down what its tasks do. A spec Swarm rolled back is not sent again until it changes
// or a retry is asked (forgectl rollout retry), as a rolled-back container update is not.
import type { Logger } from '../logger.js'
import type { NewPluginEvent, Plugin, PluginStatusUpdate, PluginStore } from '../db/plugin-store.js'
import { differingFields } from '../controller/reconciler.js'
import type { PortAllocator } from '../controller/port-allocator.js'
import { LABELS, NameConflictError } from '../runtime/container-runtime.js'
import { NO_REGISTRY_AUTH, registryAuthHeader, type RegistryAuth } from '../runtime/registry-auth.js'
import { parseManifest } from '../spec/manifest.js'
import { describeStoredSpecErrors, storedSpecErrors } from '../spec/stored-spec.js'
import type { HostPortPolicy } from '../spec/host-port-policy.js'
import type { Clock } from '../util/clock.js'
import { ServiceVersionConflictError, type ObservedService, type ServiceRuntime, type WantedService } from './service-runtime.js'
import { buildServiceSpec, serviceNameFor, withForceUpdate, type ServiceSpecOptions } from './service-spec.js'
import type { RestartRequests } from '../controller/restart-requests.js'
import { isRollbackOf, observeService, type TaskRecord } from './service-status.js'
import type { SwarmView } from './swarm-view.js'

/** Where the task rows of a plugin are kept (plugin_tasks). */
export interface TaskRows {
  listTasks(pluginId: string): Promise<TaskRecord[]>
  replaceTasks(pluginId: string, tasks: TaskRecord[]): Promise<void>
}

export interface ServiceReconcilerOptions {
  store: PluginStore
  tasks: TaskRows
  runtime: ServiceRuntime
  view: SwarmView
  ports: PortAllocator
  clock: Clock
  logger: Logger
  service: ServiceSpecOptions
  registryAuth?: RegistryAuth
  hostPorts?: HostPortPolicy
  /** One-off restarts (forgectl restart, POST /restart): a forced update of the service. */
  restarts: RestartRequests
}

export interface ServiceReconcileResult {
  requeueAfterMs?: number
}

/** While tasks are on their way (or an update runs), look again this soon; the poll also wakes us. */
const SETTLING_REQUEUE_MS = 2_000
/** A name held by a service that is not ours: looked at again this late. */
const CONFLICT_REQUEUE_MS = 30_000

export class ServiceReconciler {
  private reconciles = 0

  constructor(private readonly options: ServiceReconcilerOptions) {}

  async reconcile(pluginId: string): Promise<ServiceReconcileResult> {
    const { store, logger, view } = this.options
    const log = logger.child({ pluginId, reconcileId: ++this.reconciles })
    const row = await store.getPlugin(pluginId)
    if (!row) return this.removeServicesOf(pluginId, undefined, log)
    const name = serviceNameFor(row.forgehookId)
    const service = view.service(name)
    const pluginLog = log.child({ plugin: row.forgehookId })

    if (row.deletionRequestedAt) return this.uninstall(row, service, pluginLog)
    if (service && !this.isOurs(service)) {
      return this.recordError(row, `a service named ${name} exists and is not managed by this installation (MANAGER_INSTANCE ${this.options.service.instance}): remove or rename it`, CONFLICT_REQUEUE_MS)
    }
    // A service of this plugin left behind under another name (the row was renamed in SQL).
    for (const stale of view.servicesOfPlugin(row.id)) if (stale.name !== name && this.isOurs(stale)) await this.remove(stale, pluginLog)

    const parsed = parseManifest(row.manifest)
    if (!parsed.ok) return this.recordError(row, parsed.error)
    const invalid = storedSpecErrors(row, this.options.hostPorts, { runtime: 'swarm' })
    if (invalid.length > 0) return this.recordError(row, describeStoredSpecErrors(invalid))
    const port = await this.options.ports.resolve(row)
    if (!port.ok) return this.recordError(row, port.error, CONFLICT_REQUEUE_MS)
    const plugin = port.plugin
    const wanted = await this.withRegistryAuth(buildServiceSpec(plugin, parsed.manifest, port.hostPort, this.options.service))

    if (!service) {
      // A new service starts fresh tasks: a restart asked meanwhile is answered by it.
      this.options.restarts.take(plugin.id)
      return this.create(plugin, wanted, pluginLog)
    }
    const current = service.labels[LABELS.specHash]
    if (current !== wanted.specHash && !this.rolledBackHold(plugin, service, wanted)) {
      this.options.restarts.take(plugin.id)
      return this.update(plugin, service, withForceUpdate(wanted, service.forceUpdate, false), pluginLog)
    }
    const restart = this.options.restarts.get(plugin.id)
    if (restart !== undefined && service.replicas > 0) return this.restart(plugin, service, wanted, restart, pluginLog)
    if (restart !== undefined) this.options.restarts.take(plugin.id)
    return this.record(plugin, service, wanted)
  }

  /** The row is gone: the services labelled with its id go too. */
  private async removeServicesOf(pluginId: string, _row: Plugin | undefined, log: Logger): Promise<ServiceReconcileResult> {
    for (const service of this.options.view.servicesOfPlugin(pluginId)) if (this.isOurs(service)) await this.remove(service, log)
    return {}
  }

  private async uninstall(row: Plugin, service: ObservedService | undefined, log: Logger): Promise<ServiceReconcileResult> {
    const { store } = this.options
    if (service && this.isOurs(service)) {
      await this.remove(service, log)
      log.info(`removed service ${service.name} of ${row.forgehookId}`)
    }
    await store.logEvents([this.event(row, 'plugin:uninstalled', { service: service?.name ?? null, serviceId: service?.id ?? null })])
    await store.deletePlugin(row.id)
    return {}
  }

  private async create(plugin: Plugin, wanted: WantedService, log: Logger): Promise<ServiceReconcileResult> {
    const { runtime, store } = this.options
    let created: ObservedService
    try {
      created = await runtime.createService(wanted)
    } catch (error) {
      // Made meanwhile (by another manager, or a create whose answer we lost): the next look finds it.
      if (error instanceof NameConflictError) {
        await this.refresh(wanted.name)
        return { requeueAfterMs: 0 }
      }
      throw error
    }
    log.info({ service: wanted.name, replicas: wanted.replicas, specHash: wanted.specHash }, `created service ${wanted.name} with ${wanted.replicas} replicas`)
    // The service as sent (version 0 until the next list reads it): the next look sees our own create.
    this.options.view.putService(created)
    const id = created.id
    await store.writeStatusWithEvents(
      plugin.id,
      { status: wanted.replicas === 0 ? 'stopped' : 'starting', containerName: wanted.name, replicasDesired: wanted.replicas, replicasRunning: 0, error: null, installedAt: this.now() } as PluginStatusUpdate,
      [this.event(plugin, 'plugin:installed', { service: wanted.name, serviceId: id, image: wanted.image, replicas: wanted.replicas })],
    )
    return { requeueAfterMs: SETTLING_REQUEUE_MS }
  }

  private async update(plugin: Plugin, service: ObservedService, wanted: WantedService, log: Logger): Promise<ServiceReconcileResult> {
    const { runtime, store } = this.options
    try {
      await runtime.updateService(service.id, service.version, wanted)
    } catch (error) {
      if (error instanceof ServiceVersionConflictError) {
        await this.refresh(service.id, service.name)
        return { requeueAfterMs: 0 }
      }
      throw error
    }
    log.info({ service: service.name, from: service.labels[LABELS.specHash], to: wanted.specHash, version: service.version }, `updated service ${service.name}`)
    await this.refresh(service.id, service.name)
    const rollout = {
      phase: 'progressing' as const,
      strategy: plugin.updatePolicy?.strategy ?? ('Recreate' as const),
      generation: plugin.generation,
      fromImage: service.image,
      toImage: wanted.image,
      startedAt: this.now().toISOString(),
    }
    await store.writeStatusWithEvents(plugin.id, { rollout, replicasDesired: wanted.replicas } as PluginStatusUpdate, [
      this.event(plugin, 'plugin:updated', { service: service.name, image: wanted.image, fromImage: service.image, replicas: wanted.replicas, fromReplicas: service.replicas, version: service.version }),
    ])
    return { requeueAfterMs: SETTLING_REQUEUE_MS }
  }

  /** A one-off restart: the same spec with ForceUpdate raised, so Swarm replaces every task by its update policy. */
  private async restart(plugin: Plugin, service: ObservedService, wanted: WantedService, reason: string, log: Logger): Promise<ServiceReconcileResult> {
    const { runtime, store } = this.options
    // The spec as the service has it now (a held rollback keeps serving the old one): only the counter moves.
    const forced = withForceUpdate({ ...wanted, specHash: service.labels[LABELS.specHash] ?? wanted.specHash }, service.forceUpdate, true)
    if (service.labels[LABELS.specHash] !== wanted.specHash) {
      this.options.restarts.take(plugin.id)
      log.warn({ reason }, `not restarting ${service.name}: Swarm rolled its last update back; retry the rollout instead`)
      return this.record(plugin, service, wanted)
    }
    try {
      await runtime.updateService(service.id, service.version, forced)
    } catch (error) {
      if (error instanceof ServiceVersionConflictError) {
        await this.refresh(service.id, service.name)
        return { requeueAfterMs: 0 }
      }
      throw error
    }
    this.options.restarts.take(plugin.id)
    log.info({ service: service.name, reason, forceUpdate: service.forceUpdate + 1 }, `restarting the tasks of ${service.name}: ${reason}`)
    await this.refresh(service.id, service.name)
    await store.logEvents([this.event(plugin, 'plugin:restarted', { reason, service: service.name, by: 'forced service update' })])
    return { requeueAfterMs: SETTLING_REQUEUE_MS }
  }

  /** The service is as declared (or held after a rollback): write down what its tasks do. */
  private async record(plugin: Plugin, service: ObservedService, wanted: WantedService): Promise<ServiceReconcileResult> {
    const { store, tasks, view } = this.options
    const previous = await tasks.listTasks(plugin.id)
    const observed = observeService({
      plugin,
      service,
      tasks: view.tasksOf(service.id),
      nodes: view.nodes(),
      previous,
      wantedHash: wanted.specHash,
      wantedReplicas: wanted.replicas,
      now: this.now(),
    })
    if (tasksDiffer(previous, observed.tasks)) await tasks.replaceTasks(plugin.id, observed.tasks)
    const changes = differingFields(plugin, observed.status as PluginStatusUpdate)
    if (Object.keys(changes).length > 0 || observed.events.length > 0) await store.writeStatusWithEvents(plugin.id, changes, observed.events)
    const settling = observed.status.replicasRunning !== observed.status.replicasDesired || (service.updateStatus !== undefined && !['completed', 'rollback_completed', 'paused', 'rollback_paused'].includes(service.updateStatus.state))
    return settling ? { requeueAfterMs: SETTLING_REQUEUE_MS } : {}
  }

  /**
   * Swarm rolled back from exactly this spec: hold it (the old spec serves) until the spec
   * changes or an operator asks for a retry after the rollback.
   */
  private rolledBackHold(plugin: Plugin, service: ObservedService, wanted: WantedService): boolean {
    if (!isRollbackOf(plugin, service, wanted.specHash)) return false
    const finishedAt = service.updateStatus?.completedAt ?? service.updatedAt
    const retry = plugin.rolloutRetryAt
    return !(retry && finishedAt && retry.getTime() > finishedAt.getTime())
  }

  private async remove(service: ObservedService, log: Logger): Promise<void> {
    await this.options.runtime.removeService(service.id)
    this.options.view.removeService(service.name)
    log.info({ service: service.name }, `removed service ${service.name}`)
  }

  private async recordError(row: Plugin, error: string, requeueAfterMs?: number): Promise<ServiceReconcileResult> {
    const changes = differingFields(row, { status: 'error', error })
    if (Object.keys(changes).length === 0) return requeueAfterMs !== undefined ? { requeueAfterMs } : {}
    this.options.logger.warn({ plugin: row.forgehookId, error }, `${row.forgehookId}: ${error}`)
    await this.options.store.writeStatusWithEvents(row.id, changes, [this.event(row, 'plugin:error', { error })])
    return requeueAfterMs !== undefined ? { requeueAfterMs } : {}
  }

  /** The service as the engine has it now, into the view (after our own create or update). */
  private async refresh(idOrName: string, name = idOrName): Promise<void> {
    const service = await this.options.runtime.inspectService(idOrName)
    if (service) this.options.view.putService(service)
    else this.options.view.removeService(name)
  }

  private isOurs(service: ObservedService): boolean {
    return service.labels[LABELS.managed] === 'true' && service.labels[LABELS.instance] === this.options.service.instance
  }

  private async withRegistryAuth(wanted: WantedService): Promise<WantedService> {
    const auth = await (this.options.registryAuth ?? NO_REGISTRY_AUTH).lookup(wanted.image)
    return auth.credentials ? { ...wanted, registryAuth: registryAuthHeader(auth.credentials) } : wanted
  }

  private event(plugin: Plugin, type: string, data: Record<string, unknown>): NewPluginEvent {
    return { pluginId: plugin.id, forgehookId: plugin.forgehookId, type, data: data as NewPluginEvent['data'] }
  }

  private now(): Date {
    return new Date(this.options.clock.now())
  }
}

function tasksDiffer(previous: readonly TaskRecord[], next: readonly TaskRecord[]): boolean {
  if (previous.length !== next.length) return true
  const byId = new Map(previous.map((task) => [task.taskId, task]))
  return next.some((task) => {
    const before = byId.get(task.taskId)
    return !before || before.state !== task.state || before.desiredState !== task.desiredState || before.nodeState !== task.nodeState || before.containerId !== task.containerId || before.error !== task.error || before.hostPort !== task.hostPort
  })
}
