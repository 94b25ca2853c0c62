import { describe, expect, test } from 'vitest'
import { WorkQueue } from '../../src/controller/work-queue.js'
import { runWorkers } from '../../src/controller/worker-pool.js'
import { FakeClock } from '../helpers/fake-clock.js'

/** Lets every pending promise continuation run. */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve))

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((settle) => (resolve = settle))
  return { promise, resolve }
}

/** Records whether a promise has settled, without awaiting it. */
function track(promise: Promise<unknown>): { settled: boolean } {
  const state = { settled: false }
  void promise.then(() => (state.settled = true))
  return state
}

/** Fails the key once and returns how long it took to come back, in steps of stepMs. */
async function measureBackoff(clock: FakeClock, queue: WorkQueue, key: string, stepMs: number): Promise<number> {
  const scheduledAt = clock.now()
  queue.addRateLimited(key)
  while (queue.len() === 0) {
    // A broken queue must fail the test, not hang it.
    if (clock.now() - scheduledAt > 600_000) throw new Error(`${key} never came back`)
    clock.advance(stepMs)
  }
  queue.done((await queue.get())!)
  return clock.now() - scheduledAt
}

/**
 * A key requeued with no delay would spin forever in microtasks and hang the test; shutting
 * the queue down after too many runs turns that bug into a failed assertion.
 */
function stopRunaway(queue: WorkQueue, runs: number): void {
  if (runs > 20) queue.shutDown()
}

describe('work queue', () => {
  test('hands out keys in the order they were added', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    queue.add('a')
    queue.add('b')
    expect(queue.len()).toBe(2)
    expect([await queue.get(), await queue.get()]).toEqual(['a', 'b'])
    expect(queue.len()).toBe(0)
    expect(queue.processingCount).toBe(2)
  })

  test('adding a key that is already waiting does nothing', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    queue.add('a')
    queue.add('b')
    queue.add('a')
    expect(queue.len()).toBe(2)
    expect([await queue.get(), await queue.get()]).toEqual(['a', 'b'])
  })

  test('a getter waits until a key is added', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    const next = queue.get()
    const nextState = track(next)
    await flush()
    expect(nextState.settled).toBe(false)
    queue.add('a')
    expect(await next).toBe('a')
  })

  test('a key re-added while processing comes back once, and only after done', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    queue.add('a')
    expect(await queue.get()).toBe('a')
    queue.add('a')
    queue.add('a')
    expect(queue.len()).toBe(0)
    const second = queue.get()
    const secondState = track(second)
    await flush()
    expect(secondState.settled).toBe(false)
    queue.done('a')
    expect(await second).toBe('a')
    queue.done('a')
    expect(queue.len()).toBe(0)
    expect(queue.processingCount).toBe(0)
  })

  test('done on a key that was not re-added does not requeue it', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    queue.add('a')
    queue.done((await queue.get())!)
    expect(queue.len()).toBe(0)
    expect(queue.processingCount).toBe(0)
  })

  test('addAfter adds the key only once the delay has passed', () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock })
    queue.addAfter('a', 5_000)
    expect(queue.delayedCount).toBe(1)
    clock.advance(4_999)
    expect(queue.len()).toBe(0)
    clock.advance(1)
    expect(queue.len()).toBe(1)
    expect(queue.delayedCount).toBe(0)
  })

  test('addAfter keeps the earlier deadline when a key is scheduled twice', () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock })
    queue.addAfter('sooner-second', 5_000)
    queue.addAfter('sooner-second', 1_000)
    queue.addAfter('sooner-first', 1_000)
    queue.addAfter('sooner-first', 5_000)
    expect(queue.delayedCount).toBe(2)
    clock.advance(1_000)
    expect(queue.len()).toBe(2)
    expect(clock.pendingTimers).toBe(0)
  })

  test('addAfter with no delay adds at once', () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    queue.addAfter('a', 0)
    queue.addAfter('b', -10)
    expect(queue.len()).toBe(2)
    expect(queue.delayedCount).toBe(0)
  })

  test('addRateLimited doubles the delay per failure up to the cap, and forget resets it', async () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock, baseDelayMs: 100, maxDelayMs: 500 })
    const delays: number[] = []
    for (let attempt = 0; attempt < 5; attempt++) delays.push(await measureBackoff(clock, queue, 'a', 100))
    expect(delays).toEqual([100, 200, 400, 500, 500])
    expect(queue.failures('a')).toBe(5)
    queue.forget('a')
    expect(queue.failures('a')).toBe(0)
    expect(await measureBackoff(clock, queue, 'a', 100)).toBe(100)
  })

  test('rate limiting defaults to 1 s doubling, capped at 5 min', async () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock })
    const delays: number[] = []
    for (let attempt = 0; attempt < 10; attempt++) delays.push(await measureBackoff(clock, queue, 'a', 1_000))
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000])
  })

  test('a key keeps its own backoff, apart from other keys', async () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock })
    await measureBackoff(clock, queue, 'a', 1_000)
    await measureBackoff(clock, queue, 'a', 1_000)
    expect(await measureBackoff(clock, queue, 'b', 1_000)).toBe(1_000)
    expect(queue.failures('a')).toBe(2)
  })

  test('shutDown wakes every getter with undefined, ignores adds and drops delayed adds', async () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock })
    const getters = [queue.get(), queue.get()]
    queue.addAfter('later', 1_000)
    queue.shutDown()
    expect(await Promise.all(getters)).toEqual([undefined, undefined])
    queue.add('a')
    queue.addRateLimited('b')
    expect(queue.len()).toBe(0)
    expect(queue.delayedCount).toBe(0)
    expect(clock.pendingTimers).toBe(0)
    expect(await queue.get()).toBeUndefined()
  })
})

