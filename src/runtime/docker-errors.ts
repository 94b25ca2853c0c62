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
