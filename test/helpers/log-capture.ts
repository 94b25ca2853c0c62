import { createLogger, type Logger } from '../../src/logger.js'

export interface CapturedLog {
  logger: Logger
  lines: Record<string, unknown>[]
  messages(): string[]
}

/** A real pino logger whose JSON lines are kept for assertions. */
export function captureLogs(level: 'debug' | 'info' | 'warn' = 'debug'): CapturedLog {
  const lines: Record<string, unknown>[] = []
  const logger = createLogger(level, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) })
  return { logger, lines, messages: () => lines.map((line) => String(line.msg)) }
}
