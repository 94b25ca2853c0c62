import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { openApiDocument } from '../../src/api/openapi.js'
import { pluginJsonSchema } from '../../src/spec/plugin-spec.js'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, send } from './api-harness.js'

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
