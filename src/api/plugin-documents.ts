// Plugin documents in and out of the API: the answer shape, validation of incoming
// documents (422 with field paths), keeping redacted secrets, and the guide's install body.
import type { RuntimeName } from '../config.js'
import type { Plugin, PluginTask } from '../db/plugin-store.js'
import type { PluginPhase } from '../db/schema.js'
import { toApiDocument, type ApiPlugin } from '../spec/api-plugin.js'
import { hostPortErrors, type HostPortPolicy } from '../spec/host-port-policy.js'
import { API_VERSION, KIND, validateDocument, type FieldError, type PluginDocument } from '../spec/plugin-spec.js'
import { restoreRedacted, revealedValues, type SpecValues } from '../spec/secrets.js'
import { ApiError } from './errors.js'
import { isJsonObject } from './merge-patch.js'

/**
 * The API shape; a plugin whose deletion was requested shows `uninstalling` until its row is
 * gone. `tasks` (GET of one plugin): its Swarm tasks, shown when there are any.
 */
export function presentPlugin(plugin: Plugin, tasks: PluginTask[] = []): ApiPlugin {
  const document = toApiDocument(plugin, tasks)
  if (plugin.deletionRequestedAt === null) return document
  return { ...document, status: { ...document.status, phase: presentedPhase(plugin) } }
}

export function presentedPhase(plugin: Plugin): PluginPhase {
  return plugin.deletionRequestedAt === null ? plugin.status : 'uninstalling'
}

const READ_ONLY_METADATA = ['uid', 'generation', 'resourceVersion', 'source', 'creationTimestamp', 'deletionTimestamp']

/**
 * A client may send back what it read: status and the metadata the server sets are dropped
 * rather than refused. metadata.resourceVersion is not a precondition here: If-Match is.
 */
export function withoutReadOnlyFields(value: unknown): unknown {
  if (!isJsonObject(value)) return value
  const { status: _status, ...document } = value
  if (!isJsonObject(document.metadata)) return document
  const metadata = Object.fromEntries(Object.entries(document.metadata).filter(([key]) => !READ_ONLY_METADATA.includes(key)))
  return { ...document, metadata }
}

export interface DocumentContext {
  /** The name the URL gives (PUT, PATCH): metadata.name must equal it. */
  name?: string
  /** The stored plugin, whose real secret values replace `***` sent back by a client. */
  stored?: Plugin
  /**
   * The `spec` the client itself sent (a merge patch's, when the document is the merge):
   * a hidden value may be shown only if the client sent it. Default: the document's spec.
   */
  sentSpec?: unknown
  /** Which spec.hostPort may be asked for (HOST_PORT_RANGE). */
  hostPorts?: HostPortPolicy
  /** The runtime that runs plugins (RUNTIME): docker refuses spec.replicas other than 1 and spec.placement. Default docker. */
  runtime?: RuntimeName
}

/** Validates a whole document; throws 422 listing every problem. */
export function requireValidDocument(value: unknown, context: DocumentContext = {}): PluginDocument {
  const nameErrors = nameMismatch(value, context.name)
  const result = validateDocument(withoutReadOnlyFields(value), { runtime: context.runtime ?? 'docker' })
  if (!result.ok) throw invalidDocument([...nameErrors, ...result.errors])
  const policyErrors = [...nameErrors, ...hostPortErrors(result.document.spec, context.hostPorts)]
  if (policyErrors.length > 0) throw invalidDocument(policyErrors)
  const restored = restoreRedactedSecrets(result.document, context.stored)
  if (!restored.ok) throw invalidDocument(restored.errors)
  if (context.stored) {
    const sent = context.sentSpec ?? (isJsonObject(value) ? value.spec : undefined)
    const revealed = revealedValues(specValues(context.stored), specValuesOf(restored.document), isJsonObject(sent) ? sent : {})
    if (revealed.length > 0) throw invalidDocument(revealed)
  }
  return restored.document
}

export function invalidDocument(errors: FieldError[]): ApiError {
  return new ApiError(422, 'invalid', 'the plugin document is not valid', errors)
}

