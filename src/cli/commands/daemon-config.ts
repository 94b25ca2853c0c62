// serve and migrate: the daemon's configuration from the environment, its logger, and one
// clear line when either fails.
import { ConfigError, loadConfig, type Config } from '../../config.js'
import { createLogger, type Logger } from '../../logger.js'
import type { CliContext } from '../context.js'

export async function withDaemonConfig(context: CliContext, run: (config: Config, logger: Logger) => Promise<number>): Promise<number> {
  let config: Config
  try {
    config = loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    context.stderr.write(`forgectl: ${error.message}\n`)
    return 1
  }
  const logger = createLogger(config.logLevel)
  try {
    return await run(config, logger)
  } catch (error) {
    // One log line led by the message; only an unexpected error adds its stack, in `err`.
    logger.fatal({ err: error }, error instanceof Error ? error.message : String(error))
    return 1
  }
}
