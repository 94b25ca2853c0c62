// What runs an SQL-port client's messages on the one PGlite session: it stands in for
// pglite-socket's QueryQueueManager (same methods, called by its PGLiteSocketHandler), so that
// - a client holds the session (SessionGate) only for a turn: from its first message until
//   its transaction, or extended-protocol exchange, is over (ReadyForQuery 'I');
// - a turn has an overall bound, idle or not: a client that keeps a transaction open past it
//   (even by sending a statement every few seconds) is disconnected and rolled back, so no
//   client can block the daemon for good;
// - each turn starts with the client's own settings and ends with the daemon's (see
//   sql-session-state.ts), and each client session starts and ends with the session reset;
// - NOTIFY messages of our channel, which PGlite writes into the stream of whichever client
//   ran the COMMIT, are taken out of that stream and given to the daemon's change feed.
import type { PGlite } from '@electric-sql/pglite'
import type { Logger } from '../logger.js'
import { PLUGIN_CHANGES_CHANNEL } from './change-feed.js'
import type { SessionGate } from './session-gate.js'
import type { SqlSessionState } from './sql-session-state.js'

const MESSAGE_NOTIFICATION = 0x41 // 'A'
const MESSAGE_READY_FOR_QUERY = 0x5a // 'Z'
const TRANSACTION_IDLE = 0x49 // 'I'
const SYNC_MESSAGE = new Uint8Array([0x53, 0, 0, 0, 4])

export interface GatedQueryQueueOptions {
  pglite: PGlite
  gate: SessionGate
  sessions: SqlSessionState
  logger: Logger
  /** Called with the payload of every NOTIFY on the plugin_changes channel a client causes. */
  onNotification: (payload: string) => void
  /** A turn idle inside an open transaction this long ends the client. */
  idleInTransactionTimeoutMs: number
  /** A turn this long in all, idle or not, ends the client. */
  transactionTimeoutMs: number
  /** Disconnects the client (its handler detaches, which calls clearTransactionIfNeeded). */
  disconnect: (handlerId: number, reason: string) => void
  /** Whether a client session other than this one is open. */
  otherClientsOpen: (handlerId: number) => boolean
}

export class GatedQueryQueue {
  private readonly streams = new Map<number, BackendStream>()
  private readonly closed = new Set<number>()
  private readonly started = new Set<number>()
  private readonly idleTimers = new Map<number, NodeJS.Timeout>()
  private readonly turnTimers = new Map<number, NodeJS.Timeout>()
  private readonly running = new Map<number, Promise<void>>()

  constructor(private readonly options: GatedQueryQueueOptions) {}

