// forgectl serve: run the daemon until SIGTERM or SIGINT, then stop cleanly.
import type { Config } from '../../config.js'
import type { Logger } from '../../logger.js'
import { startDaemon } from '../../main.js'
import { HELP_OPTION, parseCommandArgs, requireNoPositionals, showUsage } from '../args.js'
import type { Command } from '../context.js'
import { withDaemonConfig } from './daemon-config.js'

const USAGE = `Usage: forgectl serve

Runs the plugin manager daemon (npm start): the HTTP API, the spec folder watcher and the
controller. Stops cleanly on SIGTERM or SIGINT. Configuration comes from environment
variables; see README.md "Configuration".`

export const serveCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('serve', argv, HELP_OPTION)
    if (args.values.help) return showUsage(context, USAGE)
    requireNoPositionals('serve', args.positionals)
    return withDaemonConfig(context, serve)
  },
}

async function serve(config: Config, logger: Logger): Promise<number> {
  const daemon = await startDaemon(config, logger)
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  logger.info({ signal }, `received ${signal}, stopping`)
  await daemon.stop()
  return 0
}
