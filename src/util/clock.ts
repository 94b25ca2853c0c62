// Time as an injected dependency, so queue backoff, crash-loop backoff and intervals can be
// tested without sleeping (test/helpers/fake-clock.ts).
export type TimerHandle = { readonly id: number } | NodeJS.Timeout

export interface Clock {
  now(): number
  setTimeout(callback: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, ms)
    // Timers never keep the process alive on their own: shutdown is explicit.
    timer.unref()
    return timer
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}
