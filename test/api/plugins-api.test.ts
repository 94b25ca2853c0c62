import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { containerOf, fakeRuntime, startController, waitForConverged } from '../helpers/controller-harness.js'
import { eventually, openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, errorOf, pluginDocument, send, type ApiHarness, type PluginAnswer } from './api-harness.js'

let database: TestDatabase
let api: ApiHarness

beforeAll(async () => {
  database = await openTestDatabase('embedded')
})
afterAll(async () => {
  await database?.close()
})
beforeEach(async () => {
  await database.reset()
  api = apiHarness(database)
})

async function create(name: string, spec: Record<string, unknown> = {}): Promise<PluginAnswer> {
  const response = await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument(name, spec) })
  expect(response.status).toBe(201)
  return (await response.json()) as PluginAnswer
}

async function answerOf(response: Response): Promise<PluginAnswer> {
  return (await response.json()) as PluginAnswer
}

describe('POST /api/v1/plugins', () => {
  test('creates a plugin from a document and answers it with ETag and Location', async () => {
    const response = await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('echo', { config: { greeting: 'hi' } }, { labels: { team: 'core' } }) })
    expect(response.status).toBe(201)
    const plugin = await answerOf(response)
    expect(plugin).toMatchObject({
      apiVersion: 'flowforge.io/v1',
      kind: 'Plugin',
      metadata: { name: 'echo', generation: 1, labels: { team: 'core' }, source: 'api' },
      spec: { state: 'running', config: { greeting: 'hi' }, environment: {} },
    })
    expect(Object.keys(plugin.status)).toEqual(expect.arrayContaining(['phase', 'health', 'containerId', 'containerName', 'hostPort', 'error', 'restartCount', 'observedGeneration', 'lastHealthCheck', 'installedAt', 'startedAt', 'stoppedAt']))
    expect(response.headers.get('etag')).toBe(`"${plugin.metadata.resourceVersion}"`)
    expect(response.headers.get('location')).toBe('/api/v1/plugins/echo')
    expect((await database.store.requirePlugin('echo')).id).toBe(plugin.metadata.uid)
  })

  test('answers 409 when the name exists', async () => {
    await create('echo')
    const response = await send(api.app, 'POST', '/api/v1/plugins', { body: pluginDocument('echo') })
    expect(response.status).toBe(409)
    expect((await errorOf(response)).error.code).toBe('already_exists')
  })

  test('answers 422 naming every invalid field by its path', async () => {
    const document = pluginDocument('Not_A_Label', { manifest: { image: 'flowforge/test:1', port: 70000, privileged: true } })
    const response = await send(api.app, 'POST', '/api/v1/plugins', { body: document })
    expect(response.status).toBe(422)
    const { error } = await errorOf(response)
    expect(error.code).toBe('invalid')
    expect(error.details.map((detail) => detail.field).sort()).toEqual(['metadata.name', 'spec.manifest.port', 'spec.manifest.privileged'])
  })
})

