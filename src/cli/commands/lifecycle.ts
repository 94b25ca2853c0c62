// forgectl start|stop|restart NAME: start and stop change the desired state; restart asks
// for one restart of the running container (nothing is recreated). The controller does the rest.
import { HELP_OPTION, parseCommandArgs, requireName, showUsage } from '../args.js'
import type { Command } from '../context.js'
import { writeLine } from '../output.js'

type Action = 'start' | 'stop' | 'restart'

const DESCRIPTIONS: Record<Action, string> = {
  start: "Sets the plugin's desired state to running (POST /api/v1/plugins/NAME/start).",
  stop: "Sets the plugin's desired state to stopped (POST /api/v1/plugins/NAME/stop).",
  restart: "Restarts the plugin's running container once (POST /api/v1/plugins/NAME/restart);\nnothing is recreated. A stopped plugin is started with forgectl start instead.",
}

function lifecycleCommand(action: Action): Command {
  const usage = `Usage: forgectl ${action} NAME

${DESCRIPTIONS[action]}
The command returns once the daemon took the request; forgectl get NAME shows the progress.

Options:
  -h, --help  show this help`
  return {
    usage,
    async run(argv, context) {
      const args = parseCommandArgs(action, argv, HELP_OPTION)
      if (args.values.help) return showUsage(context, usage)
      const pluginName = requireName(action, args.positionals)
      await context.api().pluginAction(pluginName, action)
      writeLine(context.stdout, `plugin/${pluginName} ${action} requested`)
      return 0
    },
  }
}

export const startCommand = lifecycleCommand('start')
export const stopCommand = lifecycleCommand('stop')
export const restartCommand = lifecycleCommand('restart')
