// From a plugin row to the container that should run it, and the hash labels that detect
// drift. Each field is hashed on its own so a recreate can say which fields changed.
import { createHash } from 'node:crypto'
import type { Plugin } from '../db/plugin-store.js'
import type { NetworkPolicy, Placement, PluginVolume, UpdatePolicy } from '../db/schema.js'
import { containerNameFor, LABELS, volumeNameFor, type ContainerSpec } from '../runtime/container-runtime.js'
import type { ParsedManifest } from './manifest.js'
import { REDACTED, redactConfig, redactEnvironment } from './secrets.js'

/** Label holding `field=hash,...` of the normalised spec, beside the overall hash. */
export const SPEC_FIELDS_LABEL = 'io.flowforge.spec-fields'

/**
 * Label holding the plugin's declared spec as JSON, so that a container whose row is lost
 * (a database restored from an old backup) is adopted with its exact spec and not
 * recreated. Its secrets are redacted (labels show in `docker ps`, the event stream and
 * every label exporter): adoption takes their values from the container's environment.
 */
export const DECLARED_SPEC_LABEL = 'io.flowforge.declared-spec'

/** What DECLARED_SPEC_LABEL holds. */
export interface DeclaredSpec {
  manifest: Record<string, unknown>
  config: Record<string, unknown>
  environment: Record<string, string>
  requestedHostPort: number | null
  labels: Record<string, string>
  // The rest of the spec, each only when it is not the default, so that the label of a
  // plugin that declares none of them reads as it did before they were added. Without
  // them an adopted plugin would lose its volumes' mounts and network policy (a recreate)
  // and, on the swarm runtime, its replicas, placement and update config (a service update).
  volumes?: PluginVolume[]
  updatePolicy?: UpdatePolicy
  network?: NetworkPolicy
  replicas?: number
  placement?: Placement
}

export function declaredSpecOf(plugin: Plugin): DeclaredSpec {
  return {
    manifest: plugin.manifest,
    config: redactConfig(plugin),
    environment: redactEnvironment(plugin),
    requestedHostPort: plugin.requestedHostPort,
    labels: plugin.labels,
    ...((plugin.volumes ?? []).length > 0 ? { volumes: plugin.volumes } : {}),
    ...(isNonEmpty(plugin.updatePolicy) ? { updatePolicy: plugin.updatePolicy } : {}),
    ...(isNonEmpty(plugin.network) ? { network: plugin.network } : {}),
    ...(plugin.replicas !== undefined && plugin.replicas !== 1 ? { replicas: plugin.replicas } : {}),
    ...(isNonEmpty(plugin.placement) ? { placement: plugin.placement } : {}),
  }
}

