// The spec folder as a desired-state input: every *.yaml / *.yml below SPECS_DIR declares
// plugins. Watch events are only hints; a full rescan at start and on a timer compares the
// whole folder, and content hashes make an unchanged file cost nothing.
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FSWatcher } from 'chokidar'
import type { EventBus } from '../db/event-bus.js'
import type { PluginStore } from '../db/plugin-store.js'
import type { Logger } from '../logger.js'
import type { HostPortPolicy } from '../spec/host-port-policy.js'
import type { RuntimeName } from '../config.js'
import { parseSpecText, type ParsedSpecText } from '../spec/parse-yaml.js'
import type { SpecFileError } from '../spec/spec-file-error.js'
import type { Clock } from '../util/clock.js'
import { Periodic } from '../util/periodic.js'
import { announceProblems, problemSignature, type FileProblems } from './spec-announce.js'
import { cappedErrors, type SpecFileReport, type SpecFolderView } from './spec-file-report.js'
import { applyDocuments, fileSource, filesOwningPlugins, requestDeletionOfUndeclared } from './spec-file-sync.js'
import { listSpecFiles, readSpecFile, type SpecFileListing } from './spec-files.js'
import { watchSpecFolder } from './spec-watcher.js'

/** Pauses a rescan waits for a file that keeps changing before reading it as it is (e.g. a future mtime). */
const SETTLE_ROUNDS = 5

export interface SpecFolderOptions {
  /** The folder watched (SPECS_DIR); files are named relative to it. */
  dir: string
  store: PluginStore
  events: EventBus
  logger: Logger
  clock: Clock
  /** Full re-read of the folder, for whatever the watcher missed (SPECS_RESCAN_INTERVAL). */
  rescanIntervalMs: number
  /** How long a file must stay unchanged before it is read. Default 50 ms. */
  awaitWriteFinishMs?: number
  /** YAML documents a file may hold (SPECS_MAX_DOCUMENTS); a file with more is refused. Default 500. */
  maxDocuments?: number
  /** Which spec.hostPort a document may ask for (HOST_PORT_RANGE, ALLOW_ANY_HOST_PORT). Default: any. */
  hostPorts?: HostPortPolicy
  /** The runtime that runs the plugins (RUNTIME): docker refuses spec.replicas other than 1 and spec.placement. Default docker. */
  runtime?: RuntimeName
}

interface TrackedFile {
  /** sha256 of the text last applied; undefined = read and apply again at the next look. */
  hash: string | undefined
  /** Apply again even if the hash is unchanged (a conflict or an uninstall may have ended). */
  revisit: boolean
  report: SpecFileReport
  /** What was last logged and published, so the same problem is told once. */
  announced: string
}

export class SpecFolder implements SpecFolderView {
  private readonly dir: string
  private readonly awaitWriteFinishMs: number
  private readonly logger: Logger
  private readonly files = new Map<string, TrackedFile>()
  /** Files that are gone while the store still has their plugins (a failed removal, or found at start). */
  private readonly pendingRemovals = new Set<string>()
  private readonly pendingSyncs = new Set<string>()
  /** Every read-and-apply runs on this chain, one at a time: no file is applied twice at once. */
  private queue: Promise<void> = Promise.resolve()
  private watcher: FSWatcher | undefined
  private periodic: Periodic | undefined
  private checkedStoreForRemovedFiles = false
  private stopped = false

  constructor(private readonly options: SpecFolderOptions) {
    this.dir = path.resolve(options.dir)
    this.awaitWriteFinishMs = options.awaitWriteFinishMs ?? 50
    this.logger = options.logger.child({ component: 'spec-folder', dir: this.dir })
  }

  async start(): Promise<void> {
    // The watcher is ready before the first scan, so a file written meanwhile is seen by one
    // or the other (chokidar counts files present at its start as initial and skips them).
    this.watcher = await watchSpecFolder({
      dir: this.dir,
      awaitWriteFinishMs: this.awaitWriteFinishMs,
      logger: this.logger,
      onFile: (relativePath) => this.scheduleSync(relativePath),
      onDirRemoved: (relativePath) => this.onDirRemoved(relativePath),
    })
    await this.rescan()
    this.periodic = new Periodic(
      { clock: this.options.clock, intervalMs: this.options.rescanIntervalMs, logger: this.logger, name: 'spec folder rescan' },
      () => this.rescan(),
    )
    this.periodic.start()
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.periodic?.stop()
    await this.watcher?.close()
    await this.queue
  }

  list(): SpecFileReport[] {
    return [...this.files.values()].map((file) => file.report).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  }

  /** Re-reads the whole folder and applies what changed. Never rejects: problems are logged and reported. */
  rescan(): Promise<void> {
    return this.serialize(() => this.scanFolder())
  }

