// forgectl rollout history|undo|retry NAME: the revisions of a plugin's spec, writing an
// earlier one back as a new generation, and retrying an update that was rolled back.
import { HELP_OPTION, parseCommandArgs, requireName, showUsage } from '../args.js'
import { UsageError } from '../cli-errors.js'
import type { Command } from '../context.js'
import { formatAge, formatTable, writeLine, writeLines } from '../output.js'
import { manifestImage } from '../plugin-object.js'

const USAGE = `Usage: forgectl rollout history NAME
       forgectl rollout undo NAME [--to-revision N]
       forgectl rollout retry NAME

history  the kept revisions of the plugin's spec (REVISION_HISTORY_LIMIT, default 10),
         newest first, with the source that wrote each and when
undo     writes an earlier revision's spec as a new generation (default: the one before
         the current); whether the plugin runs or not stays as it is now. A plugin
         declared by a spec file is changed in its file instead
retry    rolls out the current generation again after its update was rolled back (the
         manager does not retry a rolled-back generation by itself)

Options:
      --to-revision N  undo: the revision to go back to (see history)
  -h, --help           show this help`

const OPTIONS = { ...HELP_OPTION, 'to-revision': { type: 'string' } } as const
const SUBCOMMANDS = ['history', 'undo', 'retry'] as const

export const rolloutCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('rollout', argv, OPTIONS)
    if (args.values.help) return showUsage(context, USAGE)
    const [subcommand, ...rest] = args.positionals
    if (!subcommand) throw new UsageError('rollout needs history, undo or retry', 'rollout')
    if (!(SUBCOMMANDS as readonly string[]).includes(subcommand)) {
      throw new UsageError(`unknown rollout subcommand "${subcommand}"; expected history, undo or retry`, 'rollout')
    }
    const pluginName = requireName(`rollout ${subcommand}`, rest)
    const toRevision = readRevision(args.values['to-revision'], subcommand)
    const api = context.api()
    if (subcommand === 'history') {
      const revisions = await api.listRevisions(pluginName)
      const rows = revisions.map((revision) => [
        `${revision.revision}${revision.current ? ' (current)' : ''}`,
        imageOf(revision.spec),
        String(revision.spec.state ?? ''),
        revision.source,
        formatAge(revision.createdAt, context.now()),
      ])
      writeLines(context.stdout, formatTable([['REVISION', 'IMAGE', 'STATE', 'SOURCE', 'AGE'], ...rows]))
      return 0
    }
    if (subcommand === 'undo') {
      const plugin = await api.undoRollout(pluginName, toRevision)
      writeLine(context.stdout, `plugin/${pluginName} rolled back to ${toRevision === undefined ? 'the previous revision' : `revision ${toRevision}`} as generation ${plugin.metadata.generation}`)
      return 0
    }
    await api.retryRollout(pluginName)
    writeLine(context.stdout, `plugin/${pluginName} rollout retry requested`)
    return 0
  },
}

function readRevision(raw: string | undefined, subcommand: string): number | undefined {
  if (raw === undefined) return undefined
  if (subcommand !== 'undo') throw new UsageError('--to-revision only applies to rollout undo', 'rollout')
  const revision = Number(raw)
  if (!Number.isInteger(revision) || revision < 1) throw new UsageError(`--to-revision must be a revision number such as 3, got "${raw}"`, 'rollout')
  return revision
}

function imageOf(spec: Record<string, unknown>): string {
  const manifest = spec.manifest
  return typeof manifest === 'object' && manifest !== null ? (manifestImage(manifest as Record<string, unknown>) ?? '-') : '-'
}