describe('worker pool', () => {
  test('never runs more than the given number of handlers at once', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    const gate = deferred()
    let inFlight = 0
    let mostInFlight = 0
    const handled: string[] = []
    const pool = runWorkers(queue, 3, async (key) => {
      inFlight += 1
      mostInFlight = Math.max(mostInFlight, inFlight)
      await gate.promise
      handled.push(key)
      inFlight -= 1
    }, () => {})
    for (let index = 0; index < 10; index++) queue.add(`plugin-${index}`)
    await flush()
    expect(inFlight).toBe(3)
    gate.resolve()
    await flush()
    expect(handled).toHaveLength(10)
    expect(mostInFlight).toBe(3)
    queue.shutDown()
    await pool.stopped
  })

  test('handles a key re-added while it runs once more afterwards, never concurrently', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    const firstRun = deferred()
    let runs = 0
    let concurrentRuns = 0
    let mostConcurrentRuns = 0
    runWorkers(queue, 4, async () => {
      runs += 1
      concurrentRuns += 1
      mostConcurrentRuns = Math.max(mostConcurrentRuns, concurrentRuns)
      if (runs === 1) await firstRun.promise
      concurrentRuns -= 1
    }, () => {})
    queue.add('a')
    await flush()
    queue.add('a')
    queue.add('a')
    await flush()
    expect(runs).toBe(1)
    firstRun.resolve()
    await flush()
    expect(runs).toBe(2)
    expect(mostConcurrentRuns).toBe(1)
    queue.shutDown()
  })

  test('retries a failing key with growing backoff and reports each error', async () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock })
    const reported: string[] = []
    let runs = 0
    runWorkers(queue, 2, async () => {
      runs += 1
      stopRunaway(queue, runs)
      throw new Error(`attempt ${runs} failed`)
    }, (key, error) => reported.push(`${key}: ${(error as Error).message}`))
    queue.add('a')
    await flush()
    expect(runs).toBe(1)
    for (const [attempt, backoffMs] of [[2, 1_000], [3, 2_000], [4, 4_000]] as const) {
      clock.advance(backoffMs - 1)
      await flush()
      expect(runs).toBe(attempt - 1)
      clock.advance(1)
      await flush()
      expect(runs).toBe(attempt)
    }
    expect(reported).toEqual(['a: attempt 1 failed', 'a: attempt 2 failed', 'a: attempt 3 failed', 'a: attempt 4 failed'])
    expect(queue.failures('a')).toBe(4)
    queue.shutDown()
  })

  test('a success resets the backoff of the key', async () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock })
    const outcomes = ['fail', 'fail', 'succeed', 'fail']
    let runs = 0
    runWorkers(queue, 1, async () => {
      const outcome = outcomes[runs]
      runs += 1
      stopRunaway(queue, runs)
      if (outcome === 'fail') throw new Error('reconcile failed')
    }, () => {})
    queue.add('a')
    await flush()
    clock.advance(1_000)
    await flush()
    clock.advance(2_000)
    await flush()
    expect(runs).toBe(3)
    expect(queue.failures('a')).toBe(0)
    queue.add('a')
    await flush()
    expect(runs).toBe(4)
    clock.advance(1_000) // back to the first step, not 4 s
    await flush()
    expect(runs).toBe(5)
    queue.shutDown()
  })

  test('honours requeueAfterMs from a successful handler', async () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock })
    let runs = 0
    runWorkers(queue, 2, async () => {
      runs += 1
      stopRunaway(queue, runs)
      return { requeueAfterMs: 30_000 }
    }, () => {})
    queue.add('a')
    await flush()
    expect(runs).toBe(1)
    clock.advance(29_999)
    await flush()
    expect(runs).toBe(1)
    clock.advance(1)
    await flush()
    expect(runs).toBe(2)
    queue.shutDown()
  })

  test('after shutDown the running handler finishes before the pool reports stopped; queued keys are not handed out', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() })
    const release = deferred()
    const finished: string[] = []
    const pool = runWorkers(queue, 1, async (key) => {
      await release.promise
      finished.push(key)
    }, () => {})
    queue.add('a')
    queue.add('b')
    await flush()
    queue.shutDown()
    const stopped = track(pool.stopped)
    await flush()
    expect(stopped.settled).toBe(false)
    release.resolve()
    await flush()
    expect(finished).toEqual(['a'])
    expect(stopped.settled).toBe(true)
  })

  test('the error reporter is told the very delay after which the key is retried', async () => {
    const clock = new FakeClock()
    const queue = new WorkQueue({ clock, baseDelayMs: 100, maxDelayMs: 1_000 })
    const reported: number[] = []
    const runsAt: number[] = []
    runWorkers(queue, 1, async () => {
      runsAt.push(clock.now())
      throw new Error('boom')
    }, (_key, _error, retryInMs) => reported.push(retryInMs))
    const started = clock.now()
    queue.add('a')
    await flush()
    for (let step = 0; step < 4; step++) {
      clock.advance(reported.at(-1)! - 1)
      await flush()
      expect(runsAt).toHaveLength(step + 1)
      clock.advance(1)
      await flush()
    }
    queue.shutDown()
    expect(reported.slice(0, 4)).toEqual([100, 200, 400, 800])
    const gaps = runsAt.slice(1).map((at, index) => at - runsAt[index]!)
    expect(gaps).toEqual(reported.slice(0, gaps.length))
    expect(runsAt[0]).toBe(started)
  })
})
