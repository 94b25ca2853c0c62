// PGlite is one Postgres session, shared by the daemon and every SQL-port client (see
// session-gate.ts). Whatever a client sets on it would otherwise stay for everyone: after
// `SET session_replication_role = replica` the daemon's writes would fire no trigger (no
// generation bump, no notification), after `SET default_transaction_read_only = on` every
// daemon write would fail. So each client turn (its transaction, or one statement in
// autocommit) ends with a look at the settings the daemon relies on; when a client changed
// one, the session is put back into the daemon's settings and the client's own SETs are kept
// aside and put back at its next turn. The daemon always runs with the settings below.
import type { PGlite } from '@electric-sql/pglite'
import type { Logger } from '../logger.js'
import { PLUGIN_CHANGES_CHANNEL } from './change-feed.js'
import { textLiteral } from './prepared-statements.js'

/**
 * What the daemon's statements rely on, pinned after every client turn and at open, so that
 * neither a SET nor an ALTER ROLE/DATABASE/SYSTEM of an earlier run changes them. Values are
 * PGlite's own defaults. search_path puts pg_temp last: a client's temporary table named
 * like one of ours cannot stand in for it (without pg_temp in the path it is searched first).
 */
export const DAEMON_SETTINGS: Readonly<Record<string, string>> = {
  session_replication_role: 'origin',
  default_transaction_read_only: 'off',
  default_transaction_isolation: 'read committed',
  default_transaction_deferrable: 'off',
  search_path: 'public, pg_temp',
  statement_timeout: '0',
  lock_timeout: '0',
  idle_in_transaction_session_timeout: '0',
  transaction_timeout: '0',
  idle_session_timeout: '0',
  TimeZone: 'UTC',
  DateStyle: 'ISO, MDY',
  IntervalStyle: 'postgres',
  extra_float_digits: '1',
  bytea_output: 'hex',
  client_encoding: 'UTF8',
  standard_conforming_strings: 'on',
  transform_null_equals: 'off',
  row_security: 'on',
  array_nulls: 'on',
  synchronous_commit: 'on',
  client_min_messages: 'notice',
  // A superuser may SET it: any error would then end PGlite's one session.
  exit_on_error: 'off',
}

// RESET ALL leaves out the role and the session user. LISTEN again: a client's UNLISTEN *
// would otherwise end the daemon's in-process LISTEN (LISTEN twice is a no-op).
const RESET_SCRIPT = [
  'SET SESSION AUTHORIZATION DEFAULT',
  'RESET ROLE',
  'RESET ALL',
  `SELECT set_config(name, value, false) FROM (VALUES ${Object.entries(DAEMON_SETTINGS)
    .map(([name, value]) => `(${textLiteral(name)}, ${textLiteral(value)})`)
    .join(', ')}) AS pinned(name, value)`,
  `LISTEN ${PLUGIN_CHANGES_CHANNEL}`,
].join(';\n')

// DISCARD ALL without UNLISTEN *, which would end the daemon's LISTEN (and DISCARD ALL cannot
// be combined with other statements in one call): what a session leaves behind besides settings.
const DISCARD_SCRIPT = ['CLOSE ALL', 'DEALLOCATE ALL', 'SELECT pg_advisory_unlock_all()', 'DISCARD PLANS', 'DISCARD TEMP', 'DISCARD SEQUENCES'].join(';\n')

// One cheap look after each client turn (no scan of pg_settings): are the daemon's settings,
// its role and its LISTEN as it left them? Only when not is the session reset.
const PINNED_NAMES = Object.keys(DAEMON_SETTINGS)

export class SqlSessionState {
  /** Each client's own SETs (name → value), put back at its next turn. */
  private readonly saved = new Map<number, [string, string][]>()
  /**
   * One boolean: every pinned setting shows as it did right after pinning (Postgres shows
   * some in its own form), the role is the session's own, the daemon still listens. Built
   * at the first pin; run as a simple query straight on the protocol (it runs after every
   * client turn: pglite.query's extended exchange and type parsing cost twice as much).
   */
  private untouchedQuery: Uint8Array | undefined
  /** A client has had the session since the last full discard. */
  private used = true
  /** Client turns and session resets so far: the daemon's prepared statements may be gone or replaced since it last saw this number (prepared-statements.ts). */
  clientTurns = 0

  constructor(
    private readonly pglite: PGlite,
    private readonly logger: Logger,
  ) {}

