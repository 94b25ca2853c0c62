// The start-up log lines that tell an operator how to reach the embedded database: where it
// listens and which psql command connects. They name the password file, never the password.
import path from 'node:path'
import type { SqlServerAddress } from './embedded-sql-server.js'
import { SQL_USER } from './sql-startup.js'

export interface SqlAccessHint {
  fields: Record<string, unknown>
  message: string
}

/** `passwordFile` undefined: the password came from SQL_PASSWORD. */
export function sqlAccessHints(address: SqlServerAddress, passwordFile: string | undefined, cwd: string = process.cwd()): SqlAccessHint[] {
  const hints: SqlAccessHint[] = []
  const { host, port, socketPath } = address
  if (host !== undefined && port !== undefined) {
    const source = passwordFile ?? 'SQL_PASSWORD'
    const password = passwordFile !== undefined ? `PGPASSWORD=$(cat ${shellWord(relativeTo(cwd, passwordFile))})` : 'PGPASSWORD=<SQL_PASSWORD>'
    hints.push({
      fields: { host, port, passwordFile: source },
      message: `embedded database open for SQL clients (user ${SQL_USER}, password in ${source}): ${password} psql -h ${host} -p ${port} -U ${SQL_USER}`,
    })
  }
  if (socketPath !== undefined) {
    const socketPort = path.basename(socketPath).slice('.s.PGSQL.'.length)
    hints.push({
      fields: { socketPath },
      message: `embedded database open for this user's SQL clients on ${socketPath}: psql -h ${shellWord(path.dirname(socketPath))} -p ${socketPort} -U ${SQL_USER}`,
    })
  }
  return hints
}

function relativeTo(cwd: string, file: string): string {
  const relative = path.relative(cwd, file)
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file
}

/** A path as one shell word: quoted when it holds anything but plain characters. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`
}
