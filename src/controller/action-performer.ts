// Performs one action of a plan against Docker (or the port allocator), by kind, and
// decides nothing: a failure the planner knows comes back as an outcome for
// planRecovery(); any other error is thrown (the reconcile is retried with backoff).
import type { Logger } from '../logger.js'
import type { Plugin, PluginStatusUpdate } from '../db/plugin-store.js'
import {
  ImageNotFoundError,
  LABELS,
  NameConflictError,
  PortInUseError,
  RegistryAuthError,
  type ContainerRuntime,
  type EnsuredImage,
  type ImagePullPolicy,
  type ObservedContainer,
} from '../runtime/container-runtime.js'
import type { Clock } from '../util/clock.js'
import type { ContainerCache } from './container-cache.js'
import type { ImageDigests } from './image-digests.js'
import type { Action, ActionFailure } from './plan-types.js'
import type { PortAllocator } from './port-allocator.js'

/** One execution of a plan: whom it is about and what it learned on the way. */
export interface Run {
  /** The row as last written (the transition phase changes it); absent when the row is gone. */
  row: Plugin | undefined
  pluginId: string | null
  forgehookId: string
  /** The plugin's own container name, forgehook-<name>. */
  mainName: string
  /** The plan's container: the one observed, then the one its create made. */
  containerId: string | undefined
  /** Facts learned while executing, merged into the status at the end. */
  facts: Pick<PluginStatusUpdate, 'containerId' | 'containerName' | 'installedAt' | 'startedAt' | 'stoppedAt' | 'imageDigest'> & { reservedHostPort?: number }
  /** The image this run made sure of last (a pull action, or a create's pull of a missing image). */
  ensured?: EnsuredImage & { image: string }
}

/** What performing one action came to: done, or a failure the planner decides on (with the error to rethrow). */
export type Outcome = { kind: 'done' } | { kind: 'failed'; failure: ActionFailure; error: Error }

const DONE: Outcome = { kind: 'done' }

export interface ActionPerformerOptions {
  runtime: ContainerRuntime
  cache: ContainerCache
  ports: PortAllocator
  clock: Clock
  logger: Logger
  /** Grace period of `docker stop`. */
  stopTimeoutSeconds: number
  /** Where every pull's result is recorded (imagePullPolicy Always compares with it). */
  digests: ImageDigests
}

export class ActionPerformer {
  constructor(private readonly options: ActionPerformerOptions) {}

  async perform(action: Action, run: Run): Promise<Outcome> {
    const { runtime, cache, clock } = this.options
    switch (action.kind) {
      case 'pull':
        return imageOutcome(() => this.ensureImage(action.image, action.policy, run))
      case 'ensure-volumes':
        return this.ensureVolumes(action)
      case 'create':
        return this.create(action, run)
      case 'start':
        return this.start(action.containerId ?? required(run.containerId, action), run)
      case 'stop':
        await cache.whileActing(action.containerId, 'stop', async () => {
          await runtime.stop(action.containerId, this.options.stopTimeoutSeconds)
          await this.refresh(action.containerId)
        })
        if (action.containerId === run.containerId) run.facts.stoppedAt = new Date(clock.now())
        return DONE
      case 'remove':
        await runtime.remove(action.containerId, { anonymousVolumes: action.anonymousVolumes === true })
        cache.removeById(action.containerId)
        if (action.containerId === run.containerId) {
          run.containerId = undefined
          run.facts.containerId = null
        }
        return DONE
      case 'rename':
        try {
          await runtime.rename(action.containerId, action.name)
        } catch (error) {
          if (!(error instanceof NameConflictError)) throw error
          return { kind: 'failed', failure: { kind: 'name-taken', holder: await this.inspectInto(action.name) }, error }
        }
        await this.refresh(action.containerId)
        // Under the plugin's own name, it is the plugin's container from now on.
        if (action.name === run.mainName) {
          run.containerId = action.containerId
          Object.assign(run.facts, { containerId: action.containerId, containerName: action.name })
        }
        return DONE
      case 'release-port':
        if (run.row) await this.options.ports.release(run.row)
        return DONE
      case 'connect-network':
        await runtime.connectNetwork(action.containerId, action.network, action.aliases)
        await this.refresh(action.containerId)
        return DONE
      case 'disconnect-network':
        await runtime.disconnectNetwork(action.containerId, action.network)
        await this.refresh(action.containerId)
        return DONE
      case 'reserve-port': {
        const hostPort = await this.options.ports.reserveExtra()
        if (hostPort === undefined) return { kind: 'failed', failure: { kind: 'no-port', error: 'no free host port left in HOST_PORT_RANGE for a start-first update' }, error: new Error('no free host port') }
        run.facts.reservedHostPort = hostPort
        return DONE
      }
      case 'remove-volumes':
        for (const name of action.names) await runtime.removeVolume(name)
        return DONE
    }
  }

  private async start(containerId: string, run: Run): Promise<Outcome> {
    const { runtime, cache, clock } = this.options
    const outcome = await cache.whileActing(containerId, 'start', async (): Promise<Outcome> => {
      const version = cache.versionOf(containerId)
      try {
        await runtime.start(containerId)
      } catch (error) {
        if (error instanceof PortInUseError) return { kind: 'failed', failure: { kind: 'port-in-use', error: error.message }, error }
        throw error
      }
      // The container our create just made, started: the start's answer says it runs, and
      // the create said everything else, so no inspect waits here (it was most of the gap
      // to the engine's own create+start rate). The entry stays provisional until the
      // controller inspects it off the critical path; anything that judges it (a rollout's
      // verdict) inspects first. Any other container (stopped before, or changed under the
      // start by an event's inspect) is inspected now, as before.
      if (!cache.markStarted(containerId, new Date(clock.now()), version)) await this.refresh(containerId)
      return DONE
    })
    // A rollout's new container under its temporary name is not the plugin's container yet
    // (see created()): recording it would show its id as the plugin's while it is verified,
    // and after a rollback until the next reconcile put the old id back.
    const name = cache.getById(containerId)?.container.name
    const temporary = name !== undefined && name !== run.mainName
    if (outcome.kind === 'done' && !temporary && (containerId === run.containerId || run.containerId === undefined)) {
      Object.assign(run.facts, { startedAt: new Date(clock.now()), containerId })
    }
    return outcome
  }

