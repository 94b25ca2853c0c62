// GET /api/v1/openapi.json: every route of the app (including the stream, logs, proxy and
// observability routes). The plugin document and the plugin object the API answers with are
// generated from their zod schemas (spec/plugin-spec.ts, spec/api-plugin.ts), never copied.
import { Hono } from 'hono'
import { z } from 'zod'
import { DESIRED_STATES } from '../db/schema.js'
import { apiPluginSchema } from '../spec/api-plugin.js'
import { pluginJsonSchema } from '../spec/plugin-spec.js'

type Json = Record<string, unknown>

interface Operation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete'
  path: string
  id: string
  summary: string
  tag: string
  parameters?: Json[]
  body?: { mediaTypes: string[]; schema: Json; optional?: boolean }
  responses: Record<string, Json>
  /** Served without the bearer token (/healthz, /readyz, /metrics). */
  open?: boolean
}

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` })
const json = (schema: Json, description: string): Json => ({ description, content: { 'application/json': { schema } } })
const pathParam = (name: string, description: string): Json => ({ name, in: 'path', required: true, schema: { type: 'string' }, description })
const queryParam = (name: string, description: string, schema: Json = { type: 'string' }): Json => ({ name, in: 'query', required: false, schema, description })
const ifMatch: Json = { name: 'If-Match', in: 'header', required: false, schema: { type: 'string' }, description: 'The ETag ("<resourceVersion>") the client read; 412 when stale' }
const pluginId = pathParam('id', 'The plugin uuid or its name')
const errors = (...codes: number[]): Record<string, Json> =>
  Object.fromEntries(codes.map((code) => [String(code), { $ref: `#/components/responses/Error${code}` }]))
const common = [401, 403, 503]
const plugin = (status: string, description: string): Record<string, Json> => ({
  [status]: { ...json(ref('Plugin'), description), headers: { ETag: { schema: { type: 'string' }, description: '"<resourceVersion>"' } } },
})
const eventQuery = [
  queryParam('since', 'Events at or after this ISO 8601 time', { type: 'string', format: 'date-time' }),
  queryParam('type', 'Event types; repeat the parameter or separate with commas'),
  queryParam('limit', 'Page size (default 100)', { type: 'integer', minimum: 1, maximum: 1000 }),
  queryParam('cursor', 'nextCursor of the previous page'),
  queryParam('order', 'desc (newest first, default) or asc', { type: 'string', enum: ['desc', 'asc'] }),
]
const liveFilter = [queryParam('plugin', 'Only events of this plugin (name or uuid)'), queryParam('type', 'Event types; repeat the parameter or separate with commas')]
const documentBody = { mediaTypes: ['application/json'], schema: ref('PluginDocument') }

