// The spec folder on disk: which files count as spec files, listing them, and reading one
// safely (inside the folder, a regular file, size-capped, UTF-8, whatever is swapped in
// while it is read). No knowledge of plugins or the store.
import { constants, promises as fs } from 'node:fs'
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
  /** The file system calls used; tests inject one that changes the folder between them. Default node:fs. */
  fileSystem?: SpecFileSystem
}

/** What readSpecFile asks of the file system. */
export interface SpecFileSystem {
  realpath(path: string): Promise<string>
  open(path: string, flags: number): Promise<fs.FileHandle>
  /** The path an open descriptor refers to now; undefined where the platform cannot say. */
  pathOfDescriptor(fd: number): Promise<string | undefined>
}

export const nodeFileSystem: SpecFileSystem = {
  realpath: (file) => fs.realpath(file),
  open: (file, flags) => fs.open(file, flags),
  pathOfDescriptor: async (fd) => {
    try {
      return await fs.readlink(`/proc/self/fd/${fd}`)
    } catch {
      return undefined
    }
  },
}

/**
 * O_NOFOLLOW: a symlink swapped in after the path was resolved is not followed (ELOOP).
 * O_NONBLOCK: a FIFO swapped in opens at once instead of waiting for a writer for ever; it
 * is then found not to be a regular file. Regular files ignore O_NONBLOCK.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK
const READ_CHUNK_BYTES = 64 * 1024

/**
 * Reads one spec file, refusing what must not be parsed. Never throws. Open, then check:
 * every check is made on the opened file (fstat, the descriptor's own path), so nothing
 * swapped in between a check and the read is read: a symlink to outside the folder, a
 * FIFO, a file that grew past the size cap (the read stops one byte past it).
 */
export async function readSpecFile(dir: string, relativePath: string, options: ReadOptions): Promise<SpecFileRead> {
  const files = options.fileSystem ?? nodeFileSystem
  const resolved = await resolveInside(files, path.join(dir, relativePath), options.realDir)
  if (resolved.kind !== 'path') return resolved
  let handle: fs.FileHandle
  try {
    handle = await files.open(resolved.path, OPEN_FLAGS)
  } catch (error) {
    const code = errorCode(error)
    if (code === 'ENOENT') return { kind: 'missing' }
    // The last part of the path became a symlink since it was resolved: not followed.
    if (code === 'ELOOP') return { kind: 'refused', message: 'the file was replaced by a symlink while it was read; ignored' }
    return { kind: 'refused', message: `could not read the file: ${describe(error)}` }
  }
  try {
    return await readOpened(files, handle, options)
  } catch (error) {
    return errorCode(error) === 'ENOENT' ? { kind: 'missing' } : { kind: 'refused', message: `could not read the file: ${describe(error)}` }
  } finally {
    await handle.close().catch(() => undefined)
  }
}

async function readOpened(files: SpecFileSystem, handle: fs.FileHandle, options: ReadOptions): Promise<SpecFileRead> {
  // A folder on the way swapped for a symlink (O_NOFOLLOW guards only the last part): where
  // the descriptor really is decides.
  const openedPath = await files.pathOfDescriptor(handle.fd)
  if (openedPath !== undefined) {
    if (openedPath.endsWith(' (deleted)')) return { kind: 'missing' }
    if (!isInside(options.realDir, openedPath)) return outsideTheFolder()
  }
  const stats = await handle.stat()
  if (!stats.isFile()) return { kind: 'missing' }
  if (stats.size > MAX_SPEC_FILE_BYTES) return tooLarge(stats.size)
  if (options.settledBefore !== undefined && stats.mtimeMs > options.settledBefore) return { kind: 'unsettled' }
  const bytes = await readAtMost(handle, MAX_SPEC_FILE_BYTES + 1)
  // It grew since fstat: nothing past one byte over the cap was read.
  if (bytes.length > MAX_SPEC_FILE_BYTES) return { kind: 'refused', message: `the file grew past ${MAX_SPEC_FILE_BYTES} bytes (1 MiB) while it was read; not parsed` }
  try {
    return { kind: 'text', text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) }
  } catch (error) {
    return { kind: 'refused', message: `the file is not UTF-8 text: ${describe(error)}` }
  }
}

/** At most `limit` bytes from the start of the file, however long it is by now. */
async function readAtMost(handle: fs.FileHandle, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let total = 0
  while (total < limit) {
    const chunk = Buffer.alloc(Math.min(READ_CHUNK_BYTES, limit - total))
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, total)
    if (bytesRead === 0) break
    chunks.push(chunk.subarray(0, bytesRead))
    total += bytesRead
  }
  return Buffer.concat(chunks, total)
}

async function resolveInside(
  files: SpecFileSystem,
  absolutePath: string,
  realDir: string,
): Promise<{ kind: 'path'; path: string } | { kind: 'missing' } | { kind: 'refused'; message: string }> {
  let realPath: string
  try {
    realPath = await files.realpath(absolutePath)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return { kind: 'missing' }
    return { kind: 'refused', message: `could not resolve the path: ${describe(error)}` }
  }
  if (!isInside(realDir, realPath)) return outsideTheFolder()
  return { kind: 'path', path: realPath }
}

// The target is not named: the API shows this message and the target may be anywhere on the host.
function outsideTheFolder(): { kind: 'refused'; message: string } {
  return { kind: 'refused', message: 'the path leads outside the spec folder (a symlink?); ignored' }
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
