// forgectl schema: the JSON Schema of spec files, for editors and CI checks; no daemon needed.
import { HELP_OPTION, parseCommandArgs, requireNoPositionals, showUsage } from '../args.js'
import type { Command } from '../context.js'
import { writeLine } from '../output.js'
import { pluginJsonSchema } from '../../spec/plugin-spec.js'

const USAGE = `Usage: forgectl schema

Prints the JSON Schema of plugin spec documents (the same as schema/plugin.schema.json).
Needs no daemon.

Options:
  -h, --help  show this help`

export const schemaCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('schema', argv, HELP_OPTION)
    if (args.values.help) return showUsage(context, USAGE)
    requireNoPositionals('schema', args.positionals)
    writeLine(context.stdout, JSON.stringify(pluginJsonSchema(), null, 2))
    return 0
  },
}
