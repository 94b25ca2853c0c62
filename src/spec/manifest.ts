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
})

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
  })
  // The ForgeHook manifest carries much more (description, endpoints, author, ...): kept as is.
  .passthrough()

export type Manifest = z.output<typeof manifestSchema>

export interface ParsedManifest {
  image: string
  imagePullPolicy: ImagePullPolicy
  containerPort: number
  healthCheck?: z.output<typeof healthCheckSchema>
  memoryMb?: number
  cpus?: number
  secrets: string[]
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
      secrets: manifest.secrets ?? [],
    },
  }
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`).join('; ')
}