  async enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    // The handler sends one message at a time; a disconnect waits for the one in flight.
    const running = this.run(handlerId, message, onData)
    this.running.set(handlerId, running.then(() => undefined, () => undefined))
    try {
      return await running
    } finally {
      this.running.delete(handlerId)
    }
  }

  private async run(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    const { gate, pglite, sessions } = this.options
    const newTurn = gate.currentOwner !== handlerId
    await gate.acquire(handlerId)
    this.clearTimer(this.idleTimers, handlerId)
    if (this.closed.has(handlerId)) {
      // The client went away while waiting: do not run its message.
      await this.endSession(handlerId)
      return 0
    }
    try {
      if (!this.started.has(handlerId)) {
        this.started.add(handlerId)
        await sessions.discardSession(handlerId, this.options.otherClientsOpen(handlerId))
      }
      if (newTurn) {
        this.armTurnTimer(handlerId)
        await sessions.beginTurn(handlerId)
      }
    } catch (error) {
      await this.endSession(handlerId)
      throw error
    }
    const stream = this.streamFor(handlerId)
    stream.beginMessage()
    let written = 0
    try {
      await pglite.runExclusive(() =>
        pglite.execProtocolRawStream(message, {
          onRawData: (bytes) => {
            written += bytes.length
            stream.push(bytes, onData)
          },
        }),
      )
    } catch (error) {
      await this.endSession(handlerId)
      throw error
    }
    // Disconnected meanwhile (a timeout): clearTransactionIfNeeded ends the session.
    if (this.closed.has(handlerId)) return written
    if (stream.idle) await this.endTurn(handlerId)
    else this.armIdleTimer(handlerId)
    return written
  }

  clearQueueForHandler(handlerId: number): void {
    this.closed.add(handlerId)
  }

  /** Called when a client disconnects: roll back what it left open, reset the session, free it. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    this.closed.add(handlerId)
    this.clearTimer(this.idleTimers, handlerId)
    this.clearTimer(this.turnTimers, handlerId)
    this.streams.delete(handlerId)
    await this.running.get(handlerId)
    if (this.options.gate.currentOwner === handlerId) await this.endSession(handlerId)
    // Not holding the session: take it once more, to leave it as a new client should find it.
    else if (this.started.has(handlerId)) await this.options.gate.run(() => this.discardQuietly(handlerId))
    // Its handler sends nothing more after a detach.
    this.closed.delete(handlerId)
  }

  getQueueLength(): number {
    return this.options.gate.waiting
  }

  /** The client's turn is over: its settings aside, the daemon's back, and the session handed on. */
  private async endTurn(handlerId: number): Promise<void> {
    this.clearTimer(this.turnTimers, handlerId)
    try {
      await this.options.sessions.endTurn(handlerId)
    } catch (error) {
      this.options.logger.error({ err: error }, 'could not reset the embedded database session after an SQL client')
    } finally {
      this.options.gate.release(handlerId)
    }
  }

  /** Ends what the client left (an extended-protocol exchange, a transaction), resets, frees the session. */
  private async endSession(handlerId: number): Promise<void> {
    const { gate, pglite, logger } = this.options
    this.clearTimer(this.turnTimers, handlerId)
    try {
      await pglite.runExclusive(async () => {
        // Sync ends an unfinished extended-protocol exchange; then close any transaction.
        await pglite.execProtocolRawStream(SYNC_MESSAGE, { onRawData: () => undefined })
        if (pglite.isInTransaction()) {
          await pglite.execProtocolRawStream(simpleQuery('ROLLBACK'), { onRawData: () => undefined })
        }
      })
    } catch (error) {
      logger.error({ err: error }, 'could not roll back the transaction of a disconnected SQL client')
    }
    try {
      await this.discardQuietly(handlerId)
    } finally {
      gate.release(handlerId)
    }
  }

  private async discardQuietly(handlerId: number): Promise<void> {
    this.started.delete(handlerId)
    try {
      await this.options.sessions.discardSession(handlerId, this.options.otherClientsOpen(handlerId))
    } catch (error) {
      this.options.logger.error({ err: error }, 'could not reset the embedded database session after an SQL client left')
    }
  }

  private streamFor(handlerId: number): BackendStream {
    let stream = this.streams.get(handlerId)
    if (!stream) {
      stream = new BackendStream(this.options.onNotification)
      this.streams.set(handlerId, stream)
    }
    return stream
  }

  private armIdleTimer(handlerId: number): void {
    const timeoutMs = this.options.idleInTransactionTimeoutMs
    this.arm(this.idleTimers, handlerId, timeoutMs, `it stayed idle inside a transaction for ${timeoutMs / 1000} s`)
  }

  private armTurnTimer(handlerId: number): void {
    const timeoutMs = this.options.transactionTimeoutMs
    this.arm(this.turnTimers, handlerId, timeoutMs, `its transaction held the database for ${timeoutMs / 1000} s (SQL_TRANSACTION_TIMEOUT)`)
  }

  private arm(timers: Map<number, NodeJS.Timeout>, handlerId: number, timeoutMs: number, reason: string): void {
    this.clearTimer(timers, handlerId)
    const timer = setTimeout(() => {
      timers.delete(handlerId)
      this.options.disconnect(handlerId, reason)
    }, timeoutMs)
    timer.unref()
    timers.set(handlerId, timer)
  }

  private clearTimer(timers: Map<number, NodeJS.Timeout>, handlerId: number): void {
    const timer = timers.get(handlerId)
    if (timer) clearTimeout(timer)
    timers.delete(handlerId)
  }
}

/**
 * Splits the backend's byte stream for one client into messages: it notes whether the
 * last message was ReadyForQuery in the idle state, and takes NOTIFY messages of our
 * channel out of the stream.
 */
export class BackendStream {
  private pending: Buffer = Buffer.alloc(0)
  /** The last message of the current response was ReadyForQuery('I'). */
  idle = false

  constructor(private readonly onNotification: (payload: string) => void) {}

  /** A new client message is about to run: it is idle again only once ReadyForQuery('I') comes. */
  beginMessage(): void {
    this.idle = false
  }

  push(chunk: Uint8Array, forward: (data: Uint8Array) => void): void {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk])
    const out: Buffer[] = []
    let offset = 0
    while (this.pending.length - offset >= 5) {
      const type = this.pending[offset]!
      const length = this.pending.readInt32BE(offset + 1)
      if (this.pending.length - offset < 1 + length) break
      const message = this.pending.subarray(offset, offset + 1 + length)
      offset += 1 + length
      this.idle = type === MESSAGE_READY_FOR_QUERY && message[5] === TRANSACTION_IDLE
      if (type === MESSAGE_NOTIFICATION) {
        const notification = parseNotification(message)
        if (notification?.channel === PLUGIN_CHANGES_CHANNEL) {
          this.onNotification(notification.payload)
          continue
        }
      }
      out.push(message)
    }
    this.pending = Buffer.from(this.pending.subarray(offset))
    if (out.length > 0) forward(out.length === 1 ? out[0]! : Buffer.concat(out))
  }
}

function parseNotification(message: Buffer): { channel: string; payload: string } | undefined {
  // 'A', int32 length, int32 pid, channel\0, payload\0
  const channelStart = 9
  const channelEnd = message.indexOf(0, channelStart)
  if (channelEnd < 0) return undefined
  const payloadEnd = message.indexOf(0, channelEnd + 1)
  if (payloadEnd < 0) return undefined
  return {
    channel: message.toString('utf8', channelStart, channelEnd),
    payload: message.toString('utf8', channelEnd + 1, payloadEnd),
  }
}

function simpleQuery(sql: string): Uint8Array {
  const body = Buffer.from(sql + '\0', 'utf8')
  const message = Buffer.alloc(5 + body.length)
  message[0] = 0x51 // 'Q'
  message.writeInt32BE(4 + body.length, 1)
  body.copy(message, 5)
  return message
}
