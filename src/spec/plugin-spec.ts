// The plugin spec document: one zod schema for spec files, API bodies and (through
// manifest.ts) what the controller reads. Published as JSON Schema (schema/plugin.schema.json).
// What the API answers with (the document plus status) is api-plugin.ts.
import { z } from 'zod'
import type { RuntimeName } from '../config.js'
import type { NewPlugin, Plugin, PluginSpecPatch } from '../db/plugin-store.js'
import { DESIRED_STATES, UPDATE_STRATEGIES } from '../db/schema.js'
import { DNS_LABEL_PATTERN } from '../util/dns-label.js'
import { canonicalJson as canonical } from './container-spec.js'
import { manifestSchema } from './manifest.js'

export const API_VERSION = 'flowforge.io/v1'
export const KIND = 'Plugin'

const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export const pluginNameSchema = z
  .string()
  .regex(DNS_LABEL_PATTERN, 'must be a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters')

/**
 * Fields a manifest must not carry: they would give a plugin the host (the Docker socket is
 * root on the host). The container spec never sets them; naming them is an error, so an
 * author learns it at once instead of finding the setting silently ignored.
 */
export const FORBIDDEN_MANIFEST_FIELDS = [
  'privileged',
  'volumes',
  'mounts',
  'binds',
  'devices',
  'cap_add',
  'capabilities',
  'network',
  'networkMode',
  'network_mode',
  'hostNetwork',
  'pid',
  'pidMode',
  'hostPid',
  'ipc',
  'ipcMode',
  'securityOpt',
  'security_opt',
] as const

export const specManifestSchema = manifestSchema.superRefine((manifest, context) => {
  for (const error of forbiddenFieldErrors(manifest)) context.addIssue({ code: 'custom', path: [error.field], message: error.message })
})

/** The forbidden fields a manifest names (by field name, without the spec.manifest prefix). */
function forbiddenFieldErrors(manifest: unknown): FieldError[] {
  if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) return []
  return FORBIDDEN_MANIFEST_FIELDS.filter((field) => field in manifest).map((field) => ({
    field,
    message: `"${field}" is not allowed: plugins get no privileged mode, host mounts, host network or PID, devices or capabilities beyond a small allowlist`,
  }))
}

const VOLUME_NAME = /^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/

/** A named volume: Docker volume forgehook-<plugin>-<name>, kept across updates and uninstall. */
export const pluginVolumeSchema = z
  .object({
    name: z.string().regex(VOLUME_NAME, 'must be lower-case letters, digits and "-", at most 32 characters'),
    mountPath: z
      .string()
      .max(4096)
      .regex(/^\/[^\0]*$/, 'must be an absolute path inside the container')
      .refine((path) => path !== '/' && !path.split('/').includes('..'), 'must not be / or contain ..'),
    readOnly: z.boolean().optional(),
  })
  .strict()

/** How a spec change reaches the running container. */
export const updatePolicySchema = z
  .object({
    /** Recreate (default): the new container takes the old one's port. StartFirst: it starts beside the old one on a new port first. */
    strategy: z.enum(UPDATE_STRATEGIES).optional(),
    /** Seconds the new container has to run (and become healthy) before it is rolled back. Default 60. */
    healthyTimeoutSeconds: z.number().int().min(1).max(3600).optional(),
  })
  .strict()

/** A Swarm placement constraint: `node.labels.zone==a`, `node.role!=manager` (Swarm's own syntax, checked by Swarm). */
const PLACEMENT_CONSTRAINT = /^ *[A-Za-z][-A-Za-z0-9_./]* *(==|!=) *[^\s][^\x00-\x1f]*$/
/** A spread preference's label: `node.labels.zone`. */
const SPREAD_LABEL = /^node\.labels\.[A-Za-z0-9]([-A-Za-z0-9_.]{0,252}[A-Za-z0-9])?$/

/** spec.placement: where a Swarm service's tasks may run. Only the swarm runtime honours it. */
export const placementSchema = z
  .object({
    /** Each `<attribute>==<value>` or `<attribute>!=<value>`, e.g. node.labels.zone==a, node.role!=manager; all must hold. */
    constraints: z
      .array(z.string().max(256).regex(PLACEMENT_CONSTRAINT, 'must be a constraint such as node.labels.zone==a or node.role!=manager (with == or !=)'))
      .max(32)
      .optional(),
    /** Spread the tasks evenly over the values of a node label, in order. */
    preferences: z
      .array(z.object({ spread: z.string().max(256).regex(SPREAD_LABEL, 'must be a node label such as node.labels.zone') }).strict())
      .max(8)
      .optional(),
    /** At most this many of the plugin's tasks on one node. Default: no limit. */
    maxReplicasPerNode: z.number().int().min(1).max(100).optional(),
  })
  .strict()

