// Command-line arguments: node's parseArgs in strict mode (an unknown flag is a usage error,
// exit 2), plus the checks every command shares: -h/--help, positional names, durations, counts.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { parseDurationSeconds } from '../config.js'
import { UsageError } from './cli-errors.js'
import type { CliContext } from './context.js'

type OptionsConfig = NonNullable<ParseArgsConfig['options']>

/** Every command takes -h/--help. */
export const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const

/** Parses `argv` against `options`; positionals are allowed and counted by the caller. */
export function parseCommandArgs<const O extends OptionsConfig>(command: string, argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (error) {
    throw new UsageError(describeParseError(error), command)
  }
}

// parseArgs explains at length how to pass a positional that starts with "-": the first sentence is enough.
function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const firstSentence = message.split(/\.\s/)[0] ?? message
  return firstSentence.charAt(0).toLowerCase() + firstSentence.slice(1).replace(/\.$/, '')
}

/**
 * A plugin name from the command line. `plugin/NAME` (as apply prints it) is accepted too,
 * so output can be pasted back.
 */
export function pluginNameArgument(value: string): string {
  return value.replace(/^plugins?\//, '')
}

/** Exactly one positional, the plugin name. */
export function requireName(command: string, positionals: string[]): string {
  if (positionals.length === 0) throw new UsageError(`${command} needs a plugin NAME`, command)
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}" for ${command}`, command)
  return pluginNameArgument(positionals[0]!)
}

/** At most one positional: the plugin name, when given. */
export function optionalName(command: string, positionals: string[]): string | undefined {
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}" for ${command}`, command)
  return positionals[0] === undefined ? undefined : pluginNameArgument(positionals[0])
}

export function requireNoPositionals(command: string, positionals: string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}" for ${command}`, command)
}

/** A duration flag such as --timeout 2m (also 90, 90s, 500ms, 1h), in milliseconds. */
export function durationFlag(command: string, flag: string, raw: string | undefined, fallbackMs: number): number {
  if (raw === undefined) return fallbackMs
  const seconds = parseDurationSeconds(raw)
  if (seconds === undefined || seconds <= 0) {
    throw new UsageError(`--${flag} must be a positive duration such as 30s, 2m or 500ms, got "${raw}"`, command)
  }
  return seconds * 1000
}

/** A whole-number flag such as --tail 20, within [min, max]. */
export function integerFlag(command: string, flag: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined
  const value = Number(raw)
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got "${raw}"`, command)
  }
  return value
}

/** One of a fixed set of values, e.g. -o table|wide|json|yaml. */
export function choiceFlag<T extends string>(command: string, flag: string, raw: string | undefined, choices: readonly T[], fallback: T): T {
  if (raw === undefined) return fallback
  if ((choices as readonly string[]).includes(raw)) return raw as T
  throw new UsageError(`--${flag} must be one of ${choices.join(', ')}, got "${raw}"`, command)
}

/** -h/--help: the command's usage on stdout, exit 0. */
export function showUsage(context: CliContext, usage: string): number {
  context.stdout.write(usage.trimEnd() + '\n')
  return 0
}
