import { mkdtemp, readFile, writeFile, cp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import { afterEach, describe, expect, test } from 'vitest'
import { MigrationError } from '../../src/db/errors.js'
import { migrate, readMigrationFiles } from '../../src/db/migrator.js'
import { silentLogger } from '../../src/logger.js'
import { engines, migrationsDir, openTestDatabase, type TestDatabase } from '../helpers/databases.js'

const ALL_MIGRATIONS = ['001_create_plugins_table.sql', '002_controller_state.sql', '003_event_notifications.sql', '004_safe_change.sql', '005_plugin_workloads.sql', '006_image_digest.sql', '007_swarm_services.sql', '008_task_node_address.sql']
const logger = silentLogger()

async function migrationsCopy(extra: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ff-migrations-'))
  await cp(migrationsDir, dir, { recursive: true })
  for (const [name, text] of Object.entries(extra)) await writeFile(path.join(dir, name), text)
  return dir
}

async function tableNames(database: TestDatabase): Promise<string[]> {
  const result = await sql<{ table_name: string }>`
    SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`.execute(database.handle.db)
  return result.rows.map((row) => row.table_name)
}

describe('migration files', () => {
  test('reads the numbered files in order with checksums', async () => {
    const files = await readMigrationFiles(migrationsDir)
    expect(files[0]?.name).toBe('001_create_plugins_table.sql')
    expect(files[0]?.checksum).toMatch(/^[0-9a-f]{64}$/)
  })

  test('refuses a badly named file and two files with one number', async () => {
    await expect(readMigrationFiles(await migrationsCopy({ 'add-things.sql': 'SELECT 1;' }))).rejects.toThrow(/must look like 001_what_it_does.sql/)
    await expect(readMigrationFiles(await migrationsCopy({ '001_again.sql': 'SELECT 1;' }))).rejects.toThrow(/share the number 1/)
  })
})

describe.each(engines)('migrations on %s Postgres', (engine) => {
  let database: TestDatabase | undefined
  afterEach(async () => {
    await database?.close()
    database = undefined
  })

  test('creates the three tables, the drift view and the migrations record', async () => {
    database = await openTestDatabase(engine, { migrate: false })
    const result = await migrate(database.handle.db, migrationsDir, logger)
    expect(result.applied).toEqual(ALL_MIGRATIONS)
    expect(await tableNames(database)).toEqual([
      'flowforge_settings',
      'plugin_drift',
      'plugin_events',
      'plugin_metrics',
      'plugin_ports',
      'plugin_replicas',
      'plugin_revisions',
      'plugin_tasks',
      'plugin_tombstones',
      'plugin_volumes',
      'plugins',
      'schema_migrations',
    ])
  })

  test('running again changes nothing', async () => {
    database = await openTestDatabase(engine, { migrate: false })
    await migrate(database.handle.db, migrationsDir, logger)
    const before = await database.handle.db.selectFrom('schema_migrations').selectAll().execute()
    const again = await migrate(database.handle.db, migrationsDir, logger)
    expect(again).toEqual({ applied: [], alreadyApplied: ALL_MIGRATIONS.length })
    expect(await database.handle.db.selectFrom('schema_migrations').selectAll().execute()).toEqual(before)
  })

  test('two migrators started at once apply each file exactly once', async () => {
    database = await openTestDatabase(engine, { migrate: false })
    const results = await Promise.all([
      migrate(database.handle.db, migrationsDir, logger),
      migrate(database.handle.db, migrationsDir, logger),
      migrate(database.handle.db, migrationsDir, logger),
    ])
    expect(results.flatMap((result) => result.applied).sort()).toEqual(ALL_MIGRATIONS)
    expect(await database.handle.db.selectFrom('schema_migrations').select('name').execute()).toHaveLength(ALL_MIGRATIONS.length)
  })

  test('a failing file leaves the database unchanged and names the file and the error', async () => {
    database = await openTestDatabase(engine, { migrate: false })
    await migrate(database.handle.db, migrationsDir, logger)
    const dir = await migrationsCopy({
      '900_add_owner.sql': 'ALTER TABLE plugins ADD COLUMN owner TEXT;\nCREATE TABLE half_done (id INT);\nSELECT * FROM no_such_table;\n',
    })
    const failure = migrate(database.handle.db, dir, logger)
    await expect(failure).rejects.toBeInstanceOf(MigrationError)
    await expect(failure).rejects.toThrow(/900_add_owner.sql failed.*no_such_table.*line 3/)
    expect(await tableNames(database)).not.toContain('half_done')
    const columns = await sql<{ column_name: string }>`
      SELECT column_name FROM information_schema.columns WHERE table_name = 'plugins' AND column_name = 'owner'`.execute(database.handle.db)
    expect(columns.rows).toHaveLength(0)
    expect(await database.handle.db.selectFrom('schema_migrations').select('name').orderBy('name').execute()).toEqual(ALL_MIGRATIONS.map((name) => ({ name })))
  })

  test('refuses to run when an applied file was edited', async () => {
    database = await openTestDatabase(engine, { migrate: false })
    await migrate(database.handle.db, migrationsDir, logger)
    const dir = await migrationsCopy()
    const file = path.join(dir, '001_create_plugins_table.sql')
    await writeFile(file, (await readFile(file, 'utf8')) + '\n-- edited\n')
    await expect(migrate(database.handle.db, dir, logger)).rejects.toThrow(/001_create_plugins_table.sql was changed after it was applied/)
  })

  test('accepts a database migrated before a comment-only edit of a file, and still refuses any other edit of it', async () => {
    database = await openTestDatabase(engine, { migrate: false })
    const current = await readFile(path.join(migrationsDir, '001_create_plugins_table.sql'), 'utf8')
    // The text earlier releases shipped: its header pointed at a design file outside the repository.
    const earlier = current.replace('(see README.md, "The database")', '(see shared/ARCHITECTURE.md)')
    await migrate(database.handle.db, await migrationsCopy({ '001_create_plugins_table.sql': earlier }), logger)
    const recorded = await database.handle.db.selectFrom('schema_migrations').selectAll().orderBy('name').execute()

    expect(await migrate(database.handle.db, migrationsDir, logger)).toEqual({ applied: [], alreadyApplied: ALL_MIGRATIONS.length })
    // The record is left as it was, so the earlier release still starts on this database.
    expect(await database.handle.db.selectFrom('schema_migrations').selectAll().orderBy('name').execute()).toEqual(recorded)
    const edited = await migrationsCopy({ '001_create_plugins_table.sql': current + '\n-- edited\n' })
    await expect(migrate(database.handle.db, edited, logger)).rejects.toThrow(/001_create_plugins_table.sql was changed after it was applied/)
  })

  test('applies a later file on top of an existing schema', async () => {
    database = await openTestDatabase(engine, { migrate: false })
    await migrate(database.handle.db, migrationsDir, logger)
    const dir = await migrationsCopy({ '900_add_note.sql': 'ALTER TABLE plugins ADD COLUMN note TEXT;' })
    expect((await migrate(database.handle.db, dir, logger)).applied).toEqual(['900_add_note.sql'])
    expect((await migrate(database.handle.db, dir, logger)).applied).toEqual([])
  })
})
