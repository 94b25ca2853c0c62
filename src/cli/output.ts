// How forgectl prints: aligned columns as kubectl does, ages (45s, 12m, 3h, 5d), values on one
// line, and the few ANSI sequences used on a terminal.
import type { TextOutput } from './text-output.js'

/** Spaces between columns (kubectl's tabwriter uses 3). */
const COLUMN_GAP = 3
/** What an empty cell shows, as in kubectl. */
export const NONE = '<none>'

export function writeLine(output: TextOutput, line = ''): void {
  output.write(line + '\n')
}

export function writeLines(output: TextOutput, lines: string[]): void {
  if (lines.length === 0) return
  output.write(lines.join('\n') + '\n')
}

/** The width of each column: its widest cell. */
export function columnWidths(rows: string[][]): number[] {
  const widths: number[] = []
  for (const row of rows) {
    row.forEach((cell, index) => {
      widths[index] = Math.max(widths[index] ?? 0, cell.length)
    })
  }
  return widths
}

/** One row padded to `widths`; the last cell is not padded, so lines carry no trailing spaces. */
export function formatRow(cells: string[], widths: number[]): string {
  return cells
    .map((cell, index) => (index === cells.length - 1 ? cell : cell.padEnd((widths[index] ?? 0) + COLUMN_GAP)))
    .join('')
    .trimEnd()
}

/** Rows (the first usually the header) as aligned lines. */
export function formatTable(rows: string[][]): string[] {
  const widths = columnWidths(rows)
  return rows.map((row) => formatRow(row, widths))
}

/**
 * The time since `timestamp`, in its largest whole unit, as kubectl's short form: 45s, 12m,
 * 3h, 5d, 2y. `<unknown>` when there is no time.
 */
export function formatAge(timestamp: string | null | undefined, nowMs: number): string {
  if (!timestamp) return '<unknown>'
  const then = Date.parse(timestamp)
  if (Number.isNaN(then)) return '<unknown>'
  // A clock a little behind the server's is not an error worth showing.
  const seconds = Math.max(0, Math.floor((nowMs - then) / 1000))
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes}m`
  const hours = Math.floor(minutes / 60)
  if (hours < 24) return `${hours}h`
  const days = Math.floor(hours / 24)
  if (days < 365) return `${days}d`
  return `${Math.floor(days / 365)}y`
}

/** A value for a table cell or a one-line message: whitespace (newlines too) collapsed. */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim()
}

export function truncate(text: string, maxLength: number): string {
  return text.length <= maxLength ? text : `${text.slice(0, maxLength - 3)}...`
}

/** A value of unknown shape, short: strings as they are, anything else as compact JSON. */
export function shortValue(value: unknown): string {
  if (typeof value === 'string') return value
  if (value === undefined) return ''
  return JSON.stringify(value) ?? String(value)
}

export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`
}

export const ansi = {
  /** Moves the cursor up `lines` lines (to redraw progress in place). */
  cursorUp: (lines: number): string => (lines > 0 ? `\x1b[${lines}A` : ''),
  /** Back to column 0 and clear the line. */
  clearLine: '\r\x1b[2K',
  red: (text: string): string => `\x1b[31m${text}\x1b[0m`,
  green: (text: string): string => `\x1b[32m${text}\x1b[0m`,
  cyan: (text: string): string => `\x1b[36m${text}\x1b[0m`,
}
