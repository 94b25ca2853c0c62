// Stats reads without dockerode, against a stub engine on a unix socket: sockets kept and
// reused between reads, a kept socket the engine dropped retried once, the engine's errors
// as the driver edge reads them.
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { silentLogger } from '../../src/logger.js'
import { ContainerNotFoundError, RuntimeUnavailableError } from '../../src/runtime/container-runtime.js'
import { DockerRuntime } from '../../src/runtime/docker-runtime.js'
import { EngineStatsReader } from '../../src/runtime/engine-stats.js'

const STATS = {
  cpu_stats: { cpu_usage: { total_usage: 1_500_000 }, system_cpu_usage: 20_000_000, online_cpus: 2 },
  memory_stats: { usage: 100 * 2 ** 20, stats: { inactive_file: 20 * 2 ** 20 } },
}

interface StubEngine {
  socketPath: string
  connections: () => number
  paths: string[]
}

let server: Server | undefined
let socketDir: string | undefined
const readers: EngineStatsReader[] = []

afterEach(async () => {
  for (const reader of readers.splice(0)) reader.close()
  server?.closeAllConnections()
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined))
  if (socketDir) rmSync(socketDir, { recursive: true, force: true })
  server = undefined
  socketDir = undefined
})

/** An HTTP server on a fresh unix socket; `requestOnSocket` counts from 1 on each connection. */
async function stubEngine(handle: (request: IncomingMessage, response: ServerResponse, requestOnSocket: number) => void): Promise<StubEngine> {
  socketDir = mkdtempSync(join(tmpdir(), 'flowforge-stub-stats-'))
  const socketPath = join(socketDir, 'docker.sock')
  let connections = 0
  const paths: string[] = []
  const requestsBySocket = new Map<Socket, number>()
  server = createServer((request, response) => {
    const count = (requestsBySocket.get(request.socket) ?? 0) + 1
    requestsBySocket.set(request.socket, count)
    paths.push(request.url ?? '')
    const path = (request.url ?? '').replace(/^\/v1\.\d+/, '').split('?')[0]
    if (path === '/version') return void response.end(JSON.stringify({ Version: 'stub', ApiVersion: '1.41', MinAPIVersion: '1.12' }))
    if (path === '/_ping') return void response.end('OK')
    handle(request, response, count)
  })
  server.keepAliveTimeout = 60_000
  server.on('connection', () => (connections += 1))
  await new Promise<void>((resolve) => server?.listen(socketPath, resolve))
  return { socketPath, connections: () => connections, paths }
}

function reader(engine: StubEngine, timeoutMs = 5_000): EngineStatsReader {
  const statsReader = new EngineStatsReader({ endpoint: { kind: 'socket', socketPath: engine.socketPath }, apiVersion: '1.41', timeoutMs })
  readers.push(statsReader)
  return statsReader
}

describe('engine stats over kept-alive sockets', () => {
  test('successive reads go one-shot to the pinned API version over one kept connection', async () => {
    const engine = await stubEngine((_request, response) => void response.end(JSON.stringify(STATS)))
    const statsReader = reader(engine)
    for (let round = 0; round < 3; round += 1) expect(await statsReader.read('abc123')).toEqual(STATS)
    expect(engine.connections()).toBe(1)
    expect(engine.paths).toEqual(Array(3).fill('/v1.41/containers/abc123/stats?stream=false&one-shot=true'))
    expect(statsReader.idleSockets()).toBe(1)
  })

  test('reads in flight at once each get their own connection, kept for the next round', async () => {
    const engine = await stubEngine((_request, response) => void setTimeout(() => response.end(JSON.stringify(STATS)), 20))
    const statsReader = reader(engine)
    await Promise.all(Array.from({ length: 4 }, (_, index) => statsReader.read(`c${index}`)))
    await Promise.all(Array.from({ length: 4 }, (_, index) => statsReader.read(`c${index}`)))
    expect(engine.connections()).toBe(4)
    expect(statsReader.idleSockets()).toBe(4)
  })

  test('a chunked answer is read whole', async () => {
    const engine = await stubEngine((_request, response) => {
      const text = JSON.stringify(STATS)
      response.write(text.slice(0, 10))
      setTimeout(() => response.end(text.slice(10)), 5)
    })
    expect(await reader(engine).read('abc123')).toEqual(STATS)
  })

  test('a kept connection the engine dropped as it was reused: the read is retried once on a new one', async () => {
    // The second request on any connection finds it closed, as when the engine's idle timeout strikes just then.
    const engine = await stubEngine((request, response, count) => (count === 1 ? response.end(JSON.stringify(STATS)) : request.socket.destroy()))
    const statsReader = reader(engine)
    expect(await statsReader.read('abc123')).toEqual(STATS)
    expect(await statsReader.read('abc123')).toEqual(STATS)
    expect(engine.connections()).toBe(2)
  })

  test('a connection the engine drops before answering, not a kept one, is not retried', async () => {
    const engine = await stubEngine((request) => request.socket.destroy())
    await expect(reader(engine).read('abc123')).rejects.toMatchObject({ code: 'ECONNRESET' })
    expect(engine.connections()).toBe(1)
  })

  test('an engine that never answers fails the read at the timeout', async () => {
    const engine = await stubEngine(() => undefined)
    await expect(reader(engine, 200).read('abc123')).rejects.toMatchObject({ name: 'TimeoutError' })
  })

  test('the engine closing an idle connection takes it out of the pool', async () => {
    const engine = await stubEngine((_request, response) => void response.end(JSON.stringify(STATS)))
    const statsReader = reader(engine)
    await statsReader.read('abc123')
    expect(statsReader.idleSockets()).toBe(1)
    server!.closeAllConnections()
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(statsReader.idleSockets()).toBe(0)
    expect(await statsReader.read('abc123')).toEqual(STATS)
  })

  test('through DockerRuntime: a missing container is ContainerNotFoundError, another error status keeps the engine’s words', async () => {
    const engine = await stubEngine((request, response) => {
      const missing = request.url?.includes('/containers/gone/')
      response.writeHead(missing ? 404 : 500, { 'Content-Type': 'application/json' })
      response.end(JSON.stringify({ message: missing ? 'No such container: gone' : 'cgroup read failed' }))
    })
    const runtime = new DockerRuntime({ dockerHost: `unix://${engine.socketPath}`, logger: silentLogger() })
    await runtime.connect()
    await expect(runtime.stats('gone')).rejects.toBeInstanceOf(ContainerNotFoundError)
    await expect(runtime.stats('other')).rejects.toThrow('docker read the stats of other failed with HTTP 500: cgroup read failed')
  })

  test('through DockerRuntime: the counters and memory of one read; an engine gone is RuntimeUnavailableError', async () => {
    const engine = await stubEngine((_request, response) => void response.end(JSON.stringify(STATS)))
    const runtime = new DockerRuntime({ dockerHost: `unix://${engine.socketPath}`, logger: silentLogger() })
    await runtime.connect()
    expect(await runtime.stats('abc123')).toEqual({ cpu: { containerNanos: 1_500_000, systemNanos: 20_000_000, onlineCpus: 2 }, memoryMb: 80 })
    server!.closeAllConnections()
    await new Promise((resolve) => server!.close(resolve))
    await expect(runtime.stats('abc123')).rejects.toBeInstanceOf(RuntimeUnavailableError)
  })
})
