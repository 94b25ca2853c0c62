// forgectl get [NAME]: plugins as an aligned table (or the API's objects as json or yaml);
// --watch prints a plugin's row again whenever the live event stream says it changed.
import { stringify as toYaml } from 'yaml'
import type { ApiClient } from '../api-client.js'
import { choiceFlag, HELP_OPTION, optionalName, parseCommandArgs, showUsage } from '../args.js'
import { CliError, InterruptedError } from '../cli-errors.js'
import type { CliContext, Command } from '../context.js'
import { columnWidths, formatAge, formatRow, formatTable, NONE, oneLine, writeLine, writeLines } from '../output.js'
import { hostPortOf, manifestImage, readyReplicas, type PluginEvent, type PluginObject } from '../plugin-object.js'
import { API_VERSION } from '../../spec/plugin-spec.js'

const FORMATS = ['table', 'wide', 'json', 'yaml'] as const
type Format = (typeof FORMATS)[number]

const USAGE = `Usage: forgectl get [NAME] [-o table|wide|json|yaml] [--watch]

Lists the plugins (or the one named) as a table:
  NAME, STATE (desired), PHASE, READY (replicas running/wanted), HEALTH, PORT (host port),
  RESTARTS, AGE (45s, 12m, 3h, 5d).
READY on RUNTIME=swarm counts the tasks of the plugin's service (2/3); on the docker runtime
it is 1/1 while the container runs, 0/1 while it should but does not, 0/0 when stopped.

Options:
  -o, --output FORMAT  table (default); wide adds IMAGE, CONTAINER, SOURCE and ERROR.
                       json and yaml print the API's objects as they are: one plugin as
                       itself, a list as {apiVersion: ${API_VERSION}, kind: List, items: [...]}
  -w, --watch          after the list, print a plugin again each time it changes (read from
                       the live event stream), until Ctrl-C
  -h, --help           show this help`

const OPTIONS = {
  ...HELP_OPTION,
  output: { type: 'string', short: 'o' },
  watch: { type: 'boolean', short: 'w' },
} as const

export const getCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('get', argv, OPTIONS)
    if (args.values.help) return showUsage(context, USAGE)
    const pluginName = optionalName('get', args.positionals)
    const format = choiceFlag('get', 'output', args.values.output, FORMATS, 'table')
    const api = context.api()
    if (args.values.watch) return watch(context, api, pluginName, format)
    const plugins = pluginName === undefined ? await api.listPlugins() : [await api.getPlugin(pluginName)]
    new PluginPrinter(context, format).printAll(plugins, pluginName !== undefined)
    return 0
  },
}

/**
 * Subscribes first, then lists: a change between the two is then seen twice rather than
 * missed. Each event names a plugin, which is read again (the event itself is not the state).
 */
async function watch(context: CliContext, api: ApiClient, pluginName: string | undefined, format: Format): Promise<number> {
  try {
    const events = await api.openEventStream(pluginName)
    const plugins = pluginName === undefined ? await api.listPlugins() : [await api.getPlugin(pluginName)]
    const printer = new PluginPrinter(context, format)
    printer.printAll(plugins, pluginName !== undefined)
    for await (const message of events) {
      const changedName = eventPluginName(message.data)
      if (changedName === undefined) continue
      printer.printChange(changedName, await api.findPlugin(changedName))
    }
  } catch (error) {
    // Ctrl-C is how a watch ends.
    if (error instanceof InterruptedError) return 0
    throw error
  }
  if (context.interrupt.aborted) return 0
  throw new CliError(`the event stream from ${api.baseUrl} ended: the daemon stopped or restarted`)
}

function eventPluginName(data: string): string | undefined {
  try {
    const event = JSON.parse(data) as Partial<PluginEvent>
    return typeof event.forgehookId === 'string' ? event.forgehookId : undefined
  } catch {
    // Not an event we understand (a newer daemon?): nothing to re-read.
    return undefined
  }
}

