// Revision history, rollout undo and retry, and uninstall with purge, through the API (no
// controller: what the routes write is desired state, checked in the rows).
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { openTestDatabase, type TestDatabase } from '../helpers/databases.js'
import { apiHarness, errorOf, pluginDocument, send, type ApiHarness } from './api-harness.js'

interface RevisionAnswer {
  revision: number
  current: boolean
  source: string
  spec: { state: string; manifest: { image: string }; environment: Record<string, string>; config: Record<string, unknown>; volumes?: unknown[] }
}

describe('revisions and rollouts through the API', () => {
  let database: TestDatabase
  let harness: ApiHarness

  beforeAll(async () => {
    database = await openTestDatabase('embedded')
  })
  afterAll(async () => database?.close())
  beforeEach(async () => {
    await database.reset()
    harness = apiHarness(database)
  })

  const image = (tag: number) => ({ name: 'Demo', version: '1.0.0', image: `flowforge/test:${tag}`, port: 8080 })

  async function declare(tag: number, extra: Record<string, unknown> = {}): Promise<Response> {
    return send(harness.app, 'PUT', '/api/v1/plugins/demo', {
      body: pluginDocument('demo', { manifest: image(tag), environment: { API_TOKEN: `secret-${tag}`, MODE: 'm' }, config: { db: { password: `config-secret-${tag}` }, rounds: tag }, ...extra }),
    })
  }

  async function revisions(): Promise<RevisionAnswer[]> {
    const response = await send(harness.app, 'GET', '/api/v1/plugins/demo/revisions')
    expect(response.status).toBe(200)
    return ((await response.json()) as { items: RevisionAnswer[] }).items
  }

  test('every spec change is a revision, newest first, with its source and secrets redacted as the plugin view does', async () => {
    await declare(1)
    await declare(2)
    // A write in SQL is a revision too: the trigger records it in the same transaction.
    await sql`UPDATE plugins SET manifest = jsonb_set(manifest, '{image}', '"flowforge/test:3"'), source = 'sql' WHERE forgehook_id = 'demo'`.execute(database.handle.db)
    const items = await revisions()
    expect(items.map((item) => [item.revision, item.current, item.source, item.spec.manifest.image])).toEqual([
      [3, true, 'sql', 'flowforge/test:3'],
      [2, false, 'api', 'flowforge/test:2'],
      [1, false, 'api', 'flowforge/test:1'],
    ])
    expect(items.map((item) => item.spec.environment)).toEqual([
      { API_TOKEN: '***', MODE: 'm' },
      { API_TOKEN: '***', MODE: 'm' },
      { API_TOKEN: '***', MODE: 'm' },
    ])
    expect(items.map((item) => item.spec.config)).toEqual([
      { db: { password: '***' }, rounds: 2 },
      { db: { password: '***' }, rounds: 2 },
      { db: { password: '***' }, rounds: 1 },
    ])
    expect(JSON.stringify(items)).not.toContain('secret-')
  })

  test('status-only writes make no revision', async () => {
    await declare(1)
    const plugin = await database.store.requirePlugin('demo')
    await database.store.writeStatus(plugin.id, { status: 'running', hostPort: 4100 })
    expect((await revisions()).map((item) => item.revision)).toEqual([1])
  })

  test('undo writes the previous spec back as a new generation, with its real secrets, and keeps the desired state', async () => {
    await declare(1)
    await declare(2)
    await send(harness.app, 'POST', '/api/v1/plugins/demo/stop')
    const response = await send(harness.app, 'POST', '/api/v1/plugins/demo/rollout/undo')
    expect(response.status).toBe(200)
    const plugin = await database.store.requirePlugin('demo')
    // 1 and 2 declared, 3 the stop (same spec as 2 but the state), 4 the undo: to revision 1, the previous other spec.
    expect(plugin.generation).toBe(4)
    expect(plugin.manifest.image).toBe('flowforge/test:1')
    expect(plugin.desiredState).toBe('stopped')
    expect(plugin.environment.API_TOKEN).toBe('secret-1')
  })

  test('undo --to-revision N goes back to that revision; an unknown one is a 404 naming it', async () => {
    await declare(1)
    await declare(2)
    await declare(3)
    const response = await send(harness.app, 'POST', '/api/v1/plugins/demo/rollout/undo', { body: { toRevision: 1 } })
    expect(response.status).toBe(200)
    const plugin = await database.store.requirePlugin('demo')
    expect(plugin.manifest.image).toBe('flowforge/test:1')
    expect(plugin.environment.API_TOKEN).toBe('secret-1')
    const missing = await send(harness.app, 'POST', '/api/v1/plugins/demo/rollout/undo', { body: { toRevision: 42 } })
    expect(missing.status).toBe(404)
    expect((await errorOf(missing)).error.message).toContain('has no revision 42')
  })

  test('undo to the spec the plugin already has changes nothing and says so', async () => {
    await declare(1)
    await declare(2)
    await declare(1)
    const response = await send(harness.app, 'POST', '/api/v1/plugins/demo/rollout/undo', { body: { toRevision: 1 } })
    expect(response.status).toBe(409)
    expect((await errorOf(response)).error.code).toBe('unchanged')
    expect((await database.store.requirePlugin('demo')).generation).toBe(3)
  })

  test('a plugin declared by a spec file is rolled back in its file, not through the API', async () => {
    await declare(1)
    await declare(2)
    await database.store.updateSpec('demo', { source: 'file:demo.yaml' })
    const response = await send(harness.app, 'POST', '/api/v1/plugins/demo/rollout/undo')
    expect(response.status).toBe(409)
    expect((await errorOf(response)).error).toMatchObject({ code: 'owned_by_file', message: expect.stringContaining('demo.yaml') })
  })

  test('bad undo bodies are refused with the field named', async () => {
    await declare(1)
    for (const body of [{ toRevision: 0 }, { toRevision: 'two' }, { revision: 1 }]) {
      const response = await send(harness.app, 'POST', '/api/v1/plugins/demo/rollout/undo', { body })
      expect(response.status).toBe(422)
    }
  })

  test('retry is refused unless the current generation was rolled back; then it is recorded for the controller', async () => {
    await declare(1)
    const nothing = await send(harness.app, 'POST', '/api/v1/plugins/demo/rollout/retry')
    expect(nothing.status).toBe(409)
    expect((await errorOf(nothing)).error.code).toBe('nothing_to_retry')
    const plugin = await database.store.requirePlugin('demo')
    await database.store.writeStatus(plugin.id, {
      rollout: { phase: 'rolled-back', strategy: 'Recreate', generation: plugin.generation, fromImage: 'a', toImage: 'b', startedAt: new Date().toISOString(), finishedAt: new Date().toISOString(), error: 'exited' },
    })
    const retried = await send(harness.app, 'POST', '/api/v1/plugins/demo/rollout/retry')
    expect(retried.status).toBe(202)
    const after = await database.store.requirePlugin('demo')
    expect(after.rolloutRetryAt).toBeInstanceOf(Date)
    expect(after.generation).toBe(plugin.generation)
  })

  test('history is kept to REVISION_HISTORY_LIMIT per plugin', async () => {
    await database.store.revisions.setHistoryLimit(3)
    for (let tag = 1; tag <= 6; tag++) await declare(tag)
    expect((await revisions()).map((item) => item.revision)).toEqual([6, 5, 4])
  })

  test('DELETE ?purge=true asks for the volumes to go too; without it they are kept', async () => {
    await declare(1, { volumes: [{ name: 'data', mountPath: '/data' }] })
    const kept = await send(harness.app, 'DELETE', '/api/v1/plugins/demo')
    expect(kept.status).toBe(202)
    expect((await database.store.requirePlugin('demo')).purgeVolumes).toBe(false)
    const purged = await send(harness.app, 'DELETE', '/api/v1/plugins/demo?purge=true')
    expect(purged.status).toBe(202)
    expect((await database.store.requirePlugin('demo')).purgeVolumes).toBe(true)
    const bad = await send(harness.app, 'DELETE', '/api/v1/plugins/demo?purge=yes')
    expect(bad.status).toBe(400)
  })

  test('volumes and the update policy show in the plugin, and StartFirst with a pinned host port is refused', async () => {
    const created = await declare(1, { volumes: [{ name: 'data', mountPath: '/data' }], update: { strategy: 'Recreate', healthyTimeoutSeconds: 30 } })
    const answer = (await created.json()) as { spec: Record<string, unknown>; status: { volumes: unknown[]; rollout: unknown } }
    expect(answer.spec).toMatchObject({ volumes: [{ name: 'data', mountPath: '/data' }], update: { strategy: 'Recreate', healthyTimeoutSeconds: 30 } })
    expect(answer.status).toMatchObject({ volumes: [{ name: 'data', dockerVolume: 'forgehook-demo-data', mountPath: '/data', readOnly: false }], rollout: null })
    const pinned = await declare(2, { hostPort: 4500, update: { strategy: 'StartFirst' } })
    expect(pinned.status).toBe(422)
    expect((await errorOf(pinned)).error.details).toContainEqual({ field: 'spec.update.strategy', message: expect.stringContaining('pinned spec.hostPort') })
    const twice = await declare(2, { volumes: [{ name: 'data', mountPath: '/a' }, { name: 'data', mountPath: '/b' }] })
    expect(twice.status).toBe(422)
    const hostPath = await declare(2, { volumes: [{ name: 'data', mountPath: 'relative/path' }] })
    expect(hostPath.status).toBe(422)
  })
})
