// Reading a spec file while someone changes the folder under it: each change is made between
// the path's resolution and the open (or between fstat and the read), the moment a
// check-then-use reader would be fooled, through the injected file system.
import { execFile } from 'node:child_process'
import type { FileHandle } from 'node:fs/promises'
import { appendFile, mkdir, mkdtemp, realpath, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { nodeFileSystem, readSpecFile, type SpecFileSystem } from '../../src/sources/spec-files.js'
import { MAX_SPEC_FILE_BYTES } from '../../src/spec/parse-yaml.js'

const execFileAsync = promisify(execFile)
const SPEC = 'apiVersion: flowforge.io/v1\nkind: Plugin\nmetadata: { name: inside }\nspec: { manifest: { image: x/y:1, port: 80 } }\n'
const OUTSIDE_SPEC = SPEC.replace('inside', 'outside')

describe('reading a spec file that changes under the reader', () => {
  let dir: string
  let realDir: string
  let outsideDir: string

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ff-spec-race-'))
    realDir = await realpath(dir)
    outsideDir = await mkdtemp(path.join(tmpdir(), 'ff-spec-race-outside-'))
    await writeFile(path.join(outsideDir, 'a.yaml'), OUTSIDE_SPEC)
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
    await rm(outsideDir, { recursive: true, force: true })
  })

  /** The real file system, with `change` run right after the path is resolved. */
  const changedAfterResolve = (change: () => Promise<void>): SpecFileSystem => ({
    ...nodeFileSystem,
    realpath: async (file) => {
      const resolved = await nodeFileSystem.realpath(file)
      await change()
      return resolved
    },
  })

  test('a symlink to outside the folder swapped in after the check is not followed', async () => {
    const file = path.join(dir, 'a.yaml')
    await writeFile(file, SPEC)
    const fileSystem = changedAfterResolve(async () => {
      await unlink(file)
      await symlink(path.join(outsideDir, 'a.yaml'), file)
    })
    const read = await readSpecFile(dir, 'a.yaml', { realDir, fileSystem })
    expect(read).toEqual({ kind: 'refused', message: 'the file was replaced by a symlink while it was read; ignored' })
  })

  test('a folder on the way swapped for a symlink to outside after the check: the opened file is outside, so refused', async () => {
    await mkdir(path.join(dir, 'team'))
    await writeFile(path.join(dir, 'team', 'a.yaml'), SPEC)
    const fileSystem = changedAfterResolve(async () => {
      await rename(path.join(dir, 'team'), path.join(dir, 'team-old'))
      await symlink(outsideDir, path.join(dir, 'team'))
    })
    const read = await readSpecFile(dir, 'team/a.yaml', { realDir, fileSystem })
    expect(read).toEqual({ kind: 'refused', message: 'the path leads outside the spec folder (a symlink?); ignored' })
  })

  test('a FIFO swapped in after the check does not block the reader: it is no regular file', async () => {
    const file = path.join(dir, 'a.yaml')
    await writeFile(file, SPEC)
    const fileSystem = changedAfterResolve(async () => {
      await unlink(file)
      await execFileAsync('mkfifo', [file])
    })
    // Without O_NONBLOCK the open waits for a writer for ever (and this test times out).
    expect(await readSpecFile(dir, 'a.yaml', { realDir, fileSystem })).toEqual({ kind: 'missing' })
  }, 10_000)

  test('a FIFO in the folder from the start is not read and does not block', async () => {
    await execFileAsync('mkfifo', [path.join(dir, 'pipe.yaml')])
    expect(await readSpecFile(dir, 'pipe.yaml', { realDir })).toEqual({ kind: 'missing' })
  }, 10_000)

  test('a file that grows past 1 MiB after fstat is refused, and no more than 1 MiB and a byte of it is read', async () => {
    const file = path.join(dir, 'a.yaml')
    await writeFile(file, SPEC)
    let bytesRead = 0
    const fileSystem: SpecFileSystem = {
      ...nodeFileSystem,
      open: async (target, flags) => {
        const handle = await nodeFileSystem.open(target, flags)
        return new Proxy(handle, {
          get(real, property, receiver) {
            if (property === 'stat') {
              return async () => {
                const stats = await real.stat()
                await appendFile(file, Buffer.alloc(8 * MAX_SPEC_FILE_BYTES, 0x61))
                return stats
              }
            }
            if (property === 'read') {
              return async (...args: Parameters<FileHandle['read']>) => {
                const result = await (real.read as (...a: unknown[]) => Promise<{ bytesRead: number }>)(...args)
                bytesRead += result.bytesRead
                return result
              }
            }
            const value = Reflect.get(real, property, receiver) as unknown
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(real) : value
          },
        })
      },
    }
    const read = await readSpecFile(dir, 'a.yaml', { realDir, fileSystem })
    expect(read).toEqual({ kind: 'refused', message: `the file grew past ${MAX_SPEC_FILE_BYTES} bytes (1 MiB) while it was read; not parsed` })
    expect(bytesRead).toBe(MAX_SPEC_FILE_BYTES + 1)
  })

  test('a symlink inside the folder to a file inside is still read; one to outside is refused', async () => {
    await writeFile(path.join(dir, 'real.yaml'), SPEC)
    await symlink(path.join(dir, 'real.yaml'), path.join(dir, 'alias.yaml'))
    await symlink(path.join(outsideDir, 'a.yaml'), path.join(dir, 'escape.yaml'))
    expect(await readSpecFile(dir, 'alias.yaml', { realDir })).toEqual({ kind: 'text', text: SPEC })
    expect(await readSpecFile(dir, 'escape.yaml', { realDir })).toMatchObject({ kind: 'refused', message: expect.stringContaining('outside the spec folder') })
  })
})
