// The embedded database on the Postgres wire protocol (psql -h 127.0.0.1 -p 5433), so an
// operator can read and edit plugin state in SQL as with a real server.
//
// pglite-socket's handler speaks the protocol; we replace its query queue so that
// - a client holds the single PGlite session only while its transaction or extended-protocol
//   exchange is open (SessionGate), and never interleaves with the daemon's own statements;
// - NOTIFY messages for our channel, which PGlite writes into the stream of whichever client
//   ran the COMMIT, are taken out of that stream and delivered to the daemon's change feed:
//   an UPDATE typed in psql reaches the controller like an API call, at once.
import net from 'node:net'
import type { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketHandler } from '@electric-sql/pglite-socket'
import type { Logger } from '../logger.js'
import { PLUGIN_CHANGES_CHANNEL } from './change-feed.js'
import type { SessionGate } from './session-gate.js'

export interface EmbeddedSqlServerOptions {
  pglite: PGlite
  gate: SessionGate
  logger: Logger
  /** Default 127.0.0.1: the port has no authentication. */
  host?: string
  /** 0 picks a free port (tests). */
  port: number
  /** Called with the payload of every NOTIFY on the plugin_changes channel a client causes. */
  onNotification: (payload: string) => void
  /** Default 16. */
  maxConnections?: number
  /**
   * A client idle inside an open transaction this long is disconnected (its transaction
   * rolled back), since it blocks the daemon. Default 60 s.
   */
  idleInTransactionTimeoutMs?: number
}

type QueryQueue = ConstructorParameters<typeof PGLiteSocketHandler>[0]['queryQueue']

const MESSAGE_NOTIFICATION = 0x41 // 'A'
const MESSAGE_READY_FOR_QUERY = 0x5a // 'Z'
const TRANSACTION_IDLE = 0x49 // 'I'
const SYNC_MESSAGE = new Uint8Array([0x53, 0, 0, 0, 4])

export class EmbeddedSqlServer {
  private server: net.Server | undefined
  private readonly handlers = new Map<number, PGLiteSocketHandler>()
  private readonly queue: GatedQueryQueue

  constructor(private readonly options: EmbeddedSqlServerOptions) {
    this.queue = new GatedQueryQueue(options, (handlerId) => this.disconnectIdle(handlerId))
  }

  /** Starts listening; rejects with a clear message when the port is taken. */
  async start(): Promise<{ host: string; port: number }> {
    const host = this.options.host ?? '127.0.0.1'
    const server = net.createServer((socket) => this.accept(socket))
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        const reason =
          error.code === 'EADDRINUSE'
            ? `port ${this.options.port} on ${host} is already in use; set SQL_PORT to another port, or SQL_PORT=0 to turn the SQL port off`
            : error.message
        reject(new Error(`cannot serve the embedded database over SQL: ${reason}`))
      })
      server.listen(this.options.port, host, () => resolve())
    })
    server.on('error', (error) => this.options.logger.error({ err: error }, 'the embedded SQL port failed'))
    this.server = server
    const address = server.address() as net.AddressInfo
    return { host, port: address.port }
  }

  async stop(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (!server) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    await Promise.all([...this.handlers.values()].map((handler) => handler.detach(true)))
    await closed
  }

  get connectionCount(): number {
    return this.handlers.size
  }

  private accept(socket: net.Socket): void {
    const max = this.options.maxConnections ?? 16
    if (this.handlers.size >= max) {
      this.options.logger.warn({ max }, 'refusing an SQL client: too many connections to the embedded database')
      socket.end(errorResponse('53300', `too many connections to the embedded database (at most ${max})`))
      return
    }
    const handler = new PGLiteSocketHandler({ queryQueue: this.queue as unknown as QueryQueue, closeOnDetach: true })
    this.handlers.set(handler.handlerId, handler)
    handler.addEventListener('close', () => this.handlers.delete(handler.handlerId))
    handler.addEventListener('error', () => this.handlers.delete(handler.handlerId))
    handler.attach(socket).catch((error: unknown) => {
      this.options.logger.warn({ err: error }, 'could not attach an SQL client')
      this.handlers.delete(handler.handlerId)
      socket.destroy()
    })
  }

  private disconnectIdle(handlerId: number): void {
    const handler = this.handlers.get(handlerId)
    if (!handler) return
    this.options.logger.warn(
      { handlerId },
      'disconnecting an SQL client that stayed idle inside a transaction; its transaction is rolled back',
    )
    void handler.detach(true)
  }
}

/** Stands in for pglite-socket's QueryQueueManager (same methods, used by its handler). */
class GatedQueryQueue {
  private readonly streams = new Map<number, BackendStream>()
  private readonly closed = new Set<number>()
  private readonly idleTimers = new Map<number, NodeJS.Timeout>()

  constructor(
    private readonly options: EmbeddedSqlServerOptions,
    private readonly onIdleTimeout: (handlerId: number) => void,
  ) {}

  async enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    const { gate, pglite } = this.options
    await gate.acquire(handlerId)
    this.clearIdleTimer(handlerId)
    if (this.closed.has(handlerId)) {
      // The client went away while waiting: do not run its message.
      await this.endSession(handlerId)
      return 0
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
    if (stream.idle) gate.release(handlerId)
    else this.armIdleTimer(handlerId)
    return written
  }

  clearQueueForHandler(handlerId: number): void {
    this.closed.add(handlerId)
  }

  /** Called when a client disconnects: roll back what it left open and free the session. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    this.closed.add(handlerId)
    this.clearIdleTimer(handlerId)
    this.streams.delete(handlerId)
    if (this.options.gate.currentOwner === handlerId) await this.endSession(handlerId)
  }

  getQueueLength(): number {
    return this.options.gate.waiting
  }

  private async endSession(handlerId: number): Promise<void> {
    const { gate, pglite, logger } = this.options
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
    } finally {
      gate.release(handlerId)
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
    const timeout = this.options.idleInTransactionTimeoutMs ?? 60_000
    const timer = setTimeout(() => this.onIdleTimeout(handlerId), timeout)
    timer.unref()
    this.idleTimers.set(handlerId, timer)
  }

  private clearIdleTimer(handlerId: number): void {
    const timer = this.idleTimers.get(handlerId)
    if (timer) clearTimeout(timer)
    this.idleTimers.delete(handlerId)
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

function errorResponse(code: string, text: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${text}\0\0`, 'utf8')
  const message = Buffer.alloc(5 + fields.length)
  message[0] = 0x45 // 'E'
  message.writeInt32BE(4 + fields.length, 1)
  fields.copy(message, 5)
  return message
}
