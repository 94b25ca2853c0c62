// The marketplace's catalog: ForgeHooks on offer, from CATALOG_DIR (one YAML manifest entry
// per file) and, when set, CATALOG_URL (a JSON index, {"forgehooks": [entry, ...]}). An entry
// is the manifest that POST /api/v1/plugins/install takes, plus what the install form asks
// for: config keys and environment variables, each with a default, a description and whether
// it is secret (a masked field). Bounded like a spec file: 200 files of at most 256 KiB, an
// index of at most 1 MiB fetched with a 5 s timeout and kept for a minute.
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { parseDocument } from 'yaml'
import { z } from 'zod'
import type { Clock } from '../util/clock.js'

const MAX_FILES = 200
const MAX_FILE_BYTES = 256 * 1024
const MAX_INDEX_BYTES = 1024 * 1024
const INDEX_TIMEOUT_MS = 5_000
const INDEX_MAX_AGE_MS = 60_000

const fieldSchema = z
  .object({
    name: z.string().min(1).max(200),
    description: z.string().max(2000).optional(),
    default: z.union([z.string(), z.number(), z.boolean()]).optional(),
    /** A masked input; for environment variables also listed in the manifest's secrets. */
    secret: z.boolean().optional(),
    required: z.boolean().optional(),
    /** How a config value typed in the form is given to the plugin. Default string. */
    type: z.enum(['string', 'number', 'boolean']).optional(),
  })
  .strict()

export const catalogEntrySchema = z
  .object({
    apiVersion: z.literal('flowforge.io/v1').optional(),
    kind: z.literal('ForgeHook').optional(),
    manifest: z
      .object({
        id: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a DNS label: the plugin is named after it'),
        name: z.string().max(200),
        version: z.string().max(100),
        description: z.string().max(4000).optional(),
        image: z.union([z.string(), z.object({ repository: z.string(), tag: z.string().optional() }).passthrough()]),
        port: z.number().int(),
      })
      .passthrough(),
    config: z.array(fieldSchema).max(100).optional(),
    environment: z.array(fieldSchema.extend({ name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name') })).max(100).optional(),
  })
  .strict()

export type CatalogEntry = z.output<typeof catalogEntrySchema> & { origin: string }
export type CatalogField = z.output<typeof fieldSchema>

export interface CatalogProblem {
  origin: string
  message: string
}

export interface CatalogListing {
  entries: CatalogEntry[]
  problems: CatalogProblem[]
}

export interface CatalogOptions {
  /** CATALOG_DIR: YAML entries (*.yaml, *.yml). Default ./catalog. */
  dir: string
  /** CATALOG_URL: a JSON index over HTTP(S). Default none. */
  url?: string
  clock: Pick<Clock, 'now'>
  /** Injected for tests; default the global fetch. */
  fetch?: typeof fetch
}

export class Catalog {
  private index: { listing: CatalogListing; takenAt: number } | undefined

  constructor(private readonly options: CatalogOptions) {}

  /** Every entry, the folder's first; an id offered twice is kept once (the first) and reported. */
  async list(): Promise<CatalogListing> {
    const fromDir = await this.readDir()
    const fromUrl = this.options.url === undefined ? { entries: [], problems: [] } : await this.readIndex(this.options.url)
    const seen = new Set<string>()
    const listing: CatalogListing = { entries: [], problems: [...fromDir.problems, ...fromUrl.problems] }
    for (const entry of [...fromDir.entries, ...fromUrl.entries]) {
      if (seen.has(entry.manifest.id)) {
        listing.problems.push({ origin: entry.origin, message: `${entry.manifest.id} is offered twice; the first is shown` })
        continue
      }
      seen.add(entry.manifest.id)
      listing.entries.push(entry)
    }
    return listing
  }

  async find(id: string): Promise<CatalogEntry | undefined> {
    return (await this.list()).entries.find((entry) => entry.manifest.id === id)
  }

  private async readDir(): Promise<CatalogListing> {
    const listing: CatalogListing = { entries: [], problems: [] }
    let names: string[]
    try {
      names = (await readdir(this.options.dir)).filter((name) => /\.ya?ml$/.test(name)).sort()
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return listing
      return { entries: [], problems: [{ origin: this.options.dir, message: `cannot read CATALOG_DIR: ${(error as Error).message}` }] }
    }
    if (names.length > MAX_FILES) listing.problems.push({ origin: this.options.dir, message: `more than ${MAX_FILES} files: the first ${MAX_FILES} are shown` })
    for (const name of names.slice(0, MAX_FILES)) {
      const file = path.join(this.options.dir, name)
      try {
        const text = await readFile(file, 'utf8')
        if (Buffer.byteLength(text) > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES / 1024} KiB`)
        const document = parseDocument(text, { prettyErrors: false })
        if (document.errors.length > 0) throw new Error(document.errors[0]!.message.split('\n')[0])
        listing.entries.push(parseEntry(document.toJS({ maxAliasCount: 100 }), name))
      } catch (error) {
        listing.problems.push({ origin: name, message: (error as Error).message })
      }
    }
    return listing
  }

  private async readIndex(url: string): Promise<CatalogListing> {
    if (this.index !== undefined && this.options.clock.now() - this.index.takenAt < INDEX_MAX_AGE_MS) return this.index.listing
    const listing: CatalogListing = { entries: [], problems: [] }
    try {
      const response = await (this.options.fetch ?? fetch)(url, { signal: AbortSignal.timeout(INDEX_TIMEOUT_MS), headers: { accept: 'application/json' }, redirect: 'error' })
      if (!response.ok) throw new Error(`answered ${response.status}`)
      const text = await readCapped(response, MAX_INDEX_BYTES)
      const index = JSON.parse(text) as unknown
      const items = typeof index === 'object' && index !== null && Array.isArray((index as { forgehooks?: unknown }).forgehooks) ? (index as { forgehooks: unknown[] }).forgehooks : undefined
      if (items === undefined) throw new Error('is not {"forgehooks": [...]}')
      items.slice(0, MAX_FILES).forEach((item, position) => {
        try {
          listing.entries.push(parseEntry(item, `${url}#${position}`))
        } catch (error) {
          listing.problems.push({ origin: `${url}#${position}`, message: (error as Error).message })
        }
      })
    } catch (error) {
      listing.problems.push({ origin: url, message: `CATALOG_URL: ${(error as Error).message}` })
    }
    this.index = { listing, takenAt: this.options.clock.now() }
    return listing
  }
}

function parseEntry(value: unknown, origin: string): CatalogEntry {
  const result = catalogEntrySchema.safeParse(value)
  if (!result.success) throw new Error(result.error.issues.map((issue) => `${issue.path.join('.') || '(entry)'}: ${issue.message}`).join('; '))
  return { ...result.data, origin }
}

async function readCapped(response: Response, maxBytes: number): Promise<string> {
  const reader = response.body?.getReader()
  if (reader === undefined) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel()
      throw new Error(`is larger than ${maxBytes / (1024 * 1024)} MiB`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}
