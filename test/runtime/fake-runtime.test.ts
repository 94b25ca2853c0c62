import { describe, expect, test } from 'vitest'
import {
  ContainerNotFoundError,
  ImageNotFoundError,
  LABELS,
  NameConflictError,
  PortInUseError,
  RuntimeUnavailableError,
  type ContainerSpec,
  type RuntimeStreamItem,
} from '../../src/runtime/container-runtime.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { cpuPercentBetween } from '../../src/controller/cpu-rate.js'
import { runtimeContract, type ContractImages } from './contract.js'

const images: ContractImages = {
  http: 'flowforge-test/http:1',
  logs: 'flowforge-test/echo:1',
  logLines: ['forgehook echo: hello on stdout', 'forgehook echo: hello on stderr'],
  missing: 'flowforge-test/does-not-exist:1',
}

function newFake(): FakeRuntime {
  return new FakeRuntime({ images: [images.http, images.logs], imageOutput: { [images.logs]: images.logLines.join('\n') } })
}

runtimeContract('fake', images, async () => {
  const runtime = newFake()
  return {
    runtime,
    cleanup: async () => undefined,
    crash: async (containerId) => runtime.crash(containerId, 137),
    writeLog: async (containerId, line) => runtime.writeLog(containerId, line),
  }
})

function specNamed(forgehookId: string, overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    name: `forgehook-${forgehookId}`,
    image: images.http,
    env: {},
    labels: { [LABELS.managed]: 'true', [LABELS.forgehookId]: forgehookId },
    containerPort: 8080,
    hostPort: 18_080,
    hostIp: '127.0.0.1',
    ...overrides,
  }
}

/** Collects stream items until the returned stop() is called. */
function collectEvents(runtime: FakeRuntime): { items: RuntimeStreamItem[]; stop(): Promise<void> } {
  const controller = new AbortController()
  const items: RuntimeStreamItem[] = []
  const consuming = (async () => {
    for await (const item of runtime.events(controller.signal)) items.push(item)
  })()
  return {
    items,
    stop: async () => {
      controller.abort()
      await consuming
    },
  }
}

