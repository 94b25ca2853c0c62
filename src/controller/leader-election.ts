// Exactly one manager reconciles: the one holding the leader lock (src/db/leader-lock.ts).
// Every manager serves the API; only the leader runs the controller, the health and
// metrics loops and the spec folder. The loop:
// - candidate: connect, try the lock; held → leader, otherwise follower and try again
//   every `retryMs` (2 s, Kubernetes' retry period), noting who leads;
// - leader: ping the connection every `heartbeatMs`; the connection erroring, ending or not
//   answering within `heartbeatTimeoutMs` ends the term at once (onStoppedLeading), then
//   the manager becomes a candidate again on a new connection.
// A lock rather than a lease: the server releases it the moment the holder's session ends,
// so there is no window in which an expired leader still believes it leads.
import type { LeaderLockBackend, LeaderLockSession } from '../db/leader-lock.js'
import type { Logger } from '../logger.js'
import { sleep } from '../util/backoff.js'
import { ExpectedError } from '../util/expected-error.js'
import { formatDuration } from '../util/format-duration.js'

export type LeaderRole = 'candidate' | 'follower' | 'leader'

/** Work only the leader does was asked of a follower while no manager leads. */
export class NoLeaderError extends ExpectedError {
  override name = 'NoLeaderError'
  constructor(readonly managerId: string) {
    super(`no manager leads right now (this one, ${managerId}, follows); try again in a few seconds`)
  }
}

export interface LeadershipStatus {
  role: LeaderRole
  /** This manager. */
  managerId: string
  /** The manager holding the lock, when known (this one when leading). */
  leader?: string
  /** When the role last changed. */
  since: Date
  /** Terms this manager has led. */
  terms: number
}

export interface LeaderElectionOptions {
  backend: LeaderLockBackend
  managerId: string
  logger: Logger
  /** Called when this manager starts leading. Not awaited by the election: a long start does not delay the heartbeat. */
  onStartedLeading(): void
  /** Called once per term when it ends; the next term starts only after it resolves. */
  onStoppedLeading(reason: string): Promise<void>
  retryMs?: number
  heartbeatMs?: number
  heartbeatTimeoutMs?: number
}

export class LeaderElection {
  private readonly abort = new AbortController()
  private readonly log: Logger
  private state: LeadershipStatus
  private loop: Promise<void> | undefined
  private decided!: () => void
  /** Resolves once this manager knows whether it leads (first lock attempt answered). */
  readonly firstDecision = new Promise<void>((resolve) => (this.decided = resolve))

  constructor(private readonly options: LeaderElectionOptions) {
    this.log = options.logger.child({ component: 'leader-election' })
    this.state = { role: 'candidate', managerId: options.managerId, since: new Date(), terms: 0 }
  }

  start(): void {
    this.loop ??= this.run()
  }

  /** Ends the term (if leading) and closes the connection: the lock is released at once. */
  async stop(): Promise<void> {
    this.abort.abort()
    await this.loop
  }

  status(): LeadershipStatus {
    return { ...this.state }
  }

  private get retryMs(): number {
    return this.options.retryMs ?? 2_000
  }

  private async run(): Promise<void> {
    const { signal } = this.abort
    while (!signal.aborted) {
      let session: LeaderLockSession
      try {
        session = await this.options.backend.connect()
      } catch (error) {
        this.become('candidate', undefined)
        this.log.warn({ err: error }, `leader election: cannot reach the database (${(error as Error).message}); retrying in ${formatDuration(this.retryMs)}`)
        await sleep(this.retryMs, signal)
        continue
      }
      try {
        await this.campaign(session)
      } catch (error) {
        this.log.warn({ err: error }, `leader election: ${(error as Error).message}; reconnecting`)
        this.become('candidate', undefined)
        await sleep(this.retryMs, signal)
      } finally {
        await session.close()
      }
    }
  }

  /** Tries for the lock until it is held (then leads until the term ends) or the session is lost. */
  private async campaign(session: LeaderLockSession): Promise<void> {
    const { signal } = this.abort
    let lost: string | undefined
    void session.lost.then((reason) => (lost = reason))
    while (!signal.aborted && lost === undefined) {
      if (await session.tryLock()) {
        await this.lead(session)
        return
      }
      const holder = await session.holder()
      if (this.state.role !== 'follower' || this.state.leader !== holder) {
        this.log.info({ leader: holder }, `following: ${holder ?? 'another manager'} leads; trying again every ${formatDuration(this.retryMs)}`)
      }
      this.become('follower', holder)
      await Promise.race([sleep(this.retryMs, signal), session.lost])
    }
    if (lost !== undefined) throw new Error(`the election connection was lost (${lost})`)
  }

  private async lead(session: LeaderLockSession): Promise<void> {
    const { signal } = this.abort
    this.state.terms += 1
    this.become('leader', this.options.managerId)
    this.log.info({ term: this.state.terms }, `leading: this manager (${this.options.managerId}) now reconciles`)
    this.options.onStartedLeading()
    const reason = await this.watch(session, signal)
    // Whatever ended the term, stop reconciling before anything else happens.
    this.become('candidate', undefined)
    if (signal.aborted) this.log.info('leadership given up: the manager is stopping')
    else this.log.error({ reason }, `leadership lost (${reason}): reconciling stopped at once`)
    await this.options.onStoppedLeading(reason)
  }

  /** Resolves with the reason the term ends: the connection lost, a failed heartbeat, or stop(). */
  private async watch(session: LeaderLockSession, signal: AbortSignal): Promise<string> {
    const heartbeatMs = this.options.heartbeatMs ?? 2_000
    const timeoutMs = this.options.heartbeatTimeoutMs ?? 2_000
    let ended: string | undefined
    void session.lost.then((reason) => (ended ??= `database connection ${reason}`))
    const stopped = new Promise<string>((resolve) => signal.addEventListener('abort', () => resolve('stopping'), { once: true }))
    while (ended === undefined && !signal.aborted) {
      await Promise.race([sleep(heartbeatMs, signal), session.lost, stopped])
      if (ended !== undefined || signal.aborted) break
      try {
        await Promise.race([session.ping(timeoutMs), session.lost])
      } catch (error) {
        ended = `heartbeat failed: ${(error as Error).message}`
      }
    }
    return signal.aborted ? 'stopping' : (ended ?? 'stopping')
  }

  private become(role: LeaderRole, leader: string | undefined): void {
    if (role !== this.state.role) this.state.since = new Date()
    this.state.role = role
    this.state.leader = leader
    if (role !== 'candidate') this.decided()
  }
}
