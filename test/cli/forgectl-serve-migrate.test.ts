// forgectl serve and migrate as an operator runs them: real processes, real exit codes,
// what they print.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, test } from 'vitest'
import { forgectlCommand, root } from '../helpers/forgectl.js'
import { LOCK_FILE_NAME } from '../../src/db/data-dir-lock.js'
import { createServerDatabase, postgresUrl } from '../helpers/databases.js'

const execFileAsync = promisify(execFile)

interface RunResult {
  code: number
  stdout: string
  stderr: string
}

/** Runs a command with only the given variables (plus PATH and HOME), never the caller's DATABASE_URL. */
async function run(command: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args, { cwd: root, env: cleanEnv(env), timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' }
  }
}

function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...env }
}

function forgectlRun(args: string[], env: Record<string, string>): Promise<RunResult> {
  const [command, commandArgs] = forgectlCommand(...args)
  return run(command, commandArgs, env)
}

function logLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

function expectNoStackTrace(result: RunResult): void {
  expect(result.stdout + result.stderr).not.toMatch(/\n\s+at .+\(.+:\d+:\d+\)/)
}

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('forgectl migrate', () => {
  test('npm run migrate twice on the embedded default: both succeed, the second changes nothing', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'ff-cli-'))
    const first = await run('npm', ['run', '--silent', 'migrate'], { DATA_DIR: dataDir })
    expect(first.code).toBe(0)
    // Every file of migrations/, in order.
    const files = (await readdir(path.join(root, 'migrations'))).filter((name) => name.endsWith('.sql')).sort()
    expect(logLines(first.stdout).map((line) => line.msg)).toContain(`applied ${files.length} migration(s): ${files.join(', ')}`)
    const second = await run('npm', ['run', '--silent', 'migrate'], { DATA_DIR: dataDir })
    expect(second.code).toBe(0)
    expect(logLines(second.stdout).map((line) => line.msg)).toContain(
      `database schema is up to date (${files.length} migrations applied earlier); nothing to do`,
    )
    expect(existsSync(path.join(dataDir, LOCK_FILE_NAME))).toBe(false)
  })

  test.runIf(postgresUrl)('migrates a real server twice, the second time as a no-op', async () => {
    const database = await createServerDatabase()
    try {
      const env = { DATABASE_URL: database.connectionString }
      expect((await forgectlRun(['migrate'], env)).code).toBe(0)
      const second = await forgectlRun(['migrate'], env)
      expect(second.code).toBe(0)
      expect(second.stdout).toContain('nothing to do')
    } finally {
      await database.drop()
    }
  })

  test('a bad setting exits 1 with one line naming it', async () => {
    const result = await forgectlRun(['migrate'], { DB_POOL_MAX: 'many', DATA_DIR: '/nonexistent/never-created' })
    expect(result.code).toBe(1)
    expect(result.stderr.trim()).toBe('forgectl: invalid configuration: DB_POOL_MAX must be a whole number from 1 to 1000, got "many"')
  })

  test('an unreachable server is retried until the deadline, then exits 1 with a clear line', async () => {
    const result = await forgectlRun(['migrate'], {
      DATABASE_URL: 'postgresql://flowforge:secret@127.0.0.1:1/flowforge',
      DB_CONNECT_DEADLINE: '2s',
    })
    expect(result.code).toBe(1)
    const lines = logLines(result.stdout)
    const retries = lines.filter((line) => String(line.msg).includes('is not reachable'))
    expect(retries.length).toBeGreaterThanOrEqual(2)
    const fatal = lines.find((line) => line.level === 60)
    expect(fatal?.msg).toMatch(/^could not connect to Postgres at postgresql:\/\/flowforge:\*\*\*@127\.0\.0\.1:1\/flowforge within 2 s/)
    expect(result.stdout + result.stderr).not.toContain('secret')
    expectNoStackTrace(result)
  })

  test('an unknown command is a usage error', async () => {
    const result = await forgectlRun(['frobnicate'], {})
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('unknown command "frobnicate"')
  })
})

describe('forgectl serve on the embedded default', () => {
  let daemon: ChildProcess | undefined
  afterEach(() => {
    daemon?.kill('SIGKILL')
    daemon = undefined
  })

  test('serves SQL to psql, refuses a second process on its data dir, and stops cleanly on SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'ff-serve-'))
    const sqlPort = await freePort()
    const specsDir = await mkdtemp(path.join(tmpdir(), 'ff-specs-'))
    const env = { DATA_DIR: dataDir, SQL_PORT: String(sqlPort), PORT: String(await freePort()), SPECS_DIR: specsDir, MANAGER_INSTANCE: 'cli-test' }
    const [command, args] = forgectlCommand('serve')
    const child = spawn(command, args, { cwd: root, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
    daemon = child
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))

    const deadline = Date.now() + 30_000
    while (!output.includes('FlowForge plugin manager started')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`serve did not start:\n${output}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(output).toContain(`using the embedded Postgres (PGlite) in ${dataDir}`)
    expect(output).toContain(`psql -h 127.0.0.1 -p ${sqlPort} -U postgres`)

    // The password is generated into the data dir at the first start; the log names the file, never the password.
    const password = (await readFile(path.join(dataDir, 'sql-password'), 'utf8')).trim()
    expect(output).toContain(`password in ${path.join(dataDir, 'sql-password')}`)
    expect(output).not.toContain(password)
    const refused = await run('psql', ['-h', '127.0.0.1', '-p', String(sqlPort), '-U', 'postgres', '-d', 'postgres', '-w', '-c', '\\dt'], {})
    expect(refused.code).not.toBe(0)
    const psql = await run('psql', ['-h', '127.0.0.1', '-p', String(sqlPort), '-U', 'postgres', '-d', 'postgres', '-c', '\\dt'], { PGPASSWORD: password })
    expect(psql.code).toBe(0)
    for (const table of ['plugins', 'plugin_events', 'plugin_metrics']) expect(psql.stdout).toMatch(new RegExp(`${table}\\s+\\| table`))

    const second = await forgectlRun(['migrate'], env)
    expect(second.code).toBe(1)
    expect(logLines(second.stdout).find((line) => line.level === 60)?.msg).toMatch(
      new RegExp(`data dir ${dataDir} is in use by another process \\(pid \\d+`),
    )
    expectNoStackTrace(second)

    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(output).toContain('FlowForge plugin manager stopped')
    expect(existsSync(path.join(dataDir, LOCK_FILE_NAME))).toBe(false)
  })
})
