// chokidar on the spec folder, reduced to what the folder needs: "look at this file again".
// Events are hints only; the folder's rescans catch whatever is lost here.
import type { Stats } from 'node:fs'
import { watch, type FSWatcher } from 'chokidar'
import type { Logger } from '../logger.js'
import { isHiddenPath, isSpecFilePath, toRelativePath } from './spec-files.js'

export interface SpecWatcherOptions {
  dir: string
  /** How long a file must stay unchanged before its event is reported. */
  awaitWriteFinishMs: number
  logger: Logger
  /** A spec file (relative path) was added, changed or removed. */
  onFile: (relativePath: string) => void
  /** A folder (relative path) was removed: its files may be gone without their own events. */
  onDirRemoved: (relativePath: string) => void
}

/**
 * Watches the folder itself, not single files: editors that save by rename-replace would
 * otherwise end the watch after the first save. Resolves once chokidar is ready; files present
 * by then are the caller's initial scan (ignoreInitial).
 */
export async function watchSpecFolder(options: SpecWatcherOptions): Promise<FSWatcher> {
  const { dir, logger } = options
  const watcher = watch(dir, {
    ignoreInitial: true,
    // Report a file only once it has stopped changing, so a half-written spec is never applied.
    // Polled five times per settle period, so the wait is not much longer than the period.
    awaitWriteFinish: { stabilityThreshold: options.awaitWriteFinishMs, pollInterval: Math.max(10, Math.round(options.awaitWriteFinishMs / 5)) },
    // Like the rescans, never descend into symlinked folders (they may lead outside).
    followSymlinks: false,
    ignored: (candidate: string, stats?: Stats) => isIgnored(dir, candidate, stats),
  })
  const onFile = (changedPath: string) => {
    const relativePath = toRelativePath(dir, changedPath)
    if (isSpecFilePath(relativePath)) options.onFile(relativePath)
  }
  watcher.on('add', onFile).on('change', onFile).on('unlink', onFile)
  watcher.on('unlinkDir', (removedDir) => options.onDirRemoved(toRelativePath(dir, removedDir)))
  watcher.on('error', (error) => {
    // E.g. ENOSPC (out of inotify watches): the periodic rescans still see every change.
    logger.warn({ err: error }, 'spec folder watcher failed; changes are picked up by the periodic rescan')
  })
  await new Promise<void>((resolve) => watcher.once('ready', resolve))
  return watcher
}

/** chokidar 5 has no globs: a function decides. Folders must pass so their files are seen. */
function isIgnored(dir: string, candidate: string, stats?: Stats): boolean {
  const relativePath = toRelativePath(dir, candidate)
  if (relativePath === '') return false
  if (isHiddenPath(relativePath)) return true
  // Without stats the entry may be a folder; onFile filters by name anyway.
  if (!stats || stats.isDirectory()) return false
  return !isSpecFilePath(relativePath)
}
