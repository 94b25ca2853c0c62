import type { WorkQueue } from './work-queue.js'

/**
 * What handling a key asks for next. `requeueAfterMs` schedules another look at the key
 * after that delay (for polling external state); nothing means the key is settled until
 * it is added again. A thrown error means "retry with backoff".
 */
export type HandleResult = { requeueAfterMs?: number } | void

export type KeyHandler = (key: string) => Promise<HandleResult>

/**
 * Told about every error a handler throws, with the delay after which the key is retried
 * (already scheduled: the queue's backoff). Must not throw: an error thrown here ends
 * that worker and rejects `stopped`.
 */
export type KeyErrorReporter = (key: string, error: unknown, retryInMs: number) => void

export interface WorkerPool {
  /** Resolves once every worker has stopped, i.e. after the queue was shut down. */
  stopped: Promise<void>
}

/**
 * Starts `concurrency` workers that take keys from the queue and handle
 * them. The queue guarantees a key is never handled by two workers at once. Workers stop
 * when queue.get() returns undefined, after queue.shutDown(); running work finishes first.
 */
export function runWorkers(
  queue: WorkQueue,
  concurrency: number,
  handle: KeyHandler,
  onError: KeyErrorReporter,
): WorkerPool {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`)
  }
  const workers = Array.from({ length: concurrency }, () => runWorker(queue, handle, onError))
  return { stopped: Promise.all(workers).then(() => undefined) }
}

async function runWorker(queue: WorkQueue, handle: KeyHandler, onError: KeyErrorReporter): Promise<void> {
  for (;;) {
    const key = await queue.get()
    if (key === undefined) return
    await handleKey(queue, key, handle, onError)
  }
}

async function handleKey(queue: WorkQueue, key: string, handle: KeyHandler, onError: KeyErrorReporter): Promise<void> {
  try {
    const result = await handle(key)
    // Success ends the key's backoff, even when the handler asks for a later look.
    queue.forget(key)
    if (result?.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs)
  } catch (error) {
    // Requeue before reporting, so a reporter that throws cannot lose the retry.
    const retryInMs = queue.addRateLimited(key)
    onError(key, error, retryInMs)
  } finally {
    // Always release the key, or it could never be handed out again.
    queue.done(key)
  }
}
