// A real Postgres server through node-postgres: the pool, start-up retries, and the
// dedicated LISTEN connection.
import type { PostgresPool, PostgresPoolClient } from 'kysely'
import pg from 'pg'
import type { Logger } from '../logger.js'
import { redactConnectionString } from '../config.js'
import { Backoff, sleep } from '../util/backoff.js'
import { formatDuration } from '../util/format-duration.js'
import { ChangeFanout, FEED_CHANNELS, type ChangeFeed, type ChangeListener } from './change-feed.js'
import { DatabaseUnavailableError } from './errors.js'
import { INVALID_STATEMENT_NAME, preparedName } from './prepared-statements.js'
import { numericParsers } from './type-parsers.js'

export interface PostgresPoolOptions {
  connectionString: string
  /** Default 20. */
  max?: number
  /** Server-side statement_timeout; the client gives up 5 s later. Default 30 s. */
  statementTimeoutMs?: number
  logger: Logger
  /** Set as the session's flowforge.manager: the event trigger names the writer with it (migrations/003). */
  managerId?: string
}

export const POOL_APPLICATION_NAME = 'flowforge'
export const LISTEN_APPLICATION_NAME = 'flowforge-listen'

const typeOverrides = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    return numericParsers[oid] ?? pg.types.getTypeParser(oid, format as 'text')
  },
}

function clientConfig(connectionString: string, statementTimeoutMs: number, applicationName: string): pg.ClientConfig {
  return {
    connectionString,
    connectionTimeoutMillis: 5_000,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 5_000,
    // A transaction left open by a bug must not hold locks forever.
    idle_in_transaction_session_timeout: 60_000,
    keepAlive: true,
    // Shown in pg_stat_activity, so an operator can tell our connections apart.
    application_name: applicationName,
    types: typeOverrides,
  }
}

export function createPool(options: PostgresPoolOptions): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(options.connectionString, options.statementTimeoutMs ?? 30_000, POOL_APPLICATION_NAME),
    ...(options.managerId ? { options: `-c flowforge.manager=${options.managerId}` } : {}),
    max: options.max ?? 20,
    idleTimeoutMillis: 30_000,
  })
  // Every client gets its own 'error' listener for its whole life. pg-pool listens only while
  // a client is idle: one checked out but between statements (Kysely holds it from acquire to
  // release, a transaction for all its statements) that the server terminates (a restart,
  // pg_terminate_backend) emitted 'error' with nobody listening, and the process died. The
  // statement then under way, or the next one, fails with the error; the pool drops the client
  // at its release because it is no longer queryable.
  pool.on('connect', (client) => {
    client.on('error', (error) => {
      options.logger.warn({ err: error }, `a Postgres connection failed (${describePgError(error)}); it will be replaced`)
    })
  })
  // The pool's own relay of an idle client's error (the listener above has logged it). Without
  // a listener here the pool throws it and takes the process down.
  pool.on('error', () => undefined)
  return pool
}

/**
 * The pool as Kysely sees it, except that a connection that cannot be made is a
 * DatabaseUnavailableError: the API then answers 503 "the database is not reachable"
 * instead of a bare ECONNREFUSED that could be any service's (a write during a Postgres
 * outage said only "a service the manager depends on is not reachable").
 */
export function poolForKysely(pool: pg.Pool, connectionString: string): PostgresPool {
  const named = { enabled: true }
  return {
    connect: async () => {
      try {
        return withPreparedStatements(await pool.connect(), named)
      } catch (error) {
        const target = redactConnectionString(connectionString)
        throw new DatabaseUnavailableError(`cannot connect to Postgres at ${target}: ${describePgError(error)}`, { cause: error })
      }
    },
    end: () => pool.end(),
  }
}

/**
 * A pooled client that runs registered statements (prepared-statements.ts) as named ones:
 * parsed and planned once per connection. Behind a pooler that hands each transaction a
 * different server connection (PgBouncer in transaction mode before 1.21), a named
 * statement is not there the next time ("prepared statement … does not exist"): the
 * statement then runs unnamed, and so does every registered one on this pool from then on.
 */