describe('GET /api/v1/plugins', () => {
  test('lists plugins and filters them by phase, health and desired state', async () => {
    await create('alpha')
    await create('beta', { state: 'stopped' })
    const all = await send(api.app, 'GET', '/api/v1/plugins')
    expect(((await all.json()) as { items: PluginAnswer[] }).items.map((plugin) => plugin.metadata.name)).toEqual(['alpha', 'beta'])

    const stopped = (await (await send(api.app, 'GET', '/api/v1/plugins?state=stopped')).json()) as { items: PluginAnswer[] }
    expect(stopped.items.map((plugin) => plugin.metadata.name)).toEqual(['beta'])

    const beta = await database.store.requirePlugin('beta')
    await database.store.writeStatus(beta.id, { status: 'stopped', healthStatus: 'unhealthy' })
    const byPhase = (await (await send(api.app, 'GET', '/api/v1/plugins?status=stopped,error')).json()) as { items: PluginAnswer[] }
    expect(byPhase.items.map((plugin) => plugin.metadata.name)).toEqual(['beta'])
    const byHealth = (await (await send(api.app, 'GET', '/api/v1/plugins?health=unknown')).json()) as { items: PluginAnswer[] }
    expect(byHealth.items.map((plugin) => plugin.metadata.name)).toEqual(['alpha'])
  })

  test('answers 400 naming each invalid filter', async () => {
    const response = await send(api.app, 'GET', '/api/v1/plugins?status=sleeping&state=paused')
    expect(response.status).toBe(400)
    const { error } = await errorOf(response)
    expect(error.details.map((detail) => detail.field)).toEqual(['status', 'state'])
  })

  test('finds one plugin by name or by uid, with its ETag', async () => {
    const created = await create('echo')
    for (const id of ['echo', created.metadata.uid]) {
      const response = await send(api.app, 'GET', `/api/v1/plugins/${id}`)
      expect(response.status).toBe(200)
      expect((await answerOf(response)).metadata.uid).toBe(created.metadata.uid)
      expect(response.headers.get('etag')).toBe(`"${created.metadata.resourceVersion}"`)
    }
  })

  test('answers 404 for an unknown plugin', async () => {
    for (const id of ['nothing', '00000000-0000-4000-8000-000000000000']) {
      const response = await send(api.app, 'GET', `/api/v1/plugins/${id}`)
      expect(response.status).toBe(404)
      expect((await errorOf(response)).error.code).toBe('not_found')
    }
  })
})

describe('PUT /api/v1/plugins/:name', () => {
  test('creates (201), replaces (200) and leaves an identical document alone', async () => {
    const first = await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: pluginDocument('echo', { config: { a: 1 } }) })
    expect(first.status).toBe(201)
    const created = await answerOf(first)

    const replaced = await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: pluginDocument('echo', { state: 'stopped' }) })
    expect(replaced.status).toBe(200)
    const afterReplace = await answerOf(replaced)
    expect(afterReplace.metadata.generation).toBe(2)
    // Fields the document leaves out go back to their defaults: a replace is the whole spec.
    expect(afterReplace.spec).toMatchObject({ state: 'stopped', config: {} })
    expect(afterReplace.metadata.uid).toBe(created.metadata.uid)

    const again = await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: pluginDocument('echo', { state: 'stopped' }) })
    expect(again.status).toBe(200)
    expect((await answerOf(again)).metadata.resourceVersion).toBe(afterReplace.metadata.resourceVersion)
  })

  test('answers 422 when metadata.name differs from the name in the URL', async () => {
    const response = await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: pluginDocument('other') })
    expect(response.status).toBe(422)
    expect((await errorOf(response)).error.details).toEqual([expect.objectContaining({ field: 'metadata.name' })])
    expect(await database.store.getPlugin('other')).toBeUndefined()
  })

  test('honours If-Match: 412 when stale or when the plugin does not exist, 200 when current', async () => {
    const missing = await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: pluginDocument('echo'), headers: { 'if-match': '"1"' } })
    expect(missing.status).toBe(412)

    const created = await create('echo')
    const stale = await send(api.app, 'PUT', '/api/v1/plugins/echo', { body: pluginDocument('echo', { state: 'stopped' }), headers: { 'if-match': '"1"' } })
    expect(stale.status).toBe(412)
    expect((await errorOf(stale)).error.code).toBe('precondition_failed')
    expect((await database.store.requirePlugin('echo')).desiredState).toBe('running')

    const current = await send(api.app, 'PUT', '/api/v1/plugins/echo', {
      body: pluginDocument('echo', { state: 'stopped' }),
      headers: { 'if-match': `"${created.metadata.resourceVersion}"` },
    })
    expect(current.status).toBe(200)
    expect((await database.store.requirePlugin('echo')).desiredState).toBe('stopped')
  })
})

