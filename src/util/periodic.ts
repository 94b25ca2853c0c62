import type { Logger } from '../logger.js'
import type { Clock, TimerHandle } from './clock.js'

/**
 * Runs `round` every `intervalMs` on the injected clock, one round at a time (the next is
 * scheduled when the previous ends). A failed round is logged; the next one still runs.
 */
export class Periodic {
  private timer: TimerHandle | undefined
  private running: Promise<void> | undefined
  private stopped = false

  constructor(
    private readonly options: { clock: Clock; intervalMs: number; logger: Logger; name: string },
    private readonly round: () => Promise<unknown>,
  ) {}

  start(): void {
    this.schedule()
  }

  /** No new round starts; resolves when a running one has finished. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.timer) this.options.clock.clearTimeout(this.timer)
    await this.running
  }

  private schedule(): void {
    if (this.stopped) return
    this.timer = this.options.clock.setTimeout(() => {
      this.running = this.round()
        .then(() => undefined)
        .catch((error: unknown) => this.options.logger.warn({ err: error }, `${this.options.name} round failed: ${(error as Error).message}`))
        .finally(() => this.schedule())
    }, this.options.intervalMs)
  }
}
