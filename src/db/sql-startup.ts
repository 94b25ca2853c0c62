// The start of a Postgres wire-protocol connection, up to and including authentication,
// done here before a byte reaches PGlite: SSL and GSS encryption requests (declined, as a
// server without TLS does), the StartupMessage, then SASL SCRAM-SHA-256 (see scram.ts).
// Only an authenticated client's StartupMessage is passed on; PGlite answers it with
// AuthenticationOk, its parameters and ReadyForQuery, as a server does after SASLFinal.
// Protocol: "Message Flow / Start-up" and "Message Formats" of the Postgres documentation.
import type { Socket } from 'node:net'
import { SCRAM_MECHANISM, ScramExchange, type ScramVerifier } from './scram.js'

/** The only role PGlite has; psql's default (the login name) is refused with a hint. */
export const SQL_USER = 'postgres'

const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const PROTOCOL_3_0 = 0x0003_0000
/** Postgres' own limit on a StartupMessage (MAX_STARTUP_PACKET_LENGTH). */
const MAX_STARTUP_BYTES = 10_000
/** SASL messages are a few hundred bytes; anything longer is not a client of ours. */
const MAX_SASL_MESSAGE_BYTES = 4_096

const AUTH_SASL = 10
const AUTH_SASL_CONTINUE = 11
const AUTH_SASL_FINAL = 12

export interface StartupOptions {
  socket: Socket
  /** The password's verifier; undefined means no password (the Unix socket: its file permissions decide). */
  verifier: ScramVerifier | undefined
  /** The whole exchange must end within this. */
  timeoutMs: number
}

export type StartupOutcome =
  /** `forward` is the StartupMessage (as protocol 3.0), followed by whatever the client sent after it. */
  | { ok: true; user: string; forward: Buffer }
  /** The client was told why (or went away); the socket is ended. `reason` is for the log. */
  | { ok: false; reason: string; user?: string }

/** Runs the start-up exchange on `socket`; never rejects. */
export function authenticateClient(options: StartupOptions): Promise<StartupOutcome> {
  return new Promise((resolve) => new StartupExchange(options, resolve).begin())
}

type Phase = 'startup' | 'sasl-initial' | 'sasl-response' | 'done'

