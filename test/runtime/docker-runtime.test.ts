import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { inspect } from 'node:util'
import { join } from 'node:path'
import Docker from 'dockerode'
import { afterEach, beforeAll, describe, expect, test, vi } from 'vitest'
import { LABELS, RegistryAuthError, RuntimeUnavailableError, type RuntimeStreamItem } from '../../src/runtime/container-runtime.js'
import { registryAuthHeader } from '../../src/runtime/registry-auth.js'
import { compareApiVersions, parseDockerHost, pinApiVersion } from '../../src/runtime/docker-connection.js'
import { hostPortFromStartError, observedFromInspect, portInUseDetail, statsFromDocker } from '../../src/runtime/docker-mapping.js'
import { driverError } from '../../src/runtime/docker-errors.js'
import { DockerRuntime } from '../../src/runtime/docker-runtime.js'
import { ONE_CONNECTION_PER_CALL } from '../../src/runtime/engine-driver.js'
import { demultiplexDockerLogs, LineSplitter, LogDemultiplexer, parseDockerEvent } from '../../src/runtime/docker-streams.js'
import { silentLogger } from '../../src/logger.js'
import { captureLogs } from '../helpers/log-capture.js'
import { buildTestImages, docker, DOCKER_HOST, probeEngine, requireEngineInCi } from '../helpers/docker.js'
import { runtimeContract, type ContractImages } from './contract.js'


const images: ContractImages = {
  http: 'flowforge-test/http:1',
  logs: 'flowforge-test/echo:1',
  logLines: ['forgehook echo: hello on stdout', 'forgehook echo: hello on stderr'],
  missing: 'flowforge-test/does-not-exist:1',
}

const engine = await probeEngine()
requireEngineInCi(engine)

describe.skipIf(!engine.reachable)('DockerRuntime on the real engine', () => {
  const cli = new Docker({ socketPath: '/var/run/docker.sock' })

  beforeAll(async () => {
    await buildTestImages()
  }, 120_000)

  runtimeContract('docker', images, async () => ({
    runtime: new DockerRuntime({ dockerHost: DOCKER_HOST, logger: silentLogger() }),
    cleanup: async () => undefined,
    crash: async (containerId) => void (await cli.getContainer(containerId).kill()),
    // The line goes in as $0: no shell quoting of test text.
    writeLog: async (containerId, line) => void (await docker('exec', containerId, '/bin/sh', '-c', 'echo "$0" > /proc/1/fd/1', line)),
  }))

  describe('timeouts', () => {
    const containerNames: string[] = []
    afterEach(async () => {
      for (const containerName of containerNames.splice(0)) await cli.getContainer(containerName).remove({ force: true }).catch(ignoreMissing)
    })

    function newSpec(image = images.http) {
      const forgehookId = `contract-${randomBytes(5).toString('hex')}`
      containerNames.push(`forgehook-${forgehookId}`)
      return {
        name: `forgehook-${forgehookId}`,
        image,
        env: {},
        labels: { [LABELS.managed]: 'true', [LABELS.forgehookId]: forgehookId },
        containerPort: 8080,
        hostPort: 20_000 + Math.floor(Math.random() * 10_000),
        hostIp: '127.0.0.1',
      }
    }

    test('stop waits out a stop timeout longer than the request timeout', async () => {
      const runtime = new DockerRuntime({ dockerHost: DOCKER_HOST, requestTimeoutMs: 500, logger: silentLogger() })
      await runtime.connect()
      // Set up with the default timeout: on a loaded machine a start alone may take longer than 500 ms.
      const setup = new DockerRuntime({ dockerHost: DOCKER_HOST, logger: silentLogger() })
      await setup.connect()
      // The echo image's shell, PID 1 without a trap, ignores SIGTERM: the engine answers
      // only after the 2 s timeout, when it kills the container.
      const containerId = await setup.create(newSpec(images.logs))
      await setup.start(containerId)
      const startedAt = Date.now()
      await runtime.stop(containerId, 2)
      // Longer than the 500 ms request timeout, and it still succeeded.
      expect(Date.now() - startedAt).toBeGreaterThan(500)
      expect((await runtime.inspect(containerId))?.state).toBe('exited')
    })

    test('a quiet event stream outlives the request timeout', async () => {
      const runtime = new DockerRuntime({ dockerHost: DOCKER_HOST, requestTimeoutMs: 300, logger: silentLogger() })
      await runtime.connect()
      const controller = new AbortController()
      const items: RuntimeStreamItem[] = []
      const consuming = (async () => {
        for await (const item of runtime.events(controller.signal)) items.push(item)
      })()
      try {
        await delay(1_000)
        const containerId = await runtime.create(newSpec())
        await waitUntil(() => items.some((item) => item.type === 'event' && item.event.containerId === containerId))
        expect(items.filter((item) => item.type === 'resync')).toEqual([])
      } finally {
        controller.abort()
        await consuming
      }
    })
  })
})

