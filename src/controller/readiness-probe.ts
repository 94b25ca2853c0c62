// Whether a rollout's new container answers: its manifest's HTTP health check, or (without
// one) a TCP connection to its port. Injected, so tests on the in-memory runtime need no
// listening container.
import { connect } from 'node:net'
import { freshConnectionProbe } from './http-probe.js'
import type { CandidateProbe } from './plan-types.js'

export interface ReadinessProbe {
  /** GET of the health URL: 2xx and 3xx are ready. */
  http(url: string, timeoutMs: number): Promise<CandidateProbe>
  /** A TCP connection accepted on the port. */
  tcp(host: string, port: number, timeoutMs: number): Promise<CandidateProbe>
}

/** Requests the proxy forwards right now, by upstream host port: a start-first switch drains the old port. */
export interface ProxyTraffic {
  inFlight(hostPort: number): number
}

export const NO_PROXY_TRAFFIC: ProxyTraffic = { inFlight: () => 0 }

/**
 * A new connection for every probe: a rollout's candidate may sit on the port its
 * predecessor just left (Recreate), and probes are few, so no socket is worth keeping.
 */
export const networkReadinessProbe: ReadinessProbe = {
  async http(url, timeoutMs) {
    try {
      const status = await freshConnectionProbe(url, timeoutMs)
      const path = new URL(url).pathname
      return { ok: status >= 200 && status < 400, detail: `GET ${path} answered ${status}` }
    } catch (error) {
      return { ok: false, detail: `GET ${new URL(url).pathname} failed: ${reasonOf(error)}` }
    }
  },
  tcp(host, port, timeoutMs) {
    return new Promise((resolve) => {
      const socket = connect({ host, port })
      const done = (probe: CandidateProbe) => {
        socket.destroy()
        resolve(probe)
      }
      socket.setTimeout(timeoutMs, () => done({ ok: false, detail: `port ${port}: no answer within ${timeoutMs} ms` }))
      socket.once('connect', () => done({ ok: true, detail: `port ${port} accepts connections` }))
      socket.once('error', (error) => done({ ok: false, detail: `port ${port}: ${reasonOf(error)}` }))
    })
  },
}

function reasonOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause
  const code = (error as { code?: string }).code ?? cause?.code
  if (code === 'ECONNREFUSED') return 'connection refused'
  if ((error as Error).name === 'TimeoutError') return 'no answer in time'
  return code ?? (error as Error).message
}
