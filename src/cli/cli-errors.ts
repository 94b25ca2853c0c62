// The failures forgectl reports as one line on stderr, each with its exit code. Anything else
// that escapes a command is a bug, still reported as one line (see forgectl.ts).
import { ExpectedError } from '../util/expected-error.js'

/** A failure the user can act on: printed as `forgectl: <message>`, exit 1. */
export class CliError extends ExpectedError {
  override name = 'CliError'
  readonly exitCode: number = 1
}

/** The command line itself is wrong (unknown command or flag, missing argument): exit 2. */
export class UsageError extends CliError {
  override name = 'UsageError'
  override readonly exitCode = 2
  constructor(
    message: string,
    /** The command whose usage the hint points to; undefined for the top level. */
    readonly command?: string,
  ) {
    super(message)
  }
}

/** Ctrl-C or SIGTERM arrived while a command that is not a watch was still working. */
export class InterruptedError extends CliError {
  override name = 'InterruptedError'
  constructor() {
    super('interrupted')
  }
}