function withPreparedStatements(client: pg.PoolClient, named: { enabled: boolean }): PostgresPoolClient {
  return {
    // Not async: a cursor (Kysely's streamQuery) must come back as itself, not in a promise.
    query: ((textOrCursor: string | pg.Submittable, values?: unknown[]) => {
      if (typeof textOrCursor !== 'string') return client.query(textOrCursor)
      const name = named.enabled ? preparedName(textOrCursor) : undefined
      if (name === undefined) return client.query(textOrCursor, values)
      return client.query({ name, text: textOrCursor, values: values ?? [] }).catch((error: unknown) => {
        if ((error as { code?: string }).code !== INVALID_STATEMENT_NAME) throw error
        named.enabled = false
        return client.query(textOrCursor, values)
      })
    }) as unknown as PostgresPoolClient['query'],
    release: () => client.release(),
  }
}

export interface WaitOptions {
  connectionString: string
  logger: Logger
  /** Give up after this long. */
  deadlineMs: number
  now?: () => number
  sleep?: (ms: number) => Promise<void>
}

/**
 * Start-up: try the server until it answers or the deadline passes, one log line per
 * failed attempt. Throws DatabaseUnavailableError naming the server and the last error.
 */
export async function waitForPostgres(pool: pg.Pool, options: WaitOptions): Promise<void> {
  const now = options.now ?? Date.now
  const wait = options.sleep ?? sleep
  const target = redactConnectionString(options.connectionString)
  const started = now()
  const backoff = new Backoff({ initialMs: 500, maxMs: 5_000, jitter: 0.1 })
  for (let attempt = 1; ; attempt++) {
    try {
      await pool.query('SELECT 1')
      if (attempt > 1) options.logger.info({ attempt }, `connected to Postgres at ${target}`)
      return
    } catch (error) {
      const reason = describePgError(error)
      const elapsed = now() - started
      const delay = Math.min(backoff.next(), Math.max(0, options.deadlineMs - elapsed))
      if (elapsed >= options.deadlineMs || delay <= 0) {
        throw new DatabaseUnavailableError(
          `could not connect to Postgres at ${target} within ${formatDuration(options.deadlineMs)} ` +
            `(${attempt} attempts): ${reason}`,
        )
      }
      options.logger.warn(
        { attempt, retryInMs: delay },
        `Postgres at ${target} is not reachable (attempt ${attempt}, retrying in ${formatDuration(delay)}): ${reason}`,
      )
      await wait(delay)
    }
  }
}

