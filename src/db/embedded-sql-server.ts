// The embedded database on the Postgres wire protocol (psql -h 127.0.0.1 -p 5433), so an
// operator can read and edit plugin state in SQL as with a real server. The port is a
// superuser on the daemon's only database session, so:
// - on TCP every client authenticates with the password (SCRAM-SHA-256, sql-startup.ts)
//   before a byte of it reaches PGlite; an optional Unix socket is guarded by its file
//   permissions (0600: the daemon's user only) instead;
// - pglite-socket's handler speaks the protocol after that, with our query queue
//   (gated-query-queue.ts): a client holds the session only for a turn, a turn is bounded,
//   and the session is reset around each client (sql-session-state.ts).
import { chmodSync, lstatSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import { PGLiteSocketHandler } from '@electric-sql/pglite-socket'
import type { Logger } from '../logger.js'
import { GatedQueryQueue } from './gated-query-queue.js'
import type { ScramVerifier } from './scram.js'
import type { SessionGate } from './session-gate.js'
import { authenticateClient, errorResponse } from './sql-startup.js'
import type { SqlSessionState } from './sql-session-state.js'

export interface EmbeddedSqlServerOptions {
  pglite: PGlite
  gate: SessionGate
  sessions: SqlSessionState
  logger: Logger
  /** The TCP port's password; every TCP client must prove it knows it. */
  verifier: ScramVerifier
  /** Default 127.0.0.1. */
  host?: string
  /** 0 picks a free port (tests); undefined serves no TCP port (the Unix socket only). */
  port?: number
  /**
   * A folder for the Unix socket `.s.PGSQL.<socketPort>` (psql -h <folder> -p <socketPort>),
   * created with mode 0600: whoever can open it is the daemon's user, so it asks no password.
   */
  socketDir?: string
  /** The number in the socket's name. Default 5433. */
  socketPort?: number
  /** Called with the payload of every NOTIFY on the plugin_changes channel a client causes. */
  onNotification: (payload: string) => void
  /** Connections at once, those still authenticating included. Default 16. */
  maxConnections?: number
  /** A client idle inside an open transaction this long is disconnected. Default 60 s. */
  idleInTransactionTimeoutMs?: number
  /**
   * A client transaction (or statement) holding the session this long in all, idle or not,
   * is ended: the client is disconnected and the transaction rolled back. Default 60 s.
   */
  transactionTimeoutMs?: number
  /** Authentication must finish within this. Default 10 s. */
  authenticationTimeoutMs?: number
}

export interface SqlServerAddress {
  /** Undefined when no TCP port is served. */
  host?: string
  port?: number
  /** The Unix socket's path, when one is served. */
  socketPath?: string
}

type QueryQueue = ConstructorParameters<typeof PGLiteSocketHandler>[0]['queryQueue']
type Transport = 'tcp' | 'unix'

export class EmbeddedSqlServer {
  private readonly servers: net.Server[] = []
  private socketPath: string | undefined
  private readonly handlers = new Map<number, PGLiteSocketHandler>()
  private readonly authenticating = new Set<net.Socket>()
  private readonly queue: GatedQueryQueue

  constructor(private readonly options: EmbeddedSqlServerOptions) {
    this.queue = new GatedQueryQueue({
      pglite: options.pglite,
      gate: options.gate,
      sessions: options.sessions,
      logger: options.logger,
      onNotification: options.onNotification,
      idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs ?? 60_000,
      transactionTimeoutMs: options.transactionTimeoutMs ?? 60_000,
      disconnect: (handlerId, reason) => this.disconnect(handlerId, reason),
      otherClientsOpen: (handlerId) => [...this.handlers.keys()].some((id) => id !== handlerId),
    })
  }

  /** Starts listening; rejects with a clear message when the port or socket cannot be had. */
  async start(): Promise<SqlServerAddress> {
    const address: SqlServerAddress = {}
    try {
      if (this.options.port !== undefined) {
        const host = this.options.host ?? '127.0.0.1'
        const server = await this.listen('tcp', (server) => server.listen(this.options.port, host))
        Object.assign(address, { host, port: (server.address() as net.AddressInfo).port })
      }
      if (this.options.socketDir !== undefined) {
        address.socketPath = await this.listenOnSocket(this.options.socketDir)
      }
    } catch (error) {
      await this.stop()
      throw error
    }
    return address
  }

  async stop(): Promise<void> {
    const servers = this.servers.splice(0)
    const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
    for (const socket of this.authenticating) socket.destroy()
    await Promise.all([...this.handlers.values()].map((handler) => handler.detach(true)))
    await closed
    if (this.socketPath !== undefined) removeSocketFile(this.socketPath)
    this.socketPath = undefined
  }

  get connectionCount(): number {
    return this.handlers.size + this.authenticating.size
  }

  private async listenOnSocket(socketDir: string): Promise<string> {
    const socketPath = path.join(path.resolve(socketDir), `.s.PGSQL.${this.options.socketPort ?? 5433}`)
    if (await someoneListens(socketPath)) {
      throw new Error(`cannot serve the embedded database over SQL: ${socketPath} is in use by another process; set SQL_SOCKET_DIR or SQL_PORT`)
    }
    // A socket file left by a process that died.
    removeSocketFile(socketPath)
    // Created 0600 from the start (the umask is set around the bind, which is synchronous),
    // so there is no moment in which another user could connect.
    await this.listen('unix', (server) => {
      const umask = process.umask(0o177)
      try {
        server.listen(socketPath)
      } finally {
        process.umask(umask)
      }
    })
    chmodSync(socketPath, 0o600)
    this.socketPath = socketPath
    return socketPath
  }

  private async listen(transport: Transport, bind: (server: net.Server) => void): Promise<net.Server> {
    const server = net.createServer((socket) => this.accept(socket, transport))
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`cannot serve the embedded database over SQL: ${this.listenProblem(error, transport)}`)))
      server.once('listening', () => resolve())
      bind(server)
    })
    server.on('error', (error) => this.options.logger.error({ err: error }, 'the embedded SQL port failed'))
    this.servers.push(server)
    return server
  }

  private listenProblem(error: NodeJS.ErrnoException, transport: Transport): string {
    if (transport === 'unix') return `cannot create the socket in ${this.options.socketDir} (SQL_SOCKET_DIR): ${error.code ?? error.message}`
    if (error.code !== 'EADDRINUSE') return error.message
    const host = this.options.host ?? '127.0.0.1'
    return `port ${this.options.port} on ${host} is already in use; set SQL_PORT to another port, or SQL_PORT=0 to turn the SQL port off`
  }

  private accept(socket: net.Socket, transport: Transport): void {
    const { logger } = this.options
    const max = this.options.maxConnections ?? 16
    if (this.connectionCount >= max) {
      logger.warn({ max }, 'refusing an SQL client: too many connections to the embedded database')
      socket.on('error', () => undefined)
      socket.end(errorResponse('53300', `too many connections to the embedded database (at most ${max})`))
      return
    }
    this.authenticating.add(socket)
    const client = transport === 'tcp' ? `${socket.remoteAddress}:${socket.remotePort}` : 'the Unix socket'
    void authenticateClient({
      socket,
      verifier: transport === 'tcp' ? this.options.verifier : undefined,
      timeoutMs: this.options.authenticationTimeoutMs ?? 10_000,
    }).then((outcome) => {
      this.authenticating.delete(socket)
      if (!outcome.ok) {
        logger.warn({ client, user: outcome.user, reason: outcome.reason }, 'refused an SQL client of the embedded database')
        return
      }
      logger.debug({ client }, 'SQL client authenticated')
      this.attach(socket, outcome.forward)
    })
  }

  private attach(socket: net.Socket, forward: Buffer): void {
    if (this.servers.length === 0) {
      socket.destroy()
      return
    }
    const handler = new PGLiteSocketHandler({ queryQueue: this.queue as unknown as QueryQueue, closeOnDetach: true })
    this.handlers.set(handler.handlerId, handler)
    handler.addEventListener('close', () => this.handlers.delete(handler.handlerId))
    handler.addEventListener('error', () => this.handlers.delete(handler.handlerId))
    handler
      .attach(socket)
      .then(() => {
        // The StartupMessage (PGlite answers AuthenticationOk, its parameters, ReadyForQuery)
        // and whatever the client sent after it, then the rest of the stream.
        socket.emit('data', forward)
        socket.resume()
      })
      .catch((error: unknown) => {
        this.options.logger.warn({ err: error }, 'could not attach an SQL client')
        this.handlers.delete(handler.handlerId)
        socket.destroy()
      })
  }

  private disconnect(handlerId: number, reason: string): void {
    const handler = this.handlers.get(handlerId)
    if (!handler) return
    this.options.logger.warn({ handlerId }, `disconnecting an SQL client: ${reason}; its transaction is rolled back`)
    void handler.detach(true)
  }
}

function someoneListens(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
}

function removeSocketFile(socketPath: string): void {
  try {
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
}
