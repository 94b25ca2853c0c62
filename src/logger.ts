import { pino, type Logger, type DestinationStream } from 'pino'
import type { LogLevel } from './config.js'

export type { Logger }

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
      // Errors are logged by message and code only: operators read one clear line, never a stack.
      serializers: { err: serializeError },
    },
    destination,
  )
}

export function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) }
  const code = (error as { code?: unknown }).code
  return { type: error.name, message: error.message, ...(code !== undefined ? { code } : {}) }
}

/** A logger that drops everything, for tests and tools that do not log. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}
