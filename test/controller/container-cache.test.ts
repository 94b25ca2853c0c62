// The controller's container cache: what a list may and may not overwrite, and when a
// name it does not hold means "no container".
import { describe, expect, test } from 'vitest'
import { ContainerCache } from '../../src/controller/container-cache.js'
import type { ObservedContainer } from '../../src/runtime/container-runtime.js'

function container(name: string, id: string, state: ObservedContainer['state'] = 'running'): ObservedContainer {
  return { id, name, image: 'img:1', state, labels: {} }
}

describe('ContainerCache', () => {
  test('is not complete until a list has been taken, and stops being complete when an entry is forgotten', () => {
    const cache = new ContainerCache()
    expect(cache.complete).toBe(false)
    cache.replaceAll([container('forgehook-a', 'a1')], cache.beginList())
    expect(cache.complete).toBe(true)
    cache.forget('a1')
    expect(cache.get('forgehook-a')).toBeUndefined()
    expect(cache.complete).toBe(false)
    cache.replaceAll([], cache.beginList())
    expect(cache.complete).toBe(true)
  })

  test('a list taken before our create does not drop the container we made meanwhile', () => {
    const cache = new ContainerCache()
    const token = cache.beginList()
    cache.putDetailed(container('forgehook-new', 'n1', 'created'))
    cache.replaceAll([container('forgehook-old', 'o1')], token)
    expect(cache.get('forgehook-new')).toMatchObject({ container: container('forgehook-new', 'n1', 'created'), detailed: true })
    expect(cache.get('forgehook-old')?.detailed).toBe(false)
    expect(cache.getById('n1')?.container.name).toBe('forgehook-new')
  })

  test('a list taken before a change keeps the newer state, and does not bring back what was removed meanwhile', () => {
    const cache = new ContainerCache()
    cache.replaceAll([container('forgehook-a', 'a1', 'running'), container('forgehook-b', 'b1')], cache.beginList())
    const token = cache.beginList()
    cache.putDetailed(container('forgehook-a', 'a1', 'exited'))
    cache.removeById('b1')
    cache.replaceAll([container('forgehook-a', 'a1', 'running'), container('forgehook-b', 'b1')], token)
    expect(cache.get('forgehook-a')?.container.state).toBe('exited')
    expect(cache.get('forgehook-b')).toBeUndefined()
    // The next list is believed again.
    cache.replaceAll([container('forgehook-a', 'a1', 'running'), container('forgehook-b', 'b1')], cache.beginList())
    expect(cache.get('forgehook-a')?.container.state).toBe('running')
    expect(cache.get('forgehook-b')).toBeDefined()
  })

  test("our start of the container our create made is recorded from its answer, provisional until inspected", () => {
    const cache = new ContainerCache()
    cache.putDetailed({ ...container('forgehook-a', 'a1', 'created'), hostPort: 4100, containerPort: 8080 })
    const version = cache.versionOf('a1')
    const startedAt = new Date('2026-12-02T03:00:00.000Z')
    expect(cache.markStarted('a1', startedAt, version)).toBe(true)
    expect(cache.get('forgehook-a')).toMatchObject({ container: { id: 'a1', state: 'running', startedAt, hostPort: 4100, containerPort: 8080 }, detailed: true, provisional: true })
    expect(cache.unsettled()).toEqual(['a1'])
    // The engine's start event tells its own start time.
    const engineTime = new Date('2026-12-02T02:59:59.990Z')
    cache.noteStartTime('a1', engineTime)
    expect(cache.get('forgehook-a')?.container.startedAt).toEqual(engineTime)
    // An inspect settles it.
    cache.putDetailed({ ...container('forgehook-a', 'a1', 'running'), health: 'starting' })
    expect(cache.get('forgehook-a')?.provisional).toBeUndefined()
    expect(cache.unsettled()).toEqual([])
  })

  test('a start whose container changed under it (an event inspected it exited) records nothing, and a container not fresh from our create neither', () => {
    const cache = new ContainerCache()
    cache.putDetailed(container('forgehook-a', 'a1', 'created'))
    const version = cache.versionOf('a1')
    // The die event's inspect, while our start call was still out.
    cache.putDetailed({ ...container('forgehook-a', 'a1', 'exited'), exitCode: 1 })
    expect(cache.markStarted('a1', new Date(), version)).toBe(false)
    expect(cache.get('forgehook-a')?.container).toMatchObject({ state: 'exited', exitCode: 1 })
    // A stopped container started again: its entry is an inspect's, not a create's.
    cache.putDetailed({ ...container('forgehook-b', 'b1', 'exited'), exitCode: 0 })
    expect(cache.markStarted('b1', new Date(), cache.versionOf('b1'))).toBe(false)
    expect(cache.unsettled()).toEqual([])
  })

  test('the create event of a name our create is making is an echo, even before the create answered', async () => {
    const cache = new ContainerCache()
    let during = false
    await cache.whileCreating('forgehook-a', async () => {
      during = cache.isOwnAction('a1', 'create', 'forgehook-a')
      expect(cache.isOwnAction('b1', 'create', 'forgehook-b')).toBe(false)
      expect(cache.isOwnAction('a1', 'start', 'forgehook-a')).toBe(false)
    })
    expect(during).toBe(true)
    expect(cache.isOwnAction('a1', 'create', 'forgehook-a')).toBe(false)
  })

  test('during our own start or stop, only the events that action causes are echoes', async () => {
    const cache = new ContainerCache()
    let during: boolean[] = []
    await cache.whileActing('c1', 'stop', async () => {
      during = ['kill', 'die', 'stop', 'start', 'oom'].map((action) => cache.isOwnAction('c1', action))
    })
    expect(during).toEqual([true, true, true, false, false])
    expect(cache.isOwnAction('c1', 'die')).toBe(false)
    await cache.whileActing('c1', 'start', async () => {
      expect(cache.isOwnAction('c1', 'start')).toBe(true)
      expect(cache.isOwnAction('c1', 'die')).toBe(false)
      expect(cache.isOwnAction('c2', 'start')).toBe(false)
    })
  })
})
