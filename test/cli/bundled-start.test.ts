// forgectl's entry runs the one-file build of the CLI (dist/bundle/, scripts/bundle-daemon.mjs)
// only when that build is not older than the entry itself, and the build is the same CLI.
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { root } from '../helpers/forgectl.js'

const execFileAsync = promisify(execFile)

async function node(args: string[], cwd = root): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, args, { cwd, timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' }
  }
}

describe('the bundled forgectl', () => {
  let work: string

  beforeAll(async () => {
    // npm start's prestart: dist/ and dist/bundle/ up to date.
    const built = await node([path.join(root, 'scripts', 'build-if-stale.mjs')])
    expect(built.code, built.stderr).toBe(0)
    work = await mkdtemp(path.join(tmpdir(), 'ff-bundled-start-'))
  }, 180_000)

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true })
  })

  test('runs the bundle when it is as new as the entry, the modules when it is older or missing', async () => {
    // The real entry, beside stand-ins that say which of them ran.
    await mkdir(path.join(work, 'dist', 'src', 'cli'), { recursive: true })
    await mkdir(path.join(work, 'dist', 'bundle'), { recursive: true })
    await writeFile(path.join(work, 'package.json'), '{ "type": "module" }\n')
    const entry = path.join(work, 'dist', 'src', 'cli', 'forgectl.js')
    const bundle = path.join(work, 'dist', 'bundle', 'forgectl.mjs')
    await cp(path.join(root, 'dist', 'src', 'cli', 'forgectl.js'), entry)
    await writeFile(path.join(work, 'dist', 'src', 'cli', 'dispatch.js'), "console.log('modules')\n")
    await writeFile(bundle, "console.log('bundle')\n")
    const now = Date.now() / 1000
    await utimes(entry, now, now)
    await utimes(bundle, now + 1, now + 1)
    expect((await node([entry], work)).stdout.trim()).toBe('bundle')
    // dist/src compiled again after the bundle was made (tsc alone): the bundle may be other code.
    await utimes(bundle, now - 10, now - 10)
    expect((await node([entry], work)).stdout.trim()).toBe('modules')
    await rm(bundle)
    expect((await node([entry], work)).stdout.trim()).toBe('modules')
  })

  test('is the same CLI: usage, and a usage error of serve with its exit code and hint', async () => {
    const viaBundle = await node([path.join(root, 'dist', 'bundle', 'forgectl.mjs'), 'serve', '--bogus'])
    const viaModules = await node([path.join(root, 'dist', 'src', 'cli', 'dispatch.js'), 'serve', '--bogus'])
    expect(viaBundle).toEqual(viaModules)
    expect(viaBundle.code).toBe(2)
    expect(viaBundle.stderr).toContain("Run 'forgectl serve --help' for usage.")
    expect((await node([path.join(root, 'dist', 'bundle', 'forgectl.mjs'), '--help'])).stdout).toBe((await node([path.join(root, 'dist', 'src', 'cli', 'dispatch.js'), '--help'])).stdout)
  })
})
