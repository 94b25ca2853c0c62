// Requests the proxy is forwarding right now, by upstream host port. A start-first update
// reads it to let the old container finish what it was given (the drain) before stopping
// it. It counts this manager's requests only: other managers' are covered by the drain's
// minimum wait (UPDATE_DRAIN_TIMEOUT bounds the whole wait).
import type { ProxyTraffic } from '../controller/readiness-probe.js'

export class ProxyTrafficCounter implements ProxyTraffic {
  private readonly byPort = new Map<number, number>()

  /** One request to the port begins; call the returned function exactly when it has ended. */
  begin(hostPort: number): () => void {
    this.byPort.set(hostPort, (this.byPort.get(hostPort) ?? 0) + 1)
    let ended = false
    return () => {
      if (ended) return
      ended = true
      const left = (this.byPort.get(hostPort) ?? 1) - 1
      if (left > 0) this.byPort.set(hostPort, left)
      else this.byPort.delete(hostPort)
    }
  }

  inFlight(hostPort: number): number {
    return this.byPort.get(hostPort) ?? 0
  }
}
