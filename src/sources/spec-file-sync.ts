// Applying one spec file's documents to the store: create or update the plugins the file
// owns, report the ones owned elsewhere, and request deletion of the ones it no longer
// declares. Desired state only: nothing here talks to Docker.
import { AlreadyExistsError, NotFoundError } from '../db/errors.js'
import type { Plugin, PluginStore } from '../db/plugin-store.js'
import type { Logger } from '../logger.js'
import { specDiffers, toNewPlugin, toSpecFields, type PluginDocument } from '../spec/plugin-spec.js'
import type { SpecFileError } from '../spec/spec-file-error.js'

export const FILE_SOURCE_PREFIX = 'file:'

/** The `source` of plugins declared by the file at this relative path. */
export function fileSource(relativePath: string): string {
  return `${FILE_SOURCE_PREFIX}${relativePath}`
}

export interface ApplyOutcome {
  /** One error per document naming a plugin owned by another source. */
  conflicts: SpecFileError[]
  /** The plugin names of those documents, in the same order. */
  conflictNames: string[]
  /**
   * Whether a later look may come out differently with the same file content: a conflict
   * (the owner may go away) or a plugin of this file still being uninstalled (once its row is
   * gone, the file should create it again).
   */
  revisit: boolean
}

type DocumentOutcome = 'created' | 'updated' | 'unchanged' | 'deleting' | { conflictWith: Plugin }

/** Applies the valid documents in file order. Store errors propagate: the caller retries the whole file. */
export async function applyDocuments(
  store: PluginStore,
  source: string,
  documents: { index: number; document: PluginDocument }[],
  logger: Logger,
): Promise<ApplyOutcome> {
  const outcome: ApplyOutcome = { conflicts: [], conflictNames: [], revisit: false }
  for (const { index, document } of documents) {
    const pluginName = document.metadata.name
    const result = await applyDocument(store, source, document)
    if (result === 'created' || result === 'updated') logger.info({ plugin: pluginName, source }, `spec file ${result} plugin ${pluginName}`)
    if (result === 'deleting') outcome.revisit = true
    if (typeof result === 'object') {
      outcome.revisit = true
      outcome.conflictNames.push(pluginName)
      outcome.conflicts.push({
        message: `plugin "${pluginName}" is owned by ${result.conflictWith.source}; not applied`,
        field: 'metadata.name',
        document: index,
      })
    }
  }
  return outcome
}

async function applyDocument(store: PluginStore, source: string, document: PluginDocument): Promise<DocumentOutcome> {
  const pluginName = document.metadata.name
  const existing = (await store.getPlugin(pluginName)) ?? (await createOrFindRaced(store, source, document))
  if (existing === 'created') return 'created'
  if (existing.source !== source) return { conflictWith: existing }
  // Being uninstalled (the file was deleted and restored, or someone deleted it): leave it to
  // finish; the caller looks again later and creates it anew once the row is gone.
  if (existing.deletionRequestedAt) return 'deleting'
  if (!specDiffers(existing, document)) return 'unchanged'
  // expectedResourceVersion: if someone took the plugin over since it was read, this write
  // fails (ConflictError) instead of overwriting them; the file is retried at the next rescan.
  await store.updateSpec(pluginName, { ...toSpecFields(document), source }, { expectedResourceVersion: existing.resourceVersion })
  return 'updated'
}

async function createOrFindRaced(store: PluginStore, source: string, document: PluginDocument): Promise<Plugin | 'created'> {
  try {
    await store.createPlugin(toNewPlugin(document, source))
    return 'created'
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error
    // Created by someone else between our read and our insert: decide on what is there now.
    const raced = await store.getPlugin(document.metadata.name)
    if (!raced) throw error
    return raced
  }
}

/**
 * Requests deletion of the plugins this source owns, except `keepNames`. Used when a file was
 * deleted (keep nothing) and when a valid file no longer declares a plugin. Returns the names.
 */
export async function requestDeletionOfUndeclared(store: PluginStore, source: string, keepNames: ReadonlySet<string>, logger: Logger): Promise<string[]> {
  const owned = (await store.listPlugins()).filter((plugin) => plugin.source === source)
  const undeclared = owned.filter((plugin) => !keepNames.has(plugin.forgehookId) && plugin.deletionRequestedAt === null)
  for (const plugin of undeclared) {
    try {
      await store.requestDeletion(plugin.id)
    } catch (error) {
      // Already gone is what we wanted; anything else is retried by the caller.
      if (!(error instanceof NotFoundError)) throw error
    }
    logger.info({ plugin: plugin.forgehookId, source }, `plugin ${plugin.forgehookId} is no longer declared by its spec file; deletion requested`)
  }
  return undeclared.map((plugin) => plugin.forgehookId)
}

/** Relative paths of the files that own plugins according to the store. */
export async function filesOwningPlugins(store: PluginStore): Promise<Set<string>> {
  const plugins = await store.listPlugins()
  const sources = plugins.map((plugin) => plugin.source).filter((source) => source.startsWith(FILE_SOURCE_PREFIX))
  return new Set(sources.map((source) => source.slice(FILE_SOURCE_PREFIX.length)))
}
