// forgectl apply -f FILE|DIR: declare the plugins of spec files through the API, as kubectl
// apply does; with --wait, follow them until they converge.
import { ApiRequestError, type ApiClient } from '../api-client.js'
import { durationFlag, HELP_OPTION, parseCommandArgs, requireNoPositionals, showUsage } from '../args.js'
import { UsageError } from '../cli-errors.js'
import type { Command } from '../context.js'
import { plural, writeLine } from '../output.js'
import { readSpecInputs } from '../spec-file-reader.js'
import { waitForConvergence, type PluginOutcome } from '../wait-for-plugins.js'
import type { PluginDocument } from '../../spec/plugin-spec.js'
import { formatDuration } from '../../util/format-duration.js'

const DEFAULT_TIMEOUT_MS = 120_000

const USAGE = `Usage: forgectl apply -f FILE|DIR [-f FILE|DIR ...] [--wait] [--timeout 2m]

Declares the plugins of YAML spec files through the API (PUT /api/v1/plugins/NAME), like
kubectl apply. A folder means every *.yaml and *.yml file in it (not its subfolders); a
file may hold several documents separated by ---. All files are checked first: when one is
invalid, each problem is listed as file:line:column and nothing is sent.

Prints plugin/NAME created, configured (its spec changed) or unchanged.

Options:
  -f, --filename FILE|DIR  a spec file or folder; repeat for more
      --wait               then wait until every plugin converged: the controller acted on
                           its latest spec and its phase is spec.state. Progress shows one
                           line per plugin. Exit 1 when one ends in phase error, or on timeout
      --timeout DURATION   how long --wait waits, e.g. 90s or 5m (default 2m)
  -h, --help               show this help`

const OPTIONS = {
  ...HELP_OPTION,
  filename: { type: 'string', short: 'f', multiple: true },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
} as const

export const applyCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('apply', argv, OPTIONS)
    if (args.values.help) return showUsage(context, USAGE)
    requireNoPositionals('apply', args.positionals)
    const inputs = args.values.filename ?? []
    if (inputs.length === 0) throw new UsageError('apply needs -f FILE|DIR', 'apply')
    const timeoutMs = durationFlag('apply', 'timeout', args.values.timeout, DEFAULT_TIMEOUT_MS)
    if (args.values.timeout !== undefined && !args.values.wait) throw new UsageError('--timeout only applies with --wait', 'apply')

    const { plugins, problems } = await readSpecInputs(inputs)
    if (problems.length > 0) {
      for (const problem of problems) writeLine(context.stderr, problem)
      writeLine(context.stderr, `forgectl: ${plural(problems.length, 'problem')} in the spec files; nothing was applied`)
      return 1
    }

    const api = context.api()
    const applied: string[] = []
    let failed = 0
    for (const { file, document } of plugins) {
      const pluginName = document.metadata.name
      try {
        writeLine(context.stdout, `plugin/${pluginName} ${await applyDocument(api, document)}`)
        applied.push(pluginName)
      } catch (error) {
        // The API refused this document: say why and go on with the others, as kubectl does.
        // Anything else (the daemon gone, Ctrl-C) ends the command.
        if (!(error instanceof ApiRequestError)) throw error
        writeLine(context.stderr, `forgectl: plugin/${pluginName} (${file}): ${error.message}`)
        failed += 1
      }
    }
    if (!args.values.wait || applied.length === 0) return failed > 0 ? 1 : 0

    const outcomes = await waitForConvergence(context, applied, { timeoutMs })
    const unconverged = outcomes.filter((outcome) => outcome.state !== 'converged')
    for (const outcome of unconverged) writeLine(context.stderr, `forgectl: ${describeFailure(outcome, timeoutMs)}`)
    return failed > 0 || unconverged.length > 0 ? 1 : 0
  },
}

type ApplyResult = 'created' | 'configured' | 'unchanged'

/**
 * PUT the document. What changed is read from the generation, which moves only when the
 * spec does (the status the controller writes leaves it alone).
 */
async function applyDocument(api: ApiClient, document: PluginDocument): Promise<ApplyResult> {
  const pluginName = document.metadata.name
  const before = await api.findPlugin(pluginName)
  const { status, plugin } = await api.putPlugin(pluginName, document)
  if (status === 201 || before === undefined) return 'created'
  return plugin.metadata.generation !== before.metadata.generation ? 'configured' : 'unchanged'
}

function describeFailure(outcome: PluginOutcome, timeoutMs: number): string {
  if (outcome.state === 'error') return `plugin/${outcome.name} failed: ${outcome.reason}`
  if (outcome.state === 'gone') return `plugin/${outcome.name} did not converge: ${outcome.reason}`
  return `plugin/${outcome.name} did not converge within ${formatDuration(timeoutMs)}: ${outcome.reason}`
}
