// The API's one error shape, {"error": {code, message, details}}, and the one mapping from
// thrown errors to status codes (app.onError). Routes throw; they never build error answers.
import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { AlreadyExistsError, ConflictError, DatabaseUnavailableError, InvalidValueError, NotFoundError } from '../db/errors.js'
import { NoLeaderError } from '../controller/leader-election.js'
import { ExpectedError } from '../util/expected-error.js'

export interface ErrorDetail {
  /** Dotted path into the request (body field or query parameter). */
  field: string
  message: string
}

export interface ErrorBody {
  error: { code: string; message: string; details: ErrorDetail[] }
}

export function errorBody(code: string, message: string, details: ErrorDetail[] = []): ErrorBody {
  return { error: { code, message, details } }
}

/** An error that already knows its answer. */
export class ApiError extends ExpectedError {
  override name = 'ApiError'
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[] = [],
    /** Extra response headers, e.g. WWW-Authenticate on 401. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
  }
}

export interface ErrorResponse {
  status: ContentfulStatusCode
  body: ErrorBody
  headers: Record<string, string>
  /**
   * How the caller logs the error: 'error' for a 500 (the client sees only "internal error"),
   * 'warn' for an unreachable dependency; undefined for the client's own mistakes.
   */
  logLevel?: 'warn' | 'error'
}

// The store reports constraint violations by its own field names; clients speak in document paths.
const STORE_FIELD_PATHS: Record<string, string> = {
  forgehookId: 'metadata.name',
  hostPort: 'spec.hostPort',
  desiredState: 'spec.state',
  containerName: 'status.containerName',
}

export function toErrorResponse(error: unknown): ErrorResponse {
  if (error instanceof ApiError) return answer(error.status, error.code, error.message, error.details, error.headers)
  if (error instanceof NoLeaderError) return answer(503, 'no_leader', error.message, [], { 'Retry-After': '2' })
  if (error instanceof NotFoundError) return answer(404, 'not_found', error.message)
  if (error instanceof AlreadyExistsError) return answer(409, 'already_exists', error.message)
  if (error instanceof ConflictError) return answer(409, 'conflict', error.message)
  if (error instanceof InvalidValueError) {
    const field = error.field ? (STORE_FIELD_PATHS[error.field] ?? error.field) : '(document)'
    return answer(422, 'invalid', error.message, [{ field, message: error.message }])
  }
  if (isDatabaseUnreachable(error)) {
    return { ...answer(503, 'unavailable', 'the database is not reachable; try again shortly', [], { 'Retry-After': '5' }), logLevel: 'warn' }
  }
  if (isConnectionFailure(error)) {
    // A refused or reset socket without a Postgres code may be the database or the Docker engine.
    return { ...answer(503, 'unavailable', 'a service the manager depends on is not reachable; try again shortly', [], { 'Retry-After': '5' }), logLevel: 'warn' }
  }
  if (error instanceof HTTPException) return fromHttpException(error)
  return { ...answer(500, 'internal_error', 'internal error'), logLevel: 'error' }
}

function answer(
  status: ContentfulStatusCode,
  code: string,
  message: string,
  details: ErrorDetail[] = [],
  headers: Record<string, string> = {},
): ErrorResponse {
  return { status, body: errorBody(code, message, details), headers }
}

// Middleware from hono (or the other routes) may throw its own exception type.
function fromHttpException(error: HTTPException): ErrorResponse {
  if (error.status === 413) return answer(413, 'payload_too_large', 'the request body is too large')
  if (error.status === 401) return answer(401, 'unauthorized', error.message || 'unauthorized', [], { 'WWW-Authenticate': 'Bearer' })
  if (error.status >= 500) return { ...answer(error.status, 'internal_error', 'internal error'), logLevel: 'error' }
  return answer(error.status, 'http_error', error.message || 'request failed')
}

// Postgres: admin_shutdown, crash_shutdown, cannot_connect_now; class 08 is "connection exception".
const UNREACHABLE_PG_CODES = new Set(['57P01', '57P02', '57P03'])
const UNREACHABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH'])
const UNREACHABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  // Kysely after db.destroy() and PGlite after close(): the handle is gone (shutdown).
  'driver has already been destroyed',
  'PGlite is closed',
]

/** Whether `error` says the database cannot be reached (rather than that a statement failed). */
export function isDatabaseUnreachable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true
  if (!(error instanceof Error)) return false
  const code = errorCode(error)
  if (code !== undefined && (UNREACHABLE_PG_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true
  if (UNREACHABLE_MESSAGES.some((message) => error.message.includes(message))) return true
  return error.cause !== undefined && isDatabaseUnreachable(error.cause)
}

/** A socket-level failure (refused, reset, timed out), from whichever client. */
export function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = errorCode(error)
  if (code !== undefined && UNREACHABLE_SOCKET_CODES.has(code)) return true
  // Node reports a refused connection to every address of a host as one AggregateError.
  if (error instanceof AggregateError && error.errors.some(isConnectionFailure)) return true
  return error.cause !== undefined && isConnectionFailure(error.cause)
}

function errorCode(error: Error): string | undefined {
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' ? code : undefined
}