describe('DockerRuntime against a stub engine', () => {
  let server: Server | undefined
  let socketDir: string | undefined

  afterEach(async () => {
    server?.closeAllConnections()
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined))
    if (socketDir) rmSync(socketDir, { recursive: true, force: true })
    server = undefined
    socketDir = undefined
  })

  /** An HTTP server on a fresh unix socket; answers /_ping and /version itself. */
  async function stubEngine(apiVersion: string, handle: (request: IncomingMessage, response: ServerResponse) => void): Promise<string> {
    socketDir = mkdtempSync(join(tmpdir(), 'flowforge-stub-engine-'))
    const socketPath = join(socketDir, 'docker.sock')
    server = createServer((request, response) => {
      const path = (request.url ?? '').replace(/^\/v1\.\d+/, '').split('?')[0]
      if (path === '/version') return void response.end(JSON.stringify({ Version: `stub-${apiVersion}`, ApiVersion: apiVersion, MinAPIVersion: '1.12' }))
      handle(request, response)
    })
    await new Promise<void>((resolve) => server?.listen(socketPath, resolve))
    return `unix://${socketPath}`
  }

  test('an unreachable engine fails connect with RuntimeUnavailableError naming the socket', async () => {
    const runtime = new DockerRuntime({ dockerHost: 'unix:///nonexistent/flowforge/docker.sock', logger: silentLogger() })
    const connecting = runtime.connect()
    await expect(connecting).rejects.toBeInstanceOf(RuntimeUnavailableError)
    await expect(connecting).rejects.toThrow(/unix:\/\/\/nonexistent\/flowforge\/docker\.sock.*ENOENT/)
  })

  test('an engine older than API 1.41 is refused with a clear message', async () => {
    const dockerHost = await stubEngine('1.40', (_request, response) => void response.end('OK'))
    const connecting = new DockerRuntime({ dockerHost, logger: silentLogger() }).connect()
    await expect(connecting).rejects.toBeInstanceOf(RuntimeUnavailableError)
    await expect(connecting).rejects.toThrow('Docker engine stub-1.40 speaks API 1.40; FlowForge needs 1.41 or newer')
  })

  test('preconnect: the next connect takes the early handshake instead of asking again, once; a failed one fails that connect only', async () => {
    let pings = 0
    let refuse = false
    const dockerHost = await stubEngine('1.41', (request, response) => {
      if (!request.url?.includes('/_ping')) return void response.end('OK')
      pings += 1
      if (refuse) response.statusCode = 500
      response.end(refuse ? 'engine starting' : 'OK')
    })
    const runtime = new DockerRuntime({ dockerHost, logger: silentLogger() })
    runtime.preconnect()
    await vi.waitFor(() => expect(pings).toBe(1))
    expect(await runtime.connect()).toEqual({ engineVersion: 'stub-1.41', apiVersion: '1.41' })
    expect(pings).toBe(1)
    await runtime.connect()
    expect(pings).toBe(2)

    refuse = true
    runtime.preconnect()
    await vi.waitFor(() => expect(pings).toBe(3))
    refuse = false
    await expect(runtime.connect()).rejects.toBeInstanceOf(RuntimeUnavailableError)
    expect(await runtime.connect()).toEqual({ engineVersion: 'stub-1.41', apiVersion: '1.41' })
    expect(pings).toBe(4)
  })

  test('requests go to the pinned API version', async () => {
    const paths: string[] = []
    const dockerHost = await stubEngine('1.45', (request, response) => {
      paths.push(request.url ?? '')
      response.end(request.url?.includes('/containers/json') ? '[]' : 'OK')
    })
    const runtime = new DockerRuntime({ dockerHost, logger: silentLogger() })
    expect(await runtime.connect()).toEqual({ engineVersion: 'stub-1.45', apiVersion: '1.45' })
    expect(await runtime.listManaged()).toEqual([])
    expect(paths.at(-1)).toMatch(/^\/v1\.45\/containers\/json\?/)
    expect(decodeURIComponent(paths.at(-1) ?? '')).toContain('"label":["io.flowforge.managed=true"]')
  })

  test('the event stream reconnects after the engine ends it, and yields disconnected, then a resync', async () => {
    const eventUrls: string[] = []
    const dockerHost = await stubEngine('1.41', (request, response) => {
      if (!request.url?.includes('/events')) return void response.end('OK')
      eventUrls.push(decodeURIComponent(request.url))
      response.writeHead(200, { 'Content-Type': 'application/json' })
      const line = `${dockerEventLine(eventUrls.length === 1 ? 'first' : 'second')}\n`
      if (eventUrls.length > 1) return void response.write(line) // stays open
      // The first connection sends its line in two chunks, then ends as on a dockerd restart.
      response.write(line.slice(0, 25))
      setTimeout(() => response.end(line.slice(25)), 20)
    })
    const logs = captureLogs('info')
    const runtime = new DockerRuntime({ dockerHost, logger: logs.logger, reconnectBackoff: { initialMs: 10, maxMs: 50 } })
    await runtime.connect()
    const items = await takeItems(runtime, 4)
    expect(items.map(describeItem)).toEqual(['event start first', 'disconnected', 'resync', 'event start second'])
    expect(items[1]).toMatchObject({ type: 'disconnected', reason: 'the engine closed the stream' })
    expect(items[2]).toMatchObject({ type: 'resync', reason: expect.stringContaining('the engine closed the stream') })
    expect(eventUrls[0]).toMatch(/since=\d+/)
    expect(eventUrls[1]).not.toContain('since=')
    expect(logs.messages()).toContainEqual(expect.stringMatching(/^docker event stream lost .*reconnecting in 10 ms$/))
  })

  test('a pull sends the registry credentials as X-Registry-Auth, and a refusal is RegistryAuthError without them, in the answer or in the progress stream', async () => {
    const headers: (string | undefined)[] = []
    let pulls = 0
    const dockerHost = await stubEngine('1.41', (request, response) => {
      if (!request.url?.includes('/images/create')) return void response.end('OK')
      headers.push(request.headers['x-registry-auth'] as string | undefined)
      pulls += 1
      if (pulls === 1) {
        response.statusCode = 500
        return void response.end(JSON.stringify({ message: 'unauthorized: authentication required (password s3cret-pw)' }))
      }
      // The answer says 200; the refusal comes in the progress stream.
      response.writeHead(200, { 'Content-Type': 'application/json' })
      response.end(`${JSON.stringify({ status: 'Pulling from team/app' })}\n${JSON.stringify({ error: 'denied: requested access to the resource is denied' })}\n`)
    })
    const credentials = { username: 'alice', password: 's3cret-pw', serveraddress: 'registry.example:5000' }
    const logs = captureLogs('debug')
    const runtime = new DockerRuntime({ dockerHost, logger: logs.logger, registryAuth: { lookup: async () => ({ registryHost: 'registry.example:5000', credentials, description: 'credentials for registry.example:5000 from test' }) } })
    await runtime.connect()
    const first = await runtime.ensureImage('registry.example:5000/team/app:1', 'Always').catch((error: unknown) => error)
    expect(first).toBeInstanceOf(RegistryAuthError)
    expect((first as Error).message).toBe('registry authentication failed for registry.example:5000 (the registry refused the credentials: unauthorized: authentication required (password ***))')
    const second = await runtime.ensureImage('registry.example:5000/team/app:1', 'Always').catch((error: unknown) => error)
    expect(second).toBeInstanceOf(RegistryAuthError)
    expect((second as Error).message).toContain('denied: requested access to the resource is denied')
    expect(headers).toEqual([registryAuthHeader(credentials), registryAuthHeader(credentials)])
    expect(JSON.stringify(logs.lines)).not.toContain('s3cret-pw')
    expect(JSON.stringify(logs.lines)).not.toContain(registryAuthHeader(credentials))
  })

  test('a silent stream whose engine stops answering pings is replaced', async () => {
    let eventConnections = 0
    const dockerHost = await stubEngine('1.41', (request, response) => {
      if (request.url?.includes('/events')) {
        eventConnections += 1
        response.writeHead(200, { 'Content-Type': 'application/json' })
        response.flushHeaders()
        if (eventConnections > 1) response.write(`${dockerEventLine('after')}\n`)
        return
      }
      // Pings fail while the first (half-dead) stream is open.
      response.statusCode = eventConnections === 1 ? 500 : 200
      response.end(response.statusCode === 500 ? '{"message":"engine is wedged"}' : 'OK')
    })
    const runtime = new DockerRuntime({ dockerHost, livenessIntervalMs: 50, reconnectBackoff: { initialMs: 10, maxMs: 50 }, logger: silentLogger() })
    await runtime.connect()
    const items = await takeItems(runtime, 3)
    expect(items.map(describeItem)).toEqual(['disconnected', 'resync', 'event start after'])
    expect(items[0]).toMatchObject({ reason: expect.stringContaining('did not answer a ping') })
    expect(items[1]).toMatchObject({ reason: expect.stringContaining('did not answer a ping') })
  })
})

