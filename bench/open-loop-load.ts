// The parent's side of bench/load-generator.ts: forks it (through tsx, like `npm run bench`
// itself), starts the load, collects every outcome as it arrives, and stops it. The child
// is killed on Ctrl-C and at exit, so no load outlives the benchmark.
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { onInterrupt } from './docker-harness.js'
import type { LoadMessage, LoadResult, LoadStart } from './load-generator.js'

export interface OpenLoopLoad {
  /** Every outcome so far, in the order they completed. */
  results: LoadResult[]
  /** Stops sending, waits for the requests in flight; idempotent. */
  stop(): Promise<{ sent: number }>
}

export interface OpenLoopOptions {
  url: string
  requestsPerSecond: number
  requestTimeoutMs: number
}

export async function startOpenLoopLoad(options: OpenLoopOptions): Promise<OpenLoopLoad> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'load-generator.ts')
  const child: ChildProcess = fork(script, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const killOnExit = () => child.kill('SIGKILL')
  process.on('exit', killOnExit)
  const unregister = onInterrupt(async () => void child.kill('SIGKILL'))
  const results: LoadResult[] = []
  let finished: (sent: number) => void = () => undefined
  const done = new Promise<number>((resolve) => (finished = resolve))
  const ready = new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`the load generator exited with code ${code} before it was ready`)))
    child.on('message', (message: LoadMessage) => {
      if (message.type === 'ready') resolve()
      else if (message.type === 'result') results.push(message.result)
      else if (message.type === 'done') finished(message.sent)
    })
  })
  // A child that dies mid-run still ends the wait: its results so far are what there is.
  child.once('exit', () => finished(results.length))
  await ready
  child.send({ type: 'start', url: options.url, intervalMs: 1000 / options.requestsPerSecond, timeoutMs: options.requestTimeoutMs } satisfies LoadStart)
  let stopping: Promise<{ sent: number }> | undefined
  return {
    results,
    // The measurement stops it, and the finally of a failed one again.
    stop: () =>
      (stopping ??= (async () => {
        if (child.connected) child.send({ type: 'stop' })
        const sent = await done
        process.off('exit', killOnExit)
        unregister()
        return { sent }
      })()),
  }
}
