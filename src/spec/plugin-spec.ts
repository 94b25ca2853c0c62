// The plugin spec document: one zod schema for spec files, API bodies and (through
// manifest.ts) what the controller reads. Published as JSON Schema (schema/plugin.schema.json).
// What the API answers with (the document plus status) is api-plugin.ts.
import { z } from 'zod'
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

export function validateDocument(value: unknown): DocumentResult {
  const result = pluginDocumentSchema.safeParse(value)
  if (result.success) return { ok: true, document: result.data }
  const errors = toFieldErrors(result.error.issues)
  // A refinement runs only on an otherwise valid manifest: name forbidden fields in any case.
  const manifest = (value as { spec?: { manifest?: unknown } } | null)?.spec?.manifest
  for (const forbidden of forbiddenFieldErrors(manifest)) {
    const field = `spec.manifest.${forbidden.field}`
    if (!errors.some((error) => error.field === field)) errors.push({ field, message: forbidden.message })
  }
  return { ok: false, errors }
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
    canonical(plugin.network) !== canonical(wanted.network)
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
