// The embedded SQL port's password: SQL_PASSWORD when given, otherwise generated at the first
// start into DATA_DIR/sql-password (mode 0600, the daemon's user only) and read from there at
// every later start, so psql beside the daemon can use it:
//   PGPASSWORD=$(cat data/sql-password) psql -h 127.0.0.1 -p 5433 -U postgres
// The password itself is never logged; the log names the file.
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import path from 'node:path'
import { ExpectedError } from '../util/expected-error.js'

export const SQL_PASSWORD_FILE = 'sql-password'

export interface SqlPassword {
  password: string
  /** Where it is kept; undefined when it came from SQL_PASSWORD (or lives in memory only). */
  file?: string
}

export class SqlPasswordFileError extends ExpectedError {
  override name = 'SqlPasswordFileError'
}

/**
 * `configured` (SQL_PASSWORD) wins; a data dir of 'memory' (tests) gets a fresh password that
 * lives as long as the process; otherwise the file, created when missing.
 */
export async function resolveSqlPassword(dataDir: string | 'memory', configured: string | undefined): Promise<SqlPassword> {
  if (configured !== undefined) return { password: configured }
  if (dataDir === 'memory') return { password: generatePassword() }
  const file = path.join(dataDir, SQL_PASSWORD_FILE)
  const created = await createPasswordFile(file)
  return { password: created ?? (await readPasswordFile(file)), file }
}

/** 32 characters from 24 random bytes (192 bits), safe in a shell, a URL and a pgpass line. */
function generatePassword(): string {
  return randomBytes(24).toString('base64url')
}

/** Writes a new password file (O_EXCL, 0600); undefined when one exists already. */
async function createPasswordFile(file: string): Promise<string | undefined> {
  const password = generatePassword()
  let handle: fs.FileHandle
  try {
    handle = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined
    throw new SqlPasswordFileError(`cannot create the SQL port's password file ${file}: ${(error as Error).message}`, { cause: error })
  }
  try {
    await handle.writeFile(`${password}\n`)
  } finally {
    await handle.close()
  }
  return password
}

async function readPasswordFile(file: string): Promise<string> {
  let handle: fs.FileHandle
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (error) {
    throw new SqlPasswordFileError(`cannot read the SQL port's password file ${file}: ${(error as Error).message}`, { cause: error })
  }
  try {
    const stats = await handle.stat()
    if (!stats.isFile() || stats.size > 4096) throw new SqlPasswordFileError(`${file} is not a password file (a regular file of one line); remove it to get a new password`)
    // Readable by others (copied, or made by hand): the password is theirs too. Narrow it.
    if ((stats.mode & 0o077) !== 0) await handle.chmod(0o600)
    const password = (await handle.readFile('utf8')).trim()
    if (password === '' || /\s/.test(password)) throw new SqlPasswordFileError(`${file} holds no usable password (one line, no spaces); remove it to get a new one`)
    return password
  } finally {
    await handle.close()
  }
}
