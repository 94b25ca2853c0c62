// Applies migrations/NNN_name.sql in order, each once, each in its own transaction, and
// records them in schema_migrations. Safe when several processes start at once: every
// file's transaction first takes a transaction-level advisory lock, then re-checks whether
// the file was applied meanwhile.
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { sql, type Kysely } from 'kysely'
import type { Logger } from '../logger.js'
import { MigrationError } from './errors.js'
import type { Database } from './schema.js'

/** Arbitrary, fixed key of the advisory lock that serialises migrations. */
const MIGRATION_LOCK_KEY = 7_262_001
const FILE_PATTERN = /^(\d{3,})_[a-z0-9_]+\.sql$/

/**
 * Comment-only edits of applied files: `checksum` is the file's text now, `earlier` what
 * earlier releases recorded for it. A database migrated with the earlier text ran the same
 * statements, so it is accepted while the file has exactly this text; any other difference,
 * a further comment included, is still refused (telling a comment from a statement would
 * take an SQL parser, and a wrong guess would let a real change through). Add an entry only
 * for a comment-only edit, with a test that migrates the earlier text (test/db/migrator.test.ts).
 */
const COMMENT_ONLY_EDITS: readonly { file: string; checksum: string; earlier: readonly string[] }[] = [
  // Its header pointed at a design file outside the repository.
  {
    file: '001_create_plugins_table.sql',
    checksum: '25abfa0c5bdb0871c1e7071e1e566497e65440987921a8f384dc32ee8f5cb7aa',
    earlier: ['a25ace7197da9f69042a78698b4ed642538a646c79e6a50450ecc8cf10edeadd'],
  },
]

export interface MigrationFile {
  name: string
  version: number
  checksum: string
  sql: string
}

export interface MigrationResult {
  applied: string[]
  alreadyApplied: number
}

export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch (error) {
    throw new MigrationError(dir, `cannot read the migrations folder ${dir}: ${(error as Error).message}`)
  }
  const files: MigrationFile[] = []
  for (const name of entries.filter((entry) => entry.endsWith('.sql')).sort()) {
    const match = FILE_PATTERN.exec(name)
    if (!match) {
      throw new MigrationError(name, `migration file name ${name} must look like 001_what_it_does.sql`)
    }
    const text = await readFile(path.join(dir, name), 'utf8')
    files.push({ name, version: Number(match[1]), checksum: sha256(text), sql: text })
  }
  const seen = new Map<number, string>()
  for (const file of files) {
    const other = seen.get(file.version)
    if (other) throw new MigrationError(file.name, `migrations ${other} and ${file.name} share the number ${file.version}`)
    seen.set(file.version, file.name)
  }
  if (files.length === 0) throw new MigrationError(dir, `no migrations found in ${dir}`)
  return files
}

export async function migrate(db: Kysely<Database>, dir: string, logger: Logger): Promise<MigrationResult> {
  const files = await readMigrationFiles(dir)
  const known = await appliedMigrations(db)
  const pending = files.filter((file) => !known.has(file.name))
  for (const file of files) checkUnchanged(file, known.get(file.name))
  warnAboutUnknown(files, known, logger)
  if (pending.length === 0) {
    logger.debug({ migrations: files.length }, 'database schema is up to date')
    return { applied: [], alreadyApplied: files.length }
  }

  const applied: string[] = []
  for (const file of pending) {
    const didApply = await applyOne(db, file)
    if (didApply) {
      applied.push(file.name)
      logger.info({ migration: file.name }, `applied migration ${file.name}`)
    }
  }
  return { applied, alreadyApplied: files.length - applied.length }
}

async function applyOne(db: Kysely<Database>, file: MigrationFile): Promise<boolean> {
  try {
    return await db.transaction().execute(async (trx) => {
      await sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`.execute(trx)
      await ensureMigrationsTable(trx)
      const existing = await trx
        .selectFrom('schema_migrations')
        .select(['name', 'checksum'])
        .where('name', '=', file.name)
        .executeTakeFirst()
      if (existing) {
        // Another process applied it while we waited for the lock.
        checkUnchanged(file, existing.checksum)
        return false
      }
      await sql.raw(file.sql).execute(trx)
      await trx.insertInto('schema_migrations').values({ name: file.name, checksum: file.checksum }).execute()
      return true
    })
  } catch (error) {
    if (error instanceof MigrationError) throw error
    throw new MigrationError(file.name, `migration ${file.name} failed, nothing of it was applied: ${describeSqlError(error, file.sql)}`)
  }
}

async function ensureMigrationsTable(db: Kysely<Database>): Promise<void> {
  await sql`
    CREATE TABLE IF NOT EXISTS schema_migrations (
      name TEXT PRIMARY KEY,
      checksum TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`.execute(db)
}

/** name -> checksum of what the database has applied; empty on a fresh database. */
async function appliedMigrations(db: Kysely<Database>): Promise<Map<string, string>> {
  const exists = await sql<{ present: boolean }>`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`.execute(db)
  if (!exists.rows[0]?.present) return new Map()
  const rows = await db.selectFrom('schema_migrations').select(['name', 'checksum']).execute()
  return new Map(rows.map((row) => [row.name, row.checksum]))
}

function checkUnchanged(file: MigrationFile, appliedChecksum: string | undefined): void {
  if (appliedChecksum === undefined || appliedChecksum === file.checksum) return
  if (isCommentOnlyEdit(file, appliedChecksum)) return
  throw new MigrationError(
    file.name,
    `migration ${file.name} was changed after it was applied to this database ` +
      `(checksum ${appliedChecksum.slice(0, 12)}… became ${file.checksum.slice(0, 12)}…); ` +
      `applied migrations must not change: restore the file and add a new numbered migration instead`,
  )
}

function isCommentOnlyEdit(file: MigrationFile, appliedChecksum: string): boolean {
  return COMMENT_ONLY_EDITS.some((edit) => edit.file === file.name && edit.checksum === file.checksum && edit.earlier.includes(appliedChecksum))
}

function warnAboutUnknown(files: MigrationFile[], known: Map<string, string>, logger: Logger): void {
  const names = new Set(files.map((file) => file.name))
  const unknown = [...known.keys()].filter((name) => !names.has(name))
  if (unknown.length > 0) {
    logger.warn({ unknown }, `the database has migrations this version does not know (${unknown.join(', ')}): was it downgraded?`)
  }
}

/** The Postgres message with the line of the file it points at, when it says. */
function describeSqlError(error: unknown, text: string): string {
  if (!(error instanceof Error)) return String(error)
  const position = Number((error as { position?: string }).position)
  if (!Number.isFinite(position) || position <= 0) return error.message
  const line = text.slice(0, position - 1).split('\n').length
  return `${error.message} (line ${line})`
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}
