// The audit trail: GET /api/v1/events and GET /api/v1/plugins/:id/events, paginated by an
// opaque cursor ({items, nextCursor}).
import { Hono, type Context } from 'hono'
import { InvalidValueError } from '../../db/errors.js'
import type { EventQuery, PluginEvent, PluginStore } from '../../db/plugin-store.js'
import type { ApiDependencies } from '../deps.js'
import { ApiError } from '../errors.js'
import { QueryReader } from '../request.js'
import { isUuid } from '../../util/uuid.js'

const ORDERS = ['desc', 'asc'] as const

export function eventRoutes(deps: ApiDependencies): Hono {
  const { store } = deps
  const routes = new Hono()

  routes.get('/api/v1/events', async (c) => {
    const query = readEventQuery(c)
    const pluginName = new QueryReader(c).text('plugin')
    return c.json(await listEventPage(store, { ...query, ...(pluginName !== undefined ? { forgehookId: pluginName } : {}) }))
  })

  routes.get('/api/v1/plugins/:id/events', async (c) => {
    const query = readEventQuery(c)
    const idOrName = c.req.param('id')
    const plugin = await store.getPlugin(idOrName)
    if (plugin) return c.json(await listEventPage(store, { ...query, pluginId: plugin.id }))
    // An uninstalled plugin keeps its history under its name (plugin_id is NULL then).
    if (isUuid(idOrName)) throw new ApiError(404, 'not_found', `plugin "${idOrName}" not found`)
    const page = await listEventPage(store, { ...query, forgehookId: idOrName })
    if (page.items.length === 0 && query.cursor === undefined) throw new ApiError(404, 'not_found', `plugin "${idOrName}" not found, and no events name it`)
    return c.json(page)
  })

  return routes
}

/** since (ISO time), type (repeated or comma-separated), limit (1-1000), cursor, order (desc|asc). */
function readEventQuery(c: Context): EventQuery {
  const query = new QueryReader(c)
  const eventQuery: EventQuery = {
    since: query.time('since'),
    types: query.list('type'),
    limit: query.integer('limit', 1, 1000),
    cursor: query.text('cursor'),
    order: query.one('order', ORDERS),
  }
  query.done()
  return eventQuery
}

async function listEventPage(store: PluginStore, query: EventQuery): Promise<{ items: Record<string, unknown>[]; nextCursor?: string }> {
  try {
    const page = await store.listEvents(query)
    return { items: page.items.map(presentEvent), ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}) }
  } catch (error) {
    // The store decodes the cursor: a bad one is the client's mistake (400), not a bad value to store (422).
    if (error instanceof InvalidValueError && error.field === 'cursor') {
      throw new ApiError(400, 'invalid_query', 'invalid query parameters', [{ field: 'cursor', message: 'not a cursor from a previous page' }])
    }
    throw error
  }
}

export function presentEvent(event: PluginEvent): Record<string, unknown> {
  return {
    id: event.id,
    pluginId: event.pluginId,
    forgehookId: event.forgehookId,
    type: event.type,
    data: event.data,
    timestamp: event.timestamp.toISOString(),
  }
}