describe('PATCH /api/v1/plugins/:id', () => {
  const mergePatch = 'application/merge-patch+json'

  test('applies a merge patch to the document', async () => {
    await create('echo', { config: { keep: 1, drop: 2 } })
    const response = await send(api.app, 'PATCH', '/api/v1/plugins/echo', { body: { spec: { state: 'stopped', config: { drop: null, add: 3 } } }, contentType: mergePatch })
    expect(response.status).toBe(200)
    const plugin = await answerOf(response)
    expect(plugin.spec).toMatchObject({ state: 'stopped', config: { keep: 1, add: 3 } })
    expect(plugin.spec.config).not.toHaveProperty('drop')
    expect(plugin.metadata.generation).toBe(2)
    expect(response.headers.get('etag')).toBe(`"${plugin.metadata.resourceVersion}"`)
    expect((await database.store.requirePlugin('echo')).desiredState).toBe('stopped')
  })

  test('accepts application/json as a merge patch, and refuses other types with 415', async () => {
    await create('echo')
    const asJson = await send(api.app, 'PATCH', '/api/v1/plugins/echo', { body: { metadata: { labels: { team: 'core' } } } })
    expect(asJson.status).toBe(200)
    expect((await answerOf(asJson)).metadata.labels).toEqual({ team: 'core' })

    const asText = await send(api.app, 'PATCH', '/api/v1/plugins/echo', { rawBody: '{}', contentType: 'text/plain' })
    expect(asText.status).toBe(415)
    expect((await errorOf(asText)).error.code).toBe('unsupported_media_type')
  })

  test('validates the merged document as a whole (422 with field paths)', async () => {
    await create('echo')
    const response = await send(api.app, 'PATCH', '/api/v1/plugins/echo', { body: { spec: { manifest: { port: 'eighty' }, hostPort: 0 } }, contentType: mergePatch })
    expect(response.status).toBe(422)
    const fields = (await errorOf(response)).error.details.map((detail) => detail.field).sort()
    expect(fields).toEqual(['spec.hostPort', 'spec.manifest.port'])
  })

  test('cannot rename a plugin (422)', async () => {
    await create('echo')
    const response = await send(api.app, 'PATCH', '/api/v1/plugins/echo', { body: { metadata: { name: 'other' } }, contentType: mergePatch })
    expect(response.status).toBe(422)
    expect((await errorOf(response)).error.details[0]?.field).toBe('metadata.name')
  })

  test('answers 412 for a stale If-Match and applies the patch for the current one', async () => {
    const created = await create('echo')
    await database.store.writeStatus(created.metadata.uid, { status: 'running' })
    const stale = await send(api.app, 'PATCH', '/api/v1/plugins/echo', {
      body: { spec: { state: 'stopped' } },
      contentType: mergePatch,
      headers: { 'if-match': `"${created.metadata.resourceVersion}"` },
    })
    expect(stale.status).toBe(412)

    const current = await send(api.app, 'GET', '/api/v1/plugins/echo')
    const patched = await send(api.app, 'PATCH', '/api/v1/plugins/echo', {
      body: { spec: { state: 'stopped' } },
      contentType: mergePatch,
      headers: { 'if-match': current.headers.get('etag')! },
    })
    expect(patched.status).toBe(200)
  })

  test('answers 404 for an unknown plugin', async () => {
    const response = await send(api.app, 'PATCH', '/api/v1/plugins/nothing', { body: { spec: { state: 'stopped' } }, contentType: mergePatch })
    expect(response.status).toBe(404)
  })
})

