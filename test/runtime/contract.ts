// The ContainerRuntime contract: what the controller may rely on, checked against the
// in-memory fake and the real Docker engine alike. A behaviour the fake gets wrong here
// would make every controller test that uses it lie.

import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import {
  ContainerNotFoundError,
  ImageNotFoundError,
  isManaged,
  LABELS,
  NameConflictError,
  PortInUseError,
  type ContainerRuntime,
  type ContainerSpec,
  type RuntimeEvent,
  type RuntimeStreamItem,
} from '../../src/runtime/container-runtime.js'
import { cpuPercentBetween } from '../../src/controller/cpu-rate.js'

export interface ContractImages {
  /** Serves HTTP on 8080 and runs until stopped. */
  http: string
  /** Writes `logLines` (to stdout and stderr) when it starts, then runs until stopped. */
  logs: string
  logLines: string[]
  /** Present nowhere: not on the engine, not in any registry. */
  missing: string
}

export interface RuntimeHarness {
  runtime: ContainerRuntime
  /** Releases what makeRuntime set up (containers are removed by the suite itself). */
  cleanup(): Promise<void>
  /** Kills a running container behind the runtime's back (`docker kill`, FakeRuntime.crash). */
  crash(containerId: string): Promise<void>
  /** The container's main process writes `line` to stdout (`docker exec ... > /proc/1/fd/1`, FakeRuntime.writeLog). */
  writeLog(containerId: string, line: string): Promise<void>
}

const CONTAINER_PORT = 8080
const WAIT_LIMIT_MS = 15_000