const OPERATIONS: Operation[] = [
  { method: 'get', path: '/healthz', id: 'healthz', summary: 'Liveness', tag: 'observability', open: true, responses: { '200': { description: 'The process is up' } } },
  { method: 'get', path: '/readyz', id: 'readyz', summary: 'Readiness: database and (on the leader) Docker reachable; role and leader', tag: 'observability', open: true, responses: { '200': { description: 'Ready' }, '503': { description: 'Not ready' } } },
  { method: 'get', path: '/metrics', id: 'metrics', summary: 'Prometheus metrics', tag: 'observability', open: true, responses: { '200': { description: 'Text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } } },
  {
    method: 'get', path: '/api/v1/plugins', id: 'listPlugins', summary: 'List plugins', tag: 'plugins',
    parameters: [
      queryParam('status', 'Phases, comma-separated', { type: 'string' }),
      queryParam('health', 'Health states, comma-separated', { type: 'string' }),
      queryParam('state', 'Desired state', { type: 'string', enum: [...DESIRED_STATES] }),
      { name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' }, description: 'The ETag of a list the client holds; 304 while it is current' },
    ],
    responses: {
      '200': { ...json(ref('PluginList'), 'The plugins, by name'), headers: { ETag: { schema: { type: 'string' }, description: 'A digest of the body' } } },
      '304': { description: 'Not modified: the list named by If-None-Match is current' },
      ...errors(400, ...common),
    },
  },
  { method: 'post', path: '/api/v1/plugins', id: 'createPlugin', summary: 'Create a plugin from a document', tag: 'plugins', body: documentBody, responses: { ...plugin('201', 'Created'), ...errors(400, 409, 413, 415, 422, ...common) } },
  {
    method: 'post', path: '/api/v1/plugins/install', id: 'installPlugin', summary: "Install (the guide's body: manifest, config, environment, autoStart)", tag: 'plugins',
    body: { mediaTypes: ['application/json'], schema: ref('InstallRequest') },
    responses: { ...plugin('201', 'Created'), ...errors(400, 409, 413, 415, 422, ...common) },
  },
  { method: 'get', path: '/api/v1/plugins/{id}', id: 'getPlugin', summary: 'One plugin, with status.tasks (the Swarm tasks of its service) when there are any', tag: 'plugins', parameters: [pluginId], responses: { ...plugin('200', 'The plugin'), ...errors(404, ...common) } },
  {
    method: 'put', path: '/api/v1/plugins/{id}', id: 'applyPlugin', summary: 'Create or replace a plugin (metadata.name must equal the name in the URL)', tag: 'plugins',
    parameters: [pathParam('id', 'The plugin name'), ifMatch], body: documentBody,
    responses: { ...plugin('200', 'Replaced'), ...plugin('201', 'Created'), ...errors(400, 409, 412, 413, 415, 422, ...common) },
  },
  {
    method: 'patch', path: '/api/v1/plugins/{id}', id: 'patchPlugin', summary: 'Change a plugin with a JSON merge patch (RFC 7386) on its document', tag: 'plugins',
    parameters: [pluginId, ifMatch], body: { mediaTypes: ['application/merge-patch+json', 'application/json'], schema: { type: 'object', description: 'e.g. {"spec":{"state":"stopped"}}' } },
    responses: { ...plugin('200', 'Changed'), ...errors(400, 404, 409, 412, 413, 415, 422, ...common) },
  },
  { method: 'delete', path: '/api/v1/plugins/{id}', id: 'deletePlugin', summary: 'Uninstall: the plugin shows uninstalling until its container and row are gone', tag: 'plugins', parameters: [pluginId, ifMatch, queryParam('purge', 'true: remove its named volumes too (kept by default)', { type: 'string', enum: ['true', 'false'] })], responses: { ...plugin('202', 'Deletion requested'), ...errors(400, 404, 412, ...common) } },
  { method: 'post', path: '/api/v1/plugins/{id}/start', id: 'startPlugin', summary: 'Desired state running', tag: 'plugins', parameters: [pluginId, ifMatch], responses: { ...plugin('200', 'The plugin'), ...errors(404, 409, 412, ...common) } },
  { method: 'post', path: '/api/v1/plugins/{id}/stop', id: 'stopPlugin', summary: 'Desired state stopped', tag: 'plugins', parameters: [pluginId, ifMatch], responses: { ...plugin('200', 'The plugin'), ...errors(404, 409, 412, ...common) } },
  { method: 'post', path: '/api/v1/plugins/{id}/restart', id: 'restartPlugin', summary: 'Restart the running container once (nothing is recreated)', tag: 'plugins', parameters: [pluginId], responses: { ...plugin('202', 'Restart requested'), ...errors(404, 409, ...common) } },
  {
    method: 'get', path: '/api/v1/plugins/{id}/revisions', id: 'listPluginRevisions', summary: "Every kept revision of the plugin's spec, newest first (secrets redacted)", tag: 'rollouts', parameters: [pluginId],
    responses: { '200': json({ type: 'object', properties: { items: { type: 'array', items: ref('Revision') } } }, 'Revisions'), ...errors(404, ...common) },
  },
  {
    method: 'post', path: '/api/v1/plugins/{id}/rollout/undo', id: 'undoRollout', summary: "Write an earlier revision's spec as a new generation (default: the one before the current); whether it runs is kept", tag: 'rollouts', parameters: [pluginId],
    body: { mediaTypes: ['application/json'], optional: true, schema: { type: 'object', additionalProperties: false, properties: { toRevision: { type: 'integer', minimum: 1, description: 'Default: the newest revision before the current one' } } } },
    responses: { ...plugin('200', 'The plugin with the revision\'s spec as its new generation'), ...errors(404, 409, 412, 422, ...common) },
  },
  { method: 'post', path: '/api/v1/plugins/{id}/rollout/retry', id: 'retryRollout', summary: 'Roll out the current generation again after it was rolled back', tag: 'rollouts', parameters: [pluginId], responses: { ...plugin('202', 'Retry requested'), ...errors(404, 409, ...common) } },
  { method: 'get', path: '/api/v1/plugins/{id}/events', id: 'listPluginEvents', summary: "A plugin's audit trail (also of an uninstalled plugin, by name)", tag: 'events', parameters: [pluginId, ...eventQuery], responses: { '200': json(ref('EventPage'), 'A page of events'), ...errors(400, 404, ...common) } },
  {
    method: 'get', path: '/api/v1/plugins/{id}/metrics', id: 'listPluginMetrics', summary: 'Metrics samples, newest first', tag: 'plugins',
    parameters: [pluginId, queryParam('since', 'Samples at or after this ISO 8601 time', { type: 'string', format: 'date-time' }), queryParam('limit', 'At most this many (default 100)', { type: 'integer', minimum: 1, maximum: 1000 })],
    responses: { '200': json({ type: 'object', properties: { items: { type: 'array', items: ref('MetricsSample') } } }, 'Samples'), ...errors(400, 404, ...common) },
  },
  {
    method: 'get', path: '/api/v1/plugins/{id}/logs', id: 'pluginLogs', summary: "The container's stdout and stderr: the last lines, or (follow) those and every new line", tag: 'plugins',
    parameters: [pluginId, queryParam('tail', 'Lines from the end (default 100, at most 1000)', { type: 'integer', minimum: 0, maximum: 1000 }), queryParam('follow', 'Stream new lines as server-sent events', { type: 'string', enum: ['true', 'false', '1', '0'] })],
    responses: { '200': { description: 'Log text, or an event stream with follow', content: { 'text/plain': { schema: { type: 'string' } }, 'text/event-stream': { schema: { type: 'string' } } } }, ...errors(400, 404, ...common) },
  },
  { method: 'get', path: '/api/v1/events', id: 'listEvents', summary: 'The audit trail of all plugins', tag: 'events', parameters: [queryParam('plugin', 'Only events of the plugin with this name'), ...eventQuery], responses: { '200': json(ref('EventPage'), 'A page of events'), ...errors(400, ...common) } },
  { method: 'get', path: '/api/v1/events/stream', id: 'streamEvents', summary: 'Live events as Server-Sent Events (each data line is an Event)', tag: 'events', parameters: liveFilter, responses: { '200': { description: 'An event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors(400, 401) } },
  { method: 'get', path: '/api/v1/ws', id: 'eventsWebSocket', summary: 'Live events over a WebSocket (Upgrade: websocket; each message is an Event)', tag: 'events', parameters: liveFilter, responses: { '101': { description: 'Switching protocols' }, ...errors(400, 401, 426) } },
  { method: 'get', path: '/api/v1/specs', id: 'listSpecFiles', summary: 'Spec files as the folder watcher last saw them', tag: 'specs', responses: { '200': json({ type: 'object', properties: { items: { type: 'array', items: ref('SpecFileReport') } } }, 'Spec files'), ...errors(...common) } },
  { method: 'get', path: '/api/v1/openapi.json', id: 'openApi', summary: 'This document', tag: 'meta', responses: { '200': json({ type: 'object' }, 'OpenAPI 3.1') } },
  ...(['get', 'post', 'put', 'patch', 'delete'] as const).map((method): Operation => ({
    method, path: '/plugins/{name}/{path}', id: `proxy${method[0]!.toUpperCase()}${method.slice(1)}`, summary: "Reverse proxy to the plugin's container", tag: 'proxy',
    parameters: [pathParam('name', 'The plugin name'), pathParam('path', 'Forwarded to the plugin as is')],
    responses: { default: { description: "The plugin's answer" }, ...errors(401, 404, 502, 503, 504) },
  })),
]

const ERROR_STATUSES: Record<number, string> = {
  400: 'Malformed JSON or invalid query parameters',
  401: 'Missing or invalid bearer token',
  403: 'A browser request from another origin, or a Host that is not a name of this daemon (DNS rebinding)',
  404: 'Not found',
  409: 'Conflict: the name exists, or the plugin is being uninstalled or stopped',
  412: 'If-Match does not match the current resourceVersion',
  413: 'Body over 1 MiB',
  415: 'Wrong Content-Type',
  422: 'The document is not valid; details name each field',
  426: 'A WebSocket endpoint called without Upgrade: websocket',
  502: 'The plugin is not reachable or answered with an invalid status',
  503: 'The database or Docker is not reachable, too many live streams or log reads at once, or (proxy) the plugin is not running',
  504: 'The plugin did not answer in time',
}

export function openApiDocument(): Json {
  const paths: Record<string, Record<string, Json>> = {}
  for (const operation of OPERATIONS) {
    paths[operation.path] ??= {}
    paths[operation.path]![operation.method] = {
      operationId: operation.id,
      summary: operation.summary,
      tags: [operation.tag],
      ...(operation.open ? { security: [] } : {}),
      ...(operation.parameters ? { parameters: operation.parameters } : {}),
      ...(operation.body ? { requestBody: { required: operation.body.optional !== true, content: Object.fromEntries(operation.body.mediaTypes.map((type) => [type, { schema: operation.body!.schema }])) } } : {}),
      responses: operation.responses,
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'FlowForge plugin manager', version: '1', description: 'Declare plugins; the controller makes Docker match.' },
    security: [{ bearerAuth: [] }],
    paths,
    components: { schemas: componentSchemas(), responses: errorResponses(), securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'FORGE_API_TOKEN, when set' } } },
  }
}

function errorResponses(): Json {
  return Object.fromEntries(Object.entries(ERROR_STATUSES).map(([status, description]) => [`Error${status}`, json(ref('Error'), description)]))
}

const nullable = (type: string, extra: Json = {}): Json => ({ type: [type, 'null'], ...extra })

function componentSchemas(): Json {
  const { $schema: _dialect, ...pluginDocument } = pluginJsonSchema()
  // OpenAPI 3.1 speaks JSON Schema 2020-12, zod's default target, so only the dialect line goes.
  const { $schema: _pluginDialect, ...apiPlugin } = z.toJSONSchema(apiPluginSchema, { io: 'output' })
  return {
    PluginDocument: pluginDocument,
    Plugin: apiPlugin,
    PluginList: { type: 'object', properties: { items: { type: 'array', items: ref('Plugin') } } },
    InstallRequest: {
      type: 'object',
      required: ['manifest'],
      properties: {
        manifest: { type: 'object', description: 'A ForgeHook manifest; the plugin is named after manifest.id, or manifest.name as a DNS label' },
        config: { type: 'object' },
        environment: { type: 'object', additionalProperties: { type: 'string' } },
        autoStart: { type: 'boolean', description: 'Default true; false installs the plugin stopped' },
      },
    },
    Event: {
      type: 'object',
      properties: { id: { type: 'integer' }, pluginId: nullable('string'), forgehookId: { type: 'string' }, type: { type: 'string' }, data: { type: 'object' }, timestamp: { type: 'string', format: 'date-time' } },
    },
    EventPage: { type: 'object', properties: { items: { type: 'array', items: ref('Event') }, nextCursor: { type: 'string' } } },
    MetricsSample: {
      type: 'object',
      properties: {
        id: { type: 'integer' }, pluginId: { type: 'string' }, requestCount: { type: 'integer' }, errorCount: { type: 'integer' }, totalResponseTimeMs: { type: 'number' },
        avgResponseTimeMs: nullable('number'), cpuUsagePercent: nullable('number'), memoryUsageMb: nullable('number'), recordedAt: { type: 'string', format: 'date-time' },
      },
    },
    Revision: {
      type: 'object',
      required: ['revision', 'current', 'source', 'createdAt', 'spec', 'labels'],
      properties: {
        revision: { type: 'integer', description: 'The generation this spec was' },
        current: { type: 'boolean' },
        source: { type: 'string' },
        createdAt: { type: 'string', format: 'date-time' },
        spec: { type: 'object', description: 'As in a plugin document; secret environment values read ***' },
        labels: { type: 'object', additionalProperties: { type: 'string' } },
      },
    },
    SpecFileReport: {
      type: 'object',
      properties: { path: { type: 'string' }, status: { enum: ['ok', 'invalid', 'conflict', 'refused'] }, plugins: { type: 'array', items: { type: 'string' } }, errors: { type: 'array', items: { type: 'object' }, description: 'The first 50 problems' }, moreErrors: { type: 'integer', description: 'How many problems there are beyond errors (absent when none)' }, checkedAt: { type: 'string', format: 'date-time' } },
    },
    Error: {
      type: 'object',
      required: ['error'],
      properties: {
        error: {
          type: 'object',
          required: ['code', 'message', 'details'],
          properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } } },
        },
      },
    },
  }
}

export function openApiRoutes(): Hono {
  const routes = new Hono()
  // Built at the first request, then kept: the document depends on nothing at run time, and
  // building it (every zod schema to JSON Schema) was ~20 ms of a restart's way to /readyz.
  let document: Json | undefined
  routes.get('/api/v1/openapi.json', (c) => c.json((document ??= openApiDocument())))
  return routes
}