describe('Docker stream helpers', () => {
  const twoLines = `${dockerEventLine('a')}\n${dockerEventLine('b')}\n`

  test('the line splitter reassembles JSON lines cut at any byte', () => {
    const bytes = Buffer.from(twoLines)
    for (let cut = 0; cut <= bytes.length; cut += 1) {
      const splitter = new LineSplitter()
      const lines = [...splitter.push(bytes.subarray(0, cut)), ...splitter.push(bytes.subarray(cut)), ...splitter.end()]
      expect(lines.map((line) => parseDockerEvent(line)?.name)).toEqual(['forgehook-a', 'forgehook-b'])
    }
  })

  test('the line splitter keeps a character split across chunks, drops CR and empty lines, and flushes the last line', () => {
    const bytes = Buffer.from('héllo\r\n\nwörld')
    const splitter = new LineSplitter()
    const pushed = [...splitter.push(bytes.subarray(0, 2)), ...splitter.push(bytes.subarray(2, 10)), ...splitter.push(bytes.subarray(10))]
    expect(pushed).toEqual(['héllo'])
    expect(splitter.end()).toEqual(['wörld'])
  })

  test('logs of a non-TTY container are demultiplexed, even with a character split across frames', () => {
    const accented = Buffer.from('é\n')
    const body = Buffer.concat([
      frame(1, Buffer.from('out line\n')),
      frame(2, Buffer.from('err line\n')),
      frame(1, accented.subarray(0, 1)),
      frame(1, accented.subarray(1)),
    ])
    expect(demultiplexDockerLogs(body)).toBe('out line\nerr line\né\n')
  })

  test('a followed log stream is demultiplexed whatever the chunk boundaries', () => {
    const accented = Buffer.from('é\n')
    const body = Buffer.concat([frame(1, Buffer.from('out line\n')), frame(2, accented.subarray(0, 1)), frame(2, accented.subarray(1))])
    for (let cut = 0; cut <= body.length; cut += 1) {
      const demultiplexer = new LogDemultiplexer()
      const text = demultiplexer.push(body.subarray(0, cut)) + demultiplexer.push(body.subarray(cut)) + demultiplexer.end()
      expect(text).toBe('out line\né\n')
    }
    const byteByByte = new LogDemultiplexer()
    expect([...body].map((byte) => byteByByte.push(Buffer.from([byte]))).join('') + byteByByte.end()).toBe('out line\né\n')
  })

  test('a followed TTY log stream, even one shorter than a frame header, passes through as text', () => {
    const raw = new LogDemultiplexer()
    expect(raw.push(Buffer.from('tty ')) + raw.push(Buffer.from('output\n')) + raw.end()).toBe('tty output\n')
    const short = new LogDemultiplexer()
    expect(short.push(Buffer.from('ok\n')) + short.end()).toBe('ok\n')
  })

  test('logs of a TTY container (no frame headers) pass through as text', () => {
    expect(demultiplexDockerLogs(Buffer.from('plain tty output\n'))).toBe('plain tty output\n')
    expect(demultiplexDockerLogs(Buffer.from([1, 0, 0, 0, 0, 0, 0, 99, 65]))).toBe('\u0001\u0000\u0000\u0000\u0000\u0000\u0000cA')
    expect(demultiplexDockerLogs(Buffer.alloc(0))).toBe('')
  })

  test('events map to actions, health, exit codes and the container labels', () => {
    const health = parseDockerEvent(dockerEventLine('a', 'health_status: unhealthy'))
    expect(health).toMatchObject({ action: 'health_status', health: 'unhealthy', containerId: 'id-a', name: 'forgehook-a' })
    expect(health?.labels).toEqual({ [LABELS.managed]: 'true' })
    const died = parseDockerEvent(dockerEventLine('a', 'die', { exitCode: '137' }))
    expect(died).toMatchObject({ action: 'die', exitCode: 137, time: new Date(1_700_000_000_123) })
    expect(parseDockerEvent(JSON.stringify({ Type: 'network', Action: 'connect', Actor: { ID: 'n' } }))).toBeUndefined()
    expect(() => parseDockerEvent('{"Type":')).toThrow(SyntaxError)
  })
})

