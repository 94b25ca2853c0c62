import { pino, type Logger, type DestinationStream } from 'pino'
import type { LogLevel } from './config.js'
import { ExpectedError } from './util/expected-error.js'

export type { Logger }

/** How many causes deep an error is logged; the chain is cut there (a cycle included). */
const MAX_CAUSE_DEPTH = 5
/** How many of an AggregateError's errors are logged. */
const MAX_AGGREGATED_ERRORS = 5

/**
 * Structured JSON logs on stdout (pino). `destination` is injectable so tests can read
 * what an operator would see.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'flowforge' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: (error: unknown) => serializeError(error) },
    },
    destination,
  )
}

/**
 * An error as the log shows it. An expected error (ExpectedError: a failure the daemon names,
 * such as a port taken or the database unreachable) is its type, message and code: one
 * clear line for an operator. Any other error may be a bug, and keeps its stack and its
 * causes, so that it can be diagnosed from the log alone. For logs only: API answers are
 * built by src/api/errors.ts and never carry a stack.
 */
export function serializeError(error: unknown): Record<string, unknown> {
  return serializeAtDepth(error, 0)
}

function serializeAtDepth(error: unknown, depth: number): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) }
  const code = (error as { code?: unknown }).code
  const summary = { type: error.name, message: error.message, ...(code !== undefined ? { code } : {}) }
  if (error instanceof ExpectedError || depth >= MAX_CAUSE_DEPTH) return summary
  const inner = error instanceof AggregateError ? (error.errors as unknown[]).slice(0, MAX_AGGREGATED_ERRORS) : []
  return {
    ...summary,
    ...(error.stack !== undefined ? { stack: error.stack } : {}),
    ...(error.cause !== undefined ? { cause: serializeAtDepth(error.cause, depth + 1) } : {}),
    ...(inner.length > 0 ? { errors: inner.map((each) => serializeAtDepth(each, depth + 1)) } : {}),
  }
}

/** A logger that drops everything, for tests and tools that do not log. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
