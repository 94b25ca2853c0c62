// The spec folder on disk: which files count as spec files, listing them, and reading one
// safely (inside the folder, size-capped, UTF-8). No knowledge of plugins or the store.
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { MAX_SPEC_FILE_BYTES } from '../spec/parse-yaml.js'

const SPEC_EXTENSION = /\.ya?ml$/i

/**
 * Whether a path relative to the folder ('/' separators) is a spec file name. Hidden files
 * and folders are skipped: editors keep their swap and backup copies there, and `.git` lives
 * there.
 */
export function isSpecFilePath(relativePath: string): boolean {
  if (relativePath === '' || isHiddenPath(relativePath)) return false
  return SPEC_EXTENSION.test(relativePath)
}

export function isHiddenPath(relativePath: string): boolean {
  return relativePath.split('/').some((segment) => segment.startsWith('.') && segment !== '.')
}

/** `team/crypto.yaml` for <dir>/team/crypto.yaml, on any platform. */
export function toRelativePath(dir: string, absolutePath: string): string {
  return path.relative(dir, absolutePath).split(path.sep).join('/')
}

export interface SpecFileListing {
  /** Relative paths, sorted, so that files are applied in a repeatable order. */
  files: string[]
  /** Folders that could not be read: their files are unknown, not gone. */
  unreadableDirs: string[]
}

/**
 * Every spec file below `dir`. Symlinked folders are not descended into (they could lead
 * outside or loop); symlinked files are listed and checked by readSpecFile. Throws when
 * `dir` itself cannot be read, so that a missing folder never looks like deleted files.
 */
export async function listSpecFiles(dir: string): Promise<SpecFileListing> {
  const listing: SpecFileListing = { files: [], unreadableDirs: [] }
  await fs.readdir(dir) // the folder itself must be readable; its errors go to the caller
  await walk(dir, '', listing)
  listing.files.sort()
  return listing
}

async function walk(dir: string, relativeDir: string, listing: SpecFileListing): Promise<void> {
  let entries
  try {
    entries = await fs.readdir(path.join(dir, relativeDir), { withFileTypes: true })
  } catch (error) {
    // A folder removed while walking is simply gone; any other failure means "unknown".
    if (errorCode(error) === 'ENOENT') return
    listing.unreadableDirs.push(relativeDir)
    return
  }
  for (const entry of entries) {
    const relativePath = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`
    if (isHiddenPath(entry.name)) continue
    if (entry.isDirectory()) await walk(dir, relativePath, listing)
    else if ((entry.isFile() || entry.isSymbolicLink()) && isSpecFilePath(relativePath)) listing.files.push(relativePath)
  }
}

export type SpecFileRead =
  | { kind: 'text'; text: string }
  /** Not there (deleted, a dangling symlink, or no longer a regular file). */
  | { kind: 'missing' }
  /** Modified more recently than `settledBefore`: probably still being written. */
  | { kind: 'unsettled' }
  | { kind: 'refused'; message: string }

export interface ReadOptions {
  /** The folder's real path (symlinks resolved): files must resolve inside it. */
  realDir: string
  /** Wall-clock ms: a file modified after this is reported `unsettled` instead of read. Default: no check. */
  settledBefore?: number
}

/** Reads one spec file, refusing what must not be parsed. Never throws. */
export async function readSpecFile(dir: string, relativePath: string, options: ReadOptions): Promise<SpecFileRead> {
  const resolved = await resolveInside(path.join(dir, relativePath), options.realDir)
  if (resolved.kind !== 'path') return resolved
  let stats
  try {
    stats = await fs.stat(resolved.path)
  } catch (error) {
    return errorCode(error) === 'ENOENT' ? { kind: 'missing' } : { kind: 'refused', message: `could not read the file: ${describe(error)}` }
  }
  if (!stats.isFile()) return { kind: 'missing' }
  if (stats.size > MAX_SPEC_FILE_BYTES) return tooLarge(stats.size)
  if (options.settledBefore !== undefined && stats.mtimeMs > options.settledBefore) return { kind: 'unsettled' }
  let bytes: Buffer
  try {
    bytes = await fs.readFile(resolved.path)
  } catch (error) {
    return errorCode(error) === 'ENOENT' ? { kind: 'missing' } : { kind: 'refused', message: `could not read the file: ${describe(error)}` }
  }
  // It may have grown between stat and read.
  if (bytes.length > MAX_SPEC_FILE_BYTES) return tooLarge(bytes.length)
  try {
    return { kind: 'text', text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) }
  } catch (error) {
    return { kind: 'refused', message: `the file is not UTF-8 text: ${describe(error)}` }
  }
}

async function resolveInside(
  absolutePath: string,
  realDir: string,
): Promise<{ kind: 'path'; path: string } | { kind: 'missing' } | { kind: 'refused'; message: string }> {
  let realPath: string
  try {
    realPath = await fs.realpath(absolutePath)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return { kind: 'missing' }
    return { kind: 'refused', message: `could not resolve the path: ${describe(error)}` }
  }
  // The target is not named: the API shows this message and the target may be anywhere on the host.
  if (!isInside(realDir, realPath)) return { kind: 'refused', message: 'the path leads outside the spec folder (a symlink?); ignored' }
  return { kind: 'path', path: realPath }
}

export function isInside(dir: string, candidate: string): boolean {
  const relative = path.relative(dir, candidate)
  const escapes = relative === '..' || relative.startsWith(`..${path.sep}`)
  return relative !== '' && !escapes && !path.isAbsolute(relative)
}

function tooLarge(size: number): SpecFileRead {
  return { kind: 'refused', message: `the file is ${size} bytes; spec files may be at most ${MAX_SPEC_FILE_BYTES} bytes (1 MiB); not parsed` }
}

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function describe(error: unknown): string {
  return errorCode(error) ?? (error instanceof Error ? error.message : String(error))
}
