// /api/v1/plugins: read, declare (POST, PUT, PATCH, the guide's install), desired-state
// actions and uninstall. Routes write desired state only; the controller does the rest.
// The list is answered from a ListCache (see list-cache.ts for when it is current).
import { Hono, type Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { ConflictError } from '../../db/errors.js'
import type { Plugin, PluginStore, PluginTask } from '../../db/plugin-store.js'
import { DESIRED_STATES, HEALTH_STATUSES, PLUGIN_PHASES, type DesiredState, type HealthStatus, type PluginPhase } from '../../db/schema.js'
import { specDiffers, toNewPlugin, toSpecDocument, toSpecFields, type PluginDocument } from '../../spec/plugin-spec.js'
import type { ApiDependencies } from '../deps.js'
import { ApiError } from '../errors.js'
import { ListCache } from '../list-cache.js'
import { applyMergePatch, isJsonObject } from '../merge-patch.js'
import { installDocument, presentedPhase, presentPlugin, requireValidDocument } from '../plugin-documents.js'
import {
  entityTag,
  JSON_MEDIA_TYPE,
  MERGE_PATCH_MEDIA_TYPE,
  notModified,
  preconditionFailed,
  QueryReader,
  readIfMatch,
  readJsonBody,
  requirePrecondition,
} from '../request.js'

const SOURCE_API = 'api'
/** Without If-Match a PATCH re-reads and merges again when a status write raced it. */
const PATCH_ATTEMPTS = 3

export function pluginRoutes(deps: ApiDependencies): Hono {
  const { store, controller } = deps
  const routes = new Hono()

  const lists = new ListCache(store, { clock: deps.clock })

  // Rule 2 of list-cache.ts: whatever a write answered here changed is in the next list.
  routes.use('/api/v1/plugins/*', async function invalidateListsAfterWrites(c, next) {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next()
    try {
      await next()
    } finally {
      lists.invalidate()
    }
  })

  routes.get('/api/v1/plugins', async (c) => {
    const filter = readListFilter(c)
    const list = await lists.read(listKey(filter), async () => JSON.stringify({ items: (await listFiltered(store, filter)).map((plugin) => presentPlugin(plugin)) }))
    c.header('ETag', list.etag)
    if (notModified(c, list.etag)) return c.body(null, 304)
    return c.body(list.body, 200, { 'Content-Type': JSON_MEDIA_TYPE })
  })

  routes.get('/api/v1/plugins/:id', async (c) => {
    const plugin = await store.requirePlugin(c.req.param('id'))
    // The one read that shows the Swarm tasks (the list would need them for every plugin).
    return pluginAnswer(c, plugin, 200, await store.tasks.listTasks(plugin.id))
  })

  const hostPorts = deps.hostPorts
  const runtime = deps.runtimeName ?? 'docker'

  routes.post('/api/v1/plugins', async (c) => {
    const document = requireValidDocument(await readJsonBody(c, [JSON_MEDIA_TYPE]), { hostPorts, runtime })
    return created(c, await store.createPlugin(toNewPlugin(document, SOURCE_API)))
  })

  // The guide's endpoint: {manifest, config, environment, autoStart}.
  routes.post('/api/v1/plugins/install', async (c) => {
    const document = installDocument(await readJsonBody(c, [JSON_MEDIA_TYPE]), { runtime })
    return created(c, await store.createPlugin(toNewPlugin(document, SOURCE_API)))
  })

  routes.put('/api/v1/plugins/:name', async (c) => {
    const name = c.req.param('name')
    const body = await readJsonBody(c, [JSON_MEDIA_TYPE])
    const precondition = readIfMatch(c)
    const current = await store.getPlugin(name)
    const document = requireValidDocument(body, { name, stored: current, hostPorts, runtime })
    requirePrecondition(precondition, current, `plugin "${name}"`)
    if (current === undefined) return created(c, await store.createPlugin(toNewPlugin(document, SOURCE_API)))
    // A replace without If-Match is last-writer-wins, as the client asked.
    return pluginAnswer(c, await withPrecondition(replaceSpec(store, current, document, precondition !== undefined)))
  })

  routes.patch('/api/v1/plugins/:id', async (c) => {
    const patch = await readJsonBody(c, [MERGE_PATCH_MEDIA_TYPE, JSON_MEDIA_TYPE])
    const precondition = readIfMatch(c)
    for (let attempt = 1; ; attempt++) {
      const current = await store.requirePlugin(c.req.param('id'))
      requirePrecondition(precondition, current, `plugin "${current.forgehookId}"`)
      const merged = applyMergePatch(toSpecDocument(current), patch)
      const sentSpec = isJsonObject(patch) ? patch.spec : undefined
      const document = requireValidDocument(merged, { name: current.forgehookId, stored: current, hostPorts, runtime, sentSpec: sentSpec ?? {} })
      try {
        // Always conditional: the merge was computed from `current`, so a write in between must not be lost.
        return pluginAnswer(c, await replaceSpec(store, current, document, true))
      } catch (error) {
        if (!(error instanceof ConflictError)) throw error
        if (precondition !== undefined) throw preconditionFailed(error.message)
        // Without If-Match the client wants its patch applied: merge again onto the new version.
        if (attempt >= PATCH_ATTEMPTS) throw error
      }
    }
  })

  routes.post('/api/v1/plugins/:id/start', async (c) => pluginAnswer(c, await setDesiredState(c, store, 'running')))
  routes.post('/api/v1/plugins/:id/stop', async (c) => pluginAnswer(c, await setDesiredState(c, store, 'stopped')))

  // Restarts the running container once; the spec (and so the container) stays as it is.
  routes.post('/api/v1/plugins/:id/restart', async (c) => {
    const plugin = await store.requirePlugin(c.req.param('id'))
    refuseWhileUninstalling(plugin)
    if (plugin.desiredState !== 'running') {
      throw new ApiError(409, 'not_running', `plugin "${plugin.forgehookId}" is stopped: start it instead of restarting it`)
    }
    await controller.requestRestart(plugin.id, 'requested through the API')
    return pluginAnswer(c, plugin, 202)
  })

  routes.delete('/api/v1/plugins/:id', async (c) => {
    // ?purge=true: the plugin's named volumes go too (they are kept otherwise, for a reinstall).
    const query = new QueryReader(c)
    const purgeVolumes = query.one('purge', ['true', 'false'] as const) === 'true'
    query.done()
    const precondition = readIfMatch(c)
    if (precondition !== undefined) {
      const current = await store.requirePlugin(c.req.param('id'))
      requirePrecondition(precondition, current, `plugin "${current.forgehookId}"`)
    }
    return pluginAnswer(c, await store.requestDeletion(c.req.param('id'), { purgeVolumes }), 202)
  })

  routes.get('/api/v1/plugins/:id/metrics', async (c) => {
    const query = new QueryReader(c)
    const since = query.time('since')
    const limit = query.integer('limit', 1, 1000)
    query.done()
    const plugin = await store.requirePlugin(c.req.param('id'))
    const samples = await store.listMetrics(plugin.id, { since, limit })
    return c.json({ items: samples.map((sample) => ({ ...sample, recordedAt: sample.recordedAt.toISOString() })) })
  })

  routes.get('/api/v1/specs', (c) => c.json({ items: deps.specs?.list() ?? [] }))

  return routes
}

interface ListFilter {
  status?: PluginPhase[]
  health?: HealthStatus[]
  desiredState?: DesiredState
}

function readListFilter(c: Context): ListFilter {
  const query = new QueryReader(c)
  const status = query.list('status', PLUGIN_PHASES)
  const health = query.list('health', HEALTH_STATUSES)
  const desiredState = query.one('state', DESIRED_STATES)
  query.done()
  return { status, health, desiredState }
}

/** One key per distinct filter: order and repeats of the values do not matter. */
function listKey(filter: ListFilter): string {
  const values = (list: string[] | undefined) => [...new Set(list)].sort().join(',')
  return `status=${values(filter.status)}&health=${values(filter.health)}&state=${filter.desiredState ?? ''}`
}

async function listFiltered(store: PluginStore, filter: ListFilter): Promise<Plugin[]> {
  const plugins = await store.listPlugins({ health: filter.health, desiredState: filter.desiredState })
  // The phase is filtered as shown (uninstalling once deletion is requested), not as stored.
  return plugins.filter((plugin) => filter.status === undefined || filter.status.includes(presentedPhase(plugin)))
}

function pluginAnswer(c: Context, plugin: Plugin, status: ContentfulStatusCode = 200, tasks: PluginTask[] = []): Response {
  c.header('ETag', entityTag(plugin.resourceVersion))
  return c.json(presentPlugin(plugin, tasks), status)
}

function created(c: Context, plugin: Plugin): Response {
  c.header('Location', `/api/v1/plugins/${plugin.forgehookId}`)
  return pluginAnswer(c, plugin, 201)
}

/**
 * Writes every spec field of `document`; no write when nothing differs. `conditional`: only
 * at the version of `current` (ConflictError when someone wrote since).
 */
async function replaceSpec(store: PluginStore, current: Plugin, document: PluginDocument, conditional: boolean): Promise<Plugin> {
  refuseWhileUninstalling(current)
  if (!specDiffers(current, document)) return current
  const options = conditional ? { expectedResourceVersion: current.resourceVersion } : {}
  return store.updateSpec(current.id, toSpecFields(document), options)
}

async function setDesiredState(c: Context, store: PluginStore, desiredState: DesiredState): Promise<Plugin> {
  const precondition = readIfMatch(c)
  const current = await store.requirePlugin(c.req.param('id')!)
  requirePrecondition(precondition, current, `plugin "${current.forgehookId}"`)
  refuseWhileUninstalling(current)
  if (current.desiredState === desiredState) return current
  const options = precondition === undefined ? {} : { expectedResourceVersion: current.resourceVersion }
  return withPrecondition(store.updateSpec(current.id, { desiredState }, options))
}

/** A conditional write that lost the race answers 412, as a stale If-Match does. */
async function withPrecondition(write: Promise<Plugin>): Promise<Plugin> {
  try {
    return await write
  } catch (error) {
    if (error instanceof ConflictError) throw preconditionFailed(error.message)
    throw error
  }
}

// Its container is on its way out: a new spec would be lost with the row.
function refuseWhileUninstalling(plugin: Plugin): void {
  if (plugin.deletionRequestedAt === null) return
  throw new ApiError(409, 'uninstalling', `plugin "${plugin.forgehookId}" is being uninstalled`)
}
