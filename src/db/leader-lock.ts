// Leadership among several managers on one Postgres: a session-level advisory lock held on
// a dedicated connection. The lock lives exactly as long as that connection, so
// - a leader that crashes (kill -9) releases it when the server sees the socket close;
// - a leader whose connection dies stops leading at once (the session is gone, and with it
//   the lock), and is told so by the connection's error/end events or a failed heartbeat;
// - a half-dead client is dropped by the server's TCP keepalive (set per session below),
//   so a partitioned leader's lock is released within about 15 s;
// - a leader that stops sending its heartbeat (a frozen process, a blocked event loop) is
//   disconnected by the server after `sessionTimeoutMs` (idle_session_timeout, 15 s: the
//   Kubernetes lease duration), which releases the lock like an expired lease.
// Who leads is read from pg_locks joined with pg_stat_activity: the holder's
// application_name carries its manager id. Nothing is written, so nothing can go stale.
import pg from 'pg'
import { describePgError } from './postgres.js'

/** application_name prefix of election connections; the rest is the manager id. */
export const LEADER_APPLICATION_PREFIX = 'flowforge-leader:'
/** The first key of the two-key advisory lock ("FFLD"); the second is a hash of MANAGER_INSTANCE. */
const LOCK_CLASS_ID = 0x46464c44

export interface LeaderLockSession {
  /** Takes the lock if nobody holds it; true when this session holds it now. */
  tryLock(): Promise<boolean>
  /** Rejects when the connection no longer answers within `timeoutMs`. */
  ping(timeoutMs: number): Promise<void>
  /** The manager id of the session holding the lock, if any. */
  holder(): Promise<string | undefined>
  /** Settles with a reason once the connection is lost (error, end, close). */
  lost: Promise<string>
  close(): Promise<void>
}

export interface LeaderLockBackend {
  connect(): Promise<LeaderLockSession>
}

/** The advisory-lock backend on a Postgres server. `instance` scopes the lock (MANAGER_INSTANCE). */
export function postgresLeaderLock(connectionString: string, instance: string, managerId: string, sessionTimeoutMs = 15_000): LeaderLockBackend {
  const objectId = fnv1a32(instance)
  return {
    async connect() {
      const client = new pg.Client({
        connectionString,
        connectionTimeoutMillis: 5_000,
        keepAlive: true,
        // application_name is at most 63 bytes: the id is cut rather than refused.
        application_name: (LEADER_APPLICATION_PREFIX + managerId).slice(0, 63),
      })
      let markLost: (reason: string) => void = () => undefined
      const lost = new Promise<string>((resolve) => (markLost = resolve))
      client.on('error', (error) => markLost(`error: ${describePgError(error)}`))
      client.on('end', () => markLost('connection ended'))
      try {
        await client.connect()
        // The server drops this session (and the lock) ~15 s after the client goes silent.
        await client.query('SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 5')
        // idle_session_timeout exists from Postgres 14 on; without it only keepalive applies.
        await client.query(`SET idle_session_timeout = ${Math.max(1, Math.round(sessionTimeoutMs))}`).catch((error: { code?: string }) => {
          if (error.code !== '42704') throw error
        })
      } catch (error) {
        await client.end().catch(() => undefined)
        throw error
      }
      return {
        lost,
        async tryLock() {
          const result = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS locked', [
            signed32(LOCK_CLASS_ID),
            signed32(objectId),
          ])
          return result.rows[0]?.locked === true
        },
        async ping(timeoutMs) {
          let timer: NodeJS.Timeout | undefined
          const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`the database did not answer within ${timeoutMs} ms`)), timeoutMs)
          })
          try {
            await Promise.race([client.query('SELECT 1'), timeout])
          } finally {
            clearTimeout(timer)
          }
        },
        async holder() {
          const result = await client.query<{ application_name: string }>(
            `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                AND l.classid::bigint = $1 AND l.objid::bigint = $2`,
            [LOCK_CLASS_ID, objectId],
          )
          const name = result.rows[0]?.application_name
          return name?.startsWith(LEADER_APPLICATION_PREFIX) ? name.slice(LEADER_APPLICATION_PREFIX.length) : undefined
        },
        async close() {
          markLost('closed')
          await client.end().catch(() => undefined)
        },
      }
    },
  }
}

/** 32-bit FNV-1a of a string, unsigned. */
function fnv1a32(text: string): number {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash
}

/** The int4 with the same bits (pg_try_advisory_lock takes int4; pg_locks shows them as oid). */
function signed32(value: number): number {
  return value | 0
}
