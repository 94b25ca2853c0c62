// The ForgeHook manifest as the controller reads it from the plugins row. It is validated
// again at every reconcile: a row written in plain SQL may hold anything, and a bad manifest
// must become a clear status error, never a crash or a half-made container.
import { z } from 'zod'
import type { ImagePullPolicy } from '../runtime/container-runtime.js'

// A Docker image reference: [registry[:port]/]path[:tag][@digest], lower-case path.
const IMAGE_REFERENCE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::\d+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/

export const imageReferenceSchema = z
  .string()
  .max(255)
  .regex(IMAGE_REFERENCE, 'must be a Docker image reference such as flowforge/crypto-service:1.2.0')

/** The guide's manifests give the image as { repository, tag }; ours as a string. Both work. */
const imageSchema = z.union([
  imageReferenceSchema,
  z
    .object({ repository: z.string().min(1), tag: z.string().min(1).optional(), digest: z.string().optional() })
    .transform((image) => `${image.repository}${image.tag ? `:${image.tag}` : ''}${image.digest ? `@${image.digest}` : ''}`)
    .pipe(imageReferenceSchema),
])

export const healthCheckSchema = z.object({
  /** HTTP GET on the plugin's host port; 2xx/3xx is healthy. */
  path: z.string().startsWith('/', 'must start with /').max(2048),
  intervalSeconds: z.number().int().min(1).max(3600).optional(),
  timeoutSeconds: z.number().int().min(1).max(300).optional(),
  /** Consecutive failures before the plugin counts as unhealthy. Default 3. */
  failureThreshold: z.number().int().min(1).max(100).optional(),
  /** Restart the container after this many consecutive failures (true = failureThreshold). */
  restartOnFailure: z.union([z.boolean(), z.number().int().min(1).max(100)]).optional(),
})

export const resourcesSchema = z.object({
  memoryMb: z.number().positive().max(1_048_576).optional(),
  cpus: z.number().positive().max(1024).optional(),
  /** Most processes (and threads) at once. Default PLUGIN_PIDS_LIMIT (512). */
  pids: z.number().int().min(1).max(1_000_000).optional(),
})

/**
 * Capabilities a plugin may add back (after capDrop): Docker's default set, none of which
 * gives the host (no SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE, ...).
 */
export const ADDABLE_CAPABILITIES = [
  'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE',
  'NET_RAW', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT',
] as const

const CAPABILITY = /^[A-Z_]{2,32}$/
const capabilityName = z
  .string()
  .transform((name) => name.toUpperCase().replace(/^CAP_/, ''))
  .pipe(z.string().regex(CAPABILITY, 'must be a capability name such as NET_RAW'))

/** A non-root user: a name, a uid, or uid:gid (numbers or names). */
const USER = /^[a-z_][a-z0-9_-]{0,31}$|^\d{1,10}$/
const userSchema = z
  .string()
  .max(65)
  .refine((user) => user.split(':').length <= 2 && user.split(':').every((part) => USER.test(part)), 'must be a user name, a uid, or uid:gid')

const absolutePath = z.string().max(4096).regex(/^\/[^\0]*$/, 'must be an absolute path inside the container').refine((path) => path !== '/' && !path.split('/').includes('..'), 'must not be / or contain ..')

/** One more port beside the primary one (port): its own host port, allocated and kept like the primary one's. */
export const extraPortSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$/, 'must be lower-case letters, digits and "-", at most 15 characters'),
    containerPort: z.number().int().min(1).max(65535),
    protocol: z.enum(['tcp', 'udp']).optional(),
    /** Requested host port; otherwise one from HOST_PORT_RANGE. */
    hostPort: z.number().int().min(1).max(65535).optional(),
  })
  .strict()

