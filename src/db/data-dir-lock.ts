// PGlite has no lock on its data folder: two processes opening it corrupt it. We hold a
// lock file (like postmaster.pid) and refuse a second process with the holder's pid.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import path from 'node:path'
import { procStatFields } from '../util/proc-stat.js'
import { DataDirLockedError } from './errors.js'

export const LOCK_FILE_NAME = 'flowforge.lock'

interface LockContent {
  pid: number
  /** Start time of the process in clock ticks since boot (/proc/PID/stat), when known. */
  startTicks?: number
  createdAt: string
}

export interface DataDirLock {
  readonly path: string
  release(): void
}

export interface LockProbe {
  /** Whether `pid` is a live process that started at `startTicks` (if given). */
  isAlive(pid: number, startTicks?: number): boolean
  ownPid: number
  ownStartTicks(): number | undefined
}

export const systemLockProbe: LockProbe = {
  ownPid: process.pid,
  ownStartTicks: () => processStartTicks(process.pid),
  isAlive(pid, startTicks) {
    try {
      process.kill(pid, 0)
    } catch (error) {
      // EPERM: it exists but belongs to someone else.
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false
    }
    // A reused pid (common in containers, where we are often pid 1) is not the holder.
    if (startTicks === undefined) return true
    const actual = processStartTicks(pid)
    return actual === undefined || actual === startTicks
  },
}

/**
 * Takes the lock on `dataDir` or throws DataDirLockedError naming the folder and the pid
 * holding it. A lock left behind by a dead process (kill -9, power loss) is taken over.
 */
export function acquireDataDirLock(dataDir: string, probe: LockProbe = systemLockProbe): DataDirLock {
  const lockPath = path.join(dataDir, LOCK_FILE_NAME)
  const content: LockContent = {
    pid: probe.ownPid,
    startTicks: probe.ownStartTicks(),
    createdAt: new Date().toISOString(),
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    if (tryCreate(lockPath, content)) return makeLock(lockPath, content)
    const holder = readLock(lockPath)
    if (holder === 'missing') continue
    if (holder !== 'unreadable' && holdsLock(holder, probe)) {
      throw new DataDirLockedError(
        `data dir ${dataDir} is in use by another process (pid ${holder.pid}, lock ${lockPath}); ` +
          `only one process may open an embedded database. Stop that process, or point DATA_DIR elsewhere.`,
      )
    }
    // Stale (dead holder), or a half-written file from a crash during creation.
    try {
      unlinkSync(lockPath)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
  }
  throw new DataDirLockedError(`could not take the lock ${lockPath}: another process keeps taking it`)
}

/**
 * Whether the process named in the lock still runs. Our own pid counts as a holder only if
 * it is really this process (same start time): this process opened the dir already. A
 * previous incarnation with the same pid (pid 1 in a container) left a stale lock.
 */
function holdsLock(holder: LockContent, probe: LockProbe): boolean {
  if (holder.pid === probe.ownPid) {
    const ownTicks = probe.ownStartTicks()
    return holder.startTicks === undefined || ownTicks === undefined || holder.startTicks === ownTicks
  }
  return probe.isAlive(holder.pid, holder.startTicks)
}

function tryCreate(lockPath: string, content: LockContent): boolean {
  let fd: number
  try {
    fd = openSync(lockPath, 'wx', 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
  try {
    writeSync(fd, JSON.stringify(content) + '\n')
  } finally {
    closeSync(fd)
  }
  return true
}

function readLock(lockPath: string): LockContent | 'missing' | 'unreadable' {
  let text: string
  try {
    text = readFileSync(lockPath, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing'
    throw error
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockContent>
    if (typeof parsed.pid !== 'number') return 'unreadable'
    return { pid: parsed.pid, startTicks: parsed.startTicks, createdAt: String(parsed.createdAt) }
  } catch {
    return 'unreadable'
  }
}

function makeLock(lockPath: string, content: LockContent): DataDirLock {
  let released = false
  return {
    path: lockPath,
    release() {
      if (released) return
      released = true
      // Only remove the file if it is still ours.
      const current = readLock(lockPath)
      if (current !== 'missing' && current !== 'unreadable' && current.pid === content.pid) {
        try {
          unlinkSync(lockPath)
        } catch (error) {
          // Already gone is fine: there is nothing left to release.
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
        }
      }
    },
  }
}

/** Field 22 of /proc/PID/stat; undefined where there is no procfs. */
function processStartTicks(pid: number): number | undefined {
  const ticks = Number(procStatFields(pid)?.[19])
  return Number.isFinite(ticks) ? ticks : undefined
}
