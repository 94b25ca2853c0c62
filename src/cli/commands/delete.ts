// forgectl delete NAME...: ask the daemon to uninstall plugins; with --wait, until they are gone.
import { durationFlag, HELP_OPTION, parseCommandArgs, pluginNameArgument, showUsage } from '../args.js'
import { UsageError } from '../cli-errors.js'
import type { Command } from '../context.js'
import { formatDuration } from '../../util/format-duration.js'
import { writeLine } from '../output.js'
import { waitUntilGone } from '../wait-for-plugins.js'

const DEFAULT_TIMEOUT_MS = 120_000

const USAGE = `Usage: forgectl delete NAME [NAME ...] [--purge] [--wait] [--timeout 2m]

Uninstalls plugins (DELETE /api/v1/plugins/NAME): the controller removes the container,
then the plugin; it shows phase uninstalling until then. The audit trail is kept, and so
are the plugin's named volumes (spec.volumes), for a reinstall, unless --purge.

Options:
      --purge             remove the plugin's named volumes too (their data is lost)
      --wait              wait until each plugin is gone
      --timeout DURATION  how long --wait waits, e.g. 90s or 5m (default 2m)
  -h, --help              show this help`

const OPTIONS = { ...HELP_OPTION, wait: { type: 'boolean' }, timeout: { type: 'string' }, purge: { type: 'boolean' } } as const

export const deleteCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('delete', argv, OPTIONS)
    if (args.values.help) return showUsage(context, USAGE)
    if (args.positionals.length === 0) throw new UsageError('delete needs a plugin NAME', 'delete')
    const timeoutMs = durationFlag('delete', 'timeout', args.values.timeout, DEFAULT_TIMEOUT_MS)
    if (args.values.timeout !== undefined && !args.values.wait) throw new UsageError('--timeout only applies with --wait', 'delete')
    const pluginNames = args.positionals.map(pluginNameArgument)
    const api = context.api()
    for (const pluginName of pluginNames) {
      await api.deletePlugin(pluginName, { purgeVolumes: args.values.purge === true })
      if (!args.values.wait) writeLine(context.stdout, `plugin/${pluginName} deletion requested${args.values.purge ? ' (with its volumes)' : ''}`)
    }
    if (!args.values.wait) return 0

    let exitCode = 0
    for (const pluginName of pluginNames) {
      // One deadline per plugin: they are uninstalled side by side, so the later ones wait little.
      if (await waitUntilGone(context, pluginName, { timeoutMs })) {
        writeLine(context.stdout, `plugin/${pluginName} deleted`)
        continue
      }
      writeLine(context.stderr, `forgectl: plugin/${pluginName} was not gone within ${formatDuration(timeoutMs)}; see forgectl describe ${pluginName}`)
      exitCode = 1
    }
    return exitCode
  },
}
