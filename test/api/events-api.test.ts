import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { Plugin } from '../../src/db/plugin-store.js'
import { openTestDatabase, sampleManifest, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, errorOf, send, type ApiHarness } from './api-harness.js'

interface EventAnswer {
  id: number
  pluginId: string | null
  forgehookId: string
  type: string
  data: Record<string, unknown>
  timestamp: string
}
interface EventPageAnswer {
  items: EventAnswer[]
  nextCursor?: string
}

let database: TestDatabase
let api: ApiHarness
let echo: Plugin
let other: Plugin

beforeAll(async () => {
  database = await openTestDatabase('embedded')
})
afterAll(async () => {
  await database?.close()
})
beforeEach(async () => {
  await database.reset()
  api = apiHarness(database)
  echo = await database.store.createPlugin({ forgehookId: 'echo', source: 'api', manifest: sampleManifest('echo') })
  other = await database.store.createPlugin({ forgehookId: 'other', source: 'api', manifest: sampleManifest('other') })
  await database.store.logEvents([
    { pluginId: echo.id, forgehookId: 'echo', type: 'plugin:installed', data: { image: 'flowforge/echo:1.0.0' } },
    { pluginId: echo.id, forgehookId: 'echo', type: 'plugin:started' },
    { pluginId: other.id, forgehookId: 'other', type: 'plugin:installed' },
    { pluginId: echo.id, forgehookId: 'echo', type: 'plugin:health' },
    { pluginId: other.id, forgehookId: 'other', type: 'plugin:error', data: { error: 'boom' } },
  ])
})

async function page(path: string): Promise<EventPageAnswer> {
  const response = await send(api.app, 'GET', path)
  expect(response.status, path).toBe(200)
  return (await response.json()) as EventPageAnswer
}

const typesOf = (events: EventPageAnswer) => events.items.map((event) => `${event.forgehookId} ${event.type}`)

describe('GET /api/v1/events', () => {
  test('lists every event, newest first', async () => {
    const events = await page('/api/v1/events')
    expect(typesOf(events)).toEqual(['other plugin:error', 'echo plugin:health', 'other plugin:installed', 'echo plugin:started', 'echo plugin:installed'])
    expect(events.nextCursor).toBeUndefined()
    expect(events.items[4]).toEqual({ id: expect.any(Number), pluginId: echo.id, forgehookId: 'echo', type: 'plugin:installed', data: { image: 'flowforge/echo:1.0.0' }, timestamp: expect.stringMatching(/Z$/) })
  })

  test('pages through with limit and cursor, without repeating an event', async () => {
    const seen: number[] = []
    let path = '/api/v1/events?limit=2'
    for (let pageCount = 1; ; pageCount++) {
      const events = await page(path)
      seen.push(...events.items.map((event) => event.id))
      if (events.nextCursor === undefined) break
      expect(pageCount).toBeLessThan(5)
      path = `/api/v1/events?limit=2&cursor=${encodeURIComponent(events.nextCursor)}`
    }
    expect(seen).toHaveLength(5)
    expect(new Set(seen).size).toBe(5)
    expect(seen).toEqual([...seen].sort((a, b) => b - a))
  })

  test('filters by type (repeated or comma-separated), plugin, since, and orders oldest first on request', async () => {
    expect(typesOf(await page('/api/v1/events?type=plugin:installed&type=plugin:error'))).toEqual(['other plugin:error', 'other plugin:installed', 'echo plugin:installed'])
    expect(typesOf(await page('/api/v1/events?type=plugin:installed,plugin:error'))).toEqual(['other plugin:error', 'other plugin:installed', 'echo plugin:installed'])
    expect(typesOf(await page('/api/v1/events?plugin=other&order=asc'))).toEqual(['other plugin:installed', 'other plugin:error'])
    expect((await page(`/api/v1/events?since=${new Date(Date.now() + 60_000).toISOString()}`)).items).toEqual([])
    expect((await page('/api/v1/events?since=2020-01-01T00:00:00Z')).items).toHaveLength(5)
  })

  test('answers 400 naming every invalid parameter', async () => {
    const response = await send(api.app, 'GET', '/api/v1/events?since=last-week&limit=0&order=sideways')
    expect(response.status).toBe(400)
    const { error } = await errorOf(response)
    expect(error.code).toBe('invalid_query')
    expect(error.details.map((detail) => detail.field)).toEqual(['since', 'limit', 'order'])

    for (const query of ['limit=1001', 'limit=ten', 'cursor=not-a-cursor', 'since=2026-13-45T00:00:00Z']) {
      const bad = await send(api.app, 'GET', `/api/v1/events?${query}`)
      expect(bad.status, query).toBe(400)
      expect((await errorOf(bad)).error.details[0]?.field, query).toBe(query.split('=')[0])
    }
  })
})

describe('GET /api/v1/plugins/:id/events', () => {
  test("lists one plugin's events by name or by uid", async () => {
    for (const id of ['echo', echo.id]) {
      expect(typesOf(await page(`/api/v1/plugins/${id}/events`))).toEqual(['echo plugin:health', 'echo plugin:started', 'echo plugin:installed'])
    }
    const firstPage = await page('/api/v1/plugins/echo/events?limit=2&type=plugin:started,plugin:installed,plugin:health')
    expect(firstPage.items).toHaveLength(2)
    const rest = await page(`/api/v1/plugins/echo/events?limit=2&type=plugin:started,plugin:installed,plugin:health&cursor=${firstPage.nextCursor}`)
    expect(typesOf(rest)).toEqual(['echo plugin:installed'])
  })

  test('keeps the history of an uninstalled plugin reachable by name', async () => {
    await database.store.logEvent({ pluginId: echo.id, forgehookId: 'echo', type: 'plugin:uninstalled' })
    await database.store.deletePlugin(echo.id)
    const events = await page('/api/v1/plugins/echo/events')
    expect(events.items[0]).toMatchObject({ type: 'plugin:uninstalled', pluginId: null })
    expect(events.items).toHaveLength(4)
  })

  test('answers 404 for a plugin that never existed, and 400 for invalid parameters', async () => {
    expect((await send(api.app, 'GET', '/api/v1/plugins/nothing/events')).status).toBe(404)
    expect((await send(api.app, 'GET', '/api/v1/plugins/00000000-0000-4000-8000-000000000000/events')).status).toBe(404)
    expect((await send(api.app, 'GET', '/api/v1/plugins/echo/events?limit=-1')).status).toBe(400)
  })
})