function nameMismatch(value: unknown, name: string | undefined): FieldError[] {
  if (name === undefined) return []
  const given = isJsonObject(value) && isJsonObject(value.metadata) ? value.metadata.name : undefined
  if (given === name) return []
  return [{ field: 'metadata.name', message: `must be "${name}", the name in the URL (a plugin cannot be renamed)` }]
}

/**
 * A client that read a plugin (secrets shown as `***`, in the environment and in config) and
 * writes it back must not replace the secrets with `***`: such values are taken from the
 * stored plugin. A `***` for a secret the plugin does not have yet is refused rather than stored.
 */
export function restoreRedactedSecrets(
  document: PluginDocument,
  stored: Plugin | undefined,
): { ok: true; document: PluginDocument } | { ok: false; errors: FieldError[] } {
  const restored = restoreRedacted(specValuesOf(document), stored ? specValues(stored) : undefined)
  if (!restored.ok) return restored
  const { environment, config } = restored.values
  const spec = {
    ...document.spec,
    ...(document.spec.environment !== undefined ? { environment } : {}),
    ...(document.spec.config !== undefined ? { config } : {}),
  }
  return { ok: true, document: { ...document, spec } }
}

function specValues(plugin: Plugin): SpecValues {
  return { environment: plugin.environment, config: plugin.config, manifest: plugin.manifest }
}

function specValuesOf(document: PluginDocument): SpecValues {
  return { environment: document.spec.environment ?? {}, config: document.spec.config ?? {}, manifest: document.spec.manifest as Record<string, unknown> }
}

/** The guide's POST /api/v1/plugins/install body. */
interface InstallRequest {
  manifest: Record<string, unknown>
  config?: unknown
  environment?: unknown
  autoStart?: unknown
}

/**
 * Turns the guide's install body into a document. The name comes from `manifest.id`, or else
 * `manifest.name` made into a DNS label; errors name fields of the install body.
 */
export function installDocument(body: unknown, options: { runtime?: RuntimeName } = {}): PluginDocument {
  if (!isJsonObject(body) || !isJsonObject(body.manifest)) {
    throw invalidDocument([{ field: 'manifest', message: 'the body must be an object with a "manifest" object' }])
  }
  const request = body as unknown as InstallRequest
  if (request.autoStart !== undefined && typeof request.autoStart !== 'boolean') {
    throw invalidDocument([{ field: 'autoStart', message: 'must be true or false' }])
  }
  const naming = nameFromManifest(request.manifest)
  if (naming === undefined) throw invalidDocument([{ field: 'manifest.id', message: 'the manifest needs an "id" (or a "name") to name the plugin' }])
  const result = validateDocument({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: naming.name },
    spec: {
      state: request.autoStart === false ? 'stopped' : 'running',
      manifest: request.manifest,
      ...(request.config !== undefined && request.config !== null ? { config: request.config } : {}),
      ...(request.environment !== undefined && request.environment !== null ? { environment: request.environment } : {}),
    },
  }, { runtime: options.runtime ?? 'docker' })
  if (!result.ok) throw invalidDocument(result.errors.map((error) => ({ ...error, field: installField(error.field, naming.field) })))
  const restored = restoreRedactedSecrets(result.document, undefined)
  if (!restored.ok) throw invalidDocument(restored.errors.map((error) => ({ ...error, field: installField(error.field, naming.field) })))
  return restored.document
}

function nameFromManifest(manifest: Record<string, unknown>): { name: string; field: string } | undefined {
  if (typeof manifest.id === 'string' && manifest.id !== '') return { name: manifest.id, field: 'manifest.id' }
  if (typeof manifest.name !== 'string') return undefined
  const name = toDnsLabel(manifest.name)
  return name === '' ? undefined : { name, field: 'manifest.name' }
}

/** "Crypto Service v2!" → "crypto-service-v2": lower case, runs of other characters become "-". */
export function toDnsLabel(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '')
}

// Document paths back to the install body's own fields.
function installField(documentField: string, nameField: string): string {
  if (documentField === 'metadata.name') return nameField
  if (documentField === 'spec.state') return 'autoStart'
  return documentField.startsWith('spec.') ? documentField.slice('spec.'.length) : documentField
}
