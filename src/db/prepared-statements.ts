// Statements the store sends often enough that parsing and planning them each time is a
// large part of their cost (the group commit's, batched-statements.ts: its planning was
// about a third of its time on the embedded engine). Their text is registered here once;
// each engine's connection then runs a registered text as a prepared statement:
// - a Postgres server: node-postgres' named statements, prepared on each pooled connection
//   at its first use (postgres.ts);
// - the embedded engine: PREPARE and EXECUTE in PGlite's one session (PgliteStatements
//   below), which SQL-port clients share: what a client did to the session's prepared
//   statements cannot reach the daemon's.
// Any other text runs as before. A registered text must take only text parameters.
import { randomBytes } from 'node:crypto'
import type { PGlite, Results } from '@electric-sql/pglite'

const names = new Map<string, string>()
/** SQLSTATE 26000: no prepared statement of that name. */
export const INVALID_STATEMENT_NAME = '26000'

/** Registers `text` as a prepared statement named `name`, and returns it. */
export function registerPrepared(name: string, text: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`invalid prepared statement name ${name}`)
  names.set(text, name)
  return text
}

/** The name a statement text was registered under, if it was. */
export function preparedName(text: string): string | undefined {
  return names.get(text)
}

/** A text parameter as an SQL string literal, whatever standard_conforming_strings says (E'' syntax). */
export function textLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('a text parameter cannot contain a NUL character')
  return `E'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
}

/**
 * Prepared statements in PGlite's session. The session is shared with the clients of the
 * SQL port, and a client may deallocate the daemon's statements (DISCARD ALL begins and ends
 * every client session) or prepare one of its own under the same name. So whenever a client
 * has had the session since (`clientTurns` moved), the statements are prepared again under
 * fresh random names, and the old ones (if still there) deallocated; a client cannot know a
 * name before the daemon uses it.
 */
export class PgliteStatements {
  private readonly prepared = new Map<string, string>()
  private turnsSeen: number

  constructor(
    private readonly pglite: PGlite,
    private readonly clientTurns: () => number,
  ) {
    this.turnsSeen = clientTurns()
  }

  /** Runs registered statement `name` with text parameters. The caller holds the session, outside a transaction block or inside its own. */
  async execute(name: string, text: string, parameters: readonly unknown[]): Promise<Results> {
    if (this.turnsSeen !== this.clientTurns()) await this.forgetAll()
    try {
      return await this.executeOnce(name, text, parameters)
    } catch (error) {
      // Gone without a client turn (not expected): prepare it again, once.
      if ((error as { code?: string }).code !== INVALID_STATEMENT_NAME) throw error
      await this.forgetAll()
      return this.executeOnce(name, text, parameters)
    }
  }

  private async executeOnce(name: string, text: string, parameters: readonly unknown[]): Promise<Results> {
    let handle = this.prepared.get(name)
    if (handle === undefined) {
      handle = `${name}_${randomBytes(8).toString('hex')}`
      await this.pglite.exec(`PREPARE ${handle} AS ${text}`)
      this.prepared.set(name, handle)
    }
    const args = parameters.map((parameter) => {
      if (typeof parameter !== 'string') throw new Error(`prepared statement ${name}: only text parameters are supported`)
      return textLiteral(parameter)
    })
    const results = await this.pglite.exec(`EXECUTE ${handle}(${args.join(', ')})`)
    return results[results.length - 1]!
  }

  private async forgetAll(): Promise<void> {
    const handles = [...this.prepared.values()]
    this.prepared.clear()
    this.turnsSeen = this.clientTurns()
    if (handles.length === 0) return
    // Only names of ours come back (a registered name and random hex): DEALLOCATE needs no quoting.
    const [found] = await this.pglite.exec(`SELECT name FROM pg_prepared_statements WHERE name IN (${handles.map(textLiteral).join(', ')})`)
    for (const { name } of (found?.rows ?? []) as { name: string }[]) await this.pglite.exec(`DEALLOCATE ${name}`)
  }
}
