// forgectl events [NAME]: the audit trail, oldest first; -f then prints events as they are
// recorded (the live SSE stream) until Ctrl-C.
import type { ApiClient } from '../api-client.js'
import { HELP_OPTION, integerFlag, optionalName, parseCommandArgs, showUsage } from '../args.js'
import { CliError, InterruptedError } from '../cli-errors.js'
import type { CliContext, Command } from '../context.js'
import { columnWidths, formatRow, writeLine } from '../output.js'
import { summarizeEventData, type PluginEvent } from '../plugin-object.js'
import type { SseMessage } from '../sse.js'

const DEFAULT_LIMIT = 50
const MAX_LIMIT = 1000
const HEADER = ['TIME', 'TYPE', 'PLUGIN', 'DATA']

const USAGE = `Usage: forgectl events [NAME] [-f] [--limit N]

Prints the audit trail of all plugins (or of NAME, also after it was uninstalled), newest
last: TIME (UTC), TYPE, PLUGIN and the event's data.

Options:
  -f, --follow   then print each event as it is recorded, until Ctrl-C
      --limit N  how many recorded events to show (default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT})
  -h, --help     show this help`

const OPTIONS = { ...HELP_OPTION, follow: { type: 'boolean', short: 'f' }, limit: { type: 'string' } } as const

export const eventsCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('events', argv, OPTIONS)
    if (args.values.help) return showUsage(context, USAGE)
    const pluginName = optionalName('events', args.positionals)
    const limit = integerFlag('events', 'limit', args.values.limit, 1, MAX_LIMIT) ?? DEFAULT_LIMIT
    const api = context.api()
    if (args.values.follow) return follow(context, api, pluginName, limit)
    const events = await api.listEvents(pluginName, limit)
    if (events.length === 0) {
      // On stderr, as kubectl does: stdout stays empty for scripts.
      writeLine(context.stderr, 'No events found.')
      return 0
    }
    new EventPrinter(context).printRecorded(events)
    return 0
  },
}

/** Subscribes before listing, so nothing recorded in between is missed; what both show is printed once. */
async function follow(context: CliContext, api: ApiClient, pluginName: string | undefined, limit: number): Promise<number> {
  const printer = new EventPrinter(context)
  try {
    const messages = await api.openEventStream(pluginName)
    printer.printRecorded(await api.listEvents(pluginName, limit))
    for await (const message of messages) {
      const event = parseEvent(message)
      if (event) printer.printLive(event)
    }
  } catch (error) {
    if (error instanceof InterruptedError) return 0
    throw error
  }
  if (context.interrupt.aborted) return 0
  throw new CliError(`the event stream from ${api.baseUrl} ended: the daemon stopped or restarted`)
}

function parseEvent(message: SseMessage): PluginEvent | undefined {
  try {
    return JSON.parse(message.data) as PluginEvent
  } catch {
    // A line this client does not understand (a newer daemon?) is skipped rather than fatal.
    return undefined
  }
}

class EventPrinter {
  private widths: number[] = columnWidths([HEADER])
  private newestShownId = 0

  constructor(private readonly context: CliContext) {}

  /** The API pages newest first; a person reads a log top to bottom. */
  printRecorded(newestFirst: PluginEvent[]): void {
    const events = [...newestFirst].reverse()
    const rows = events.map(eventRow)
    this.widths = columnWidths([HEADER, ...rows])
    writeLine(this.context.stdout, formatRow(HEADER, this.widths))
    for (const row of rows) writeLine(this.context.stdout, formatRow(row, this.widths))
    for (const event of events) this.newestShownId = Math.max(this.newestShownId, event.id ?? 0)
  }

  printLive(event: PluginEvent): void {
    // Recorded ids only grow: one at or below the newest listed was in the list already.
    if (event.id !== null && event.id <= this.newestShownId) return
    const row = eventRow(event)
    this.widths = columnWidths([this.widths.map((width) => ''.padEnd(width)), row])
    writeLine(this.context.stdout, formatRow(row, this.widths))
  }
}

function eventRow(event: PluginEvent): string[] {
  return [formatTime(event.timestamp), event.type, event.forgehookId ?? '-', summarizeEventData(event.data, 120)]
}

/** ISO 8601 to the second, in UTC: sortable and unambiguous in an audit trail. */
function formatTime(timestamp: string): string {
  const time = new Date(timestamp)
  return Number.isNaN(time.getTime()) ? timestamp : time.toISOString().replace(/\.\d{3}Z$/, 'Z')
}
