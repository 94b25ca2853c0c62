// Text from the daemon (plugin names, labels, error messages, container logs, events) is
// written to the operator's terminal, and a terminal obeys what it is sent: ESC sequences
// can move the cursor, rewrite earlier lines, retitle the window, or on some terminals
// answer back. So every string forgectl receives is made inert before it is printed:
// C0 controls but tab and newline, DEL and C1 controls are shown in caret or <U+…> form, as
// `less` and `cat -v` do, and so are the bidi overrides that reorder what a line appears to
// say. A carriage return before a newline is dropped (CRLF line ends); any other is shown.

// eslint-disable-next-line no-control-regex
const UNSAFE = /\r(?=\n)|[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

export function terminalSafe(text: string): string {
  return text.replace(UNSAFE, (character) => {
    if (character === '\r') return ''
    const code = character.charCodeAt(0)
    if (code < 0x20) return `^${String.fromCharCode(code + 0x40)}`
    if (code === 0x7f) return '^?'
    return `<U+${code.toString(16).toUpperCase().padStart(4, '0')}>`
  })
}

/** Every string in a parsed JSON value (keys included) made terminal-safe. */
export function terminalSafeValue<T>(value: T): T {
  if (typeof value === 'string') return terminalSafe(value) as T
  if (Array.isArray(value)) return value.map((item: unknown) => terminalSafeValue(item)) as T
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [terminalSafe(key), terminalSafeValue(item as unknown)])) as T
  }
  return value
}
