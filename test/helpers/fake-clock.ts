import type { Clock, TimerHandle } from '../../src/util/clock.js'

/** A clock that moves only when told to; timers fire in order during advance(). */
export class FakeClock implements Clock {
  private current: number
  private nextId = 1
  private readonly timers = new Map<number, { at: number; callback: () => void }>()

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.current = start
  }

  now(): number {
    return this.current
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.nextId++
    this.timers.set(id, { at: this.current + Math.max(0, ms), callback })
    return { id }
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete((handle as { id: number }).id)
  }

  /** Moves time forward, firing every timer that falls due, earliest first. */
  advance(ms: number): void {
    const target = this.current + ms
    for (;;) {
      let dueId: number | undefined
      let dueAt = Infinity
      for (const [id, timer] of this.timers) {
        if (timer.at <= target && timer.at < dueAt) {
          dueAt = timer.at
          dueId = id
        }
      }
      if (dueId === undefined) break
      const timer = this.timers.get(dueId)!
      this.timers.delete(dueId)
      this.current = Math.max(this.current, timer.at)
      timer.callback()
    }
    this.current = target
  }

  get pendingTimers(): number {
    return this.timers.size
  }
}