const TABLE_HEADER = ['NAME', 'STATE', 'PHASE', 'READY', 'HEALTH', 'PORT', 'RESTARTS', 'AGE']
const WIDE_HEADER = [...TABLE_HEADER, 'IMAGE', 'CONTAINER', 'SOURCE', 'ERROR']
const PHASE_COLUMN = 2
const AGE_COLUMN = 7

/** Prints plugins in one format; in a watch, prints a plugin again only when what it shows changed. */
class PluginPrinter {
  private widths: number[] = []
  /** The last row printed per plugin, for a watch. */
  private readonly shownRows = new Map<string, string[]>()
  private readonly shownObjects = new Map<string, string>()

  constructor(
    private readonly context: CliContext,
    private readonly format: Format,
  ) {}

  printAll(plugins: PluginObject[], single: boolean): void {
    if (this.format === 'json' || this.format === 'yaml') {
      for (const plugin of plugins) this.shownObjects.set(plugin.metadata.name, JSON.stringify(plugin))
      this.writeObject(single ? plugins[0] : { apiVersion: API_VERSION, kind: 'List', items: plugins })
      return
    }
    // On stderr, as kubectl does: stdout stays empty for scripts.
    if (plugins.length === 0) {
      writeLine(this.context.stderr, 'No plugins found.')
      return
    }
    const rows = plugins.map((plugin) => this.rowOf(plugin))
    plugins.forEach((plugin, index) => this.shownRows.set(plugin.metadata.name, rows[index]!))
    const header = this.format === 'wide' ? WIDE_HEADER : TABLE_HEADER
    this.widths = columnWidths([header, ...rows])
    writeLines(this.context.stdout, formatTable([header, ...rows]))
  }

  /** A watched plugin changed (`plugin` undefined: it is gone). */
  printChange(pluginName: string, plugin: PluginObject | undefined): void {
    if (this.format === 'json' || this.format === 'yaml') return this.printObjectChange(pluginName, plugin)
    const previous = this.shownRows.get(pluginName)
    if (!plugin) {
      if (!previous) return
      this.shownRows.delete(pluginName)
      return this.writeRow(previous.map((cell, index) => (index === PHASE_COLUMN ? 'deleted' : cell)))
    }
    const row = this.rowOf(plugin)
    // The age moves on its own; it is not a change.
    if (previous && sameExcept(previous, row, AGE_COLUMN)) return
    this.shownRows.set(pluginName, row)
    this.writeRow(row)
  }

  private printObjectChange(pluginName: string, plugin: PluginObject | undefined): void {
    const text = plugin ? JSON.stringify(plugin) : undefined
    if (text === this.shownObjects.get(pluginName)) return
    if (text === undefined) {
      this.shownObjects.delete(pluginName)
      return
    }
    this.shownObjects.set(pluginName, text)
    if (this.format === 'yaml') writeLine(this.context.stdout, '---')
    this.writeObject(plugin)
  }

  private writeRow(row: string[]): void {
    this.widths = columnWidths([this.widths.map((width) => ''.padEnd(width)), row])
    writeLine(this.context.stdout, formatRow(row, this.widths))
  }

  private writeObject(value: unknown): void {
    if (this.format === 'json') writeLine(this.context.stdout, JSON.stringify(value, null, 2))
    else this.context.stdout.write(toYaml(value))
  }

  private rowOf(plugin: PluginObject): string[] {
    const { metadata, spec, status } = plugin
    const ready = readyReplicas(plugin)
    const row = [
      metadata.name,
      spec.state,
      // The API already shows "uninstalling" once a deletion was requested.
      status.phase,
      `${ready.running}/${ready.desired}`,
      status.health,
      String(hostPortOf(plugin) ?? NONE),
      String(status.restartCount),
      formatAge(metadata.creationTimestamp, this.context.now()),
    ]
    if (this.format !== 'wide') return row
    return [
      ...row,
      manifestImage(spec.manifest) ?? NONE,
      status.containerId ? status.containerId.slice(0, 12) : NONE,
      metadata.source,
      status.error ? oneLine(status.error) : NONE,
    ]
  }
}

function sameExcept(left: string[], right: string[], ignoredColumn: number): boolean {
  return left.length === right.length && left.every((cell, index) => index === ignoredColumn || cell === right[index])
}
