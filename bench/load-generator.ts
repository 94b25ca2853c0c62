// An open-loop HTTP load, run as a child process of the rollout benchmark (forked with tsx):
// one GET every `intervalMs` whatever the answers, each with its own timeout. A process of
// its own, so the daemon's CPU is measured without the load's, and neither's event loop
// delays the other's. Every outcome goes to the parent over IPC as it completes; times are
// epoch milliseconds (performance.timeOrigin + performance.now()), comparable across the
// two processes.
//
// Protocol: the parent sends { type: 'start', url, intervalMs, timeoutMs }, later
// { type: 'stop' }; the child sends { type: 'ready' } once, a { type: 'result' } per
// request, and { type: 'done', sent } when every request in flight has finished.

export interface LoadStart {
  type: 'start'
  url: string
  /** Time between two requests; default 20 ms (50 requests/s). */
  intervalMs: number
  /** Per request, until the whole body is read; default 2_000 ms. */
  timeoutMs: number
}

export interface LoadResult {
  index: number
  sentAt: number
  doneAt: number
  /** HTTP status; absent when the request failed before an answer. */
  status?: number
  /** N of "hello from version N" in a 200 body. */
  version?: number
  /** Why it failed: the status and the start of the body, or the error's code (ECONNREFUSED, timeout, ...). */
  failure?: string
}

export type LoadMessage = { type: 'ready' } | { type: 'result'; result: LoadResult } | { type: 'done'; sent: number }

const epochNow = () => performance.timeOrigin + performance.now()

async function once(index: number, url: string, timeoutMs: number): Promise<LoadResult> {
  const sentAt = epochNow()
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
    const body = (await response.text()).trim()
    const doneAt = epochNow()
    if (response.status !== 200) return { index, sentAt, doneAt, status: response.status, failure: `${response.status} ${body.slice(0, 60)}` }
    const version = /hello from version (\d+)/.exec(body)?.[1]
    return { index, sentAt, doneAt, status: 200, ...(version ? { version: Number(version) } : { failure: `200 with an unexpected body: ${body.slice(0, 60)}` }) }
  } catch (error) {
    return { index, sentAt, doneAt: epochNow(), failure: failureKind(error) }
  }
}

/** A short, countable name: fetch wraps the socket error as its cause. */
function failureKind(error: unknown): string {
  const failed = error as { name?: string; cause?: { code?: string; name?: string; message?: string } }
  if (failed.name === 'TimeoutError' || failed.name === 'AbortError') return 'timeout'
  return failed.cause?.code ?? failed.cause?.name ?? failed.name ?? String(error)
}

function run(start: LoadStart): void {
  const send = (message: LoadMessage) => process.send!(message)
  const inFlight = new Set<Promise<void>>()
  const startedAt = performance.now()
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  // Open loop: request k is due at startedAt + k * interval; a late timer sends every due one at once.
  const tick = () => {
    const now = performance.now()
    while (startedAt + sent * start.intervalMs <= now) {
      const request = once(sent, start.url, start.timeoutMs).then((result) => void send({ type: 'result', result }))
      sent += 1
      inFlight.add(request)
      void request.finally(() => inFlight.delete(request))
    }
    timer = setTimeout(tick, Math.max(0, startedAt + sent * start.intervalMs - performance.now()))
  }
  tick()
  process.on('message', (message: { type?: string }) => {
    if (message.type !== 'stop') return
    clearTimeout(timer)
    void Promise.all([...inFlight]).then(() => {
      send({ type: 'done', sent })
      process.disconnect()
    })
  })
}

if (process.send) {
  process.once('message', (message: LoadStart) => {
    if (message.type === 'start') run(message)
  })
  process.send({ type: 'ready' } satisfies LoadMessage)
}
