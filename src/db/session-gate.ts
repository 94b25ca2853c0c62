// PGlite is one Postgres backend: one session, one transaction state, one unnamed prepared
// statement. The daemon's own queries and every client of the SQL port share it, so the
// backend is handed over only between transactions, when it is idle (ReadyForQuery 'I').
// The gate is a FIFO mutex with an owner; the owner keeps it across statements while its
// transaction (or extended-protocol exchange) is open.

export type GateOwner = symbol | number

export class SessionGate {
  private owner: GateOwner | undefined
  private readonly waiters: { owner: GateOwner; resolve: () => void }[] = []

  /** Waits until `owner` holds the gate. A no-op if it already does. */
  acquire(owner: GateOwner): Promise<void> {
    if (this.owner === owner) return Promise.resolve()
    if (this.owner === undefined) {
      this.owner = owner
      return Promise.resolve()
    }
    return new Promise((resolve) => this.waiters.push({ owner, resolve }))
  }

  /** Hands the gate to the next waiter. Ignored unless `owner` holds it. */
  release(owner: GateOwner): void {
    if (this.owner !== owner) return
    const next = this.waiters.shift()
    this.owner = next?.owner
    next?.resolve()
  }

  /** Runs `work` holding the gate under a fresh owner. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    const owner = Symbol('gate-run')
    await this.acquire(owner)
    try {
      return await work()
    } finally {
      this.release(owner)
    }
  }

  get currentOwner(): GateOwner | undefined {
    return this.owner
  }

  get waiting(): number {
    return this.waiters.length
  }
}