  /** Create; a missing image is pulled per `missingImage` and the create tried once more, as `docker run` does. */
  private async create(action: Extract<Action, { kind: 'create' }>, run: Run): Promise<Outcome> {
    const { runtime, cache } = this.options
    const { spec } = action
    const name = action.name ?? spec.name
    const options = { ...(action.name ? { name: action.name } : {}), ...(action.extraVolumes?.length ? { extraVolumes: action.extraVolumes } : {}) }
    try {
      return await imageOutcome(async () => {
        // The entry is put before the create counts as done: its create event is an echo either way.
        const containerId = await cache.whileCreating(name, async () => {
          const madeId = await runtime.create(spec, options).catch(async (error: unknown) => {
            if (!(error instanceof ImageNotFoundError) || !action.missingImage) throw error
            await this.ensureImage(spec.image, action.missingImage, run)
            return runtime.create(spec, options)
          })
          // What we just made, as inspect would tell it: no second look needed. Its image is
          // the one this run made sure of, when it did (the engine resolved the tag to it).
          const { image, labels, hostPort, containerPort } = spec
          const imageId = run.ensured?.image === image ? run.ensured.imageId : spec.imageId
          const mounts = [...(spec.volumes ?? []), ...(action.extraVolumes ?? [])].map((volume) => ({ type: 'volume', name: volume.source, destination: volume.target, readOnly: volume.readOnly }))
          cache.putDetailed({ id: madeId, name, image, ...(imageId ? { imageId } : {}), state: 'created', labels, hostPort, containerPort, mounts })
          return madeId
        })
        this.created(run, action, containerId)
      })
    } catch (error) {
      if (!(error instanceof NameConflictError)) throw error
      // Docker may have created it while our call failed, or a crashed manager made it: look.
      return { kind: 'failed', failure: { kind: 'name-taken', holder: await this.inspectInto(name) }, error }
    }
  }

  /** The plan's create is done: by us, or (continue-with) found done already. */
  created(run: Run, action: Action, containerId: string): void {
    if (action.kind !== 'create' && action.kind !== 'rename') throw new Error(`continue-with after a failed ${action.kind}`)
    run.containerId = containerId
    const name = action.kind === 'create' ? (action.name ?? action.spec.name) : action.name
    // A rollout's new container under its temporary name is not the plugin's container yet.
    if (name !== run.mainName) return
    run.facts.containerId = containerId
    run.facts.containerName = name
    if (!run.row?.installedAt) run.facts.installedAt = new Date(this.options.clock.now())
  }

  /** ensureImage, with what a pull found recorded for imagePullPolicy Always (image-digests.ts). */
  private async ensureImage(image: string, policy: ImagePullPolicy, run: Run): Promise<void> {
    const ensured = await this.options.runtime.ensureImage(image, policy)
    if (ensured.pulled) this.options.digests.record(image, ensured, this.options.clock.now())
    run.ensured = { ...ensured, image }
  }

  private async ensureVolumes(action: Extract<Action, { kind: 'ensure-volumes' }>): Promise<Outcome> {
    for (const wanted of action.volumes) {
      const volume = await this.options.runtime.ensureVolume(wanted.name, wanted.labels)
      // Another plugin's (another installation's, someone else's) volume of that name is never mounted.
      const mismatch = [LABELS.managed, LABELS.instance, LABELS.forgehookId].find((label) => volume.labels[label] !== wanted.labels[label])
      if (mismatch === undefined) continue
      const owner = volume.labels[LABELS.managed] !== 'true' ? 'it was not made by FlowForge' : `it belongs to plugin ${volume.labels[LABELS.forgehookId] ?? 'unknown'} of installation ${volume.labels[LABELS.instance] ?? 'unknown'}`
      const error = `volume ${wanted.name} exists and is not this plugin's (${owner}); rename the volume in spec.volumes or remove that volume`
      return { kind: 'failed', failure: { kind: 'volume-taken', error }, error: new Error(error) }
    }
    return DONE
  }

  private async inspectInto(name: string): Promise<ObservedContainer | undefined> {
    const holder = await this.options.runtime.inspect(name)
    if (holder) this.options.cache.putDetailed(holder)
    return holder
  }

  private async refresh(containerId: string): Promise<void> {
    const inspected = await this.options.runtime.inspect(containerId)
    if (inspected) this.options.cache.putDetailed(inspected)
    else this.options.cache.removeById(containerId)
  }
}

async function imageOutcome(operation: () => Promise<void>): Promise<Outcome> {
  try {
    await operation()
    return DONE
  } catch (error) {
    if (error instanceof ImageNotFoundError) return { kind: 'failed', failure: { kind: 'image-missing', error: error.message }, error }
    if (error instanceof RegistryAuthError) return { kind: 'failed', failure: { kind: 'registry-auth', registryHost: error.registryHost, error: error.message }, error }
    throw error
  }
}

function required(containerId: string | undefined, action: Action): string {
  if (!containerId) throw new Error(`${action.kind} planned without a container`)
  return containerId
}
