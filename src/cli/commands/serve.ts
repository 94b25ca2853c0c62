// forgectl serve: run the daemon until SIGTERM or SIGINT, then stop cleanly.
import type { Config } from '../../config.js'
import type { Logger } from '../../logger.js'
import { startDaemon } from '../../main.js'
import { flushCompileCache } from '../../util/compile-cache.js'
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
  // Ready (or given up): what a start runs is compiled by now; a killed daemon's next start reads it.
  void daemon.ready.catch(() => undefined).finally(flushCompileCache)
  // The first signal starts a graceful stop. Further SIGTERMs are expected (a shell's
  // `kill %1` signals the whole process group, and wrappers such as npm and tsx relay it
  // again) and must not cut the stop short; a second Ctrl-C is the operator insisting.
  let stopping = false
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (received: NodeJS.Signals) => {
      if (!stopping) {
        stopping = true
        resolve(received)
        return
      }
      if (received === 'SIGINT') {
        logger.warn('second Ctrl-C: exiting without waiting for running reconciles')
        process.exit(130)
      }
    }
    process.on('SIGTERM', onSignal)
    process.on('SIGINT', onSignal)
  })
  logger.info({ signal }, `received ${signal}, stopping`)
  await daemon.stop()
  return 0
}
