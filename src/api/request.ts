// Reading requests: JSON bodies (415/400), If-Match preconditions (412), If-None-Match
// (304) and query parameters (400 with one detail per bad parameter).
import type { Context } from 'hono'
import { ApiError, type ErrorDetail } from './errors.js'

export const JSON_MEDIA_TYPE = 'application/json'
export const MERGE_PATCH_MEDIA_TYPE = 'application/merge-patch+json'

/** Body size the API accepts (bodyLimit in app.ts). */
export const MAX_BODY_BYTES = 1024 * 1024

/** The parsed JSON body, after checking the Content-Type against `acceptedTypes`. */
export async function readJsonBody(c: Context, acceptedTypes: readonly string[]): Promise<unknown> {
  const mediaType = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (!acceptedTypes.includes(mediaType)) {
    const wanted = acceptedTypes.join(' or ')
    throw new ApiError(415, 'unsupported_media_type', `Content-Type must be ${wanted}, not "${mediaType || '(none)'}"`)
  }
  const text = await c.req.text()
  if (text.trim() === '') throw new ApiError(400, 'malformed_json', 'the request body is empty: a JSON document is required')
  let body: unknown
  try {
    body = JSON.parse(text) as unknown
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new ApiError(400, 'malformed_json', `the request body is not valid JSON: ${reason}`)
  }
  if (nestsDeeperThan(body, MAX_JSON_DEPTH)) {
    throw new ApiError(400, 'too_deep', `the request body is nested more than ${MAX_JSON_DEPTH} levels deep`)
  }
  return body
}

/**
 * How deeply a JSON body may nest objects and arrays. JSON.parse takes any depth, but what
 * follows recurses (JSON.stringify when the row is written, the merge patch, the spec hash)
 * and overflows the stack from about 4,000 levels: a body of a few kilobytes then answered
 * 500 (fault case 12). No plugin document needs more than a few dozen levels.
 */
export const MAX_JSON_DEPTH = 100

/** Iterative, so that the check itself cannot overflow the stack. */
function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  const pending: { value: unknown; depth: number }[] = [{ value, depth: 0 }]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (typeof next.value !== 'object' || next.value === null) continue
    if (next.depth >= maxDepth) return true
    for (const child of Object.values(next.value)) pending.push({ value: child, depth: next.depth + 1 })
  }
  return false
}

/** What an If-Match header allows: any current version (`*`) or the listed resourceVersions. */
export interface Precondition {
  anyVersion: boolean
  resourceVersions: number[]
}

/**
 * Reads If-Match. ETags are `"<resourceVersion>"`; weak tags never match (If-Match compares
 * strongly, RFC 9110 13.1.1). Undefined when the header is absent.
 */
export function readIfMatch(c: Context): Precondition | undefined {
  const header = c.req.header('if-match')
  if (header === undefined) return undefined
  const precondition: Precondition = { anyVersion: false, resourceVersions: [] }
  for (const tag of header.split(',').map((part) => part.trim())) {
    if (tag === '*') {
      precondition.anyVersion = true
      continue
    }
    const match = /^(W\/)?"([^"]*)"$/.exec(tag) ?? /^()(\d+)$/.exec(tag)
    if (!match) throw new ApiError(400, 'invalid_header', `If-Match must be "*" or quoted entity tags such as "42", not ${tag}`, [{ field: 'If-Match', message: 'malformed entity tag' }])
    if (!match[1] && /^\d+$/.test(match[2]!)) precondition.resourceVersions.push(Number(match[2]))
  }
  return precondition
}

/** Throws 412 unless the plugin's current version satisfies the precondition. */
export function requirePrecondition(precondition: Precondition | undefined, current: { resourceVersion: number } | undefined, what: string): void {
  if (precondition === undefined) return
  if (current === undefined) throw preconditionFailed(`${what} does not exist, but If-Match requires it to`)
  if (precondition.anyVersion || precondition.resourceVersions.includes(current.resourceVersion)) return
  throw preconditionFailed(`${what} has resourceVersion ${current.resourceVersion}, which does not match If-Match; re-read it and try again`)
}

export function preconditionFailed(message: string): ApiError {
  return new ApiError(412, 'precondition_failed', message)
}

/** A strong ETag: a plugin's resourceVersion, or a digest of a list body. */
export function entityTag(version: number | string): string {
  return `"${version}"`
}

/**
 * True when If-None-Match names `currentTag` (or is `*`): the client's copy is current, answer
 * 304. Weak comparison (RFC 9110 13.1.2): a W/ prefix is ignored.
 */
export function notModified(c: Context, currentTag: string): boolean {
  const header = c.req.header('if-none-match')
  if (header === undefined) return false
  return header.split(',').some((part) => {
    const tag = part.trim()
    return tag === '*' || tag.replace(/^W\//, '') === currentTag
  })
}

/** Collects query-parameter problems so that one 400 names all of them. */
export class QueryReader {
  private readonly problems: ErrorDetail[] = []

  constructor(private readonly c: Context) {}

  /** Repeated and comma-separated values, each checked against `allowed` when given. */
  list<T extends string>(name: string, allowed?: readonly T[]): T[] | undefined {
    const values = (this.c.req.queries(name) ?? []).flatMap((value) => value.split(',')).map((value) => value.trim()).filter(Boolean)
    if (values.length === 0) return undefined
    const unknown = allowed ? values.filter((value) => !allowed.includes(value as T)) : []
    if (unknown.length > 0) {
      this.problems.push({ field: name, message: `unknown value ${unknown.map((value) => `"${value}"`).join(', ')}; expected one of ${allowed!.join(', ')}` })
      return undefined
    }
    return values as T[]
  }

  one<T extends string>(name: string, allowed?: readonly T[]): T | undefined {
    const values = this.list(name, allowed)
    if (values === undefined) return undefined
    if (values.length > 1) {
      this.problems.push({ field: name, message: 'give one value' })
      return undefined
    }
    return values[0]
  }

  /** An ISO 8601 time such as 2026-01-01T00:00:00Z. */
  time(name: string): Date | undefined {
    const value = this.c.req.query(name)
    if (value === undefined || value === '') return undefined
    const parsed = /^\d{4}-\d{2}-\d{2}/.test(value) ? new Date(value) : new Date(Number.NaN)
    if (Number.isNaN(parsed.getTime())) {
      this.problems.push({ field: name, message: `"${value}" is not an ISO 8601 time such as 2026-01-01T00:00:00Z` })
      return undefined
    }
    return parsed
  }

  integer(name: string, min: number, max: number): number | undefined {
    const value = this.c.req.query(name)
    if (value === undefined || value === '') return undefined
    const parsed = /^\d+$/.test(value) ? Number(value) : Number.NaN
    if (!(parsed >= min && parsed <= max)) {
      this.problems.push({ field: name, message: `must be a whole number from ${min} to ${max}` })
      return undefined
    }
    return parsed
  }

  text(name: string): string | undefined {
    const value = this.c.req.query(name)
    return value === undefined || value === '' ? undefined : value
  }

  /** Throws 400 naming every bad parameter read so far. */
  done(): void {
    if (this.problems.length > 0) throw new ApiError(400, 'invalid_query', 'invalid query parameters', this.problems)
  }
}