  private async scanFolder(): Promise<void> {
    const realDir = await this.realDir()
    if (realDir === undefined) return
    let listing: SpecFileListing
    try {
      listing = await listSpecFiles(this.dir)
    } catch (error) {
      this.logger.warn({ err: error }, 'cannot list the spec folder; nothing is applied or removed until it can be read')
      return
    }
    await this.syncSettled(listing.files, realDir)
    await this.findFilesRemovedWhileStopped(listing)
    const present = new Set(listing.files)
    const unknown = (relativePath: string) => listing.unreadableDirs.some((dir) => relativePath.startsWith(`${dir}/`))
    const gone = new Set([...this.files.keys(), ...this.pendingRemovals].filter((file) => !present.has(file) && !unknown(file)))
    for (const relativePath of gone) {
      if (this.stopped) return
      await this.syncFile(relativePath, realDir)
    }
  }

  /**
   * A file modified within the last awaitWriteFinishMs may be mid-write (the watcher waits for
   * it; a rescan must too): such files are read again after a pause, a few times, then as they
   * are. File times are wall-clock, hence Date.now() and real timers rather than the injected clock.
   */
  private async syncSettled(files: string[], realDir: string): Promise<void> {
    let waiting = files
    for (let round = 0; waiting.length > 0 && !this.stopped; round++) {
      if (round > 0) await sleep(this.awaitWriteFinishMs)
      const settledBefore = round < SETTLE_ROUNDS ? Date.now() - this.awaitWriteFinishMs : undefined
      const stillChanging: string[] = []
      for (const relativePath of waiting) {
        if (this.stopped) return
        if ((await this.syncFile(relativePath, realDir, settledBefore)) === 'unsettled') stillChanging.push(relativePath)
      }
      waiting = stillChanging
    }
  }

  /** Once: files the store says own plugins but which are no longer in the folder. */
  private async findFilesRemovedWhileStopped(listing: SpecFileListing): Promise<void> {
    if (this.checkedStoreForRemovedFiles) return
    try {
      const owning = await filesOwningPlugins(this.options.store)
      const present = new Set(listing.files)
      const unreadable = (file: string) => listing.unreadableDirs.some((dir) => file.startsWith(`${dir}/`))
      for (const file of owning) if (!present.has(file) && !unreadable(file)) this.pendingRemovals.add(file)
      this.checkedStoreForRemovedFiles = true
    } catch (error) {
      this.logger.warn({ err: error }, 'could not list plugins declared by spec files; retrying at the next rescan')
    }
  }

  private async syncFile(relativePath: string, realDir: string, settledBefore?: number): Promise<'unsettled' | 'done'> {
    let read = await readSpecFile(this.dir, relativePath, { realDir, settledBefore })
    if (read.kind === 'missing' && this.isKnown(relativePath)) {
      // Editors that save by delete-then-write leave a moment without the file: look once
      // more before uninstalling anything. (Real time, like the watcher's own wait: it is the
      // file system that has to settle, whatever clock the rest of the program runs on.)
      await sleep(this.awaitWriteFinishMs)
      read = await readSpecFile(this.dir, relativePath, { realDir })
    }
    if (read.kind === 'unsettled') return 'unsettled'
    if (read.kind === 'missing') await this.removeFile(relativePath)
    else if (read.kind === 'refused') await this.refuseFile(relativePath, read.message)
    else await this.applyText(relativePath, read.text)
    return 'done'
  }