function isNonEmpty(value: object | undefined | null): value is object {
  return value !== undefined && value !== null && Object.keys(value).length > 0
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * The declared spec with the values its label redacted put back from the container's own
 * environment: each redacted environment value by its key, and config whole from
 * FORGEHOOK_CONFIG (which the container gets in clear).
 */
export function withSecretsFrom(declared: DeclaredSpec | undefined, containerEnv: Record<string, string>): DeclaredSpec | undefined {
  if (!declared) return undefined
  const environment = Object.fromEntries(
    Object.entries(declared.environment).map(([key, value]) => [key, value === REDACTED && key in containerEnv ? containerEnv[key]! : value]),
  )
  let config = declared.config
  const configText = containerEnv.FORGEHOOK_CONFIG
  if (configText !== undefined) {
    try {
      const parsed: unknown = JSON.parse(configText)
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed as Record<string, unknown>
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error
    }
  }
  return { ...declared, environment, config }
}

/** The declared spec a container carries, when it carries a readable one. */
export function readDeclaredSpec(labels: Record<string, string>): DeclaredSpec | undefined {
  const text = labels[DECLARED_SPEC_LABEL]
  if (!text) return undefined
  try {
    const value = JSON.parse(text) as Partial<DeclaredSpec>
    if (typeof value.manifest !== 'object' || value.manifest === null) return undefined
    // Only the shapes are checked here; the store checks the values as it does any spec's.
    return {
      manifest: value.manifest,
      config: value.config ?? {},
      environment: value.environment ?? {},
      requestedHostPort: value.requestedHostPort ?? null,
      labels: value.labels ?? {},
      ...(Array.isArray(value.volumes) ? { volumes: value.volumes } : {}),
      ...(isObject(value.updatePolicy) ? { updatePolicy: value.updatePolicy } : {}),
      ...(isObject(value.network) ? { network: value.network } : {}),
      ...(typeof value.replicas === 'number' ? { replicas: value.replicas } : {}),
      ...(isObject(value.placement) ? { placement: value.placement } : {}),
    }
  } catch (error) {
    if (error instanceof SyntaxError) return undefined
    throw error
  }
}

export const SPEC_FIELDS = [
  'image', 'env', 'containerPort', 'hostPort', 'hostIp', 'memoryMb', 'cpus',
  'volumes', 'command', 'args', 'user', 'readOnlyRootFilesystem', 'tmpfs', 'capDrop', 'capAdd', 'pids', 'ports',
  'imageId',
] as const
export type SpecField = (typeof SPEC_FIELDS)[number]

/**
 * Fields added after the first release: hashed only when set, so a container made before
 * they existed (or without them) keeps its hash and is not recreated by an upgrade.
 */
const OPTIONAL_SPEC_FIELDS: ReadonlySet<SpecField> = new Set(['volumes', 'command', 'args', 'user', 'readOnlyRootFilesystem', 'tmpfs', 'capDrop', 'capAdd', 'pids', 'ports', 'imageId'])

/**
 * imagePullPolicy Always: which image the tag points to (the controller's image-digests.ts
 * decides). `imageId` is hashed, so a new push is drift; `imageDigest` is only recorded.
 */
export interface WantedImage {
  imageId?: string
  imageDigest?: string
}

export interface ContainerSpecOptions {
  /** Address published ports bind to. Default 127.0.0.1 (published ports bypass host firewalls). */
  hostIp: string
  /** The manager installation that owns the container (MANAGER_INSTANCE). */
  instance: string
  /** The installation network plugins join (flowforge-<instance>); absent: none (Docker's default bridge). */
  network?: string
  /** Settings every container gets when its manifest says nothing (not hashed). */
  defaults?: ContainerSpec['defaults']
}

/** The installation's own network: plugins reach each other by name on it, and only there. */
export function installationNetworkName(instance: string): string {
  return `flowforge-${instance}`
}

export function pluginEnvironment(plugin: Plugin): Record<string, string> {
  return { ...plugin.environment, FORGEHOOK_CONFIG: JSON.stringify(plugin.config) }
}

export function buildContainerSpec(plugin: Plugin, manifest: ParsedManifest, hostPort: number, options: ContainerSpecOptions, image: WantedImage = {}): ContainerSpec {
  const base = {
    name: containerNameFor(plugin.forgehookId),
    image: manifest.image,
    env: pluginEnvironment(plugin),
    containerPort: manifest.containerPort,
    hostPort,
    hostIp: options.hostIp,
    ...(manifest.memoryMb !== undefined ? { memoryMb: manifest.memoryMb } : {}),
    ...(manifest.cpus !== undefined ? { cpus: manifest.cpus } : {}),
    // A row from before volumes existed (or a caller's partial row) has none.
    ...((plugin.volumes ?? []).length > 0
      ? { volumes: plugin.volumes.map((volume) => ({ source: volumeNameFor(plugin.forgehookId, volume.name), target: volume.mountPath, readOnly: volume.readOnly ?? false })) }
      : {}),
    ...definedOnly({
      command: manifest.command,
      args: manifest.args,
      user: manifest.user,
      readOnlyRootFilesystem: manifest.readOnlyRootFilesystem || undefined,
      tmpfs: manifest.tmpfs,
      capDrop: manifest.capDrop,
      capAdd: manifest.capAdd,
      pids: manifest.pids,
    }),
    ...(manifest.ports.length > 0 ? { ports: assignedPorts(plugin, manifest) } : {}),
    ...(image.imageId ? { imageId: image.imageId } : {}),
  }
  const fieldHashes = hashFields(base)
  const isolated = plugin.network?.isolated === true
  return {
    ...base,
    ...(image.imageDigest ? { imageDigest: image.imageDigest } : {}),
    ...(options.network && !isolated ? { network: { name: options.network, aliases: [plugin.forgehookId] } } : {}),
    ...(options.defaults ? { defaults: options.defaults } : {}),
    labels: {
      [LABELS.managed]: 'true',
      [LABELS.instance]: options.instance,
      [LABELS.pluginId]: plugin.id,
      [LABELS.forgehookId]: plugin.forgehookId,
      [LABELS.specHash]: overallHash(fieldHashes),
      [SPEC_FIELDS_LABEL]: formatFieldHashes(fieldHashes),
      [DECLARED_SPEC_LABEL]: canonicalJson(declaredSpecOf(plugin)),
    },
  }
}

/**
 * The manifest's extra ports with their assigned host ports (status.extraPorts, written by
 * the port allocator before the spec is built). A port not assigned yet has host port 0:
 * the allocator runs first, so only a caller that skipped it sees one.
 */
function assignedPorts(plugin: Plugin, manifest: ParsedManifest): NonNullable<ContainerSpec['ports']> {
  return manifest.ports.map((port) => {
    const protocol = port.protocol ?? 'tcp'
    const assigned = (plugin.extraPorts ?? []).find((candidate) => candidate.name === port.name && candidate.containerPort === port.containerPort && candidate.protocol === protocol)
    return { name: port.name, containerPort: port.containerPort, protocol, hostPort: assigned?.hostPort ?? port.hostPort ?? 0 }
  })
}

function definedOnly<T extends Record<string, unknown>>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as Partial<T>
}

