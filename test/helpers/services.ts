// The services under the daemon, controlled by the fault-injection suite: the Docker engine
// (stopped, started, frozen with SIGSTOP) and the Postgres cluster (stopped, started,
// restarted with pg_ctlcluster), and single database connections cut by application_name.
// Needs root, like CI. A test that disturbs a service calls restoreDockerd() or
// restorePostgres() in its afterEach, so a failure never leaves a service down for the
// tests after it; both are harmless when the service is already up.
import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { procStatFields, processCpuSeconds as cpuSecondsOf } from '../../src/util/proc-stat.js'
import { adminQuery, eventually, postgresUrl } from './databases.js'
import { execFileAsync } from './docker.js'

const DOCKER_SOCKET = '/var/run/docker.sock'
const DOCKERD_PID_FILE = '/var/run/docker.pid'
/** Where a dockerd started by the suite writes; it outlives the test process. */
export const DOCKERD_LOG = '/tmp/ff-dockerd.log'

/**
 * stdio entries for descriptors 3..31 of a server the suite starts: /dev/null instead of
 * whatever the test process inherited. A lock file held open by whoever started the tests
 * (`flock`) would otherwise be inherited by dockerd or postgres and held as long as they run.
 */
const NO_INHERITED_FDS = Array<'ignore'>(29).fill('ignore')
/** The cluster CI installs (.ci/run): Debian's PostgreSQL 15, cluster "main". */
const PG_CLUSTER = ['15', 'main']

/** Whether this machine lets the suite stop and start services (root, dockerd, pg_ctlcluster). */
export async function canControlServices(): Promise<{ ok: boolean; reason: string }> {
  if (process.getuid?.() !== 0) return { ok: false, reason: 'service control needs root' }
  for (const command of ['dockerd', 'pg_ctlcluster']) {
    const found = await execFileAsync('sh', ['-c', `command -v ${command}`]).then(
      () => true,
      () => false,
    )
    if (!found) return { ok: false, reason: `${command} is not installed` }
  }
  return { ok: true, reason: 'root, dockerd and pg_ctlcluster' }
}

// --- Docker engine ----------------------------------------------------------------------

/** The running dockerd's pid, or undefined when there is none. */
export async function dockerdPid(): Promise<number | undefined> {
  const fromFile = Number((await readFile(DOCKERD_PID_FILE, 'utf8').catch(() => '')).trim())
  if (fromFile > 0 && (await processName(fromFile)) === 'dockerd') return fromFile
  // A dockerd whose pid file is missing (started by hand with another --pidfile).
  const { stdout } = await execFileAsync('pgrep', ['-x', 'dockerd']).catch(() => ({ stdout: '' }))
  for (const pid of stdout.split('\n').map(Number).filter((pid) => pid > 0)) {
    if ((await processName(pid)) === 'dockerd') return pid
  }
  return undefined
}

/** Whether `docker info` answers (within 10 s). */
export async function dockerAnswers(): Promise<boolean> {
  return execFileAsync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 10_000 }).then(
    () => true,
    () => false,
  )
}

/** SIGTERMs dockerd and waits until the process is gone (it stops the containers first). */
export async function stopDockerd(timeoutMs = 90_000): Promise<void> {
  const pid = await dockerdPid()
  if (pid === undefined) return
  await thawProcess(pid)
  process.kill(pid, 'SIGTERM')
  await eventually(async () => ((await processName(pid)) === undefined ? true : undefined), timeoutMs, `dockerd (pid ${pid}) to exit`)
}

/**
 * Starts dockerd detached, in its own session with its output in DOCKERD_LOG, so it keeps
 * running after the test process exits; resolves once the socket exists and `docker info`
 * answers. Does nothing when a dockerd already runs.
 */
export async function startDockerd(timeoutMs = 60_000): Promise<void> {
  if ((await dockerdPid()) === undefined) {
    const log = openSync(DOCKERD_LOG, 'a')
    try {
      const child = spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log, ...NO_INHERITED_FDS], env: { PATH: process.env.PATH, HOME: process.env.HOME } })
      child.unref()
    } finally {
      closeSync(log)
    }
  }
  await eventually(async () => (existsSync(DOCKER_SOCKET) && (await dockerAnswers()) ? true : undefined), timeoutMs, `dockerd to answer (log: ${DOCKERD_LOG})`)
}