describe("POST /api/v1/plugins/install (the guide's body)", () => {
  const guideManifest = { id: 'crypto-service', name: 'Crypto Service', version: '1.2.0', image: { repository: 'flowforge/test', tag: '1' }, port: 8080, description: 'hashes' }

  test('installs under manifest.id, stopped when autoStart is false', async () => {
    const response = await send(api.app, 'POST', '/api/v1/plugins/install', { body: { manifest: guideManifest, config: { rounds: 3 }, environment: { MODE: 'fast' }, autoStart: false } })
    expect(response.status).toBe(201)
    const plugin = await answerOf(response)
    expect(plugin.metadata.name).toBe('crypto-service')
    expect(plugin.spec).toMatchObject({ state: 'stopped', config: { rounds: 3 }, environment: { MODE: 'fast' } })
    expect(plugin.spec.manifest).toMatchObject({ description: 'hashes' })
  })

  test('names the plugin after manifest.name as a DNS label when there is no id, and starts it by default', async () => {
    const { id: _id, ...manifest } = guideManifest
    const response = await send(api.app, 'POST', '/api/v1/plugins/install', { body: { manifest: { ...manifest, name: 'Crypto Service v2!' } } })
    expect(response.status).toBe(201)
    expect(await answerOf(response)).toMatchObject({ metadata: { name: 'crypto-service-v2' }, spec: { state: 'running' } })
  })

  test('answers 409 for an installed id and 422 naming fields of the install body', async () => {
    await send(api.app, 'POST', '/api/v1/plugins/install', { body: { manifest: guideManifest } })
    expect((await send(api.app, 'POST', '/api/v1/plugins/install', { body: { manifest: guideManifest } })).status).toBe(409)

    const noManifest = await send(api.app, 'POST', '/api/v1/plugins/install', { body: { config: {} } })
    expect(noManifest.status).toBe(422)
    expect((await errorOf(noManifest)).error.details[0]?.field).toBe('manifest')

    const badPort = await send(api.app, 'POST', '/api/v1/plugins/install', { body: { manifest: { ...guideManifest, id: 'other', port: -1 }, autoStart: 'yes' } })
    expect(badPort.status).toBe(422)
    expect((await errorOf(badPort)).error.details[0]?.field).toBe('autoStart')

    const badId = await send(api.app, 'POST', '/api/v1/plugins/install', { body: { manifest: { ...guideManifest, id: 'Bad Id', port: -1 } } })
    expect((await errorOf(badId)).error.details.map((detail) => detail.field).sort()).toEqual(['manifest.id', 'manifest.port'])
  })
})

describe('start, stop and restart', () => {
  test('start and stop change the desired state', async () => {
    await create('echo')
    const stopped = await send(api.app, 'POST', '/api/v1/plugins/echo/stop')
    expect(stopped.status).toBe(200)
    expect((await answerOf(stopped)).spec.state).toBe('stopped')
    expect((await database.store.requirePlugin('echo')).desiredState).toBe('stopped')

    const started = await send(api.app, 'POST', '/api/v1/plugins/echo/start')
    expect((await answerOf(started)).spec.state).toBe('running')
    expect((await database.store.requirePlugin('echo')).desiredState).toBe('running')
    expect((await send(api.app, 'POST', '/api/v1/plugins/nothing/start')).status).toBe(404)
  })

  test('restart asks the controller to restart once (202) and changes no spec', async () => {
    const created = await create('echo')
    const response = await send(api.app, 'POST', '/api/v1/plugins/echo/restart')
    expect(response.status).toBe(202)
    expect(api.controller.restarts).toEqual([{ pluginId: created.metadata.uid, reason: 'requested through the API' }])
    expect((await database.store.requirePlugin('echo')).generation).toBe(created.metadata.generation)
  })

  test('restart of a stopped plugin answers 409', async () => {
    await create('echo', { state: 'stopped' })
    const response = await send(api.app, 'POST', '/api/v1/plugins/echo/restart')
    expect(response.status).toBe(409)
    expect(api.controller.restarts).toEqual([])
  })
})

describe('DELETE /api/v1/plugins/:id', () => {
  test('requests deletion (202): the plugin shows uninstalling, and refuses spec changes', async () => {
    await create('echo')
    const response = await send(api.app, 'DELETE', '/api/v1/plugins/echo')
    expect(response.status).toBe(202)
    const plugin = await answerOf(response)
    expect(plugin.metadata.deletionTimestamp).toEqual(expect.any(String))
    expect(plugin.status.phase).toBe('uninstalling')
    expect((await answerOf(await send(api.app, 'GET', '/api/v1/plugins/echo'))).status.phase).toBe('uninstalling')

    const listed = (await (await send(api.app, 'GET', '/api/v1/plugins?status=uninstalling')).json()) as { items: PluginAnswer[] }
    expect(listed.items.map((item) => item.metadata.name)).toEqual(['echo'])

    const patch = await send(api.app, 'PATCH', '/api/v1/plugins/echo', { body: { spec: { state: 'stopped' } } })
    expect(patch.status).toBe(409)
    expect((await errorOf(patch)).error.code).toBe('uninstalling')
    expect((await send(api.app, 'DELETE', '/api/v1/plugins/nothing')).status).toBe(404)
  })

  test('honours If-Match', async () => {
    await create('echo')
    expect((await send(api.app, 'DELETE', '/api/v1/plugins/echo', { headers: { 'if-match': '"1"' } })).status).toBe(412)
    expect((await database.store.requirePlugin('echo')).deletionRequestedAt).toBeNull()
  })
})

