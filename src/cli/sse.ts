// Server-sent events as the API sends them (the event stream and followed logs), read from a
// fetch body. Chunks are not messages: a message waits for its blank line.

export interface SseMessage {
  /** `message` when the server named no event type (as EventSource does). */
  event: string
  /** The data lines joined by "\n"; an empty `data:` line is an empty string, not "no message". */
  data: string
  /** The last id the server sent; it carries over to later messages, as in EventSource. */
  id?: string
}

/** Yields each message of `body` until the stream ends; comments (heartbeats) are skipped. */
export async function* readServerSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  const message = new MessageBuilder()
  let buffered = ''
  try {
    for (;;) {
      const { done, value } = await reader.read()
      buffered += done ? decoder.decode() : decoder.decode(value, { stream: true })
      const lines = buffered.split(/\r\n|\n|\r/)
      // The last piece may be half a line (or, at a chunk edge, the \r of a \r\n).
      buffered = done ? '' : (lines.pop() ?? '')
      for (const line of lines) {
        const complete = message.take(line)
        if (complete) yield complete
      }
      if (done) return
    }
  } finally {
    // The consumer may stop early (event: end, Ctrl-C): release the connection. A stream
    // that already failed rejects cancel(); its error has been thrown to the consumer.
    await reader.cancel().catch(() => undefined)
  }
}

class MessageBuilder {
  private event = ''
  private dataLines: string[] = []
  private sawData = false
  private id: string | undefined

  /** Feeds one line; returns the message a blank line completes. */
  take(line: string): SseMessage | undefined {
    if (line === '') return this.dispatch()
    if (line.startsWith(':')) return undefined
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    const rawValue = colon === -1 ? '' : line.slice(colon + 1)
    const value = rawValue.startsWith(' ') ? rawValue.slice(1) : rawValue
    if (field === 'data') {
      this.dataLines.push(value)
      this.sawData = true
    } else if (field === 'event') {
      this.event = value
    } else if (field === 'id') {
      this.id = value
    }
    return undefined
  }

  private dispatch(): SseMessage | undefined {
    const message = this.sawData
      ? { event: this.event || 'message', data: this.dataLines.join('\n'), ...(this.id !== undefined ? { id: this.id } : {}) }
      : undefined
    this.event = ''
    this.dataLines = []
    this.sawData = false
    return message
  }
}
