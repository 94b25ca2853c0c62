// Leader election on a real Postgres server: exactly one of several managers leads; a
// leader whose connection dies stops at once and another takes over; a stopped leader
// hands over immediately. (The embedded engine is single-process and runs no election.)
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { LeaderElection } from '../../src/controller/leader-election.js'
import { LEADER_APPLICATION_PREFIX, postgresLeaderLock, type LeaderLockBackend } from '../../src/db/leader-lock.js'
import { silentLogger } from '../../src/logger.js'
import { createServerDatabase, eventually, inCi, postgresUrl } from '../helpers/databases.js'

const RETRY_MS = 200

interface Candidate {
  id: string
  election: LeaderElection
  /** Every start and stop of a term, in order, with the time it happened. */
  terms: { event: 'started' | 'stopped'; at: number; reason?: string }[]
}

describe.skipIf(!postgresUrl && !inCi)('leader election through a Postgres advisory lock', () => {
  let database: { connectionString: string; drop: () => Promise<void> }
  const candidates: Candidate[] = []

  beforeAll(async () => {
    if (!postgresUrl) throw new Error('CI=true but TEST_DATABASE_URL is not set: the leader election needs a Postgres server')
    database = await createServerDatabase()
  })
  afterEach(async () => {
    await Promise.all(candidates.map((candidate) => candidate.election.stop()))
    candidates.length = 0
  })
  afterAll(async () => database?.drop())

  function candidate(
    id: string,
    instance = 'election-test',
    options: { heartbeatMs?: number; sessionTimeoutMs?: number; wrap?: (backend: LeaderLockBackend) => LeaderLockBackend } = {},
  ): Candidate {
    const terms: Candidate['terms'] = []
    const backend = postgresLeaderLock(database.connectionString, instance, id, options.sessionTimeoutMs)
    const election = new LeaderElection({
      backend: options.wrap ? options.wrap(backend) : backend,
      managerId: id,
      logger: silentLogger(),
      retryMs: RETRY_MS,
      heartbeatMs: options.heartbeatMs ?? 200,
      heartbeatTimeoutMs: 1_000,
      onStartedLeading: () => void terms.push({ event: 'started', at: Date.now() }),
      onStoppedLeading: async (reason) => void terms.push({ event: 'stopped', at: Date.now(), reason }),
    })
    const made = { id, election, terms }
    candidates.push(made)
    election.start()
    return made
  }

  const leaders = () => candidates.filter((candidate) => candidate.election.status().role === 'leader')

  async function terminateElectionConnectionOf(id: string): Promise<number> {
    const admin = new pg.Client({ connectionString: database.connectionString })
    await admin.connect()
    try {
      const result = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [LEADER_APPLICATION_PREFIX + id])
      return result.rowCount ?? 0
    } finally {
      await admin.end()
    }
  }

  test('of three managers exactly one leads; the others follow and name it', async () => {
    const all = [candidate('m1'), candidate('m2'), candidate('m3')]
    await Promise.all(all.map((one) => one.election.firstDecision))
    await eventually(() => (all.every((one) => one.election.status().leader !== undefined) ? true : undefined), 5_000, 'everyone knows the leader')
    expect(leaders()).toHaveLength(1)
    const leader = leaders()[0]!
    for (const one of all) expect(one.election.status().leader).toBe(leader.id)
    expect(all.filter((one) => one.election.status().role === 'follower')).toHaveLength(2)
    expect(leader.terms.map((term) => term.event)).toEqual(['started'])
  })

  test('a leader whose database connection is killed stops at once; another takes over within the retry period', async () => {
    const first = candidate('k1')
    await first.election.firstDecision
    expect(first.election.status().role).toBe('leader')
    const second = candidate('k2')
    await second.election.firstDecision
    expect(second.election.status()).toMatchObject({ role: 'follower', leader: 'k1' })

    const killedAt = Date.now()
    expect(await terminateElectionConnectionOf('k1')).toBe(1)
    await eventually(() => (first.terms.some((term) => term.event === 'stopped') ? true : undefined), 5_000, 'the old leader stops')
    const stopped = first.terms.find((term) => term.event === 'stopped')!
    expect(stopped.reason).toMatch(/database connection|heartbeat/)
    // "At once": the connection's end is an event, not something found at the next heartbeat.
    expect(stopped.at - killedAt).toBeLessThan(1_000)

    await eventually(() => (leaders().length === 1 ? true : undefined), 5_000, 'a leader again')
    // Never two at once: the old leader's term ended before any new one started.
    const starts = candidates.flatMap((one) => one.terms.filter((term) => term.event === 'started' && term.at > killedAt))
    for (const start of starts) expect(start.at).toBeGreaterThanOrEqual(stopped.at)
  })

  test('a stopped leader releases the lock at once; managers of another instance do not contend', async () => {
    const first = candidate('s1')
    await first.election.firstDecision
    const other = candidate('o1', 'other-instance')
    await other.election.firstDecision
    expect(other.election.status().role).toBe('leader')
    const second = candidate('s2')
    await second.election.firstDecision
    expect(second.election.status().role).toBe('follower')

    await first.election.stop()
    expect(first.terms.map((term) => term.event)).toEqual(['started', 'stopped'])
    await eventually(() => (second.election.status().role === 'leader' ? true : undefined), 5 * RETRY_MS + 2_000, 's2 leads')
  })

  test('a leader that stops sending heartbeats (frozen) loses the lock after the session timeout, like an expired lease', async () => {
    // Its heartbeat is far slower than the server's idle timeout: to the server it looks
    // frozen. And frozen it stays: it cannot open another connection.
    let connects = 0
    const frozen = candidate('f1', 'frozen-instance', {
      heartbeatMs: 60_000,
      sessionTimeoutMs: 1_000,
      wrap: (backend) => ({
        connect: () => (++connects === 1 ? backend.connect() : Promise.reject(new Error('frozen'))),
      }),
    })
    await frozen.election.firstDecision
    expect(frozen.election.status().role).toBe('leader')
    const waiting = candidate('f2', 'frozen-instance')
    await waiting.election.firstDecision
    expect(waiting.election.status().role).toBe('follower')
    await eventually(() => (waiting.election.status().role === 'leader' ? true : undefined), 5_000, 'f2 leads once f1 is disconnected')
    // The old leader learns it from its connection and stops.
    await eventually(() => (frozen.terms.some((term) => term.event === 'stopped') ? true : undefined), 5_000, 'f1 stops')
  })

  test('a manager that cannot reach the database stays a candidate and never leads', async () => {
    const unreachable = new LeaderElection({
      backend: postgresLeaderLock('postgresql://flowforge:wrong@127.0.0.1:1/nowhere', 'election-test', 'lost'),
      managerId: 'lost',
      logger: silentLogger(),
      retryMs: RETRY_MS,
      onStartedLeading: () => undefined,
      onStoppedLeading: async () => undefined,
    })
    unreachable.start()
    await new Promise((resolve) => setTimeout(resolve, 3 * RETRY_MS))
    expect(unreachable.status()).toMatchObject({ role: 'candidate', terms: 0 })
    await unreachable.stop()
  })
})
