// Byte-level helpers for Docker's HTTP streams, kept pure so that tests can feed them
// chunk boundaries that a real engine produces only by chance.

import { StringDecoder } from 'node:string_decoder'
import type { ContainerHealth, RuntimeEvent } from './container-runtime.js'

/** A line longer than this means the peer is not speaking line-delimited JSON. */
const MAX_LINE_CHARS = 1024 * 1024

/**
 * Splits a stream of chunks into lines. Docker's chunks do not align with its JSON
 * objects, and a chunk may even end inside a multi-byte UTF-8 character, so bytes are
 * decoded with a StringDecoder before splitting.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8')
  private pending = ''

  /** The complete, non-empty lines this chunk finished; the rest waits for the next chunk. */
  push(chunk: Buffer | string): string[] {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk)
    const parts = this.pending.split('\n')
    this.pending = parts.pop() ?? ''
    if (this.pending.length > MAX_LINE_CHARS) {
      throw new Error(`a line of the stream exceeds ${MAX_LINE_CHARS} characters`)
    }
    return nonEmptyLines(parts)
  }

  /** The last line when the stream ended without a newline. */
  end(): string[] {
    const rest = this.pending + this.decoder.end()
    this.pending = ''
    return nonEmptyLines([rest])
  }
}

function nonEmptyLines(parts: string[]): string[] {
  return parts.map((part) => (part.endsWith('\r') ? part.slice(0, -1) : part)).filter((line) => line.length > 0)
}

const FRAME_HEADER_BYTES = 8
/** stdin, stdout, stderr: the only stream types a frame header can carry. */
const MAX_STREAM_TYPE = 2

/**
 * Turns the body of a non-follow logs request into text. A container without a TTY
 * answers with frames (1 byte stream type, 3 zero bytes, 4 bytes big-endian length, then
 * the payload); a TTY container answers with raw bytes. API 1.41 labels both
 * `application/vnd.docker.raw-stream`, so the body itself decides: only a body that
 * parses as frames from start to end is demultiplexed.
 */
export function demultiplexDockerLogs(body: Buffer): string {
  if (!isMultiplexed(body)) return body.toString('utf8')
  const payloads: Buffer[] = []
  let offset = 0
  while (offset < body.length) {
    const size = body.readUInt32BE(offset + 4)
    payloads.push(body.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + size))
    offset += FRAME_HEADER_BYTES + size
  }
  // Decode once at the end: a character may be split across two frames.
  return Buffer.concat(payloads).toString('utf8')
}

/**
 * The incremental form of demultiplexDockerLogs, for a follow stream whose frames span
 * chunks and whose chunks span frames. A follow stream cannot be judged whole, so its
 * first 8 bytes decide: a valid frame header means frames, anything else a TTY's raw
 * bytes (text never starts with a byte 0-2 followed by three zero bytes).
 */
export class LogDemultiplexer {
  private readonly decoder = new StringDecoder('utf8')
  private pending: Buffer = Buffer.alloc(0)
  private framing: 'undecided' | 'frames' | 'raw' = 'undecided'
  /** Payload bytes of the current frame not yet seen. */
  private payloadLeft = 0