  private async applyText(relativePath: string, text: string): Promise<void> {
    this.pendingRemovals.delete(relativePath)
    const hash = createHash('sha256').update(text).digest('hex')
    const previous = this.files.get(relativePath)
    const checkedAt = this.timestamp()
    if (previous && previous.hash === hash && !previous.revisit) {
      previous.report = { ...previous.report, checkedAt }
      return
    }
    const parsed = parseSpecText(text, { maxDocuments: this.options.maxDocuments, hostPorts: this.options.hostPorts, runtime: this.options.runtime ?? 'docker' })
    if (parsed.tooManyDocuments) {
      await this.refuseFile(relativePath, parsed.errors[0]!.message)
      return
    }
    const { store } = this.options
    const source = fileSource(relativePath)
    try {
      const applied = await applyDocuments(store, source, parsed.documents, this.logger)
      // Never delete because a file became invalid: a broken document may still mean its plugin.
      if (parsed.errors.length === 0) await requestDeletionOfUndeclared(store, source, new Set(parsed.names), this.logger)
      const report = toReport(relativePath, parsed, applied.conflicts, checkedAt)
      const tracked: TrackedFile = { hash, revisit: applied.revisit, report, announced: previous?.announced ?? '' }
      this.files.set(relativePath, tracked)
      await this.announce(tracked, hash, {
        parseErrors: parsed.errors,
        conflicts: applied.conflicts,
        conflictNames: applied.conflictNames,
        namesByDocument: parsed.namesByDocument,
      })
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error)
      this.logger.warn({ err: error, file: relativePath }, `could not apply spec file ${relativePath}; retrying at the next rescan`)
      const notApplied: SpecFileError = { message: `not applied: ${reason}; retrying at the next rescan` }
      // The status says what the file is (ok or invalid); the added error says it is not applied yet.
      const parsedReport = toReport(relativePath, parsed, [], checkedAt)
      const report = { ...parsedReport, errors: [...parsedReport.errors, notApplied] }
      // No hash: the next rescan reads and applies the file again.
      this.files.set(relativePath, { hash: undefined, revisit: false, report, announced: previous?.announced ?? '' })
    }
  }

  private async refuseFile(relativePath: string, message: string): Promise<void> {
    // What the file declared before stays as it was: unreadable is not deleted.
    this.pendingRemovals.delete(relativePath)
    const report: SpecFileReport = { path: relativePath, status: 'refused', plugins: [], errors: [{ message }], checkedAt: this.timestamp() }
    const tracked: TrackedFile = { hash: undefined, revisit: false, report, announced: this.files.get(relativePath)?.announced ?? '' }
    this.files.set(relativePath, tracked)
    await this.announce(tracked, undefined, { parseErrors: [], conflicts: [], conflictNames: [], namesByDocument: [] })
  }

  private async removeFile(relativePath: string): Promise<void> {
    if (!this.isKnown(relativePath)) return
    try {
      const removed = await requestDeletionOfUndeclared(this.options.store, fileSource(relativePath), new Set(), this.logger)
      this.logger.info({ file: relativePath, plugins: removed }, `spec file ${relativePath} was deleted; deletion requested for ${removed.length} plugin(s)`)
      this.pendingRemovals.delete(relativePath)
    } catch (error) {
      this.logger.warn({ err: error, file: relativePath }, `could not uninstall the plugins of deleted spec file ${relativePath}; retrying at the next rescan`)
      this.pendingRemovals.add(relativePath)
    }
    this.files.delete(relativePath)
  }

  private async announce(tracked: TrackedFile, hash: string | undefined, problems: FileProblems): Promise<void> {
    // The same content with the same outcome was told already (a rescan, or a conflict looked at again).
    const signature = problemSignature(tracked.report, hash)
    if (tracked.announced === signature) return
    tracked.announced = signature
    await announceProblems(
      { store: this.options.store, events: this.options.events, logger: this.logger, clock: this.options.clock },
      { report: tracked.report, problems },
    )
  }

  private onDirRemoved(removedDir: string): void {
    const prefix = `${removedDir}/`
    for (const relativePath of this.files.keys()) if (relativePath.startsWith(prefix)) this.scheduleSync(relativePath)
  }

  private scheduleSync(relativePath: string): void {
    // Several events for one file while it waits in the queue need one read.
    if (this.stopped || this.pendingSyncs.has(relativePath)) return
    this.pendingSyncs.add(relativePath)
    void this.serialize(async () => {
      this.pendingSyncs.delete(relativePath)
      const realDir = await this.realDir()
      if (realDir !== undefined && !this.stopped) await this.syncFile(relativePath, realDir)
    })
  }

  private serialize(task: () => Promise<void>): Promise<void> {
    // Tasks handle their own expected failures; this catches the unexpected so the chain goes on.
    const run = this.queue.then(task).catch((error: unknown) => this.logger.error({ err: error }, 'spec folder sync failed unexpectedly'))
    this.queue = run
    return run
  }

  private async realDir(): Promise<string | undefined> {
    try {
      return await fs.realpath(this.dir)
    } catch (error) {
      this.logger.warn({ err: error }, 'the spec folder cannot be resolved; nothing is applied or removed until it exists')
      return undefined
    }
  }

  private isKnown(relativePath: string): boolean {
    return this.files.has(relativePath) || this.pendingRemovals.has(relativePath)
  }

  private timestamp(): string {
    return new Date(this.options.clock.now()).toISOString()
  }
}

/** One report per file however many of its documents fail: the first errors, and how many more there are. */
function toReport(relativePath: string, parsed: ParsedSpecText, conflicts: SpecFileError[], checkedAt: string): SpecFileReport {
  const status = parsed.errors.length > 0 ? 'invalid' : conflicts.length > 0 ? 'conflict' : 'ok'
  return { path: relativePath, status, plugins: parsed.names, ...cappedErrors([...parsed.errors, ...conflicts]), checkedAt }
}