export const pluginSpecSchema = z
  .object({
    /** running | stopped; default running. */
    state: z.enum(DESIRED_STATES).optional(),
    /** The host port to publish on; otherwise one is assigned from HOST_PORT_RANGE. */
    hostPort: z.number().int().min(1).max(65535).optional(),
    manifest: specManifestSchema,
    /** Given to the container as JSON in FORGEHOOK_CONFIG. */
    config: z.record(z.string(), z.unknown()).optional(),
    environment: z.record(z.string().regex(ENV_NAME, 'must be an environment variable name'), z.string().max(65_536)).optional(),
    /** Named volumes; host paths are never mounted. */
    volumes: z.array(pluginVolumeSchema).max(16).optional(),
    update: updatePolicySchema.optional(),
    /** isolated: true keeps the plugin off the installation network (no other plugin reaches it by name). */
    network: z.object({ isolated: z.boolean().optional() }).strict().optional(),
    /** How many copies run (Swarm tasks); default 1. More than 1 needs RUNTIME=swarm. */
    replicas: z.number().int().min(1).max(100).optional(),
    /** Where the copies may run (Swarm constraints and preferences); default none. Needs RUNTIME=swarm. */
    placement: placementSchema.optional(),
  })
  .strict()
  .superRefine((spec, context) => {
    const names = new Set<string>()
    const paths = new Set<string>()
    for (const [index, volume] of (spec.volumes ?? []).entries()) {
      if (names.has(volume.name)) context.addIssue({ code: 'custom', path: ['volumes', index, 'name'], message: `volume "${volume.name}" is declared twice` })
      if (paths.has(volume.mountPath)) context.addIssue({ code: 'custom', path: ['volumes', index, 'mountPath'], message: `${volume.mountPath} is mounted twice` })
      names.add(volume.name)
      paths.add(volume.mountPath)
    }
    if (spec.update?.strategy === 'StartFirst' && spec.hostPort !== undefined) {
      context.addIssue({
        code: 'custom',
        path: ['update', 'strategy'],
        message: 'StartFirst needs a second host port from HOST_PORT_RANGE while both containers run: it cannot be used with a pinned spec.hostPort (use Recreate, or drop hostPort)',
      })
    }
  })

export const pluginMetadataSchema = z
  .object({
    name: pluginNameSchema,
    labels: z.record(z.string().regex(LABEL_KEY, 'must be a label key such as team or example.com/team'), z.string().max(63)).optional(),
  })
  .strict()

export const pluginDocumentSchema = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND),
    metadata: pluginMetadataSchema,
    spec: pluginSpecSchema,
  })
  .strict()

export type PluginDocument = z.output<typeof pluginDocumentSchema>

export interface FieldError {
  /** Dotted path, e.g. spec.manifest.port. */
  field: string
  message: string
}

export type DocumentResult = { ok: true; document: PluginDocument } | { ok: false; errors: FieldError[] }

export interface ValidateOptions {
  /**
   * The runtime the document must run on (RUNTIME): docker refuses spec.replicas other than 1
   * and a non-empty spec.placement. 'any': the schema alone (forgectl, which does not know
   * the daemon's runtime: the daemon then decides). Default 'docker'.
   */
  runtime?: RuntimeName | 'any'
}

export function validateDocument(value: unknown, options: ValidateOptions = {}): DocumentResult {
  const runtime = options.runtime ?? 'docker'
  const result = pluginDocumentSchema.safeParse(value)
  if (result.success) {
    const runtimeErrors = runtimeFieldErrors(result.data.spec, runtime)
    return runtimeErrors.length === 0 ? { ok: true, document: result.data } : { ok: false, errors: runtimeErrors }
  }
  const errors = toFieldErrors(result.error.issues)
  // A refinement runs only on an otherwise valid manifest: name forbidden fields in any case.
  const spec = (value as { spec?: { manifest?: unknown } } | null)?.spec
  const manifest = spec?.manifest
  for (const forbidden of forbiddenFieldErrors(manifest)) {
    const field = `spec.manifest.${forbidden.field}`
    if (!errors.some((error) => error.field === field)) errors.push({ field, message: forbidden.message })
  }
  // The same for what the runtime cannot run, unless the schema already refused that field.
  for (const error of runtimeFieldErrors(spec, runtime)) {
    if (!errors.some((known) => known.field === error.field)) errors.push(error)
  }
  return { ok: false, errors }
}

/**
 * What of a spec the runtime cannot run: the docker runtime runs one container per plugin
 * on one engine, so it has no replicas and no nodes to place them on. Reads the spec
 * loosely (it may not have passed the schema): only values that would have an effect count.
 */
export function runtimeFieldErrors(spec: unknown, runtime: RuntimeName | 'any'): FieldError[] {
  if (runtime !== 'docker' || spec === null || typeof spec !== 'object') return []
  const { replicas, placement } = spec as { replicas?: unknown; placement?: unknown }
  const errors: FieldError[] = []
  if (typeof replicas === 'number' && replicas !== 1) {
    errors.push({ field: 'spec.replicas', message: `${replicas} replicas need RUNTIME=swarm; the docker runtime runs one container per plugin` })
  }
  if (placesTasks(placement)) {
    errors.push({ field: 'spec.placement', message: 'placement needs RUNTIME=swarm; the docker runtime runs every plugin on its one engine, with no nodes to choose from' })
  }
  return errors
}