export function runtimeContract(name: string, images: ContractImages, makeRuntime: () => Promise<RuntimeHarness>): void {
  describe(`ContainerRuntime contract (${name})`, () => {
    let harness: RuntimeHarness
    let runtime: ContainerRuntime
    let createdNames: string[] = []

    beforeEach(async () => {
      harness = await makeRuntime()
      runtime = harness.runtime
      await runtime.connect()
    })

    afterEach(async () => {
      const names = createdNames
      createdNames = []
      try {
        // By name: this also removes a container whose create call failed after the engine made it.
        for (const containerName of names) await runtime.remove(containerName)
      } finally {
        await harness.cleanup()
      }
    })

    /** A spec with a fresh forgehook-contract-* name, recorded for removal after the test. */
    function newSpec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
      const forgehookId = `contract-${randomBytes(5).toString('hex')}`
      const spec: ContainerSpec = {
        name: `forgehook-${forgehookId}`,
        image: images.http,
        env: { PLUGIN_GREETING: 'hello' },
        labels: { [LABELS.managed]: 'true', [LABELS.forgehookId]: forgehookId },
        containerPort: CONTAINER_PORT,
        hostPort: randomHostPort(),
        hostIp: '127.0.0.1',
        ...overrides,
      }
      createdNames.push(spec.name)
      return spec
    }

    async function createAndStart(spec: ContainerSpec): Promise<string> {
      const containerId = await runtime.create(spec)
      await runtime.start(containerId)
      return containerId
    }

    test('connect reports the engine and the pinned API version', async () => {
      const info = await runtime.connect()
      expect(info.engineVersion).not.toBe('')
      expect(info.apiVersion).toMatch(/^1\.\d+$/)
    })

    test('a created container shows as created, with its name, image, labels and host port', async () => {
      const spec = newSpec()
      const containerId = await runtime.create(spec)
      const observed = await runtime.inspect(containerId)
      expect(observed).toMatchObject({ id: containerId, name: spec.name, image: spec.image, state: 'created', hostPort: spec.hostPort })
      expect(observed?.labels).toMatchObject(spec.labels)
      expect(await runtime.inspect(spec.name)).toMatchObject({ id: containerId })
    })

    test('a started container runs, and starting it again changes nothing', async () => {
      const containerId = await createAndStart(newSpec())
      await runtime.start(containerId)
      const observed = await runtime.inspect(containerId)
      expect(observed?.state).toBe('running')
      expect(observed?.startedAt).toBeInstanceOf(Date)
    })

    test('a stopped container has exited, and stopping it again changes nothing', async () => {
      const containerId = await createAndStart(newSpec())
      await runtime.stop(containerId, 1)
      await runtime.stop(containerId, 1)
      const observed = await runtime.inspect(containerId)
      expect(observed?.state).toBe('exited')
      expect(observed?.finishedAt).toBeInstanceOf(Date)
    })

    test('a removed container is gone, and removing it again changes nothing', async () => {
      const containerId = await createAndStart(newSpec())
      await runtime.remove(containerId)
      expect(await runtime.inspect(containerId)).toBeUndefined()
      await runtime.remove(containerId)
    })

    test('inspect of a container that never existed is undefined', async () => {
      expect(await runtime.inspect(`forgehook-contract-never-${randomBytes(4).toString('hex')}`)).toBeUndefined()
    })

    test('starting or stopping a missing container throws ContainerNotFoundError', async () => {
      const missingName = `forgehook-contract-never-${randomBytes(4).toString('hex')}`
      await expect(runtime.start(missingName)).rejects.toBeInstanceOf(ContainerNotFoundError)
      await expect(runtime.stop(missingName, 1)).rejects.toBeInstanceOf(ContainerNotFoundError)
    })

    test('creating a container with a taken name throws NameConflictError', async () => {
      const spec = newSpec()
      await runtime.create(spec)
      const conflict = runtime.create({ ...spec, hostPort: randomHostPort() })
      await expect(conflict).rejects.toBeInstanceOf(NameConflictError)
      await expect(conflict).rejects.toMatchObject({ containerName: spec.name })
    })

    test('creating a container of a missing image throws ImageNotFoundError', async () => {
      await expect(runtime.create(newSpec({ image: images.missing }))).rejects.toBeInstanceOf(ImageNotFoundError)
    })

    test('listManaged returns labelled containers only; listByNamePrefix returns every forgehook-* container', async () => {
      const managedSpec = newSpec()
      const unmanagedSpec = newSpec({ labels: {} })
      const managedId = await runtime.create(managedSpec)
      const unmanagedId = await runtime.create(unmanagedSpec)

      const managed = await runtime.listManaged()
      expect(managed.map((container) => container.id)).toContain(managedId)
      expect(managed.map((container) => container.id)).not.toContain(unmanagedId)
      expect(managed.every(isManaged)).toBe(true)
      expect(managed.find((container) => container.id === managedId)).toMatchObject({ name: managedSpec.name, state: 'created' })

      const byPrefix = await runtime.listByNamePrefix()
      expect(byPrefix.map((container) => container.name)).toEqual(expect.arrayContaining([managedSpec.name, unmanagedSpec.name]))
      expect(byPrefix.every((container) => container.name.startsWith('forgehook-'))).toBe(true)
    })

    test('a list shows the published port of a running container', async () => {
      const spec = newSpec()
      const containerId = await createAndStart(spec)
      const listed = (await runtime.listManaged()).find((container) => container.id === containerId)
      expect(listed).toMatchObject({ state: 'running', hostPort: spec.hostPort, containerPort: CONTAINER_PORT })
    })

    test('ensureImage with Never and a missing image throws ImageNotFoundError', async () => {
      const ensuring = runtime.ensureImage(images.missing, 'Never')
      await expect(ensuring).rejects.toBeInstanceOf(ImageNotFoundError)
      await expect(ensuring).rejects.toThrow(/^image not found: /)
    })

    test('ensureImage with IfNotPresent or Never and a present image does nothing', async () => {
      await runtime.ensureImage(images.http, 'IfNotPresent')
      await runtime.ensureImage(images.http, 'Never')
    })

    test('ensureImage says which image it made sure of: the id that a list and an inspect of its containers show', async () => {
      const ensured = await runtime.ensureImage(images.http, 'IfNotPresent')
      expect(ensured).toMatchObject({ imageId: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), pulled: false })
      const containerId = await runtime.create(newSpec())
      expect((await runtime.inspect(containerId))?.imageId).toBe(ensured.imageId)
      expect((await runtime.listManaged()).find((container) => container.id === containerId)?.imageId).toBe(ensured.imageId)
    })

    test('ensureImage with IfNotPresent and an image no registry has throws ImageNotFoundError', async () => {
      await expect(runtime.ensureImage(images.missing, 'IfNotPresent')).rejects.toBeInstanceOf(ImageNotFoundError)
    })

    test('a container killed behind our back shows as exited with a non-zero exit code', async () => {
      const containerId = await createAndStart(newSpec())
      await harness.crash(containerId)
      const observed = await waitFor(() => runtime.inspect(containerId), (container) => container?.state === 'exited')
      expect(observed?.exitCode).toBeGreaterThan(0)
      expect(observed?.finishedAt).toBeInstanceOf(Date)
    })

    test('the event stream reports start and die of a managed container, with its labels', async () => {
      const controller = new AbortController()
      const items: RuntimeStreamItem[] = []
      const consuming = (async () => {
        for await (const item of runtime.events(controller.signal)) items.push(item)
      })()
      try {
        const spec = newSpec()
        const containerId = await createAndStart(spec)
        await harness.crash(containerId)
        const events = await waitFor(
          async () => eventsOf(items, containerId),
          (seen) => seen.some((event) => event.action === 'die'),
        )
        const started = events.find((event) => event.action === 'start')
        const died = events.find((event) => event.action === 'die')
        expect(started).toMatchObject({ containerId, name: spec.name })
        expect(started?.labels).toMatchObject(spec.labels)
        expect(died).toMatchObject({ containerId, name: spec.name })
        expect(died?.labels).toMatchObject(spec.labels)
        expect(died?.exitCode).toBeGreaterThan(0)
        expect(died?.time).toBeInstanceOf(Date)
      } finally {
        controller.abort()
        await consuming
      }
    })

    test('logs return what the container wrote to stdout and stderr', async () => {
      const containerId = await createAndStart(newSpec({ image: images.logs }))
      const text = await waitFor(
        () => runtime.logs(containerId, { tail: 100 }),
        (logText) => images.logLines.every((line) => logText.includes(line)),
      )
      expect(text.split('\n').filter(Boolean).sort()).toEqual([...images.logLines].sort())
      expect(await runtime.logs(containerId, { tail: 1 })).toMatch(/^[^\n]*\n?$/)
    })

    test('followLogs yields the tail, then a line written after the start, and ends when aborted', async () => {
      const containerId = await createAndStart(newSpec({ image: images.logs }))
      await waitFor(
        () => runtime.logs(containerId, { tail: 100 }),
        (logText) => images.logLines.every((line) => logText.includes(line)),
      )
      const controller = new AbortController()
      let received = ''
      const following = (async () => {
        for await (const text of runtime.followLogs(containerId, { tail: 100, signal: controller.signal })) received += text
      })()
      try {
        // The tail arriving shows the follow is attached before the new line is written.
        await waitFor(async () => received, (text) => images.logLines.every((line) => text.includes(line)))
        await harness.writeLog(containerId, 'forgehook contract: written while followed')
        await waitFor(async () => received, (text) => text.includes('forgehook contract: written while followed\n'))
      } finally {
        controller.abort()
      }
      await following
    })

    test('followLogs ends when the container stops', async () => {
      const containerId = await createAndStart(newSpec({ image: images.logs }))
      const controller = new AbortController()
      let chunks = 0
      const following = (async () => {
        for await (const _text of runtime.followLogs(containerId, { tail: 100, signal: controller.signal })) chunks += 1
      })()
      try {
        await waitFor(async () => chunks, (count) => count > 0)
        await runtime.stop(containerId, 5)
        await following
      } finally {
        controller.abort()
      }
    })

    test('two stats reads of a running container give counters that only go forward, and a CPU rate', async () => {
      const containerId = await createAndStart(newSpec())
      const first = await runtime.stats(containerId)
      // The host's counter has a 10 ms tick: a pause lets it move between the two reads.
      await new Promise((resolve) => setTimeout(resolve, 100))
      const second = await runtime.stats(containerId)
      expect(first.memoryMb).toBeGreaterThanOrEqual(0)
      expect(Number.isFinite(first.memoryMb)).toBe(true)
      expect(first.cpu.systemNanos).toBeGreaterThan(0)
      expect(first.cpu.onlineCpus).toBeGreaterThanOrEqual(1)
      expect(second.cpu.containerNanos).toBeGreaterThanOrEqual(first.cpu.containerNanos)
      expect(second.cpu.systemNanos).toBeGreaterThan(first.cpu.systemNanos)
      expect(cpuPercentBetween(first.cpu, second.cpu)).toBeGreaterThanOrEqual(0)
    })

    test('starting a second container on a taken host port throws PortInUseError', async () => {
      const hostPort = randomHostPort()
      await createAndStart(newSpec({ hostPort }))
      const secondId = await runtime.create(newSpec({ hostPort }))
      const starting = runtime.start(secondId)
      await expect(starting).rejects.toBeInstanceOf(PortInUseError)
      await expect(starting).rejects.toMatchObject({ hostPort })
      expect((await runtime.inspect(secondId))?.state).not.toBe('running')
    })
  })
}

/** A port from a range nothing on the test machines listens on. */
function randomHostPort(): number {
  return 20_000 + Math.floor(Math.random() * 10_000)
}

function eventsOf(items: RuntimeStreamItem[], containerId: string): RuntimeEvent[] {
  return items.flatMap((item) => (item.type === 'event' && item.event.containerId === containerId ? [item.event] : []))
}

/** Polls until `done` holds (Docker changes state a moment after a call returns). */
async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + WAIT_LIMIT_MS
  for (;;) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) throw new Error(`condition not met within ${WAIT_LIMIT_MS} ms; last value: ${JSON.stringify(value)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
