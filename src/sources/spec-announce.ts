// Telling people about a spec file that could not be applied as written: one warning in the
// log, a live event on the bus (always, even when no plugin name could be read), and an audit
// event for each plugin the file concerns.
import type { EventBus } from '../db/event-bus.js'
import type { NewPluginEvent, PluginStore } from '../db/plugin-store.js'
import type { Logger } from '../logger.js'
import type { SpecFileError } from '../spec/spec-file-error.js'
import type { Clock } from '../util/clock.js'
import { cappedErrors, type SpecFileReport } from './spec-file-report.js'

/** How many errors the log line carries; the report lists MAX_REPORTED_ERRORS. */
const LOGGED_ERRORS = 3
/** How many of its own errors a plugin's audit event carries. */
const ERRORS_PER_PLUGIN_EVENT = 10
const NAMES_LOOKED_UP_ONE_BY_ONE = 20

export interface FileProblems {
  /** YAML and schema errors. */
  parseErrors: SpecFileError[]
  /** Documents naming a plugin owned by another source. */
  conflicts: SpecFileError[]
  conflictNames: string[]
  /** The plugin name of each document by index (parse-yaml's namesByDocument). */
  namesByDocument: (string | undefined)[]
}

export interface AnnounceDependencies {
  store: PluginStore
  events: EventBus
  logger: Logger
  clock: Clock
}

/** Identifies what would be announced: the same content with the same problems is told once. */
export function problemSignature(report: SpecFileReport, hash: string | undefined): string {
  return JSON.stringify({ hash, status: report.status, errors: report.errors })
}

export async function announceProblems(dependencies: AnnounceDependencies, input: { report: SpecFileReport; problems: FileProblems }): Promise<void> {
  const { report, problems } = input
  if (report.status === 'refused') {
    tell(dependencies, 'spec:refused', report.path, report.errors)
    return
  }
  if (problems.parseErrors.length > 0) {
    tell(dependencies, 'spec:invalid', report.path, problems.parseErrors)
    const named = problems.parseErrors.map((error) => ({ error, pluginName: error.document === undefined ? undefined : problems.namesByDocument[error.document] }))
    await recordForPlugins(dependencies, 'spec:invalid', report.path, named)
  }
  if (problems.conflicts.length > 0) {
    tell(dependencies, 'spec:conflict', report.path, problems.conflicts)
    const named = problems.conflicts.map((error, index) => ({ error, pluginName: problems.conflictNames[index] }))
    await recordForPlugins(dependencies, 'spec:conflict', report.path, named)
  }
}

type ProblemType = 'spec:invalid' | 'spec:conflict' | 'spec:refused'

const VERB: Record<ProblemType, string> = {
  'spec:invalid': 'is invalid',
  'spec:conflict': 'names plugins owned elsewhere',
  'spec:refused': 'was refused',
}

/** The log line and the live event; neither touches the database. */
function tell(dependencies: AnnounceDependencies, type: ProblemType, file: string, errors: SpecFileError[]): void {
  const summary = errors.slice(0, LOGGED_ERRORS).map(formatError).join('; ')
  const more = errors.length > LOGGED_ERRORS ? ` (and ${errors.length - LOGGED_ERRORS} more)` : ''
  dependencies.logger.warn({ file, errors: errors.slice(0, LOGGED_ERRORS), errorCount: errors.length }, `spec file ${file} ${VERB[type]}: ${summary}${more}`)
  dependencies.events.publish({
    id: null,
    pluginId: null,
    forgehookId: null,
    type,
    data: { file, ...cappedErrors(errors) },
    timestamp: new Date(dependencies.clock.now()),
  })
}

/**
 * Audit rows need a plugin name (forgehook_id is NOT NULL), so only named plugins get one,
 * each with its own documents' errors (capped): a file of thousands of bad documents costs
 * one small row per plugin (at most SPECS_MAX_DOCUMENTS), never the whole list in each.
 */
async function recordForPlugins(
  dependencies: AnnounceDependencies,
  type: ProblemType,
  file: string,
  named: { error: SpecFileError; pluginName: string | undefined }[],
): Promise<void> {
  const errorsByName = new Map<string, SpecFileError[]>()
  for (const { error, pluginName } of named) {
    if (pluginName === undefined) continue
    const errors = errorsByName.get(pluginName) ?? []
    errors.push(error)
    errorsByName.set(pluginName, errors)
  }
  if (errorsByName.size === 0) return
  const idsByName = await pluginIdsByName(dependencies, [...errorsByName.keys()])
  const events: NewPluginEvent[] = [...errorsByName].map(([pluginName, errors]) => ({
    pluginId: idsByName.get(pluginName) ?? null,
    forgehookId: pluginName,
    type,
    data: { file, ...cappedErrors(errors, ERRORS_PER_PLUGIN_EVENT) },
  }))
  await dependencies.store.logEvents(events)
}

async function pluginIdsByName(dependencies: AnnounceDependencies, pluginNames: string[]): Promise<Map<string, string>> {
  const ids = new Map<string, string>()
  try {
    // A few names: one lookup each; many (a file of hundreds of documents): one list.
    if (pluginNames.length > NAMES_LOOKED_UP_ONE_BY_ONE) {
      const wanted = new Set(pluginNames)
      for (const plugin of await dependencies.store.listPlugins()) if (wanted.has(plugin.forgehookId)) ids.set(plugin.forgehookId, plugin.id)
      return ids
    }
    for (const pluginName of pluginNames) {
      const plugin = await dependencies.store.getPlugin(pluginName)
      if (plugin) ids.set(pluginName, plugin.id)
    }
  } catch (error) {
    // The events are still worth recording by name: history by forgehook_id finds them.
    dependencies.logger.warn({ err: error }, 'could not look up plugins for spec file events; recording them by name only')
  }
  return ids
}

export function formatError(error: SpecFileError): string {
  const where = error.line !== undefined ? `line ${error.line}${error.column !== undefined ? `:${error.column}` : ''}` : ''
  const field = error.field ? `${error.field}: ` : ''
  const location = [where, error.document !== undefined ? `document ${error.document}` : ''].filter(Boolean).join(', ')
  return `${location ? `${location}: ` : ''}${field}${error.message}`
}
