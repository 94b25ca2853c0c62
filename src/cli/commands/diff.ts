// forgectl diff -f FILE|DIR: what apply would change, as a unified diff of each plugin's
// declarable document (daemon ---, file +++), both sides normalised the same way.
import { stringify as toYaml } from 'yaml'
import { ApiRequestError } from '../api-client.js'
import { HELP_OPTION, parseCommandArgs, requireNoPositionals, showUsage } from '../args.js'
import { UsageError } from '../cli-errors.js'
import type { CliContext, Command } from '../context.js'
import { ansi, plural, writeLine, writeLines } from '../output.js'
import type { PluginObject } from '../plugin-object.js'
import { readSpecInputs, type DeclaredPlugin } from '../spec-file-reader.js'
import { unifiedDiff } from '../../util/unified-diff.js'
import { sortKeys } from '../../util/sort-keys.js'
import type { PluginDocument } from '../../spec/plugin-spec.js'
import { REDACTED, redactConfig, secretKeys } from '../../spec/secrets.js'

const USAGE = `Usage: forgectl diff -f FILE|DIR [-f FILE|DIR ...]

Shows what forgectl apply would change: for each plugin in the files, a unified diff of its
document (apiVersion, kind, metadata.name and labels, spec) as the daemon has it (---) and
as the file declares it (+++). Both sides are normalised first: defaults filled in (state
running, empty labels, config and environment), keys sorted. A plugin the daemon does not
have yet shows as all added.

Secrets: the daemon shows hidden environment and config values as ${REDACTED}, so such values
are compared by presence only (a note on stderr names the environment keys); secret values
from the file are shown as ${REDACTED} too.

Exit status: 0 no changes; 1 changes (a "changes:" line on stderr names them) or a failure
(a "forgectl:" line says what failed); 2 usage.

Options:
  -f, --filename FILE|DIR  a spec file or folder; repeat for more
  -h, --help               show this help`

const OPTIONS = { ...HELP_OPTION, filename: { type: 'string', short: 'f', multiple: true } } as const

export const diffCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('diff', argv, OPTIONS)
    if (args.values.help) return showUsage(context, USAGE)
    requireNoPositionals('diff', args.positionals)
    const inputs = args.values.filename ?? []
    if (inputs.length === 0) throw new UsageError('diff needs -f FILE|DIR', 'diff')

    const { plugins, problems } = await readSpecInputs(inputs)
    if (problems.length > 0) {
      for (const problem of problems) writeLine(context.stderr, problem)
      writeLine(context.stderr, `forgectl: ${plural(problems.length, 'problem')} in the spec files; nothing was compared`)
      return 1
    }

    const changes: string[] = []
    let failed = 0
    for (const declared of plugins) {
      const pluginName = declared.document.metadata.name
      try {
        const change = await diffPlugin(context, declared)
        if (change) changes.push(`plugin/${pluginName} would be ${change}`)
      } catch (error) {
        if (!(error instanceof ApiRequestError)) throw error
        writeLine(context.stderr, `forgectl: plugin/${pluginName} (${declared.file}): ${error.message}`)
        failed += 1
      }
    }
    if (changes.length > 0) writeLine(context.stderr, `changes: ${changes.join(', ')}`)
    return changes.length > 0 || failed > 0 ? 1 : 0
  },
}