/** SIGSTOPs dockerd: its socket still accepts connections, but nothing answers. */
export async function freezeDockerd(): Promise<number> {
  const pid = await dockerdPid()
  if (pid === undefined) throw new Error('no dockerd to freeze')
  process.kill(pid, 'SIGSTOP')
  await eventually(async () => ((await processState(pid)) === 'T' ? true : undefined), 5_000, `dockerd (pid ${pid}) to stop`)
  return pid
}

/** SIGCONTs a frozen dockerd. */
export async function thawDockerd(): Promise<void> {
  const pid = await dockerdPid()
  if (pid !== undefined) await thawProcess(pid)
}

/** afterEach/afterAll: dockerd thawed, running and answering, whatever the test did. */
export async function restoreDockerd(): Promise<void> {
  await thawDockerd()
  await startDockerd()
}

// --- Postgres ------------------------------------------------------------------------

/**
 * Runs a command that starts a long-lived server (pg_ctlcluster start/restart) with its
 * descriptors 3..31 replaced by /dev/null, like dockerd above.
 */
function runServerCommand(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe', ...NO_INHERITED_FDS] })
    let output = ''
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${output.trim()}`))))
  })
}

export async function postgresRunning(): Promise<boolean> {
  // Exit code 0: running; 3: not running.
  return execFileAsync('pg_ctlcluster', [...PG_CLUSTER, 'status']).then(
    () => true,
    () => false,
  )
}

/** Fast shutdown: open sessions are ended (57P01), as an operator's restart does. */
export async function stopPostgres(): Promise<void> {
  if (await postgresRunning()) await execFileAsync('pg_ctlcluster', [...PG_CLUSTER, 'stop', '-m', 'fast'])
}

export async function startPostgres(): Promise<void> {
  if (!(await postgresRunning())) await runServerCommand('pg_ctlcluster', [...PG_CLUSTER, 'start'])
  await waitForPostgres()
}

export async function restartPostgres(): Promise<void> {
  await runServerCommand('pg_ctlcluster', [...PG_CLUSTER, 'restart', '-m', 'fast'])
  await waitForPostgres()
}

/** afterEach/afterAll: the cluster running and accepting TEST_DATABASE_URL connections. */
export async function restorePostgres(): Promise<void> {
  await startPostgres()
}

/** Resolves once TEST_DATABASE_URL accepts a connection and a query. */
export async function waitForPostgres(timeoutMs = 60_000): Promise<void> {
  await eventually(
    () =>
      adminQuery('SELECT 1').then(
        () => true,
        () => sleep(100).then(() => undefined),
      ),
    timeoutMs,
    `Postgres at ${postgresUrl ?? '(TEST_DATABASE_URL unset)'} to accept connections`,
  )
}

/**
 * pg_terminate_backend for the sessions of one database with this application_name (the
 * daemon's: 'flowforge' for the pool, 'flowforge-listen' for LISTEN). Only that database:
 * other test files' daemons on the same server are left alone. Returns how many ended.
 */
export async function terminateBackends(database: string, applicationName: string): Promise<number> {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 5_000 })
  await client.connect()
  try {
    const result = await client.query<{ ended: boolean }>(
      'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = $1 AND application_name = $2',
      [database, applicationName],
    )
    return result.rows.filter((row) => row.ended).length
  } finally {
    await client.end()
  }
}

// --- Processes ------------------------------------------------------------------------

/** CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat. */
export async function processCpuSeconds(pid: number): Promise<number> {
  const seconds = cpuSecondsOf(pid)
  if (seconds === undefined) throw new Error(`no process ${pid}`)
  return seconds
}

async function thawProcess(pid: number): Promise<void> {
  if ((await processState(pid)) === 'T') process.kill(pid, 'SIGCONT')
}

/** The one-letter state of stat(5): R, S, D, T (stopped), Z; undefined when gone. */
async function processState(pid: number): Promise<string | undefined> {
  return procStatFields(pid)?.[0]
}

async function processName(pid: number): Promise<string | undefined> {
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => undefined)
  const state = await processState(pid)
  // A zombie has exited: only its parent has not collected it yet.
  return comm === undefined || state === 'Z' || state === undefined ? undefined : comm.trim()
}