/** One readable phrase for the errors an operator meets when connecting. */
export function describePgError(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as { code?: string }).code
  const aggregate = error as Error & { errors?: unknown[] }
  // Node reports "connection refused on every address" as an AggregateError with no message.
  if (!error.message && Array.isArray(aggregate.errors) && aggregate.errors.length > 0) {
    return describePgError(aggregate.errors[0])
  }
  switch (code) {
    case 'ECONNREFUSED':
      return `connection refused (${error.message.replace(/^connect ECONNREFUSED /, '')}): is the server running?`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host not found (${error.message})`
    case '28P01':
    case '28000':
      return `authentication failed: ${error.message}`
    case '3D000':
      return `${error.message}; create it or fix the database name`
    case '57P03':
      return `the server is starting up or shutting down: ${error.message}`
    default:
      return error.message || error.name
  }
}

export interface PostgresChangeFeedOptions {
  connectionString: string
  logger: Logger
  /** How often the idle LISTEN connection is checked with SELECT 1. Default 10 s. */
  heartbeatMs?: number
  /** A heartbeat slower than this counts as a dead connection. Default 5 s. */
  heartbeatTimeoutMs?: number
  /**
   * Reconnect delays. Default 250 ms doubling to 2 s (the leader election's retry period):
   * writes made after the server is back but before LISTEN is re-armed wait for that
   * re-arm, and with a 15 s cap they waited up to 18 s after a one-minute outage.
   */
  reconnect?: { initialMs: number; maxMs: number }
  /** This manager: its own events' notifications are not delivered (it published them as it wrote them). */
  managerId?: string
}

/**
 * LISTEN on a dedicated client (never a pooled one), re-established with backoff whenever it
 * is lost. A server restart may produce neither 'error' nor 'end', so a heartbeat query
 * with a timeout detects a dead connection. Notifications sent while disconnected are gone:
 * listeners are told to resync after every reconnect.
 */
export class PostgresChangeFeed implements ChangeFeed {
  private readonly fanout: ChangeFanout
  private readonly abort = new AbortController()
  private client: pg.Client | undefined
  private loop: Promise<void> | undefined
  private connectedOnce = false
  /** True while LISTEN is armed. */
  connected = false
  reconnects = 0

  constructor(private readonly options: PostgresChangeFeedOptions) {
    this.fanout = new ChangeFanout(options.logger, options.managerId)
  }

  subscribe(listener: ChangeListener): () => void {
    return this.fanout.subscribe(listener)
  }

  start(): void {
    this.loop ??= this.run()
  }

  async close(): Promise<void> {
    this.abort.abort()
    await this.client?.end().catch(() => undefined)
    await this.loop
  }

  private async run(): Promise<void> {
    const reconnect = this.options.reconnect ?? { initialMs: 250, maxMs: 2_000 }
    const backoff = new Backoff({ ...reconnect, jitter: 0.2 })
    const log = this.options.logger
    while (!this.abort.signal.aborted) {
      try {
        const { lost } = await this.listenOnce()
        backoff.reset()
        const reason = await lost
        if (this.abort.signal.aborted) break
        log.warn({ reason }, `the Postgres LISTEN connection was lost (${reason}); reconnecting`)
      } catch (error) {
        if (this.abort.signal.aborted) break
        const delay = backoff.next()
        log.warn(
          { err: error, retryInMs: delay },
          `cannot LISTEN on Postgres (${describePgError(error)}); retrying in ${formatDuration(delay)}`,
        )
        await sleep(delay, this.abort.signal)
      } finally {
        this.connected = false
        const client = this.client
        this.client = undefined
        await client?.end().catch(() => undefined)
      }
    }
  }

  /** Connects and arms LISTEN; `lost` settles with the reason the connection was lost. */
  private async listenOnce(): Promise<{ lost: Promise<string> }> {
    const client = new pg.Client(clientConfig(this.options.connectionString, 10_000, LISTEN_APPLICATION_NAME))
    this.client = client
    let markLost: (reason: string) => void = () => undefined
    const lost = new Promise<string>((resolve) => (markLost = resolve))
    // A long-held client needs its own error handler, or an admin shutdown kills the process.
    client.on('error', (error) => markLost(`error: ${describePgError(error)}`))
    client.on('end', () => markLost('connection ended'))
    client.on('notification', (message) => {
      if (message.payload) this.fanout.deliver(message.channel, message.payload)
    })
    await client.connect()
    await client.query(FEED_CHANNELS.map((channel) => `LISTEN ${channel}`).join('; '))
    this.connected = true
    if (this.connectedOnce) this.reconnects += 1
    if (this.connectedOnce) {
      this.options.logger.info('listening for plugin changes on Postgres again; asking for a full resync')
      this.fanout.resync('the LISTEN connection was re-established')
    } else {
      this.options.logger.debug('listening for plugin changes on Postgres')
    }
    this.connectedOnce = true

    const heartbeat = setInterval(() => {
      withTimeout(client.query('SELECT 1'), this.options.heartbeatTimeoutMs ?? 5_000).catch((error: unknown) =>
        markLost(`heartbeat failed: ${describePgError(error)}`),
      )
    }, this.options.heartbeatMs ?? 10_000)
    const onAbort = () => markLost('closing')
    this.abort.signal.addEventListener('abort', onAbort, { once: true })
    return {
      lost: lost.finally(() => {
        clearInterval(heartbeat)
        this.abort.signal.removeEventListener('abort', onAbort)
      }),
    }
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${formatDuration(timeoutMs)}`)), timeoutMs)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
