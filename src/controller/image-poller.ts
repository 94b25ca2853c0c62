// imagePullPolicy Always on a running plugin: nothing else would ever look at the registry
// again, so a new push under the same tag would go unnoticed. This loop pulls each image
// that an Always plugin declares, at start and then whenever its last pull (by this loop or
// by a reconcile) is IMAGE_POLL_INTERVAL old: never more than one pull of an image per
// interval, however many plugins share it. A pull that finds another image id than the one
// known asks for a resync, whose look at each plugin (resync-check.ts) queues those whose
// container runs another image: the reconcile then rolls the new image out.
//
// A failed pull is logged and tried again one interval later; the running container is
// left as it is (its plugin's status is not touched: nothing about it changed).
import type { Logger } from '../logger.js'
import type { Plugin } from '../db/plugin-store.js'
import type { ContainerRuntime } from '../runtime/container-runtime.js'
import { parseManifest } from '../spec/manifest.js'
import type { Clock, TimerHandle } from '../util/clock.js'
import { formatDuration } from '../util/format-duration.js'
import type { ImageDigests } from './image-digests.js'

export interface ImagePollerOptions {
  listPlugins: () => Promise<Plugin[]>
  runtime: ContainerRuntime
  digests: ImageDigests
  clock: Clock
  logger: Logger
  /** IMAGE_POLL_INTERVAL: the least time between two pulls of one image. Default 5 min. */
  intervalMs: number
  /** Some image reference names another image than before: look at every plugin. */
  onNewImage: (references: string[]) => void
}

/** The shortest wait between two rounds, so that many images due at slightly different times share one. */
const MIN_ROUND_GAP_MS = 1_000
/** How long a stop waits for a pull under way. */
const STOP_GRACE_MS = 2_000

export class ImagePoller {
  private readonly log: Logger
  private timer: TimerHandle | undefined
  private running: Promise<void> | undefined
  private stopped = false
  /** Failed pulls wait an interval too: a registry that refuses us is not asked every second. */
  private readonly failedAt = new Map<string, number>()
  /** What was last logged per image, so that a failure that repeats is logged once per change. */
  private readonly lastFailure = new Map<string, string>()

  constructor(private readonly options: ImagePollerOptions) {
    this.log = options.logger.child({ component: 'image-poller' })
  }

  /** The first round at once, then one whenever an image is due. */
  start(): void {
    this.schedule(0)
  }

  /**
   * No new round starts. A pull under way is waited for a moment only: a registry that hangs
   * would otherwise hold the shutdown for the whole pull timeout. Its result is harmless
   * after the stop (a resync asked of a stopped controller is ignored).
   */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) this.options.clock.clearTimeout(this.timer)
    if (this.running) await Promise.race([this.running, new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref())])
  }

  /** One round: pull every Always image that is due. Returns when the next one is due (ms from now). */
  async pollOnce(): Promise<number> {
    const { clock, intervalMs } = this.options
    const references = alwaysImages(await this.options.listPlugins())
    const changed: string[] = []
    let nextDueMs = intervalMs
    for (const reference of references) {
      if (this.stopped) break
      const waitMs = this.lastLookAt(reference) + intervalMs - clock.now()
      if (waitMs > 0) {
        nextDueMs = Math.min(nextDueMs, waitMs)
        continue
      }
      if (await this.pull(reference)) changed.push(reference)
    }
    for (const reference of [...this.failedAt.keys()]) if (!references.includes(reference)) this.forget(reference)
    if (changed.length > 0) this.options.onNewImage(changed)
    return Math.max(Math.min(MIN_ROUND_GAP_MS, intervalMs), nextDueMs)
  }

  private async pull(reference: string): Promise<boolean> {
    const { clock, digests, runtime } = this.options
    try {
      const ensured = await runtime.ensureImage(reference, 'Always')
      this.failedAt.delete(reference)
      if (this.lastFailure.delete(reference)) this.log.info({ image: reference }, `image poll: ${reference} can be pulled again`)
      const before = digests.latest(reference)
      const changed = digests.record(reference, ensured, clock.now())
      if (changed && before) this.log.info({ image: reference, imageId: ensured.imageId, digest: ensured.digest, previousImageId: before.imageId }, `image poll: ${reference} now names another image (${ensured.digest ?? ensured.imageId})`)
      return changed
    } catch (error) {
      this.failedAt.set(reference, clock.now())
      const message = (error as Error).message
      if (this.lastFailure.get(reference) !== message) {
        this.lastFailure.set(reference, message)
        this.log.warn({ image: reference, err: error }, `image poll: cannot pull ${reference}: ${message}; its plugins keep running what they run, next try in ${formatDuration(this.options.intervalMs)}`)
      }
      return false
    }
  }

  /** The last pull of the image, by anyone, or the last failed one of this loop. */
  private lastLookAt(reference: string): number {
    return Math.max(this.options.digests.latest(reference)?.pulledAt ?? -Infinity, this.failedAt.get(reference) ?? -Infinity)
  }

  private forget(reference: string): void {
    this.failedAt.delete(reference)
    this.lastFailure.delete(reference)
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return
    this.timer = this.options.clock.setTimeout(() => {
      this.running = this.pollOnce()
        .catch((error: unknown) => {
          // The plugin list could not be read (the database is away): the next round tries again.
          this.log.warn({ err: error }, `image poll failed (${(error as Error).message}); trying again in ${formatDuration(this.options.intervalMs)}`)
          return this.options.intervalMs
        })
        .then((nextMs) => {
          this.running = undefined
          this.schedule(nextMs)
        })
    }, delayMs)
  }
}

/** Distinct images of the plugins that should run with imagePullPolicy Always. */
export function alwaysImages(plugins: Plugin[]): string[] {
  const references = new Set<string>()
  for (const plugin of plugins) {
    if (plugin.deletionRequestedAt || plugin.desiredState !== 'running') continue
    const parsed = parseManifest(plugin.manifest)
    if (parsed.ok && parsed.manifest.imagePullPolicy === 'Always') references.add(parsed.manifest.image)
  }
  return [...references]
}
