// Group commit for the store's hot statements. A request that finds no statement of its
// kind in flight goes at once (a batch of one): a quiet store waits for nothing. Requests
// that arrive while one is in flight wait for it and then go out together as one
// statement: one round trip, one parse, one commit (on a server, one of the notifying
// commits Postgres serialises) for all of them. A batch that fails is tried again request
// by request, so every caller gets its own answer: a unique-index violation is one
// plugin's, never its neighbours'. Those retries, and requests the batch leaves to the
// single path (a row another session holds locked), run beside the next batches: a
// request that has to wait never holds up the others.

export interface StatementBatcherOptions<Request, Result> {
  /** Most requests in one statement. */
  maxBatch: number
  /**
   * One or more requests in one statement; one result per request, in order. It must not
   * wait for other sessions' row locks (SKIP LOCKED): a result of `RETRY_ALONE` sends that
   * request down `one` instead (a row the batch did not take).
   */
  many: (requests: Request[]) => Promise<(Result | typeof RETRY_ALONE)[]>
  /** One request on its own, the plain statement: a request `many` left, or the retry of a failed batch. */
  one: (request: Request) => Promise<Result>
  /** Requests with the same key never share a statement (one row written twice in one statement); undefined: no such bound. Default: none. */
  key?: (request: Request) => string | undefined
}

/** What `many` answers for a request it leaves to `one`. */
export const RETRY_ALONE: unique symbol = Symbol('retry alone')

interface Pending<Request, Result> {
  request: Request
  resolve: (result: Result) => void
  reject: (error: unknown) => void
}

export class StatementBatcher<Request, Result> {
  private readonly queue: Pending<Request, Result>[] = []
  private draining = false
  /** Statements sent, and requests they carried: how much batching happened. */
  readonly stats = { statements: 0, requests: 0 }

  constructor(private readonly options: StatementBatcherOptions<Request, Result>) {}

  submit(request: Request): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ request, resolve, reject })
      if (!this.draining) void this.drain()
    })
  }

  private async drain(): Promise<void> {
    this.draining = true
    try {
      for (;;) {
        // Let every caller that is ready to run reach its next request first: the callers
        // the last statement answered are still on their way back to submit (a handful of
        // awaits each), and without this turn they would miss the statement and wait for
        // the next one. One turn of the event loop; a quiet store loses only that.
        await new Promise<void>((resolve) => setImmediate(resolve))
        if (this.queue.length === 0) break
        await this.send(this.take())
      }
    } finally {
      this.draining = false
    }
  }

  /** The oldest requests, up to maxBatch, at most one per key; the rest keep their places. */
  private take(): Pending<Request, Result>[] {
    const { key, maxBatch } = this.options
    if (!key) return this.queue.splice(0, maxBatch)
    const batch: Pending<Request, Result>[] = []
    const keys = new Set<string>()
    for (let index = 0; index < this.queue.length && batch.length < maxBatch; ) {
      const pending = this.queue[index]!
      const pendingKey = key(pending.request)
      if (pendingKey !== undefined && keys.has(pendingKey)) {
        index += 1
        continue
      }
      if (pendingKey !== undefined) keys.add(pendingKey)
      batch.push(pending)
      this.queue.splice(index, 1)
    }
    return batch
  }

  private async send(batch: Pending<Request, Result>[]): Promise<void> {
    this.stats.statements += 1
    this.stats.requests += batch.length
    let results: (Result | typeof RETRY_ALONE)[]
    try {
      results = await this.options.many(batch.map((pending) => pending.request))
    } catch {
      // Whose fault it was is for each request to find out on its own.
      for (const pending of batch) void this.alone(pending)
      return
    }
    for (const [index, pending] of batch.entries()) {
      const result = index < results.length ? results[index]! : RETRY_ALONE
      if (result === RETRY_ALONE) void this.alone(pending)
      else pending.resolve(result)
    }
  }

  private async alone(pending: Pending<Request, Result>): Promise<void> {
    try {
      pending.resolve(await this.options.one(pending.request))
    } catch (error) {
      pending.reject(error)
    }
  }
}