type Hashable = Omit<ContainerSpec, 'labels' | 'name'>

function hashFields(spec: Hashable): Partial<Record<SpecField, string>> {
  const hashes: Partial<Record<SpecField, string>> = {}
  for (const field of SPEC_FIELDS) {
    const value = spec[field]
    if (OPTIONAL_SPEC_FIELDS.has(field) && isUnset(value)) continue
    hashes[field] = shortHash(canonicalJson(value ?? null))
  }
  return hashes
}

function isUnset(value: unknown): boolean {
  return value === undefined || value === null || (Array.isArray(value) && value.length === 0)
}

function overallHash(fieldHashes: Partial<Record<SpecField, string>>): string {
  return shortHash(formatFieldHashes(fieldHashes))
}

function formatFieldHashes(fieldHashes: Partial<Record<SpecField, string>>): string {
  return SPEC_FIELDS.filter((field) => fieldHashes[field] !== undefined)
    .map((field) => `${field}=${fieldHashes[field]}`)
    .join(',')
}

/**
 * Which fields differ between the container's labels and the wanted spec. A container
 * without field hashes (made by an older version, or adopted) differs in every field.
 */
export function changedFields(containerLabels: Record<string, string>, wanted: ContainerSpec): SpecField[] {
  const had = parseFieldHashes(containerLabels[SPEC_FIELDS_LABEL])
  const want = parseFieldHashes(wanted.labels[SPEC_FIELDS_LABEL])
  return SPEC_FIELDS.filter((field) => had[field] !== want[field])
}

function parseFieldHashes(label: string | undefined): Partial<Record<string, string>> {
  const hashes: Record<string, string> = {}
  for (const pair of (label ?? '').split(',')) {
    const [field, hash] = pair.split('=')
    if (field && hash) hashes[field] = hash
  }
  return hashes
}

/** JSON with object keys sorted, so equal specs hash equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, entry]) => `${JSON.stringify(key)}:${canonicalJson(entry)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16)
}