describe('GET /api/v1/plugins/:id/metrics and /api/v1/specs', () => {
  test('lists metrics samples, newest first, with since and limit', async () => {
    const created = await create('echo')
    for (const [minute, requestCount] of [[1, 10], [2, 20], [3, 30]] as const) {
      await database.store.recordMetrics(created.metadata.uid, { requestCount, recordedAt: new Date(`2026-01-01T00:0${minute}:00Z`) })
    }
    const all = (await (await send(api.app, 'GET', '/api/v1/plugins/echo/metrics')).json()) as { items: { requestCount: number; recordedAt: string }[] }
    expect(all.items.map((sample) => sample.requestCount)).toEqual([30, 20, 10])
    expect(all.items[0]?.recordedAt).toBe('2026-01-01T00:03:00.000Z')

    const recent = (await (await send(api.app, 'GET', '/api/v1/plugins/echo/metrics?since=2026-01-01T00:02:00Z&limit=1')).json()) as { items: unknown[] }
    expect(recent.items).toHaveLength(1)
    expect((await send(api.app, 'GET', '/api/v1/plugins/echo/metrics?since=yesterday')).status).toBe(400)
    expect((await send(api.app, 'GET', '/api/v1/plugins/nothing/metrics')).status).toBe(404)
  })

  test('lists spec files from the folder view, or none without one', async () => {
    expect(await (await send(api.app, 'GET', '/api/v1/specs')).json()).toEqual({ items: [] })
    const report = { path: 'echo.yaml', status: 'ok' as const, plugins: ['echo'], errors: [], checkedAt: '2026-01-01T00:00:00.000Z' }
    const withSpecs = apiHarness(database, { specs: { list: () => [report] } })
    expect(await (await send(withSpecs.app, 'GET', '/api/v1/specs')).json()).toEqual({ items: [report] })
  })
})

describe('with the real controller', () => {
  test('a plugin declared through the API converges, stops, and is gone after DELETE', async () => {
    const runtime = fakeRuntime()
    const controller = await startController(database, runtime)
    try {
      const withController = apiHarness(database, { runtime, controller })
      const created = await send(withController.app, 'POST', '/api/v1/plugins', { body: pluginDocument('echo') })
      expect(created.status).toBe(201)
      await waitForConverged(database, 'echo')
      const running = await answerOf(await send(withController.app, 'GET', '/api/v1/plugins/echo'))
      expect(running.status).toMatchObject({ phase: 'running', containerName: 'forgehook-echo', observedGeneration: 1 })
      const containerId = (await containerOf(runtime, 'echo'))?.id

      expect((await send(withController.app, 'POST', '/api/v1/plugins/echo/restart')).status).toBe(202)
      expect((await send(withController.app, 'PATCH', '/api/v1/plugins/echo', { body: { spec: { state: 'stopped' } }, contentType: 'application/merge-patch+json' })).status).toBe(200)
      const stopped = await waitForConverged(database, 'echo')
      expect(stopped.status).toBe('stopped')
      // Neither the restart nor the stop recreated the container.
      expect((await containerOf(runtime, 'echo'))?.id).toBe(containerId)

      expect((await send(withController.app, 'DELETE', '/api/v1/plugins/echo')).status).toBe(202)
      await eventually(async () => ((await send(withController.app, 'GET', '/api/v1/plugins/echo')).status === 404 ? true : undefined), 5_000, 'echo uninstalled')
      expect(await containerOf(runtime, 'echo')).toBeUndefined()
    } finally {
      await controller.stop()
    }
  })
})
