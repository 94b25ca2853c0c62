// One HTTP/1.1 response read off a raw socket, for the two calls an idle manager makes
// hundreds of times a minute (engine stats, health probes): node:http's ClientRequest and
// IncomingMessage streams cost two to three times the CPU of the bytes themselves on these
// small answers. Only what those calls need: the status, and where the body ends
// (Content-Length, chunked, or the connection's end), so a socket can be reused. Interim
// 1xx answers are skipped. Anything malformed throws: the caller drops the socket.

/** A whole response. `reusable`: the body ended by its framing and the server keeps the connection. */
export interface Http1Response {
  statusCode: number
  body: Buffer
  reusable: boolean
}

/** A raw-socket call's deadline passed: name TimeoutError (what readiness-probe.ts and the callers' tests look for), code ETIMEDOUT. */
export function timeoutError(timeoutMs: number): Error {
  return Object.assign(new Error(`no answer within ${timeoutMs} ms`), { name: 'TimeoutError', code: 'ETIMEDOUT' })
}

/** The status code of a status line ("HTTP/1.1 200 OK"), or undefined when it is not one. */
export function statusCodeOfLine(line: string): number | undefined {
  const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(line)
  return match ? Number(match[1]) : undefined
}

type Framing = { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' } | { kind: 'none' }

interface Head {
  statusCode: number
  framing: Framing
  keepAlive: boolean
  /** Where the body starts in the buffer. */
  bodyStart: number
}

const HEAD_END = '\r\n\r\n'
/** As bytes: Buffer.indexOf with a string needle converts it on every call. */
const HEAD_END_BYTES = Buffer.from(HEAD_END, 'latin1')
const LINE_END_BYTES = Buffer.from('\r\n', 'latin1')

/**
 * Feed it the bytes of one response as they arrive; push() returns the response once it is
 * complete. Throws when the answer is not HTTP/1.x or grows past maxBytes.
 */
export class Http1ResponseReader {
  private buffer: Buffer = Buffer.alloc(0)
  private head: Head | undefined

  /** maxBytes: head and body together; a bigger answer is refused. Default 1 MiB. */
  constructor(private readonly maxBytes = 1024 * 1024) {}

  /** The final status code once the head has arrived (interim 1xx skipped), before the body has. */
  get statusCode(): number | undefined {
    return this.head?.statusCode
  }

  /** True once any byte arrived: a reused socket that fails before that is worth one retry. */
  get started(): boolean {
    return this.buffer.length > 0 || this.head !== undefined
  }

  push(chunk: Buffer): Http1Response | undefined {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    if (this.buffer.length > this.maxBytes) throw new Error(`HTTP response larger than ${this.maxBytes} bytes`)
    while (!this.head) {
      const headEnd = this.buffer.indexOf(HEAD_END_BYTES)
      if (headEnd < 0) {
        // Not HTTP at all (a server speaking something else): fail now rather than at the timeout.
        if (this.buffer.length >= 7 && this.buffer.toString('latin1', 0, 7) !== 'HTTP/1.') {
          throw new Error(`not an HTTP/1.x response: ${JSON.stringify(this.buffer.toString('latin1', 0, 40))}`)
        }
        return undefined
      }
      const head = parseHead(this.buffer.toString('latin1', 0, headEnd), headEnd + HEAD_END.length)
      // 100 Continue and friends come before the real answer.
      if (head.statusCode >= 100 && head.statusCode < 200 && head.statusCode !== 101) {
        this.buffer = this.buffer.subarray(head.bodyStart)
        continue
      }
      this.head = head
    }
    return this.complete(false)
  }

  /** The server closed the connection: the response, when that was its end, else throws. */
  end(): Http1Response {
    const response = this.head ? this.complete(true) : undefined
    if (!response) throw Object.assign(new Error('the connection closed before the whole response arrived'), { code: 'ECONNRESET' })
    return response
  }

  private complete(closed: boolean): Http1Response | undefined {
    const head = this.head!
    const { framing, statusCode } = head
    if (framing.kind === 'none') return { statusCode, body: Buffer.alloc(0), reusable: head.keepAlive }
    if (framing.kind === 'length') {
      const end = head.bodyStart + framing.length
      if (this.buffer.length < end) return undefined
      // Bytes past the body on an idle connection: nothing to pair them with; never reuse it.
      return { statusCode, body: this.buffer.subarray(head.bodyStart, end), reusable: head.keepAlive && this.buffer.length === end }
    }
    if (framing.kind === 'close') return closed ? { statusCode, body: this.buffer.subarray(head.bodyStart), reusable: false } : undefined
    const body = dechunk(this.buffer, head.bodyStart)
    if (!body) return undefined
    return { statusCode, body: body.body, reusable: head.keepAlive && body.end === this.buffer.length }
  }
}

function parseHead(text: string, bodyStart: number): Head {
  const lines = text.split('\r\n')
  const statusCode = statusCodeOfLine(lines[0] ?? '')
  if (statusCode === undefined) throw new Error(`not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 40))}`)
  let contentLength: number | undefined
  let chunked = false
  let connection = ''
  for (let index = 1; index < lines.length; index += 1) {
    const line = lines[index]!
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-length') {
      if (!/^\d+$/.test(value)) throw new Error(`unreadable Content-Length ${JSON.stringify(value)}`)
      contentLength = Number(value)
    } else if (name === 'transfer-encoding') chunked = /(^|,)\s*chunked\s*$/i.test(value)
    else if (name === 'connection') connection = value.toLowerCase()
  }
  const http10 = lines[0]!.startsWith('HTTP/1.0')
  const keepAlive = http10 ? /\bkeep-alive\b/.test(connection) : !/\bclose\b/.test(connection)
  // A response to GET: 204 and 304 never have a body, whatever the headers say.
  const framing: Framing =
    statusCode === 204 || statusCode === 304
      ? { kind: 'none' }
      : chunked
        ? { kind: 'chunked' }
        : contentLength !== undefined
          ? contentLength === 0
            ? { kind: 'none' }
            : { kind: 'length', length: contentLength }
          : { kind: 'close' }
  return { statusCode, framing, keepAlive: keepAlive && framing.kind !== 'close', bodyStart }
}

/** The body of a chunked response from `start`, or undefined until its last chunk and trailers are in. */
function dechunk(buffer: Buffer, start: number): { body: Buffer; end: number } | undefined {
  const parts: Buffer[] = []
  let at = start
  for (;;) {
    const lineEnd = buffer.indexOf(LINE_END_BYTES, at)
    if (lineEnd < 0) return undefined
    const sizeText = buffer.toString('latin1', at, lineEnd).split(';')[0]!.trim()
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`unreadable chunk size ${JSON.stringify(sizeText.slice(0, 20))}`)
    const size = Number.parseInt(sizeText, 16)
    at = lineEnd + 2
    if (size === 0) {
      // Trailers, if any, end with an empty line.
      const trailersEnd = buffer.subarray(at, at + 2).toString('latin1') === '\r\n' ? at + 2 : buffer.indexOf(HEAD_END_BYTES, at) + HEAD_END.length
      if (trailersEnd < at + 2 || trailersEnd > buffer.length) return undefined
      return { body: parts.length === 1 ? parts[0]! : Buffer.concat(parts), end: trailersEnd }
    }
    if (buffer.length < at + size + 2) return undefined
    parts.push(buffer.subarray(at, at + size))
    at += size + 2
  }
}