export const manifestSchema = z
  .object({
    name: z.string().max(200).optional(),
    version: z.string().max(100).optional(),
    image: imageSchema,
    imagePullPolicy: z.enum(['IfNotPresent', 'Always', 'Never']).optional(),
    /** The port the plugin listens on inside the container. */
    port: z.number().int().min(1).max(65535),
    healthCheck: healthCheckSchema.optional(),
    resources: resourcesSchema.optional(),
    /** Environment keys whose values are shown as *** in API answers, logs and events. */
    secrets: z.array(z.string()).optional(),
    /** Replaces the image's ENTRYPOINT (as in Kubernetes). */
    command: z.array(z.string().max(4096)).min(1).max(256).optional(),
    /** Replaces the image's CMD. */
    args: z.array(z.string().max(65_536)).max(1024).optional(),
    /** Run as this user instead of the image's; root (0) only with allowRoot. */
    user: userSchema.optional(),
    /** Says that user may be root: `user: root` or `0` is refused without it. */
    allowRoot: z.boolean().optional(),
    /** The container's root filesystem is read-only; tmpfs paths stay writable. */
    readOnlyRootFilesystem: z.boolean().optional(),
    /** Writable in-memory directories (with a read-only root: /tmp, say). */
    tmpfs: z.array(absolutePath).max(16).optional(),
    /** Capabilities to drop (ALL for every one). */
    capDrop: z.array(z.union([z.literal('ALL'), capabilityName])).max(64).optional(),
    /** Capabilities to add back, from ADDABLE_CAPABILITIES only. */
    capAdd: z.array(capabilityName.pipe(z.enum(ADDABLE_CAPABILITIES, { message: `only these may be added: ${ADDABLE_CAPABILITIES.join(', ')}` }))).max(16).optional(),
    /** More ports beside `port` (which stays the primary one: health checks and the proxy use it). */
    ports: z.array(extraPortSchema).max(16).optional(),
  })
  .superRefine((manifest, context) => {
    const user = manifest.user
    if (user !== undefined && isRoot(user) && manifest.allowRoot !== true) {
      context.addIssue({ code: 'custom', path: ['user'], message: 'runs as root: set allowRoot: true to allow that, or use a non-root uid' })
    }
    const names = new Set<string>()
    const containerPorts = new Set<string>([`${manifest.port}/tcp`])
    for (const [index, port] of (manifest.ports ?? []).entries()) {
      const key = `${port.containerPort}/${port.protocol ?? 'tcp'}`
      if (names.has(port.name)) context.addIssue({ code: 'custom', path: ['ports', index, 'name'], message: `port "${port.name}" is declared twice` })
      if (containerPorts.has(key)) context.addIssue({ code: 'custom', path: ['ports', index, 'containerPort'], message: `${key} is declared twice (port is the primary one)` })
      names.add(port.name)
      containerPorts.add(key)
    }
  })
  // The ForgeHook manifest carries much more (description, endpoints, author, ...): kept as is.
  .passthrough()

export type Manifest = z.output<typeof manifestSchema>

export type ExtraPort = z.output<typeof extraPortSchema>

export interface ParsedManifest {
  image: string
  imagePullPolicy: ImagePullPolicy
  containerPort: number
  healthCheck?: z.output<typeof healthCheckSchema>
  memoryMb?: number
  cpus?: number
  pids?: number
  secrets: string[]
  command?: string[]
  args?: string[]
  user?: string
  readOnlyRootFilesystem?: boolean
  tmpfs?: string[]
  capDrop?: string[]
  capAdd?: string[]
  ports: ExtraPort[]
}

/** user: root, 0, or 0:<group>. */
function isRoot(user: string): boolean {
  const name = user.split(':')[0]
  return name === 'root' || name === '0'
}

export type ManifestResult = { ok: true; manifest: ParsedManifest } | { ok: false; error: string }

/** Validates a manifest; the error names each bad field by its path. */
export function parseManifest(value: unknown): ManifestResult {
  const result = manifestSchema.safeParse(value)
  if (!result.success) return { ok: false, error: `invalid manifest: ${describeIssues(result.error.issues)}` }
  const manifest = result.data
  return {
    ok: true,
    manifest: {
      image: manifest.image,
      imagePullPolicy: manifest.imagePullPolicy ?? 'IfNotPresent',
      containerPort: manifest.port,
      healthCheck: manifest.healthCheck,
      memoryMb: manifest.resources?.memoryMb,
      cpus: manifest.resources?.cpus,
      pids: manifest.resources?.pids,
      secrets: manifest.secrets ?? [],
      command: manifest.command,
      args: manifest.args,
      user: manifest.user,
      readOnlyRootFilesystem: manifest.readOnlyRootFilesystem,
      tmpfs: manifest.tmpfs,
      capDrop: manifest.capDrop,
      capAdd: manifest.capAdd,
      ports: manifest.ports ?? [],
    },
  }
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`).join('; ')
}