  /** The text this chunk completes; '' while a header or a character is still partial. */
  push(chunk: Buffer): string {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk])
    if (this.framing === 'undecided') {
      if (this.pending.length < FRAME_HEADER_BYTES) return ''
      this.framing = isFrameHeader(this.pending, 0) ? 'frames' : 'raw'
    }
    if (this.framing === 'raw') return this.decode([this.takePending(this.pending.length)])
    return this.decode(this.takePayloads())
  }

  /** What is left when the stream ends: a partial character, or a short raw body. */
  end(): string {
    const rest = this.framing === 'frames' ? '' : this.decoder.write(this.pending)
    this.pending = Buffer.alloc(0)
    return rest + this.decoder.end()
  }

  private takePayloads(): Buffer[] {
    const payloads: Buffer[] = []
    for (;;) {
      if (this.payloadLeft > 0) {
        if (this.pending.length === 0) return payloads
        const payload = this.takePending(Math.min(this.payloadLeft, this.pending.length))
        this.payloadLeft -= payload.length
        payloads.push(payload)
        continue
      }
      if (this.pending.length < FRAME_HEADER_BYTES) return payloads
      if (!isFrameHeader(this.pending, 0)) throw new Error('the log stream lost its frame alignment')
      this.payloadLeft = this.pending.readUInt32BE(4)
      this.takePending(FRAME_HEADER_BYTES)
    }
  }

  private takePending(bytes: number): Buffer {
    const taken = this.pending.subarray(0, bytes)
    this.pending = this.pending.subarray(bytes)
    return taken
  }

  private decode(payloads: Buffer[]): string {
    // One decoder across frames: a character may be split between two of them.
    return payloads.map((payload) => this.decoder.write(payload)).join('')
  }
}

function isFrameHeader(bytes: Buffer, offset: number): boolean {
  const streamType = bytes[offset] ?? 0xff
  return streamType <= MAX_STREAM_TYPE && bytes.readUIntBE(offset + 1, 3) === 0
}

function isMultiplexed(body: Buffer): boolean {
  if (body.length === 0) return false
  let offset = 0
  while (offset < body.length) {
    if (body.length - offset < FRAME_HEADER_BYTES) return false
    if (!isFrameHeader(body, offset)) return false
    offset += FRAME_HEADER_BYTES + body.readUInt32BE(offset + 4)
  }
  return offset === body.length
}

/** The fields of one `/events` message that we read. */
interface DockerEventMessage {
  Type?: string
  Action?: string
  Actor?: { ID?: string; Attributes?: Record<string, string> }
  time?: number
  timeNano?: number
}

/**
 * Attributes the engine adds to a container event next to the container's labels. They
 * are dropped so that an event's labels are the container's labels.
 */
const ENGINE_ATTRIBUTES = new Set(['name', 'image', 'exitCode', 'signal', 'execID', 'execDuration'])

const HEALTH_VALUES: ReadonlySet<string> = new Set<ContainerHealth>(['starting', 'healthy', 'unhealthy'])

/**
 * One line of `/events` as a RuntimeEvent; undefined for events that are not about a
 * container. Throws on a line that is not JSON (the caller logs it and goes on).
 */
export function parseDockerEvent(line: string): RuntimeEvent | undefined {
  const message = JSON.parse(line) as DockerEventMessage
  if (message.Type !== 'container' || !message.Action || !message.Actor?.ID) return undefined
  const attributes = message.Actor.Attributes ?? {}
  // Some actions carry a detail after a colon: `health_status: healthy`, `exec_start: sh -c ...`.
  const colon = message.Action.indexOf(':')
  const action = colon === -1 ? message.Action : message.Action.slice(0, colon)
  const detail = colon === -1 ? '' : message.Action.slice(colon + 1).trim()
  const event: RuntimeEvent = {
    action,
    containerId: message.Actor.ID,
    name: attributes.name ?? '',
    labels: labelsOf(attributes),
    time: eventTime(message),
  }
  if (action === 'health_status' && HEALTH_VALUES.has(detail)) event.health = detail as ContainerHealth
  const exitCode = attributes.exitCode === undefined ? Number.NaN : Number.parseInt(attributes.exitCode, 10)
  if (Number.isInteger(exitCode)) event.exitCode = exitCode
  return event
}

function labelsOf(attributes: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(attributes).filter(([key]) => !ENGINE_ATTRIBUTES.has(key)))
}

function eventTime(message: DockerEventMessage): Date {
  if (typeof message.timeNano === 'number') return new Date(Math.floor(message.timeNano / 1e6))
  if (typeof message.time === 'number') return new Date(message.time * 1000)
  return new Date()
}