  /** The daemon's settings. Run while holding the session, outside any transaction. */
  async pinDaemonSettings(): Promise<void> {
    await this.pglite.exec(RESET_SCRIPT)
    if (this.untouchedQuery === undefined) this.untouchedQuery = simpleQuery(await this.buildUntouchedQuery())
  }

  /** A client's turn begins (the gate is its): its own settings come back. */
  async beginTurn(clientId: number): Promise<void> {
    this.used = true
    this.clientTurns += 1
    const settings = this.saved.get(clientId)
    if (!settings || settings.length === 0) return
    const values = settings.map(([name, value]) => `(${textLiteral(name)}, ${textLiteral(value)})`).join(', ')
    try {
      await this.pglite.exec(`SELECT set_config(name, value, false) FROM (VALUES ${values}) AS saved(name, value)`)
    } catch (error) {
      // A value that no longer applies (a role dropped since): the client gets the default.
      this.logger.debug({ err: error, clientId }, 'could not restore the settings of an SQL client')
    }
  }

  /**
   * A client's turn ends, its transaction closed. When it left the daemon's settings, role and
   * LISTEN as they were (the common case: one small query), nothing is done; settings the
   * daemon does not rely on (work_mem, say) are then shared by the clients, as in one session.
   * Otherwise its session settings are kept aside for its next turn and the daemon's pinned.
   */
  async endTurn(clientId: number): Promise<void> {
    if (await this.untouched()) return
    try {
      const result = await this.pglite.query<{ name: string; setting: string }>(`SELECT name, setting FROM pg_settings WHERE source = 'session'`)
      const own = result.rows.filter(({ name, setting }) => DAEMON_SETTINGS[name] !== setting).map(({ name, setting }) => [name, setting] as [string, string])
      if (own.length > 0) this.saved.set(clientId, own)
      else this.saved.delete(clientId)
    } finally {
      await this.pinDaemonSettings()
    }
  }

  /**
   * A client session begins or ends. Cursors, prepared statements, temporary tables and
   * advisory locks are the whole session's, so they are discarded only when no other client
   * session is open (another client's would go with them).
   */
  async discardSession(clientId: number, otherClientsOpen: boolean): Promise<void> {
    this.saved.delete(clientId)
    this.clientTurns += 1
    if (otherClientsOpen || !this.used) {
      if (!(await this.untouched())) await this.pinDaemonSettings()
      return
    }
    await this.pglite.exec(DISCARD_SCRIPT)
    await this.pinDaemonSettings()
    this.used = false
  }

  private async untouched(): Promise<boolean> {
    const query = this.untouchedQuery
    if (query === undefined) return false
    const chunks: Uint8Array[] = []
    await this.pglite.runExclusive(() => this.pglite.execProtocolRawStream(query, { onRawData: (bytes) => chunks.push(bytes) }))
    return firstField(Buffer.concat(chunks)) === 't'
  }

  private async buildUntouchedQuery(): Promise<string> {
    const shown = await this.pglite.query<Record<string, string>>(
      `SELECT ${PINNED_NAMES.map((name, index) => `current_setting(${textLiteral(name)}) AS s${index}`).join(', ')}`,
    )
    const row = shown.rows[0] ?? {}
    const settings = PINNED_NAMES.map((name, index) => `current_setting(${textLiteral(name)}) = ${textLiteral(String(row[`s${index}`]))}`)
    const listening = `${textLiteral(PLUGIN_CHANGES_CHANNEL)} = ANY (ARRAY(SELECT pg_listening_channels()))`
    return `SELECT ${[...settings, 'session_user = current_user', listening].join(' AND ')} AS untouched`
  }

  forget(clientId: number): void {
    this.saved.delete(clientId)
  }
}

/** A simple-query ('Q') message. */
function simpleQuery(sqlText: string): Uint8Array {
  const body = Buffer.from(`${sqlText}\0`, 'utf8')
  const message = Buffer.alloc(5 + body.length)
  message[0] = 0x51
  message.writeInt32BE(4 + body.length, 1)
  body.copy(message, 5)
  return message
}

/** The first column of the first DataRow ('D') in a backend's answer, as text; undefined when none (or NULL). */
function firstField(answer: Buffer): string | undefined {
  for (let offset = 0; offset + 5 <= answer.length; offset += 1 + answer.readInt32BE(offset + 1)) {
    if (answer[offset] !== 0x44) continue
    const length = answer.readInt32BE(offset + 7)
    return length < 0 ? undefined : answer.toString('utf8', offset + 11, offset + 11 + length)
  }
  return undefined
}
