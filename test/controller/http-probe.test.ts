// The health probe against local servers: the status of the answer, one connection per
// probe closed once the answer is in, and every way a probe can fail.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net'
import { afterEach, describe, expect, test } from 'vitest'
import { freshConnectionProbe } from '../../src/controller/http-probe.js'

const servers: (HttpServer | TcpServer)[] = []
const sockets: Socket[] = []

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  await Promise.all(
    servers.splice(0).map((server) => {
      if ('closeAllConnections' in server) server.closeAllConnections()
      return new Promise((resolve) => server.close(resolve))
    }),
  )
})

interface Target {
  url: string
  /** Connections accepted so far, and how many of them are closed. */
  connections: () => number
  closed: () => number
}

async function listen(server: HttpServer | TcpServer, path = '/health'): Promise<Target> {
  let connections = 0
  let closed = 0
  server.on('connection', (socket: Socket) => {
    connections += 1
    sockets.push(socket)
    socket.on('close', () => (closed += 1))
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`, connections: () => connections, closed: () => closed }
}

/** A Node HTTP server that would keep connections for a minute. */
function httpServer(handler: Parameters<typeof createHttpServer>[1]): Promise<Target> {
  const server = createHttpServer(handler)
  server.keepAliveTimeout = 60_000
  return listen(server)
}

/** A server that answers each connection with these bytes, written in pieces. */
function rawServer(pieces: string[], then: 'close' | 'stay' = 'close'): Promise<Target> {
  return listen(
    createTcpServer((socket) => {
      socket.once('data', async () => {
        for (const piece of pieces) {
          socket.write(piece)
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
        if (then === 'close') socket.end()
      })
    }),
  )
}

const waitFor = async (condition: () => boolean) => {
  for (let tries = 0; tries < 100 && !condition(); tries += 1) await new Promise((resolve) => setTimeout(resolve, 10))
}

describe('HTTP health probes', () => {
  test('the answer’s status, path and query sent as asked, over a new connection each time, closed after the answer', async () => {
    const seen: string[] = []
    const target = await httpServer((request, response) => {
      seen.push(`${request.method} ${request.url} ${request.headers.host}`)
      response.writeHead(request.url?.includes('sick') ? 503 : 204).end()
    })
    expect(await freshConnectionProbe(target.url, 5_000)).toBe(204)
    expect(await freshConnectionProbe(`${target.url}?sick=1`, 5_000)).toBe(503)
    const host = new URL(target.url).host
    expect(seen).toEqual([`GET /health ${host}`, `GET /health?sick=1 ${host}`])
    expect(target.connections()).toBe(2)
    await waitFor(() => target.closed() === 2)
    expect(target.closed()).toBe(2)
  })

  test('an answer cut into pieces anywhere, after an interim 100 Continue, still gives its status', async () => {
    const target = await rawServer(['HTTP/1.1 100 Con', 'tinue\r\n\r\nHT', 'TP/1.1 2', '00 OK\r\nContent-Le', 'ngth: 2\r\n\r\no', 'k'])
    expect(await freshConnectionProbe(target.url, 5_000)).toBe(200)
  })

  test('a server that sends the head and then an endless body: the probe answers, and the connection ends at the deadline', async () => {
    const target = await rawServer(['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nhello\r\n'], 'stay')
    expect(await freshConnectionProbe(target.url, 300)).toBe(200)
    expect(target.closed()).toBe(0)
    await waitFor(() => target.closed() === 1)
    expect(target.closed()).toBe(1)
  })

  test('a server that never answers fails the probe with a timeout', async () => {
    const target = await rawServer([], 'stay')
    await expect(freshConnectionProbe(target.url, 200)).rejects.toMatchObject({ name: 'TimeoutError' })
  })

  test('a port nobody listens on fails with the refused connection', async () => {
    const target = await httpServer((_request, response) => response.end())
    await new Promise((resolve) => servers.pop()!.close(resolve))
    await expect(freshConnectionProbe(target.url, 5_000)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })

  test('a server that closes without answering, or answers something that is not HTTP, fails the probe', async () => {
    const silent = await rawServer([])
    await expect(freshConnectionProbe(silent.url, 5_000)).rejects.toThrow(/closed before an answer/)
    const other = await rawServer(['SSH-2.0-OpenSSH_9.2\r\n'], 'stay')
    await expect(freshConnectionProbe(other.url, 5_000)).rejects.toThrow(/not an HTTP\/1.x response/)
  })
})
