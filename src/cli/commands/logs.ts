// forgectl logs NAME: the container's output; -f follows it (server-sent events, one line
// each) until the container stops or Ctrl-C.
import { HELP_OPTION, integerFlag, parseCommandArgs, requireName, showUsage } from '../args.js'
import { CliError, InterruptedError } from '../cli-errors.js'
import type { CliContext, Command } from '../context.js'
import { writeLine } from '../output.js'

const MAX_TAIL = 1_000

const USAGE = `Usage: forgectl logs NAME [-f] [--tail N]

Prints the stdout and stderr of the plugin's container.

Options:
  -f, --follow    keep printing new lines until the container stops or Ctrl-C
      --tail N    lines from the end to start with (default 100, at most ${MAX_TAIL})
  -h, --help      show this help`

const OPTIONS = { ...HELP_OPTION, follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' } } as const

export const logsCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('logs', argv, OPTIONS)
    if (args.values.help) return showUsage(context, USAGE)
    const pluginName = requireName('logs', args.positionals)
    const tail = integerFlag('logs', 'tail', args.values.tail, 0, MAX_TAIL)
    if (args.values.follow) return follow(context, pluginName, tail)
    const text = await context.api().pluginLogs(pluginName, tail)
    context.stdout.write(text === '' || text.endsWith('\n') ? text : text + '\n')
    return 0
  },
}

async function follow(context: CliContext, pluginName: string, tail: number | undefined): Promise<number> {
  const api = context.api()
  try {
    const messages = await api.openStream(`/api/v1/plugins/${encodeURIComponent(pluginName)}/logs`, { tail, follow: true })
    for await (const message of messages) {
      if (message.event === 'message') {
        writeLine(context.stdout, message.data)
        continue
      }
      // The daemon ends the stream with "end" (the container stopped) or "error".
      if (message.event === 'end') {
        writeLine(context.stderr, message.data)
        return 0
      }
      if (message.event === 'error') throw new CliError(`following the logs of ${pluginName} failed: ${message.data}`)
    }
  } catch (error) {
    if (error instanceof InterruptedError) return 0
    throw error
  }
  if (context.interrupt.aborted) return 0
  throw new CliError(`the log stream from ${api.baseUrl} ended: the daemon stopped or restarted`)
}