/** Lets queued microtasks (event delivery) run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

describe('FakeRuntime test controls', () => {
  test('counts every mutating call, and none for reads', async () => {
    const runtime = newFake()
    const containerId = await runtime.create(specNamed('a'))
    await runtime.start(containerId)
    await runtime.start(containerId)
    await runtime.stop(containerId, 1)
    await runtime.remove(containerId)
    await expect(runtime.ensureImage('registry.example/plugin:2', 'Always')).rejects.toBeInstanceOf(ImageNotFoundError)
    expect(runtime.mutatingCalls).toEqual([
      'create forgehook-a',
      `start ${containerId}`,
      `start ${containerId}`,
      `stop ${containerId}`,
      `remove ${containerId}`,
      'pull registry.example/plugin:2',
    ])

    runtime.resetCalls()
    await runtime.listManaged()
    await runtime.listByNamePrefix()
    await runtime.inspect('forgehook-a')
    await runtime.ensureImage(images.http, 'IfNotPresent')
    expect(runtime.mutatingCalls).toEqual([])
    expect(runtime.listCalls).toBe(2)
    expect(runtime.inspectCalls).toBe(1)
  })

  test('simulateReconnect yields a resync item to every consumer', async () => {
    const runtime = newFake()
    const first = collectEvents(runtime)
    const second = collectEvents(runtime)
    runtime.simulateReconnect('engine restarted')
    await settle()
    await first.stop()
    await second.stop()
    expect(first.items).toEqual([{ type: 'resync', reason: 'engine restarted' }])
    expect(second.items).toEqual([{ type: 'resync', reason: 'engine restarted' }])
  })

  test('crash records the exit code and OOM kill, and emits oom then die', async () => {
    const runtime = newFake()
    const containerId = await runtime.create(specNamed('a'))
    await runtime.start(containerId)
    const stream = collectEvents(runtime)
    runtime.crash('forgehook-a', 137, { oomKilled: true })
    await settle()
    await stream.stop()
    expect(stream.items.map((item) => (item.type === 'event' ? `${item.event.action} ${item.event.exitCode ?? ''}`.trim() : item.type))).toEqual([
      'oom',
      'die 137',
    ])
    expect(await runtime.inspect(containerId)).toMatchObject({ state: 'exited', exitCode: 137, oomKilled: true })
  })

  test('setHealth and removeBehindBack emit health_status and destroy', async () => {
    const runtime = newFake()
    const containerId = await runtime.create(specNamed('a'))
    await runtime.start(containerId)
    const stream = collectEvents(runtime)
    runtime.setHealth(containerId, 'unhealthy')
    expect((await runtime.listManaged())[0]?.health).toBe('unhealthy')
    runtime.removeBehindBack(containerId)
    await settle()
    await stream.stop()
    const events = stream.items.flatMap((item) => (item.type === 'event' ? [item.event] : []))
    expect(events.map((event) => event.action)).toEqual(['health_status', 'die', 'destroy'])
    expect(events[0]?.health).toBe('unhealthy')
    expect(await runtime.inspect(containerId)).toBeUndefined()
  })

  test('a foreign container takes its name, emits no events and is not listed as managed', async () => {
    const runtime = newFake()
    const stream = collectEvents(runtime)
    const foreignId = runtime.addForeign({ name: 'forgehook-a', image: 'someone/else:1', hostPort: 18_080 })
    await expect(runtime.create(specNamed('a'))).rejects.toBeInstanceOf(NameConflictError)
    expect(await runtime.listManaged()).toEqual([])
    expect((await runtime.listByNamePrefix()).map((container) => container.id)).toEqual([foreignId])
    await stream.stop()
    expect(stream.items).toEqual([])
  })

  test('a port held outside Docker or by a foreign container blocks start', async () => {
    const runtime = newFake()
    runtime.occupyPort(18_081)
    const blockedByProcess = await runtime.create(specNamed('a', { hostPort: 18_081 }))
    await expect(runtime.start(blockedByProcess)).rejects.toBeInstanceOf(PortInUseError)
    runtime.releasePort(18_081)
    await runtime.start(blockedByProcess)

    runtime.addForeign({ name: 'other-tool', image: 'someone/else:1', hostPort: 18_082 })
    const blockedByContainer = await runtime.create(specNamed('b', { hostPort: 18_082 }))
    await expect(runtime.start(blockedByContainer)).rejects.toMatchObject({ hostPort: 18_082 })
  })

  test('a host port is free again once the container holding it stops, crashes or is removed', async () => {
    const runtime = newFake()
    const first = await runtime.create(specNamed('a'))
    const second = await runtime.create(specNamed('b'))
    await runtime.start(first)
    await expect(runtime.start(second)).rejects.toBeInstanceOf(PortInUseError)
    await runtime.stop(first, 1)
    await runtime.start(second)
    runtime.crash(second, 1)
    await runtime.start(first)
    runtime.removeBehindBack(first)
    await runtime.start(second)
    expect((await runtime.listManaged()).map((container) => [container.name, container.state])).toEqual([['forgehook-b', 'running']])
  })

  test('a host port shared by two foreign containers stays taken until both have stopped', async () => {
    const runtime = newFake()
    const firstForeign = runtime.addForeign({ name: 'other-tool-1', image: 'someone/else:1', hostPort: 18_083 })
    const secondForeign = runtime.addForeign({ name: 'other-tool-2', image: 'someone/else:1', hostPort: 18_083 })
    const ours = await runtime.create(specNamed('a', { hostPort: 18_083 }))
    await runtime.stop(firstForeign, 1)
    await expect(runtime.start(ours)).rejects.toBeInstanceOf(PortInUseError)
    await runtime.stop(secondForeign, 1)
    await runtime.start(ours)
  })

  test('lists report containers in creation order, also after removals', async () => {
    const runtime = newFake()
    for (const forgehookId of ['a', 'b', 'c']) await runtime.create(specNamed(forgehookId))
    runtime.addForeign({ name: 'forgehook-d', image: 'someone/else:1' })
    runtime.addForeign({ name: 'other-tool', image: 'someone/else:1' })
    await runtime.remove('forgehook-b')
    await runtime.create(specNamed('b'))
    expect((await runtime.listManaged()).map((container) => container.name)).toEqual(['forgehook-a', 'forgehook-c', 'forgehook-b'])
    expect((await runtime.listByNamePrefix()).map((container) => container.name)).toEqual(['forgehook-a', 'forgehook-c', 'forgehook-d', 'forgehook-b'])
  })

  test('finds a container by id, name or unique id prefix, and none by an ambiguous prefix', async () => {
    const runtime = newFake()
    // Seventeen ids over sixteen hex digits: at least two share their first digit.
    const containerIds: string[] = []
    for (let index = 0; index < 17; index += 1) containerIds.push(await runtime.create(specNamed(`n${index}`)))
    const containerId = containerIds[0]!
    expect((await runtime.inspect(containerId))?.name).toBe('forgehook-n0')
    expect((await runtime.inspect('forgehook-n0'))?.id).toBe(containerId)
    expect((await runtime.inspect(containerId.slice(0, 40)))?.id).toBe(containerId)
    const sharedDigit = containerIds.map((id) => id[0]).find((digit, index, digits) => digits.indexOf(digit) !== index)!
    expect(await runtime.inspect(sharedDigit)).toBeUndefined()
    expect(await runtime.inspect('')).toBeUndefined()
    expect(await runtime.inspect('forgehook-missing')).toBeUndefined()
  })

  test('images can be added, replaced and pulled from the configured registry', async () => {
    const runtime = new FakeRuntime({ pullable: ['registry.example/plugin:1'] })
    await runtime.ensureImage('registry.example/plugin:1', 'IfNotPresent')
    await runtime.ensureImage('registry.example/plugin:1', 'Never')
    runtime.setImages([])
    await expect(runtime.ensureImage('registry.example/plugin:1', 'Never')).rejects.toThrow(/^image not found: /)
    runtime.addImage(images.http)
    await runtime.create(specNamed('a'))
    expect(runtime.mutatingCalls).toEqual(['pull registry.example/plugin:1', 'create forgehook-a'])
  })

  test('an unreachable engine fails every call with RuntimeUnavailableError', async () => {
    const runtime = newFake()
    runtime.setReachable(false)
    await expect(runtime.listManaged()).rejects.toBeInstanceOf(RuntimeUnavailableError)
    await expect(runtime.connect()).rejects.toBeInstanceOf(RuntimeUnavailableError)
    runtime.setReachable(true)
    await expect(runtime.listManaged()).resolves.toEqual([])
  })

  test('writeLog and setStats feed logs and stats; a missing container has neither', async () => {
    const runtime = newFake()
    const containerId = await runtime.create(specNamed('a'))
    await runtime.start(containerId)
    runtime.writeLog(containerId, 'one\ntwo\nthree\n')
    runtime.setStats(containerId, { cpuPercent: 12.5, memoryMb: 64 })
    expect(await runtime.logs(containerId, { tail: 2 })).toBe('two\nthree\n')
    const first = await runtime.stats(containerId)
    const second = await runtime.stats(containerId)
    expect(second.memoryMb).toBe(64)
    expect(cpuPercentBetween(first.cpu, second.cpu)).toBe(12.5)
    await expect(runtime.logs('forgehook-missing', { tail: 2 })).rejects.toBeInstanceOf(ContainerNotFoundError)
    await expect(runtime.stats('forgehook-missing')).rejects.toBeInstanceOf(ContainerNotFoundError)
  })
})
