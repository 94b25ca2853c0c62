// Composition root: build everything from the configuration, start it, stop it cleanly.
import type { Config } from './config.js'
import type { Logger } from './logger.js'
import { openDatabase, type DatabaseHandle } from './db/database.js'
import { migrate } from './db/migrator.js'
import { PluginStore } from './db/plugin-store.js'

export interface Daemon {
  database: DatabaseHandle
  store: PluginStore
  stop(): Promise<void>
}

export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  if (config.database.kind === 'embedded') {
    logger.info(
      { dataDir: config.database.dataDir },
      `no DATABASE_URL or POSTGRES_HOST set: using the embedded Postgres (PGlite) in ${config.database.dataDir}`,
    )
  }
  const database = await openDatabase(config, logger)
  try {
    await migrate(database.db, config.migrationsDir, logger)
  } catch (error) {
    await database.close()
    throw error
  }
  if (database.sqlAddress) {
    const { host, port } = database.sqlAddress
    logger.info({ host, port }, `embedded database open for SQL clients: psql -h ${host} -p ${port} -U postgres`)
  }
  const store = new PluginStore(database.db, database.changes, logger)
  // Until the controller (issue #3) consumes them, changes are only logged.
  const unsubscribe = store.subscribe({
    onChange: (change) => logger.debug({ change }, 'plugin changed'),
    onResync: (reason) => logger.info({ reason }, 'full resync requested'),
  })
  logger.info({ database: database.description }, 'FlowForge plugin manager started')

  let stopping: Promise<void> | undefined
  return {
    database,
    store,
    stop: () => {
      stopping ??= (async () => {
        unsubscribe()
        await database.close()
        logger.info('FlowForge plugin manager stopped')
      })()
      return stopping
    },
  }
}