describe('Docker engine answers', () => {
  test('the API version is pinned to what both sides speak', () => {
    expect(pinApiVersion({ Version: '20.10.24', ApiVersion: '1.41', MinAPIVersion: '1.12' })).toBe('1.41')
    expect(pinApiVersion({ Version: '26.1.0', ApiVersion: '1.45', MinAPIVersion: '1.24' })).toBe('1.45')
    expect(pinApiVersion({ Version: '29.0.0', ApiVersion: '1.52', MinAPIVersion: '1.44' })).toBe('1.47')
    expect(() => pinApiVersion({ Version: '19.03.15', ApiVersion: '1.40' })).toThrow(
      new RuntimeUnavailableError('Docker engine 19.03.15 speaks API 1.40; FlowForge needs 1.41 or newer'),
    )
    expect(() => pinApiVersion({ Version: '40.0.0', ApiVersion: '1.60', MinAPIVersion: '1.50' })).toThrow(/accepts API 1.50 or newer/)
    expect(compareApiVersions('1.9', '1.41')).toBeLessThan(0)
  })

  test('DOCKER_HOST-style addresses parse to a socket or a TCP endpoint', () => {
    expect(parseDockerHost('unix:///var/run/docker.sock')).toEqual({ kind: 'socket', socketPath: '/var/run/docker.sock' })
    expect(parseDockerHost('tcp://127.0.0.1:2375')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 2375 })
    expect(parseDockerHost('tcp://[::1]:2375')).toEqual({ kind: 'tcp', host: '::1', port: 2375 })
    expect(() => parseDockerHost('ssh://box')).toThrow(/expected unix:/)
  })

  test('the Docker client\'s agent prints as one line, however docker-modem inspects it on every call', () => {
    expect(inspect({ agent: ONE_CONNECTION_PER_CALL }, { showHidden: true, depth: null })).toBe('{ agent: Agent { keepAlive: false } }')
  })

  test('one stats read gives the CPU counters and the memory without page cache', () => {
    const mib = 1024 * 1024
    const stats = statsFromDocker({
      cpu_stats: { cpu_usage: { total_usage: 1_500_000 }, system_cpu_usage: 20_000_000, online_cpus: 2 },
      memory_stats: { usage: 100 * mib, stats: { inactive_file: 20 * mib } },
    })
    expect(stats).toEqual({ cpu: { containerNanos: 1_500_000, systemNanos: 20_000_000, onlineCpus: 2 }, memoryMb: 80 })
    // Without online_cpus (older kernels), the per-CPU list says how many.
    expect(statsFromDocker({ cpu_stats: { cpu_usage: { total_usage: 5, percpu_usage: [2, 3, 0, 0] }, system_cpu_usage: 9 } }).cpu.onlineCpus).toBe(4)
    // A stopped container: zeros.
    expect(statsFromDocker({})).toEqual({ cpu: { containerNanos: 0, systemNanos: 0, onlineCpus: 1 }, memoryMb: 0 })
  })

  test('inspect ignores Docker zero times and falls back to the configured port binding', () => {
    const observed = observedFromInspect({
      Id: 'abc',
      Name: '/forgehook-a',
      State: { Status: 'created', ExitCode: 0, StartedAt: '0001-01-01T00:00:00Z', FinishedAt: '0001-01-01T00:00:00Z', Health: { Status: 'starting' } },
      Config: { Image: 'flowforge-test/http:1', Labels: { a: 'b' } },
      HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }] } },
      NetworkSettings: { Ports: {} },
    })
    expect(observed).toEqual({
      id: 'abc',
      name: 'forgehook-a',
      image: 'flowforge-test/http:1',
      state: 'created',
      labels: { a: 'b' },
      exitCode: 0,
      oomKilled: false,
      health: 'starting',
      hostPort: 18080,
      containerPort: 8080,
    })
  })

  test('inspect names the settings no plugin spec produces, and reads the environment', () => {
    const observed = observedFromInspect({
      Id: 'abc',
      Name: '/forgehook-a',
      State: { Status: 'running' },
      Config: { Image: 'x', Labels: {}, Env: ['PATH=/bin', 'A=b=c', 'EMPTY'] },
      HostConfig: { Privileged: true, CapAdd: ['SYS_ADMIN'], NetworkMode: 'host', PidMode: 'host', Devices: [{}] },
      Mounts: [{ Type: 'bind', Destination: '/host', RW: true }, { Type: 'volume', Name: 'v', Destination: '/data', RW: false }],
    })
    expect(observed.unsafe).toEqual(['privileged mode', 'added capabilities (SYS_ADMIN)', 'host devices', 'host mounts', "the host's network", "the host's PID namespace"])
    expect(observed.env).toEqual({ PATH: '/bin', A: 'b=c', EMPTY: '' })
    expect(observed.mounts).toEqual([
      { type: 'bind', destination: '/host', readOnly: false },
      { type: 'volume', name: 'v', destination: '/data', readOnly: true },
    ])
    const plain = observedFromInspect({ Id: 'b', Name: '/b', State: { Status: 'running' }, Config: { Image: 'x' }, HostConfig: { NetworkMode: 'bridge' } })
    expect(plain.unsafe).toBeUndefined()
  })

  test('the host port is read from both kinds of port-in-use errors', () => {
    expect(hostPortFromStartError('driver failed ...: Bind for 127.0.0.1:23457 failed: port is already allocated')).toBe(23457)
    expect(hostPortFromStartError('Error starting userland proxy: listen tcp4 127.0.0.1:23458: bind: address already in use')).toBe(23458)
    expect(hostPortFromStartError('something else')).toBeUndefined()
  })

  test('an engine that hangs up says why it may have: the request timeout, or a closed connection', () => {
    const hangUp = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    expect(driverError('unix:///var/run/docker.sock', 'inspect x', hangUp, 5_000).message).toBe(
      'Docker engine at unix:///var/run/docker.sock did not answer (inspect x): socket hang up (no answer within 5 s, DOCKER_TIMEOUT, or the engine closed the connection)',
    )
    const refused = Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' })
    expect(driverError('unix:///var/run/docker.sock', 'inspect x', refused, 5_000).message).toBe(
      'Docker engine at unix:///var/run/docker.sock did not answer (inspect x): connect ECONNREFUSED /var/run/docker.sock',
    )
    expect(driverError('unix:///var/run/docker.sock', 'inspect x', Object.assign(new Error('boom'), { statusCode: 500 }), 5_000)).not.toBeInstanceOf(RuntimeUnavailableError)
  })

  test('a port-in-use error reads the same at every attempt: the endpoint id is left out', () => {
    const attempt = (endpointId: string) =>
      portInUseDetail(`driver failed programming external connectivity on endpoint forgehook-y (${endpointId}): Bind for 127.0.0.1:4999 failed: port is already allocated`)
    expect(attempt('72b33b3317994ae9a7100feddc2a008305d78d479efb0ef959255556dfbb30b5')).toBe(
      'driver failed programming external connectivity on endpoint forgehook-y: Bind for 127.0.0.1:4999 failed: port is already allocated',
    )
    expect(attempt('bc3e60f11bdd013b74d19495991ae0542f5fb46985d0f260e3f7c6c95c7640dd')).toBe(attempt('72b33b3317994ae9a7100feddc2a008305d78d479efb0ef959255556dfbb30b5'))
  })
})