class StartupExchange {
  private buffered: Buffer = Buffer.alloc(0)
  private phase: Phase = 'startup'
  private startupMessage: Buffer | undefined
  private user: string | undefined
  private scram: ScramExchange | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly options: StartupOptions,
    private readonly resolve: (outcome: StartupOutcome) => void,
  ) {}

  begin(): void {
    const { socket, timeoutMs } = this.options
    this.timer = setTimeout(() => this.fail('28000', `authentication did not finish within ${timeoutMs / 1000} s`), timeoutMs)
    this.timer.unref()
    socket.on('data', this.onData)
    socket.on('error', this.onGone)
    socket.on('close', this.onGone)
  }

  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
    try {
      this.consume()
    } catch (error) {
      this.fail('08P01', error instanceof Error ? error.message : String(error))
    }
  }

  private readonly onGone = (): void => {
    if (this.phase === 'done') return
    this.finish({ ok: false, reason: 'the client went away during authentication', ...(this.user ? { user: this.user } : {}) })
  }

  private consume(): void {
    while (this.phase !== 'done') {
      const message = this.phase === 'startup' ? this.takeUntyped() : this.takeTyped()
      if (message === undefined) return
      if (this.phase === 'startup') this.onStartupPacket(message)
      else this.onPasswordMessage(message)
    }
  }

  /** A start-up packet: int32 length (itself included), int32 code, body. */
  private takeUntyped(): Buffer | undefined {
    if (this.buffered.length < 8) return undefined
    const length = this.buffered.readInt32BE(0)
    if (length < 8 || length > MAX_STARTUP_BYTES) throw new Error(`invalid start-up packet length ${length}`)
    if (this.buffered.length < length) return undefined
    const packet = this.buffered.subarray(0, length)
    this.buffered = this.buffered.subarray(length)
    return packet
  }

  /** A typed message: byte type, int32 length (itself included), body. */
  private takeTyped(): Buffer | undefined {
    if (this.buffered.length < 5) return undefined
    const length = this.buffered.readInt32BE(1)
    if (length < 4 || length > MAX_SASL_MESSAGE_BYTES) throw new Error(`invalid message length ${length}`)
    if (this.buffered.length < 1 + length) return undefined
    const message = this.buffered.subarray(0, 1 + length)
    this.buffered = this.buffered.subarray(1 + length)
    return message
  }

  private onStartupPacket(packet: Buffer): void {
    const code = packet.readInt32BE(4)
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
      // Not offered: the port is on loopback (or a Unix socket). libpq then goes on in plain text.
      this.options.socket.write('N')
      return
    }
    if (code === CANCEL_REQUEST) {
      // PGlite has no backend to signal; a cancel request gets no answer on any server.
      this.options.socket.end()
      this.finish({ ok: false, reason: 'a cancel request (not supported)' })
      return
    }
    if (code >>> 16 !== 3) {
      this.fail('0A000', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: the embedded database speaks 3.0`)
      return
    }
    const parameters = readParameters(packet.subarray(8))
    // A newer 3.x minor version: say we speak 3.0, as a server does, and carry on in 3.0.
    const optional = [...parameters.keys()].filter((name) => name.startsWith('_pq_.'))
    if ((code & 0xffff) !== 0 || optional.length > 0) this.options.socket.write(negotiateProtocolVersion(optional))
    const user = parameters.get('user') ?? ''
    this.user = user
    if (user !== SQL_USER) {
      this.fail('28000', `role "${user}" does not exist: the embedded database has one user, connect with -U ${SQL_USER}`)
      return
    }
    this.startupMessage = startupMessage(parameters)
    if (this.options.verifier === undefined) {
      this.succeed()
      return
    }
    this.scram = new ScramExchange(this.options.verifier)
    this.options.socket.write(authentication(AUTH_SASL, Buffer.from(`${SCRAM_MECHANISM}\0\0`)))
    this.phase = 'sasl-initial'
  }

  private onPasswordMessage(message: Buffer): void {
    if (message[0] !== 0x70) {
      // 'p' is the only message a client may send now; 'X' (Terminate) is a client giving up.
      this.fail('08P01', `expected a password message, got message type ${JSON.stringify(String.fromCharCode(message[0]!))}`)
      return
    }
    const body = message.subarray(5)
    if (this.phase === 'sasl-initial') {
      const nameEnd = body.indexOf(0)
      const mechanism = nameEnd < 0 ? '' : body.toString('utf8', 0, nameEnd)
      if (mechanism !== SCRAM_MECHANISM || body.length < nameEnd + 5) {
        this.fail('28000', `unsupported SASL mechanism "${mechanism}": use ${SCRAM_MECHANISM}`)
        return
      }
      const dataLength = body.readInt32BE(nameEnd + 1)
      const data = dataLength < 0 ? '' : body.toString('utf8', nameEnd + 5, nameEnd + 5 + dataLength)
      const step = this.scram!.first(data)
      if (!step.ok) return this.refusePassword(step.reason)
      this.options.socket.write(authentication(AUTH_SASL_CONTINUE, Buffer.from(step.serverFirst)))
      this.phase = 'sasl-response'
      return
    }
    const step = this.scram!.final(body.toString('utf8'))
    if (!step.ok) return this.refusePassword(step.reason)
    this.options.socket.write(authentication(AUTH_SASL_FINAL, Buffer.from(step.serverFinal)))
    this.succeed()
  }

  private refusePassword(reason: string): void {
    this.fail('28P01', `password authentication failed for user "${this.user ?? ''}"`, reason)
  }

  private succeed(): void {
    // Paused until the new owner of the socket listens: nothing the client sends next is lost.
    this.options.socket.pause()
    this.finish({ ok: true, user: this.user!, forward: Buffer.concat([this.startupMessage!, this.buffered]) })
  }

  /** Tells the client (FATAL, as Postgres does) and ends the connection. */
  private fail(code: string, message: string, logReason: string = message): void {
    if (this.phase === 'done') return
    const { socket } = this.options
    if (socket.writable) socket.end(errorResponse(code, message))
    // A client that does not close its end after the error is cut off.
    setTimeout(() => socket.destroy(), 1_000).unref()
    this.finish({ ok: false, reason: logReason, ...(this.user ? { user: this.user } : {}) })
  }

  private finish(outcome: StartupOutcome): void {
    if (this.phase === 'done') return
    this.phase = 'done'
    clearTimeout(this.timer)
    const { socket } = this.options
    socket.off('data', this.onData)
    socket.off('error', this.onGone)
    socket.off('close', this.onGone)
    // Errors after this point (a reset while the error is sent) are nobody's business.
    if (!outcome.ok) socket.on('error', () => undefined)
    this.resolve(outcome)
  }
}

function readParameters(body: Buffer): Map<string, string> {
  const parameters = new Map<string, string>()
  let offset = 0
  while (offset < body.length && body[offset] !== 0) {
    const nameEnd = body.indexOf(0, offset)
    const valueEnd = nameEnd < 0 ? -1 : body.indexOf(0, nameEnd + 1)
    if (valueEnd < 0) throw new Error('malformed start-up packet')
    parameters.set(body.toString('utf8', offset, nameEnd), body.toString('utf8', nameEnd + 1, valueEnd))
    offset = valueEnd + 1
  }
  return parameters
}

/** The StartupMessage PGlite is given: protocol 3.0, without the protocol options it does not know. */
function startupMessage(parameters: Map<string, string>): Buffer {
  const pairs = [...parameters].filter(([name]) => !name.startsWith('_pq_.')).map(([name, value]) => `${name}\0${value}\0`)
  const body = Buffer.from(`${pairs.join('')}\0`, 'utf8')
  const packet = Buffer.alloc(8 + body.length)
  packet.writeInt32BE(packet.length, 0)
  packet.writeInt32BE(PROTOCOL_3_0, 4)
  body.copy(packet, 8)
  return packet
}

function authentication(kind: number, data: Buffer): Buffer {
  const message = Buffer.alloc(9 + data.length)
  message[0] = 0x52 // 'R'
  message.writeInt32BE(8 + data.length, 1)
  message.writeInt32BE(kind, 5)
  data.copy(message, 9)
  return message
}

function negotiateProtocolVersion(unsupportedOptions: string[]): Buffer {
  const names = Buffer.from(unsupportedOptions.map((name) => `${name}\0`).join(''), 'utf8')
  const message = Buffer.alloc(13 + names.length)
  message[0] = 0x76 // 'v'
  message.writeInt32BE(12 + names.length, 1)
  message.writeInt32BE(0, 5) // the newest minor version we speak: 3.0
  message.writeInt32BE(unsupportedOptions.length, 9)
  names.copy(message, 13)
  return message
}

export function errorResponse(code: string, text: string, severity = 'FATAL'): Buffer {
  const fields = Buffer.from(`S${severity}\0V${severity}\0C${code}\0M${text}\0\0`, 'utf8')
  const message = Buffer.alloc(5 + fields.length)
  message[0] = 0x45 // 'E'
  message.writeInt32BE(4 + fields.length, 1)
  fields.copy(message, 5)
  return message
}
