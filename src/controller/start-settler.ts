// The inspect after our own start of a container our create just made, taken off the
// reconcile's critical path. The start's answer and the create say all that the status
// records (container id, port binding, state running); the cache holds that entry as
// provisional (container-cache.ts markStarted) until this inspects it: the engine's own
// start time, the image HEALTHCHECK's state and the networks. It runs when no reconcile is
// queued or running (Docker's time is theirs while a batch converges), and at the latest
// `maxDelayMs` after it was first needed. Whatever the inspect shows that the provisional
// entry did not (the container exited meanwhile, say) queues the plugin, as an event would.
// Nothing of it is stored: after a crash the start resync lists and inspects afresh.
import type { Logger } from '../logger.js'
import { LABELS, RuntimeUnavailableError, type ContainerRuntime, type ObservedContainer } from '../runtime/container-runtime.js'
import type { Clock, TimerHandle } from '../util/clock.js'
import { mapLimit } from '../util/concurrency.js'
import type { ContainerCache } from './container-cache.js'

export interface StartSettlerOptions {
  cache: ContainerCache
  runtime: ContainerRuntime
  clock: Clock
  logger: Logger
  /** Whether reconciles are queued or running: the settling waits for them. */
  busy: () => boolean
  /** Queues a plugin whose container turned out other than its provisional entry said. */
  enqueue: (pluginId: string) => void
  /** How often a busy queue is looked at again. Default 250 ms. */
  pollMs?: number
  /** The longest a provisional entry waits for an idle queue. Default 60_000 ms. */
  maxDelayMs?: number
}

/** Inspects in flight at once: a few, so that the settling never floods the engine. */
const CONCURRENCY = 4

export class StartSettler {
  private timer: TimerHandle | undefined
  private running: Promise<void> | undefined
  /** When the oldest unsettled entry was first noticed (clock ms). */
  private waitingSince: number | undefined
  private stopped = false

  constructor(private readonly options: StartSettlerOptions) {}

  /** Call after each reconcile: schedules a settling when provisional entries wait. */
  notice(): void {
    if (this.stopped || this.timer || this.running) return
    if (this.options.cache.unsettled().length === 0) return
    this.waitingSince ??= this.options.clock.now()
    this.timer = this.options.clock.setTimeout(() => {
      this.timer = undefined
      this.running = this.settleWhenIdle().finally(() => {
        this.running = undefined
        this.notice()
      })
    }, this.options.pollMs ?? 250)
  }

  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) this.options.clock.clearTimeout(this.timer)
    this.timer = undefined
    await this.running
  }

  private async settleWhenIdle(): Promise<void> {
    const { cache, clock, busy } = this.options
    const waited = clock.now() - (this.waitingSince ?? clock.now())
    // Busy: notice() (from .finally) looks again after the poll interval.
    if (busy() && waited < (this.options.maxDelayMs ?? 60_000)) return
    this.waitingSince = undefined
    await mapLimit(cache.unsettled(), CONCURRENCY, (containerId) => this.settle(containerId))
  }

  private async settle(containerId: string): Promise<void> {
    const { cache, runtime } = this.options
    if (this.stopped) return
    const before = cache.getById(containerId)
    const version = cache.versionOf(containerId)
    if (!before?.provisional) return
    let inspected: ObservedContainer | undefined
    try {
      inspected = await runtime.inspect(containerId)
    } catch (error) {
      // Left provisional: the next settling (or the plugin's next reconcile) looks again.
      if (!(error instanceof RuntimeUnavailableError)) this.options.logger.warn({ err: error, containerId }, `could not inspect ${before.container.name} after its start: ${(error as Error).message}`)
      return
    }
    // Changed meanwhile (an event's inspect, a reconcile's): that entry is newer than this look.
    if (cache.versionOf(containerId) !== version) return
    const pluginId = before.container.labels[LABELS.pluginId]
    if (!inspected) {
      cache.removeById(containerId)
      if (pluginId) this.options.enqueue(pluginId)
      return
    }
    cache.putDetailed(inspected)
    if (pluginId && !sameAsStarted(before.container, inspected)) this.options.enqueue(pluginId)
  }
}

/**
 * Whether the inspect shows the container our start left, as the planner sees it: running,
 * same id, image, port binding and our labels. The start time (the engine's, a few ms before our
 * answer) and the health (the health monitor's to read) are what the inspect adds.
 */
function sameAsStarted(provisional: ObservedContainer, inspected: ObservedContainer): boolean {
  // The engine adds the image's own labels to what our create set: ours must all be there.
  return (
    inspected.id === provisional.id &&
    inspected.name === provisional.name &&
    inspected.state === 'running' &&
    inspected.image === provisional.image &&
    inspected.hostPort === provisional.hostPort &&
    inspected.containerPort === provisional.containerPort &&
    Object.entries(provisional.labels).every(([key, value]) => inspected.labels[key] === value)
  )
}
