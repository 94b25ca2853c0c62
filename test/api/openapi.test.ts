import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { z } from 'zod'
import { openApiDocument } from '../../src/api/openapi.js'
import { apiPluginSchema } from '../../src/spec/api-plugin.js'
import { pluginJsonSchema } from '../../src/spec/plugin-spec.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, pluginDocument, send } from './api-harness.js'

let database: TestDatabase

beforeAll(async () => {
  database = await openTestDatabase('embedded')
})
afterAll(async () => {
  await database?.close()
})

type Json = Record<string, unknown>

/** /api/v1/plugins/:id/* and /api/v1/plugins/{id}/{path} both become /api/v1/plugins/{}/{}. */
function routeShape(path: string): string {
  return path.replace(/:[A-Za-z]+|\{[A-Za-z]+\}|\*/g, '{}')
}

function collectRefs(value: unknown, refs: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((item) => collectRefs(item, refs))
  else if (typeof value === 'object' && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string') refs.push(child)
      else collectRefs(child, refs)
    }
  }
  return refs
}

function resolvePointer(document: Json, pointer: string): unknown {
  return pointer
    .replace(/^#\//, '')
    .split('/')
    .reduce<unknown>((node, part) => (node as Json | undefined)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], document)
}

describe('GET /api/v1/openapi.json', () => {
  test('is an OpenAPI 3.1 document with the plugin document schema as a component', async () => {
    const { app } = apiHarness(database)
    const response = await send(app, 'GET', '/api/v1/openapi.json')
    expect(response.status).toBe(200)
    const document = (await response.json()) as Json & { components: { schemas: Json } }
    expect(document.openapi).toBe('3.1.0')
    const { $schema: _dialect, ...expected } = pluginJsonSchema()
    expect(document.components.schemas.PluginDocument).toEqual(expected)
  })

  test('describes every route the app serves', () => {
    const { app } = apiHarness(database)
    const documented = new Set<string>()
    for (const [path, operations] of Object.entries(openApiDocument().paths as Record<string, Json>)) {
      for (const method of Object.keys(operations)) documented.add(`${method.toUpperCase()} ${routeShape(path)}`)
    }
    const served = app.routes
      .filter((route) => route.method !== 'ALL' || !route.path.endsWith('/*') || route.path.startsWith('/plugins/'))
      .flatMap((route) => (route.method === 'ALL' ? ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] : [route.method]).map((method) => `${method} ${routeShape(route.path)}`))
    expect(served.length).toBeGreaterThan(15)
    const undocumented = [...new Set(served)].filter((route) => !documented.has(route))
    expect(undocumented).toEqual([])
  })

  test('every $ref points at something in the document, and the open routes need no token', () => {
    const document = openApiDocument()
    for (const ref of collectRefs(document)) expect(resolvePointer(document, ref), ref).toBeDefined()
    const paths = document.paths as Record<string, Record<string, Json>>
    for (const path of ['/healthz', '/readyz', '/metrics']) expect(paths[path]?.get?.security, path).toEqual([])
    expect(paths['/api/v1/plugins']?.get?.security).toBeUndefined()
  })
})

describe('the plugin object schema (src/spec/api-plugin.ts)', () => {
  /** The schema's verdict on an answer: [] when it fits exactly (the schema's objects are strict). */
  function misfits(answer: unknown): string[] {
    const result = apiPluginSchema.safeParse(answer)
    return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)
  }

  test('fits GET /api/v1/plugins/:name exactly, for a new plugin and one the controller has reported on', async () => {
    const { app } = apiHarness(database)
    const created = await send(app, 'PUT', '/api/v1/plugins/schema-echo', {
      body: pluginDocument('schema-echo', { hostPort: 4710, environment: { API_TOKEN: 'secret', MODE: 'fast' }, config: { depth: 2 } }, { labels: { team: 'core' } }),
    })
    expect(created.status).toBe(201)
    expect(misfits(await created.json())).toEqual([])

    const fresh = await send(app, 'GET', '/api/v1/plugins/schema-echo')
    expect(fresh.status).toBe(200)
    expect(misfits(await fresh.json())).toEqual([])

    // Every nullable status field set, as after a crash with a restart pending.
    const plugin = await database.store.requirePlugin('schema-echo')
    const at = new Date('2026-01-02T03:04:05.678Z')
    await database.store.writeStatus(plugin.id, {
      status: 'error', containerId: 'c0ffee', containerName: 'forgehook-schema-echo', hostPort: 4710, healthStatus: 'unhealthy', lastHealthCheck: at,
      error: 'exited with code 1', restartCount: 3, observedGeneration: plugin.generation, installedAt: at, startedAt: at, stoppedAt: at, nextRestartAt: at,
    })
    const reported = await send(app, 'GET', '/api/v1/plugins/schema-echo')
    expect(misfits(await reported.json())).toEqual([])
  })

  test('fits the list items and a plugin being uninstalled, and rejects a field it does not know', async () => {
    const { app } = apiHarness(database)
    expect((await send(app, 'PUT', '/api/v1/plugins/schema-gone', { body: pluginDocument('schema-gone') })).status).toBe(201)
    const list = (await (await send(app, 'GET', '/api/v1/plugins')).json()) as { items: unknown[] }
    expect(list.items.length).toBeGreaterThan(0)
    expect(list.items.flatMap(misfits)).toEqual([])

    const deleting = await send(app, 'DELETE', '/api/v1/plugins/schema-gone')
    expect(deleting.status).toBe(202)
    const answer = (await deleting.json()) as { metadata: Record<string, unknown>; status: Record<string, unknown> }
    expect(answer.metadata.deletionTimestamp).toEqual(expect.any(String))
    expect(answer.status.phase).toBe('uninstalling')
    expect(misfits(answer)).toEqual([])

    expect(misfits({ ...answer, status: { ...answer.status, nextRestartAt: undefined } })).toEqual(['status.nextRestartAt: Invalid input: expected string, received undefined'])
    expect(misfits({ ...answer, status: { ...answer.status, surprise: 1 } })).toEqual(['status: Unrecognized key: "surprise"'])
  })

  test('is the OpenAPI Plugin component, with the phase and health enums of db/schema.ts', () => {
    const { components } = openApiDocument() as { components: { schemas: Record<string, Json> } }
    const { $schema: _dialect, ...expected } = z.toJSONSchema(apiPluginSchema, { io: 'output' })
    expect(components.schemas.Plugin).toEqual(expected)
    const status = (components.schemas.Plugin as { properties: { status: { properties: Record<string, Json> } } }).properties.status.properties
    expect(status.phase).toEqual({ type: 'string', enum: ['installing', 'installed', 'starting', 'running', 'stopping', 'stopped', 'uninstalling', 'error'] })
    expect(status.health).toEqual({ type: 'string', enum: ['unknown', 'starting', 'healthy', 'unhealthy'] })
  })
})
