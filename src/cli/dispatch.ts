// forgectl: the daemon (serve, migrate) and the operator's client (apply, get, describe, ...).
// Run through forgectl.ts, which picks this module graph or its one-file build. This file
// only dispatches. Each command lives in commands/<name>.ts and is loaded when
// used, so a client command does not load the database or the Docker driver.
import { ConfigError, loadClientConfig } from '../config.js'
import { ApiClient } from './api-client.js'
import { CliError, UsageError } from './cli-errors.js'
import type { CliContext, Command } from './context.js'
import type { TextOutput } from './text-output.js'

interface CommandEntry {
  summary: string
  load: () => Promise<Command>
  /** serve and migrate handle SIGINT and SIGTERM themselves. */
  ownsSignals?: boolean
}

const COMMANDS: Record<string, CommandEntry> = {
  apply: {
    summary: 'create or update plugins from YAML spec files (-f FILE|DIR) [--wait]',
    load: async () => (await import('./commands/apply.js')).applyCommand,
  },
  diff: {
    summary: 'show what apply -f FILE|DIR would change',
    load: async () => (await import('./commands/diff.js')).diffCommand,
  },
  get: {
    summary: 'list plugins, or one, as a table, json or yaml [--watch]',
    load: async () => (await import('./commands/get.js')).getCommand,
  },
  describe: {
    summary: "a plugin's spec, status, drift and recent events",
    load: async () => (await import('./commands/describe.js')).describeCommand,
  },
  delete: {
    summary: 'uninstall plugins [--wait]',
    load: async () => (await import('./commands/delete.js')).deleteCommand,
  },
  start: {
    summary: "set a plugin's desired state to running",
    load: async () => (await import('./commands/lifecycle.js')).startCommand,
  },
  stop: {
    summary: "set a plugin's desired state to stopped",
    load: async () => (await import('./commands/lifecycle.js')).stopCommand,
  },
  restart: {
    summary: "restart a running plugin's container once",
    load: async () => (await import('./commands/lifecycle.js')).restartCommand,
  },
  rollout: {
    summary: 'revision history, undo and retry of updates (history|undo|retry NAME)',
    load: async () => (await import('./commands/rollout.js')).rolloutCommand,
  },
  logs: {
    summary: "a plugin's container output [-f] [--tail N]",
    load: async () => (await import('./commands/logs.js')).logsCommand,
  },
  events: {
    summary: 'the audit trail, of all plugins or one [-f]',
    load: async () => (await import('./commands/events.js')).eventsCommand,
  },
  schema: {
    summary: 'print the JSON Schema of plugin spec files',
    load: async () => (await import('./commands/schema.js')).schemaCommand,
  },
  serve: {
    summary: 'run the plugin manager daemon (npm start)',
    load: async () => (await import('./commands/serve.js')).serveCommand,
    ownsSignals: true,
  },
  migrate: {
    summary: 'apply database migrations and exit (npm run migrate)',
    load: async () => (await import('./commands/migrate.js')).migrateCommand,
    ownsSignals: true,
  },
}

const USAGE = `Usage: forgectl <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, entry]) => `  ${name.padEnd(10)}${entry.summary}`)
  .join('\n')}

Client commands talk to the daemon's HTTP API at FORGE_URL (default http://127.0.0.1:4000),
sending FORGE_API_TOKEN as a bearer token when it is set.
Run 'forgectl <command> --help' for a command's options.
Configuration comes from environment variables; see README.md.
Exit codes: 0 success, 1 failure, 2 usage.`

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    process.stdout.write(USAGE + '\n')
    return 2
  }
  if (name === '--help' || name === '-h' || name === 'help') return help(rest[0])
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!entry) return usageError(`unknown command "${name}"`)
  const context = createContext(entry.ownsSignals ? new AbortController().signal : interruptSignal())
  try {
    const command = await entry.load()
    return await command.run(rest, context)
  } catch (error) {
    return report(error)
  }
}

/** `forgectl help` lists the commands; `forgectl help apply` is `forgectl apply --help`. */
async function help(commandName: string | undefined): Promise<number> {
  const entry = commandName !== undefined && Object.hasOwn(COMMANDS, commandName) ? COMMANDS[commandName] : undefined
  if (commandName !== undefined && !entry) return usageError(`unknown command "${commandName}"`)
  process.stdout.write((entry ? (await entry.load()).usage : USAGE) + '\n')
  return 0
}

function usageError(message: string): number {
  process.stderr.write(`forgectl: ${message}\n\n${USAGE}\n`)
  return 2
}

/** Every failure is one line on stderr; only a usage error adds a hint. Never a stack trace. */
function report(error: unknown): number {
  if (error instanceof UsageError) {
    const hint = error.command ? `forgectl ${error.command} --help` : 'forgectl --help'
    process.stderr.write(`forgectl: ${error.message}\nRun '${hint}' for usage.\n`)
    return 2
  }
  if (error instanceof CliError || error instanceof ConfigError) {
    process.stderr.write(`forgectl: ${error.message}\n`)
    return error instanceof CliError ? error.exitCode : 1
  }
  process.stderr.write(`forgectl: ${error instanceof Error ? error.message : String(error)}\n`)
  return 1
}

function createContext(interrupt: AbortSignal): CliContext {
  let api: ApiClient | undefined
  return {
    stdout: terminalOutput(process.stdout),
    stderr: terminalOutput(process.stderr),
    // Built on first use: schema and --help work without (or with a bad) FORGE_URL.
    api: () => (api ??= new ApiClient(loadClientConfig(), { signal: interrupt })),
    interrupt,
    now: () => Date.now(),
  }
}

function terminalOutput(stream: NodeJS.WriteStream): TextOutput {
  return {
    write: (text) => void stream.write(text),
    get isTTY() {
      return stream.isTTY === true
    },
    get columns() {
      return stream.isTTY ? stream.columns : undefined
    },
  }
}

/**
 * Aborted by the first Ctrl-C (or SIGTERM): watches and follows end with exit 0, other
 * commands with "interrupted". A second one exits at once, should a command not listen.
 */
function interruptSignal(): AbortSignal {
  const controller = new AbortController()
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(1)
    controller.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return controller.signal
}

// `forgectl get | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0)
  process.stderr.write(`forgectl: cannot write to stdout: ${error.message}\n`)
  process.exit(1)
})

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`forgectl: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
