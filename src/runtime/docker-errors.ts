// Docker's errors, read at the driver edge. docker-modem rejects with an Error that
// carries `statusCode` and the engine's JSON answer when the engine answered at all.

import { RuntimeUnavailableError } from './container-runtime.js'

export function statusCodeOf(error: unknown): number | undefined {
  const statusCode = (error as { statusCode?: unknown } | null | undefined)?.statusCode
  return typeof statusCode === 'number' ? statusCode : undefined
}

/** The engine's own words when it sent any (`{"message": ...}`), else the error's message. */
export function engineMessageOf(error: unknown): string {
  const engineMessage = (error as { json?: { message?: unknown } } | null | undefined)?.json?.message
  if (typeof engineMessage === 'string') return engineMessage
  const message = error instanceof Error ? error.message : String(error)
  // Errors of streaming calls carry no JSON, only docker-modem's `(HTTP code 500) server error - ` prefix.
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim()
}

/**
 * An error no caller expects by type. Without an HTTP status the engine was not reached
 * (or not in time: docker-modem's timeout destroys the request): RuntimeUnavailableError.
 */
export function driverError(engineAddress: string, action: string, error: unknown, requestTimeoutMs?: number): Error {
  const statusCode = statusCodeOf(error)
  if (statusCode === undefined) {
    // docker-modem ends a request that outlives its timeout without saying so: the request
    // just hangs up. Name the likely reason, since "socket hang up" alone tells an operator little.
    const hint =
      requestTimeoutMs !== undefined && (error as { code?: unknown } | null)?.code === 'ECONNRESET'
        ? ` (no answer within ${requestTimeoutMs / 1000} s, DOCKER_TIMEOUT, or the engine closed the connection)`
        : ''
    return new RuntimeUnavailableError(`Docker engine at ${engineAddress} did not answer (${action}): ${engineMessageOf(error)}${hint}`, {
      cause: error,
    })
  }
  return new Error(`docker ${action} failed with HTTP ${statusCode}: ${engineMessageOf(error)}`, { cause: error })
}

export type PullFailureKind = 'auth' | 'not-found' | 'other'

/**
 * What a failed pull came to, from the HTTP status or the engine's words (the same words
 * come as the answer to the pull or in its progress stream). Distribution and Docker Hub
 * say "unauthorized: authentication required", "no basic auth credentials", "denied:
 * requested access to the resource is denied"; a missing tag is "manifest unknown". Hub's
 * "repository does not exist or may require 'docker login'" is both: it reads as auth,
 * and the message quotes the engine's words.
 */
export function classifyPullFailure(statusCode: number | undefined, message: string): PullFailureKind {
  if (statusCode === 401 || statusCode === 403) return 'auth'
  if (/unauthorized|authentication required|no basic auth credentials|denied: requested access to the resource is denied|incorrect username or password|access (is )?denied/i.test(message)) return 'auth'
  if (statusCode === 404) return 'not-found'
  if (/manifest unknown|not found|no such image|name unknown|repository does not exist/i.test(message)) return 'not-found'
  return 'other'
}