function dockerEventLine(suffix: string, action = 'start', extraAttributes: Record<string, string> = {}): string {
  return JSON.stringify({
    status: action,
    id: `id-${suffix}`,
    Type: 'container',
    Action: action,
    Actor: { ID: `id-${suffix}`, Attributes: { image: 'flowforge-test/http:1', name: `forgehook-${suffix}`, [LABELS.managed]: 'true', ...extraAttributes } },
    scope: 'local',
    time: 1_700_000_000,
    timeNano: 1_700_000_000_123_456_789,
  })
}

function frame(streamType: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8)
  header[0] = streamType
  header.writeUInt32BE(payload.length, 4)
  return Buffer.concat([header, payload])
}

function describeItem(item: RuntimeStreamItem): string {
  return item.type === 'event' ? `event ${item.event.action} ${item.event.name.replace('forgehook-', '')}` : item.type
}

/** Reads the first `count` stream items, then stops the stream. */
async function takeItems(runtime: DockerRuntime, count: number): Promise<RuntimeStreamItem[]> {
  const controller = new AbortController()
  const items: RuntimeStreamItem[] = []
  const timeout = setTimeout(() => controller.abort(), 10_000)
  try {
    for await (const item of runtime.events(controller.signal)) {
      items.push(item)
      if (items.length === count) break
    }
  } finally {
    clearTimeout(timeout)
    controller.abort()
  }
  return items
}

async function waitUntil(condition: () => boolean, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${limitMs} ms`)
    await delay(50)
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function ignoreMissing(error: unknown): void {
  if ((error as { statusCode?: number }).statusCode !== 404) throw error
}
