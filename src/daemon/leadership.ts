// Who runs the leader's parts on this manager. With an election (several managers on one
// Postgres server) a term starts when the lock is won and stops when it is lost; without
// one (the embedded engine: one process, its data folder locked) this manager leads from
// the start. Work only the leader does is routed here: done by this manager's term, passed
// on to the leader through the store, or refused while nobody leads.
import { LeaderElection, NoLeaderError, type LeadershipStatus } from '../controller/leader-election.js'
import type { LeaderLockBackend } from '../db/leader-lock.js'
import type { PluginStore } from '../db/plugin-store.js'
import type { Logger } from '../logger.js'
import type { LeaderTerm } from './leader-term.js'

export interface LeadershipOptions {
  managerId: string
  store: PluginStore
  logger: Logger
  /** The advisory lock on the Postgres server; absent: lead at once, without an election. */
  lock?: LeaderLockBackend
  startTerm(): LeaderTerm
}

export class Leadership {
  private term: LeaderTerm | undefined
  private termStopping: Promise<void> | undefined
  private readonly election: LeaderElection | undefined
  private readonly startedAt = new Date()

  constructor(private readonly options: LeadershipOptions) {
    this.election = options.lock
      ? new LeaderElection({
          backend: options.lock,
          managerId: options.managerId,
          logger: options.logger,
          onStartedLeading: () => {
            this.term = options.startTerm()
          },
          onStoppedLeading: () => (this.termStopping = this.stopTerm()),
        })
      : undefined
  }

  /**
   * Starts the election, or the one term when there is none. Without an election, a spec
   * folder that cannot be watched is a start-up error (the returned promise rejects).
   */
  async start(): Promise<void> {
    if (this.election) return this.election.start()
    this.term = this.options.startTerm()
    await this.term.specsStarted
  }

  /** Resolves once this manager knows whether it leads and, when leading, its term is ready. */
  async ready(): Promise<void> {
    await this.election?.firstDecision
    await this.term?.ready
  }

  /** This manager's term while it leads. */
  get currentTerm(): LeaderTerm | undefined {
    return this.term
  }

  status(): LeadershipStatus {
    const { managerId } = this.options
    return this.election?.status() ?? { role: 'leader', managerId, leader: managerId, since: this.startedAt, terms: 1 }
  }

  /**
   * Restarts the plugin's running container once: by this manager's controller when it
   * leads, else by the leader, told through the store (it listens for it).
   * NoLeaderError while nobody leads.
   */
  async requestRestart(pluginId: string, reason: string): Promise<void> {
    if (this.term) return this.term.controller.requestRestart(pluginId, reason)
    const status = this.status()
    if (!status.leader) throw new NoLeaderError(status.managerId)
    await this.options.store.sendRestartRequest(pluginId, `${reason} (via manager ${status.managerId})`)
  }

  /** Ends the election (releasing the lock) and the term; running reconciles finish first. */
  async stop(): Promise<void> {
    await this.election?.stop()
    await this.termStopping
    await this.stopTerm()
  }

  private async stopTerm(): Promise<void> {
    const ending = this.term
    this.term = undefined
    await ending?.stop()
  }
}
