// Fault injection, cases 27-29 (the security issue; docs/reliability.md): a local user against the embedded SQL
// port of the daemon as a real process (`forgectl serve` on PGlite, the real Docker engine).
// The port is a superuser on the daemon's only database session: without the password it
// gives nothing, and with it a client can neither poison the daemon's session nor hold it
// for good. Neither dockerd nor Postgres is restarted here.
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { eventually } from '../helpers/databases.js'
import { buildTestImages, docker, probeEngine, requireEngineInCi } from '../helpers/docker.js'
import { keepOutputOnFailure, killAllManagers, spawnManager, waitForLog, type ManagerProcess } from '../helpers/manager-process.js'

const execFileAsync = promisify(execFile)
const engine = await probeEngine()
requireEngineInCi(engine)

const INSTANCE = 'faults-sql-port'
const IMAGE = 'flowforge-test/http:1'
const TRANSACTION_TIMEOUT_S = 5

describe.skipIf(!engine.reachable)('the embedded SQL port of the daemon process', () => {
  let dataDir: string
  let specsDir: string
  let manager: ManagerProcess
  let base: string
  let sqlPort: number
  let password: string
  const clients: pg.Client[] = []

  beforeAll(async () => {
    await buildTestImages()
    await removeInstanceContainers()
    dataDir = await mkdtemp(path.join(tmpdir(), 'ff-sql-port-data-'))
    specsDir = await mkdtemp(path.join(tmpdir(), 'ff-sql-port-specs-'))
    sqlPort = await freePort()
    manager = spawnManager({
      DATA_DIR: dataDir,
      SQL_PORT: String(sqlPort),
      SQL_TRANSACTION_TIMEOUT: `${TRANSACTION_TIMEOUT_S}s`,
      PORT: '0',
      SPECS_DIR: specsDir,
      MANAGER_INSTANCE: INSTANCE,
      HOST_PORT_RANGE: '5600-5649',
      STOP_TIMEOUT: '1',
      LOG_LEVEL: 'debug',
    })
    base = await manager.apiUrl()
    await waitForLog(manager, 'controller running', 1, 60_000)
    password = (await readFile(path.join(dataDir, 'sql-password'), 'utf8')).trim()
  }, 180_000)
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)))
    await killAllManagers()
    await removeInstanceContainers()
    for (const dir of [dataDir, specsDir]) if (dir) await rm(dir, { recursive: true, force: true })
  })

  async function connect(secret = password): Promise<pg.Client> {
    const client = new pg.Client({ host: '127.0.0.1', port: sqlPort, user: 'postgres', database: 'postgres', password: secret })
    client.on('error', () => undefined)
    await client.connect()
    clients.push(client)
    return client
  }

  function psql(sqlText: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
    return execFileAsync('psql', ['-h', '127.0.0.1', '-p', String(sqlPort), '-U', 'postgres', '-w', '-Atc', sqlText], { env: { PATH: process.env.PATH, ...env } }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? -1, stdout: error.stdout ?? '', stderr: error.stderr ?? '' }),
    )
  }

  async function put(name: string, environment: Record<string, string> = {}): Promise<Response> {
    return fetch(`${base}/api/v1/plugins/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        apiVersion: 'flowforge.io/v1',
        kind: 'Plugin',
        metadata: { name },
        spec: { manifest: { image: IMAGE, imagePullPolicy: 'Never', port: 8080 }, environment },
      }),
    })
  }

  async function plugin(name: string): Promise<{ metadata: { generation: number }; status: { phase: string; observedGeneration: number; containerId: string | null } }> {
    return (await (await fetch(`${base}/api/v1/plugins/${name}`)).json()) as never
  }

  async function convergedAt(name: string, generation: number): Promise<void> {
    await eventually(async () => {
      const current = await plugin(name)
      return current.status.phase === 'running' && current.status.observedGeneration === generation ? true : undefined
    }, 60_000, `${name} running generation ${generation}`)
  }

  test('without the password nothing reaches the database; the password file is 0600 and the log names it, never the password', async () => {
    keepOutputOnFailure(manager, 'sql-port-auth')
    expect((await stat(path.join(dataDir, 'sql-password'))).mode & 0o777).toBe(0o600)
    expect(manager.output()).toContain(`password in ${path.join(dataDir, 'sql-password')}`)
    expect(manager.output()).toContain(`psql -h 127.0.0.1 -p ${sqlPort} -U postgres`)
    expect(manager.output()).not.toContain(password)

    const noPassword = await psql('SELECT count(*) FROM plugins', {})
    expect(noPassword.code).not.toBe(0)
    const wrong = await psql('SELECT count(*) FROM plugins', { PGPASSWORD: 'guessed-password' })
    expect(wrong.stderr).toContain('password authentication failed for user "postgres"')
    // What the review did unauthenticated: declare any image, read secrets, point container_id at any container.
    const attack = await psql(`INSERT INTO plugins (forgehook_id, manifest, source) VALUES ('sql-intruder', '{"image":"attacker/root:1","port":80}', 'sql')`, { PGPASSWORD: '' })
    expect(attack.code).not.toBe(0)
    expect((await fetch(`${base}/api/v1/plugins/sql-intruder`)).status).toBe(404)

    const good = await psql('SELECT 40 + 2', { PGPASSWORD: password })
    expect(good).toMatchObject({ code: 0, stdout: '42\n' })
  })

  test('a client that sets session_replication_role = replica and default_transaction_read_only = on does not change the daemon\'s writes: they bump the generation, notify, and converge', async () => {
    expect((await put('sql-victim', { STEP: '1' })).status).toBe(201)
    await convergedAt('sql-victim', 1)
    const client = await connect()
    await client.query('ALTER ROLE postgres SET default_transaction_read_only = on')
    await client.query('SET session_replication_role = replica')
    await client.query('SET default_transaction_read_only = on')
    await client.query('UNLISTEN *')
    try {
      const changed = await put('sql-victim', { STEP: '2' })
      expect(changed.status).toBe(200)
      expect(((await changed.json()) as { metadata: { generation: number } }).metadata.generation).toBe(2)
      // The change reached the controller (a notification) and was rolled out.
      await convergedAt('sql-victim', 2)
      // The client still has its own settings.
      expect((await client.query('SHOW session_replication_role')).rows[0].session_replication_role).toBe('replica')
    } finally {
      await client.query('SET default_transaction_read_only = off')
      await client.query('ALTER ROLE postgres RESET default_transaction_read_only')
    }
  })

  test('settings a client left in the database (ALTER SYSTEM, ALTER ROLE) do not reach the daemon after a restart: it migrates, writes and converges', async () => {
    const client = await connect()
    // PGlite reads postgresql.auto.conf at its next start: every write of the daemon would fail.
    await client.query('ALTER SYSTEM SET default_transaction_read_only = on')
    await client.query('ALTER SYSTEM SET session_replication_role = replica')
    await client.query('ALTER ROLE postgres SET default_transaction_read_only = on')
    await client.end()
    manager.kill('SIGTERM')
    expect(await manager.exited).toBe(0)
    manager = spawnManager({
      DATA_DIR: dataDir,
      SQL_PORT: String(sqlPort),
      SQL_TRANSACTION_TIMEOUT: `${TRANSACTION_TIMEOUT_S}s`,
      PORT: '0',
      SPECS_DIR: specsDir,
      MANAGER_INSTANCE: INSTANCE,
      HOST_PORT_RANGE: '5600-5649',
      STOP_TIMEOUT: '1',
      LOG_LEVEL: 'debug',
    })
    keepOutputOnFailure(manager, 'sql-port-restart')
    base = await manager.apiUrl()
    await waitForLog(manager, 'controller running', 1, 60_000)
    try {
      const changed = await put('sql-victim', { STEP: '3' })
      expect(changed.status).toBe(200)
      await convergedAt('sql-victim', 3)
    } finally {
      const cleanup = await connect()
      await cleanup.query('ALTER SYSTEM RESET ALL')
      await cleanup.query('ALTER ROLE postgres RESET ALL')
    }
  })

  test(`a client that keeps a transaction open by sending a statement every second is ended after ${TRANSACTION_TIMEOUT_S} s and rolled back; the API, blocked meanwhile, answers again`, async () => {
    const client = await connect()
    await client.query('BEGIN')
    await client.query(`UPDATE plugins SET desired_state = 'stopped' WHERE forgehook_id = 'sql-victim'`)
    const blocked = fetch(`${base}/api/v1/plugins/sql-victim`)
    let ended: Error | undefined
    for (let sent = 0; sent < 4 * TRANSACTION_TIMEOUT_S && ended === undefined; sent++) {
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      await client.query('SELECT 1').catch((error: Error) => (ended = error))
    }
    expect(ended, 'the client was disconnected').toBeDefined()
    await waitForLog(manager, 'SQL_TRANSACTION_TIMEOUT')
    const answer = await blocked
    expect(answer.status).toBe(200)
    expect(((await answer.json()) as { spec: { state: string } }).spec.state).toBe('running')
  })
})

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

async function removeInstanceContainers(): Promise<void> {
  const ids = (await docker('ps', '-aq', '--no-trunc', '--filter', `label=io.flowforge.instance=${INSTANCE}`)).split('\n').filter(Boolean)
  if (ids.length > 0) await docker('rm', '-f', ...ids)
}
