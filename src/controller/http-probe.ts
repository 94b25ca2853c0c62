// HTTP GETs of plugin health URLs, written to a raw TCP socket and answered by the status
// line (http1-response.ts frames the rest), one new connection per probe, with
// `Connection: close`. Health probes are most of what an idle manager does (200 plugins:
// 400 a minute), and this is the cheapest way measured here: against busybox httpd behind
// docker-proxy about 0.15 ms of CPU per probe, node:http on a new connection 0.4 ms, fetch
// 1.2-1.4 ms; against a Node server that keeps connections, node:http over a kept socket
// 0.09-0.11 ms and this 0.09-0.12 ms (hot loops of 2,000 probes, 8 in flight). So no
// socket is kept: no answer can come from a container that is gone, even one recreated on
// the same host port, and there is no pool to bound or close.
import { connect } from 'node:net'
import { Http1ResponseReader, timeoutError } from '../util/http1-response.js'

/**
 * An HTTP GET that resolves to the status code once the response's head arrives (redirects
 * are not followed, interim 1xx answers are skipped), and rejects when no answer comes
 * within timeoutMs or the connection fails (the socket's error, `code` ECONNREFUSED and
 * so on). Injected, so tests need no server.
 */
export type HttpProbe = (url: string, timeoutMs: number) => Promise<number>

/** A GET on a new connection. The probe's time limit is real time (network I/O), not the injected clock's. */
export const freshConnectionProbe: HttpProbe = (url, timeoutMs) => {
  const target = new URL(url)
  if (target.protocol !== 'http:') return Promise.reject(new Error(`health probes speak http only, not ${target.protocol} (${url})`))
  // URL keeps the brackets of an IPv6 literal; net.connect wants the bare address.
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1')
  const port = Number(target.port || '80')
  const request = `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\nUser-Agent: flowforge-plugin-manager\r\nConnection: close\r\n\r\n`
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port })
    const reader = new Http1ResponseReader(64 * 1024)
    let answered = false
    // One deadline for connect, the head and the body: the connection ends when the server
    // has sent its whole answer or closed, or at the deadline, so a slow or endless body is
    // cut off and no socket outlives its probe's time limit.
    const timer = setTimeout(() => end(timeoutError(timeoutMs)), timeoutMs)
    function end(error?: Error): void {
      clearTimeout(timer)
      socket.destroy()
      if (!answered) reject(error ?? Object.assign(new Error('the connection closed before an answer'), { code: 'ECONNRESET' }))
    }
    socket.on('data', (chunk: Buffer) => {
      let complete: boolean
      try {
        complete = reader.push(chunk) !== undefined
      } catch (error) {
        return end(error as Error)
      }
      const statusCode = reader.statusCode
      if (statusCode !== undefined && !answered) {
        answered = true
        resolve(statusCode)
      }
      if (complete) end()
    })
    socket.once('end', () => end())
    socket.once('error', (error) => end(error))
    // Written before the connection is up: net sends it once it is. Not end(): a server may
    // take our half-close for the client going away and drop its answer.
    socket.write(request)
  })
}