/** Prints the plugin's diff; returns what apply would do, or undefined when nothing. */
async function diffPlugin(context: CliContext, declared: DeclaredPlugin): Promise<'created' | 'configured' | undefined> {
  const pluginName = declared.document.metadata.name
  const live = await context.api().findPlugin(pluginName)
  const wanted = normalise(declared.document)
  const current = live ? normalise(live) : undefined
  const fileSecrets = secretKeys({ environment: wanted.spec.environment, manifest: wanted.spec.manifest })
  const masked = maskSecrets(current?.spec.environment ?? {}, wanted.spec.environment, fileSecrets)
  wanted.spec.environment = masked.wantedEnvironment
  // config the same way: where the daemon shows ***, and where the file's own value is secret.
  wanted.spec.config = maskHidden(wanted.spec.config, current?.spec.config ?? {}, redactConfig(wanted.spec)) as Record<string, unknown>
  if (masked.presenceOnly.length > 0) {
    writeLine(context.stderr, `note: plugin/${pluginName}: the daemon hides the values of ${masked.presenceOnly.join(', ')}; compared by presence only`)
  }
  const lines = unifiedDiff(current ? toYaml(sortKeys(current)) : '', toYaml(sortKeys(wanted)), {
    oldLabel: current ? `plugin/${pluginName} (live)` : '/dev/null',
    newLabel: `plugin/${pluginName} (${declared.file})`,
  })
  if (lines.length === 0) return undefined
  writeLines(context.stdout, context.stdout.isTTY ? lines.map(colour) : lines)
  return current ? 'configured' : 'created'
}

interface DeclarableDocument {
  apiVersion: string
  kind: string
  metadata: { name: string; labels: Record<string, string> }
  spec: { state: string; hostPort?: number; manifest: Record<string, unknown>; config: Record<string, unknown>; environment: Record<string, string> }
}

/** What a spec file can declare, with the defaults the daemon fills in, from either side. */
function normalise(source: PluginDocument | PluginObject): DeclarableDocument {
  const { spec } = source
  return {
    apiVersion: source.apiVersion,
    kind: source.kind,
    metadata: { name: source.metadata.name, labels: source.metadata.labels ?? {} },
    spec: {
      state: spec.state ?? 'running',
      ...(spec.hostPort !== undefined ? { hostPort: spec.hostPort } : {}),
      manifest: spec.manifest as Record<string, unknown>,
      config: spec.config ?? {},
      environment: { ...(spec.environment ?? {}) },
    },
  }
}

/**
 * The daemon answers `***` for secret values, so a key it hides is compared by presence only
 * (the file's value is shown as `***` too). A file's own secret is never printed, unless the
 * daemon already shows that very value.
 */
function maskSecrets(
  liveEnvironment: Record<string, string>,
  wantedEnvironment: Record<string, string>,
  wantedSecretKeys: Set<string>,
): { wantedEnvironment: Record<string, string>; presenceOnly: string[] } {
  const masked = { ...wantedEnvironment }
  const presenceOnly: string[] = []
  for (const [key, value] of Object.entries(wantedEnvironment)) {
    const liveValue = liveEnvironment[key]
    if (liveValue === REDACTED) {
      masked[key] = REDACTED
      if (value !== REDACTED) presenceOnly.push(key)
      continue
    }
    if (wantedSecretKeys.has(key) && value !== liveValue) masked[key] = REDACTED
  }
  return { wantedEnvironment: masked, presenceOnly: presenceOnly.sort() }
}

/** `wanted` with `***` where `live` shows `***`, and where the file's redacted view hides a value that differs from live. */
function maskHidden(wanted: unknown, live: unknown, wantedView: unknown): unknown {
  if (live === REDACTED) return REDACTED
  if (wantedView === REDACTED) return JSON.stringify(wanted) === JSON.stringify(live) ? wanted : REDACTED
  const member = (container: unknown, key: string): unknown => (typeof container === 'object' && container !== null ? (container as Record<string, unknown>)[key] : undefined)
  if (Array.isArray(wanted)) return wanted.map((item, index) => maskHidden(item, member(live, String(index)), member(wantedView, String(index))))
  if (typeof wanted !== 'object' || wanted === null) return wanted
  return Object.fromEntries(Object.entries(wanted).map(([key, item]) => [key, maskHidden(item, member(live, key), member(wantedView, key))]))
}

function colour(line: string): string {
  if (line.startsWith('@@')) return ansi.cyan(line)
  if (line.startsWith('-')) return ansi.red(line)
  if (line.startsWith('+')) return ansi.green(line)
  return line
}
