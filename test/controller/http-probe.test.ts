// The health probe's connections, against local HTTP servers: reused for one container,
// never shared between containers, retried once when a kept socket turns out closed.
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterEach, describe, expect, test } from 'vitest'
import { freshConnectionProbe, KeepAliveHttpProbe } from '../../src/controller/http-probe.js'

interface TestServer {
  url: string
  /** Connections accepted so far. */
  connections: () => number
  server: Server
}

const servers: Server[] = []
const probes: KeepAliveHttpProbe[] = []

afterEach(async () => {
  for (const probe of probes.splice(0)) probe.close()
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve).closeAllConnections())))
})

async function serve(handler: (socket: Socket, requestOnSocket: number, respond: (status: number) => void) => void): Promise<TestServer> {
  let connections = 0
  const requestsBySocket = new Map<Socket, number>()
  const server = createServer((request, response) => {
    const count = (requestsBySocket.get(request.socket) ?? 0) + 1
    requestsBySocket.set(request.socket, count)
    handler(request.socket, count, (status) => response.writeHead(status).end('ok'))
  })
  // Longer than any test: only the client decides when a kept socket goes.
  server.keepAliveTimeout = 60_000
  server.on('connection', () => (connections += 1))
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`, connections: () => connections, server }
}

function keepAliveProbe(): KeepAliveHttpProbe {
  const probe = new KeepAliveHttpProbe({ idleSocketMs: 60_000 })
  probes.push(probe)
  return probe
}

describe('HTTP health probes', () => {
  test('probes of one container reuse one connection', async () => {
    const target = await serve((_socket, _count, respond) => respond(200))
    const probe = keepAliveProbe()
    for (let round = 0; round < 3; round += 1) expect(await probe.get(target.url, 5_000, 'container-a')).toBe(200)
    expect(target.connections()).toBe(1)
    expect(probe.openSockets()).toBe(1)
  })

  test('a container recreated on the same port is probed over a new connection, never its predecessor’s', async () => {
    const target = await serve((_socket, _count, respond) => respond(200))
    const probe = keepAliveProbe()
    await probe.get(target.url, 5_000, 'container-old')
    await probe.get(target.url, 5_000, 'container-new')
    expect(target.connections()).toBe(2)
  })

  test('a server that closes every connection answers every probe', async () => {
    const target = await serve((socket, _count, respond) => {
      respond(204)
      socket.end()
    })
    const probe = keepAliveProbe()
    for (let round = 0; round < 3; round += 1) expect(await probe.get(target.url, 5_000, 'container-a')).toBe(204)
    expect(target.connections()).toBe(3)
  })

  test('a kept socket the server drops as it is reused: the probe is retried once on a new connection', async () => {
    // The second request on any connection finds it closed, as when a plugin's idle timeout strikes just then.
    const target = await serve((socket, count, respond) => (count === 1 ? respond(200) : socket.destroy()))
    const probe = keepAliveProbe()
    expect(await probe.get(target.url, 5_000, 'container-a')).toBe(200)
    expect(await probe.get(target.url, 5_000, 'container-a')).toBe(200)
    expect(target.connections()).toBe(2)
  })

  test('a container that went away fails the probe with the refused connection, kept socket or not', async () => {
    const target = await serve((_socket, _count, respond) => respond(200))
    const probe = keepAliveProbe()
    await probe.get(target.url, 5_000, 'container-a')
    await new Promise((resolve) => target.server.close(resolve).closeAllConnections())
    await expect(probe.get(target.url, 5_000, 'container-a')).rejects.toMatchObject({ code: 'ECONNREFUSED' })
    await expect(freshConnectionProbe(target.url, 5_000)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })

  test('a server that never answers fails the probe with a timeout', async () => {
    const target = await serve(() => undefined)
    await expect(keepAliveProbe().get(target.url, 200, 'container-a')).rejects.toMatchObject({ name: 'TimeoutError' })
  })

  test('sockets of containers not probed in the last round are closed, and close() ends the rest', async () => {
    const target = await serve((_socket, _count, respond) => respond(200))
    const probe = keepAliveProbe()
    await probe.get(target.url, 5_000, 'container-a')
    await probe.get(target.url, 5_000, 'container-b')
    expect(probe.openSockets()).toBe(2)
    probe.retainOnly(new Set(['container-b']))
    expect(probe.openSockets()).toBe(1)
    probe.close()
    expect(probe.openSockets()).toBe(0)
  })

  test('without a container id a probe keeps no socket', async () => {
    const target = await serve((_socket, _count, respond) => respond(200))
    const probe = keepAliveProbe()
    await probe.get(target.url, 5_000)
    await probe.get(target.url, 5_000)
    expect(target.connections()).toBe(2)
    expect(probe.openSockets()).toBe(0)
  })
})
