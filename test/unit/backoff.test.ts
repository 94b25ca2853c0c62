import { describe, expect, test } from 'vitest'
import { Backoff, backoffDelayMs, sleep } from '../../src/util/backoff.js'

describe('backoff', () => {
  test('one formula: the initial delay after no failure, times the factor per failure, capped', () => {
    const curve = { initialMs: 100, maxMs: 1_000 }
    expect([0, 1, 2, 3, 4, 5].map((failures) => backoffDelayMs(failures, curve))).toEqual([100, 200, 400, 800, 1_000, 1_000])
    expect(backoffDelayMs(2, { ...curve, factor: 3 })).toBe(900)
    expect(backoffDelayMs(-1, curve)).toBe(100)
    expect(backoffDelayMs(5_000, curve)).toBe(1_000)
  })

  test('doubles from the initial delay up to the cap, and starts over after reset', () => {
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 5_000 })
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([1_000, 2_000, 4_000, 5_000, 5_000])
    expect(backoff.attempts).toBe(5)
    backoff.reset()
    expect(backoff.next()).toBe(1_000)
  })

  test('jitter spreads delays within the given fraction and never past the cap', () => {
    const low = new Backoff({ initialMs: 1_000, maxMs: 1_500, jitter: 0.2 }, () => 0)
    const high = new Backoff({ initialMs: 1_000, maxMs: 1_500, jitter: 0.2 }, () => 1)
    expect(low.next()).toBe(800)
    expect(high.next()).toBe(1_200)
    high.next()
    expect(high.next()).toBe(1_500)
  })

  test('an aborted sleep ends at once', async () => {
    const controller = new AbortController()
    const sleeping = sleep(60_000, controller.signal)
    controller.abort()
    await expect(sleeping).resolves.toBeUndefined()
  })
})
