#!/usr/bin/env node
// forgectl: the daemon (serve), migrations, and (issue #5) the client commands.
import { ConfigError, loadConfig } from '../config.js'
import { createLogger, type Logger } from '../logger.js'
import { openDatabase } from '../db/database.js'
import { migrate } from '../db/migrator.js'
import { startDaemon } from '../main.js'

const USAGE = `Usage: forgectl <command>

Commands:
  serve     run the plugin manager daemon (npm start)
  migrate   apply database migrations and exit (npm run migrate)

Configuration comes from environment variables; see README.md.
Exit codes: 0 success, 1 failure, 2 usage.`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n')
    return command === undefined ? 2 : 0
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  if (rest.length > 0) return usageError(`unexpected argument "${rest[0]}" for ${command}`)
  switch (command) {
    case 'serve':
      return withConfig(serve)
    case 'migrate':
      return withConfig(runMigrations)
    default:
      return usageError(`unknown command "${command}"`)
  }
}

function usageError(message: string): number {
  process.stderr.write(`forgectl: ${message}\n\n${USAGE}\n`)
  return 2
}

async function withConfig(run: (config: ReturnType<typeof loadConfig>, logger: Logger) => Promise<number>): Promise<number> {
  let config
  try {
    config = loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`forgectl: ${error.message}\n`)
    return 1
  }
  const logger = createLogger(config.logLevel)
  try {
    return await run(config, logger)
  } catch (error) {
    // One clear line, never a stack trace.
    logger.fatal({ err: error }, error instanceof Error ? error.message : String(error))
    return 1
  }
}

async function runMigrations(config: ReturnType<typeof loadConfig>, logger: Logger): Promise<number> {
  const database = await openDatabase({ ...config, database: noSqlPort(config.database) }, logger)
  try {
    const result = await migrate(database.db, config.migrationsDir, logger)
    const message =
      result.applied.length === 0
        ? `database schema is up to date (${result.alreadyApplied} migrations applied earlier); nothing to do`
        : `applied ${result.applied.length} migration(s): ${result.applied.join(', ')}`
    logger.info({ applied: result.applied }, message)
    return 0
  } finally {
    await database.close()
  }
}

/** `migrate` needs no SQL port, and must not fail because a running daemon holds it. */
function noSqlPort(database: ReturnType<typeof loadConfig>['database']): ReturnType<typeof loadConfig>['database'] {
  return database.kind === 'embedded' ? { ...database, sqlPort: 0 } : database
}

async function serve(config: ReturnType<typeof loadConfig>, logger: Logger): Promise<number> {
  const daemon = await startDaemon(config, logger)
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'))
    process.once('SIGINT', () => resolve('SIGINT'))
  })
  logger.info({ signal }, `received ${signal}, stopping`)
  await daemon.stop()
  return 0
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`forgectl: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
