// What every forgectl command is given: where to write, the API client, the Ctrl-C signal
// and the clock. Commands receive it instead of reaching for process.* themselves.
import type { ApiClient } from './api-client.js'
import type { TextOutput } from './text-output.js'

export interface CliContext {
  stdout: TextOutput
  stderr: TextOutput
  /** The API client, built on first use from FORGE_URL and FORGE_API_TOKEN (schema and --help need neither). */
  api(): ApiClient
  /** Aborted on Ctrl-C (SIGINT) or SIGTERM: watches and follows then end cleanly. */
  interrupt: AbortSignal
  now(): number
}

/** A command module: its usage text and its entry point, which returns the exit code. */
export interface Command {
  usage: string
  run(argv: string[], context: CliContext): Promise<number>
}