/** Whether a placement says anything: a constraint, a preference or a per-node limit. */
function placesTasks(placement: unknown): boolean {
  if (placement === null || typeof placement !== 'object' || Array.isArray(placement)) return placement !== undefined && placement !== null
  const { constraints, preferences, maxReplicasPerNode, ...unknown } = placement as Record<string, unknown>
  const listed = (list: unknown) => list !== undefined && (!Array.isArray(list) || list.length > 0)
  return listed(constraints) || listed(preferences) || maxReplicasPerNode !== undefined || Object.keys(unknown).length > 0
}

export function toFieldErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.flatMap((issue) => {
    // Unknown keys arrive as one issue for several keys: one error per key reads better.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: [...issue.path, key].join('.'), message: 'unknown field' }))
    }
    // A bad record key: zod says "Invalid key in record"; the key's own rule says why.
    if (issue.code === 'invalid_key') {
      return [{ field: issue.path.join('.'), message: issue.issues[0]?.message ?? issue.message }]
    }
    return [{ field: issue.path.join('.') || '(document)', message: issue.message }]
  })
}

/** What the store keeps of a document. */
export function toNewPlugin(document: PluginDocument, source: string): NewPlugin {
  return { forgehookId: document.metadata.name, source, ...toSpecFields(document) }
}

/** Every spec field, so that an apply replaces what was there (absent fields become defaults). */
export function toSpecFields(document: PluginDocument): Required<Omit<PluginSpecPatch, 'source'>> {
  return {
    manifest: document.spec.manifest as Record<string, unknown>,
    config: document.spec.config ?? {},
    environment: document.spec.environment ?? {},
    desiredState: document.spec.state ?? 'running',
    requestedHostPort: document.spec.hostPort ?? null,
    labels: document.metadata.labels ?? {},
    volumes: document.spec.volumes ?? [],
    updatePolicy: document.spec.update ?? {},
    network: document.spec.network ?? {},
    replicas: document.spec.replicas ?? 1,
    placement: document.spec.placement ?? {},
  }
}

/** Whether applying `document` would change the plugin's spec (so that no write is needed). */
export function specDiffers(plugin: Plugin, document: PluginDocument): boolean {
  const wanted = toSpecFields(document)
  return (
    canonical(plugin.manifest) !== canonical(wanted.manifest) ||
    canonical(plugin.config) !== canonical(wanted.config) ||
    canonical(plugin.environment) !== canonical(wanted.environment) ||
    plugin.desiredState !== wanted.desiredState ||
    plugin.requestedHostPort !== wanted.requestedHostPort ||
    canonical(plugin.labels) !== canonical(wanted.labels) ||
    canonical(plugin.volumes) !== canonical(wanted.volumes) ||
    canonical(plugin.updatePolicy) !== canonical(wanted.updatePolicy) ||
    canonical(plugin.network) !== canonical(wanted.network) ||
    plugin.replicas !== wanted.replicas ||
    canonical(plugin.placement) !== canonical(wanted.placement)
  )
}

// Which values are secret, and the redacted view of them, are secrets.ts' (environment and config alike).
export { REDACTED, redactEnvironment, secretKeys } from './secrets.js'

/** The declarable part of a stored plugin as a document (for merge-patch and diffs). Secrets are NOT redacted. */
export function toSpecDocument(plugin: Plugin): PluginDocument {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: plugin.forgehookId, ...(Object.keys(plugin.labels).length > 0 ? { labels: plugin.labels } : {}) },
    spec: {
      state: plugin.desiredState,
      ...(plugin.requestedHostPort !== null ? { hostPort: plugin.requestedHostPort } : {}),
      manifest: plugin.manifest as PluginDocument['spec']['manifest'],
      config: plugin.config,
      environment: plugin.environment,
      ...(plugin.volumes.length > 0 ? { volumes: plugin.volumes } : {}),
      ...(Object.keys(plugin.updatePolicy).length > 0 ? { update: plugin.updatePolicy } : {}),
      ...(Object.keys(plugin.network ?? {}).length > 0 ? { network: plugin.network } : {}),
      // Shown only when not the default, so a document read back is the document written.
      ...(plugin.replicas !== 1 ? { replicas: plugin.replicas } : {}),
      ...(Object.keys(plugin.placement ?? {}).length > 0 ? { placement: plugin.placement as PluginDocument['spec']['placement'] } : {}),
    },
  }
}

/** The JSON Schema editors can use for spec files. */
export function pluginJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://flowforge.io/schemas/plugin.schema.json',
    title: 'FlowForge Plugin',
    ...z.toJSONSchema(pluginDocumentSchema, { io: 'input', unrepresentable: 'any' }),
  }
}
