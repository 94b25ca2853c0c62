import type { Clock, TimerHandle } from './clock.js'

/**
 * The one call a failed round makes; the program's pino Logger fits. Declared here so that
 * util, the lowest layer, needs nothing of logger.ts (which itself builds on util).
 */
export interface RoundFailureLogger {
  warn(details: { err: unknown }, message: string): void
}

/**
 * Runs `round` every `intervalMs` on the injected clock, one round at a time (the next is
 * scheduled when the previous ends). A failed round is logged; the next one still runs.
 */
export class Periodic {
  private timer: TimerHandle | undefined
  private running: Promise<void> | undefined
  private stopped = false

  constructor(
    private readonly options: { clock: Clock; intervalMs: number; logger: RoundFailureLogger; name: string },
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
