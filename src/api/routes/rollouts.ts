// Revision history and rollouts: GET /api/v1/plugins/:id/revisions, POST .../rollout/undo,
// POST .../rollout/retry. Like every route, they write desired state only: an undo is a new
// generation holding an earlier revision's spec; a retry asks the controller to roll the
// current generation out again after it was rolled back.
import { Hono, type Context } from 'hono'
import type { Plugin } from '../../db/plugin-store.js'
import type { PluginRevision } from '../../db/plugin-types.js'
import { canonicalJson } from '../../spec/container-spec.js'
import { redactConfig, redactEnvironment } from '../../spec/secrets.js'
import type { ApiDependencies } from '../deps.js'
import { ApiError } from '../errors.js'
import { presentPlugin } from '../plugin-documents.js'
import { entityTag, JSON_MEDIA_TYPE, preconditionFailed, readIfMatch, readJsonBody, requirePrecondition } from '../request.js'
import { ConflictError } from '../../db/errors.js'

export function rolloutRoutes(deps: ApiDependencies): Hono {
  const { store } = deps
  const routes = new Hono()

  routes.get('/api/v1/plugins/:id/revisions', async (c) => {
    const plugin = await store.requirePlugin(c.req.param('id'))
    const revisions = await store.revisions.list(plugin.id)
    return c.json({ items: revisions.map((revision) => presentRevision(revision, plugin)) })
  })

  routes.post('/api/v1/plugins/:id/rollout/undo', async (c) => {
    const body = await readOptionalBody(c)
    const precondition = readIfMatch(c)
    const plugin = await store.requirePlugin(c.req.param('id'))
    requirePrecondition(precondition, plugin, `plugin "${plugin.forgehookId}"`)
    refuseFileOwned(plugin)
    const revision = await targetRevision(deps, plugin, body.toRevision)
    // The revision's container spec comes back; whether the plugin runs stays as it is now.
    const { desiredState: _kept, ...undone } = revision.spec
    if (sameSpec(plugin, revision)) {
      throw new ApiError(409, 'unchanged', `plugin "${plugin.forgehookId}" already has the spec of revision ${revision.revision}`)
    }
    try {
      const updated = await store.updateSpec(plugin.id, undone, { expectedResourceVersion: plugin.resourceVersion })
      return answer(c, updated, 200)
    } catch (error) {
      if (error instanceof ConflictError) throw preconditionFailed(error.message)
      throw error
    }
  })

  routes.post('/api/v1/plugins/:id/rollout/retry', async (c) => {
    const plugin = await store.requirePlugin(c.req.param('id'))
    if (plugin.rollout?.phase !== 'rolled-back' || plugin.rollout.generation !== plugin.generation) {
      throw new ApiError(409, 'nothing_to_retry', `plugin "${plugin.forgehookId}" has no rolled-back update of its current generation (${plugin.generation}) to retry`)
    }
    return answer(c, await store.requestRolloutRetry(plugin.id), 202)
  })

  return routes
}

/** A revision as shown: its spec with secrets redacted exactly as the plugin view redacts them. */
function presentRevision(revision: PluginRevision, plugin: Plugin) {
  const { spec } = revision
  return {
    revision: revision.revision,
    current: revision.revision === plugin.generation,
    source: revision.source,
    createdAt: revision.createdAt.toISOString(),
    spec: {
      state: spec.desiredState,
      ...(spec.requestedHostPort !== null ? { hostPort: spec.requestedHostPort } : {}),
      manifest: spec.manifest,
      config: redactConfig(spec),
      environment: redactEnvironment(spec),
      ...(spec.volumes.length > 0 ? { volumes: spec.volumes } : {}),
      ...(Object.keys(spec.updatePolicy).length > 0 ? { update: spec.updatePolicy } : {}),
      ...(Object.keys(spec.network).length > 0 ? { network: spec.network } : {}),
    },
    labels: spec.labels,
  }
}

/**
 * The revision asked for, or the newest earlier one whose spec differs from the current
 * (a stop or start in between is not a spec to go back to), as kubectl's undo does.
 */
async function targetRevision(deps: ApiDependencies, plugin: Plugin, toRevision: number | undefined): Promise<PluginRevision> {
  if (toRevision !== undefined) {
    try {
      return await deps.store.revisions.require(plugin.id, toRevision)
    } catch {
      throw new ApiError(404, 'not_found', `plugin "${plugin.forgehookId}" has no revision ${toRevision} (forgectl rollout history ${plugin.forgehookId} lists the ones kept)`)
    }
  }
  const earlier = (await deps.store.revisions.list(plugin.id)).find((revision) => revision.revision < plugin.generation && !sameSpec(plugin, revision))
  if (!earlier) throw new ApiError(409, 'no_earlier_revision', `plugin "${plugin.forgehookId}" has no kept revision with another spec before its current one (${plugin.generation})`)
  return earlier
}

function sameSpec(plugin: Plugin, revision: PluginRevision): boolean {
  const { spec } = revision
  return (
    canonicalJson(plugin.manifest) === canonicalJson(spec.manifest) &&
    canonicalJson(plugin.config) === canonicalJson(spec.config) &&
    canonicalJson(plugin.environment) === canonicalJson(spec.environment) &&
    plugin.requestedHostPort === spec.requestedHostPort &&
    canonicalJson(plugin.labels) === canonicalJson(spec.labels) &&
    canonicalJson(plugin.volumes) === canonicalJson(spec.volumes) &&
    canonicalJson(plugin.updatePolicy) === canonicalJson(spec.updatePolicy) &&
    canonicalJson(plugin.network) === canonicalJson(spec.network)
  )
}

/** A spec file owns its plugin: the file would put its spec back at the next scan. */
function refuseFileOwned(plugin: Plugin): void {
  if (!plugin.source.startsWith('file:')) return
  throw new ApiError(409, 'owned_by_file', `plugin "${plugin.forgehookId}" is declared by the spec file ${plugin.source.slice('file:'.length)}: change the file to roll it back`)
}

async function readOptionalBody(c: Context): Promise<{ toRevision?: number }> {
  const length = c.req.header('content-length')
  if (!c.req.header('content-type') && (length === undefined || length === '0')) return {}
  const body = await readJsonBody(c, [JSON_MEDIA_TYPE])
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'invalid_body', 'the body must be a JSON object such as {"toRevision": 3}')
  const { toRevision, ...rest } = body as Record<string, unknown>
  const unknown = Object.keys(rest)
  if (unknown.length > 0) throw new ApiError(422, 'invalid', `unknown field ${unknown[0]}`, unknown.map((field) => ({ field, message: 'unknown field' })))
  if (toRevision === undefined) return {}
  if (typeof toRevision !== 'number' || !Number.isInteger(toRevision) || toRevision < 1) {
    throw new ApiError(422, 'invalid', 'toRevision must be a positive integer', [{ field: 'toRevision', message: 'must be a positive integer' }])
  }
  return { toRevision }
}

function answer(c: Context, plugin: Plugin, status: 200 | 202): Response {
  c.header('ETag', entityTag(plugin.resourceVersion))
  return c.json(presentPlugin(plugin), status)
}
