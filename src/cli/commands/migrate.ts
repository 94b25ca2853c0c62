// forgectl migrate: apply database migrations and exit.
import type { Config } from '../../config.js'
import { openDatabase } from '../../db/database.js'
import { migrate } from '../../db/migrator.js'
import type { Logger } from '../../logger.js'
import { HELP_OPTION, parseCommandArgs, requireNoPositionals, showUsage } from '../args.js'
import type { Command } from '../context.js'
import { withDaemonConfig } from './daemon-config.js'

const USAGE = `Usage: forgectl migrate

Applies the database migrations that have not been applied yet, then exits (npm run
migrate). Safe to run twice: the second run changes nothing. Configuration comes from
environment variables; see README.md "Configuration".`

export const migrateCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('migrate', argv, HELP_OPTION)
    if (args.values.help) return showUsage(context, USAGE)
    requireNoPositionals('migrate', args.positionals)
    return withDaemonConfig(context, runMigrations)
  },
}

async function runMigrations(config: Config, logger: Logger): Promise<number> {
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

/** `migrate` needs no SQL port or socket, and must not fail because a running daemon holds it. */
function noSqlPort(database: Config['database']): Config['database'] {
  if (database.kind !== 'embedded') return database
  const { sqlSocketDir: _socketDir, ...embedded } = database
  return { ...embedded, sqlPort: 0 }
}
