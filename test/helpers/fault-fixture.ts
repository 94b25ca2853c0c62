// What every fault-injection file needs: the real engine and a real Postgres server (a
// failure under CI=true, never a skip), a fresh database per test, managers started as real
// processes with short timings, plugins declared in SQL, and both witnesses to compare:
// the plugin rows and `docker inspect`. Each test's containers and managers are removed
// after it, so a failing test leaves nothing behind for the next one.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { afterEach, beforeAll, beforeEach, expect, test } from 'vitest'
import { LABELS } from '../../src/runtime/container-runtime.js'
import { createServerDatabase, inCi, postgresUrl } from './databases.js'
import { buildTestImages, docker, probeEngine, removeContainers, requireEngineInCi } from './docker.js'
import { keepOutputOnFailure, killAllManagers, spawnManager, waitForLog, type ManagerProcess } from './manager-process.js'

export interface FaultFixtureOptions {
  /** MANAGER_INSTANCE of the file's managers. */
  instance: string
  /** HOST_PORT_RANGE, disjoint from every other file's. */
  hostPortRange: string
  /** Plugin names start with it (containers with forgehook-<it>); everything so named is removed after each test. */
  namePrefix: string
}

export interface PluginRow {
  forgehook_id: string
  status: string
  container_id: string | null
  host_port: number | null
  restart_count: number
  next_restart_at: Date | null
  error: string | null
}

export const SELECT_PLUGIN_ROWS = 'SELECT forgehook_id, status, container_id, host_port, restart_count, next_restart_at, error FROM plugins'

/** `docker inspect` of one container, reduced to what the fault tests compare. */
export interface InspectedContainer {
  id: string
  name: string
  state: string
  startedAt: string
  finishedAt: string
  /** Docker's own restarts (we never set a restart policy: always 0 unless someone did). */
  restartCount: number
  hostPort: number | null
  labels: Record<string, string>
}

export interface FaultFixture {
  /** Whether the engine and the server are there; the suite is skipped (outside CI) when not. */
  readonly ready: boolean
  /** The current test's database. */
  readonly client: pg.Client
  /** Its connection string (for a client of the test's own, e.g. a pool that outlives a Postgres restart). */
  readonly connectionString: string
  /** Starts `forgectl serve` on the current test's database (with the file's instance, port range and short timings). */
  spawnManager(extraEnv?: Record<string, string>): Promise<ManagerProcess>
  /** spawnManager, then waits until its controller runs (Docker observed, orphans adopted, workers started). */
  startManager(extraEnv?: Record<string, string>): Promise<ManagerProcess>
  /** SIGKILLs a manager and waits for it to be gone. */
  killManager(manager: ManagerProcess): Promise<void>
  /** One INSERT for all of them (an "apply" in one transaction). */
  declarePlugins(plugins: { name: string; manifest: Record<string, unknown>; requestedHostPort?: number }[]): Promise<void>
  plugins(): Promise<PluginRow[]>
  plugin(name: string): Promise<PluginRow | undefined>
  /** The audit trail of one plugin, oldest first. */
  eventTypes(name: string): Promise<string[]>
  /** Every container carrying this file's instance label, inspected. */
  ourContainers(): Promise<InspectedContainer[]>
  inspect(idOrName: string): Promise<InspectedContainer | undefined>
}

export const HTTP_MANIFEST = { image: 'flowforge-test/http:1', imagePullPolicy: 'Never', port: 8080 }
export const CRASH_MANIFEST = { image: 'flowforge-test/crash:1', imagePullPolicy: 'Never', port: 8080 }

/**
 * Short timings keep each file within minutes: docker stop waits 1 s, the periodic resync
 * and the health loop run every second. The crash-loop backoff is not configurable and
 * keeps its defaults (10 s doubling).
 */
const FAST_TIMINGS = { STOP_TIMEOUT: '1', RESYNC_INTERVAL: '1', HEALTH_INTERVAL: '1', RECONCILE_RETRY_BASE: '0.2', RECONCILE_RETRY_MAX: '2' }

/**
 * The production defaults where an outage test is about them (pass as extra env): a
 * periodic resync every second would hide a lost event stream or LISTEN connection, and
 * a 2 s retry cap would hide a backoff grown through the outage.
 */
export const PRODUCTION_TIMINGS = { RESYNC_INTERVAL: '300', RECONCILE_RETRY_BASE: '1', RECONCILE_RETRY_MAX: '300', HEALTH_INTERVAL: '5' }

/** Call at the top level of a fault test file (it declares the CI checks and the hooks). */
export async function faultFixture(options: FaultFixtureOptions): Promise<FaultFixture> {
  const engine = await probeEngine()
  requireEngineInCi(engine)
  test.runIf(inCi)('a Postgres server is configured in CI', () => {
    expect(postgresUrl, 'TEST_DATABASE_URL must be set when CI=true').toBeTruthy()
  })
  const ready = engine.reachable && Boolean(postgresUrl)
  const containerPrefix = `forgehook-${options.namePrefix}`
  let database: { connectionString: string; drop: () => Promise<void> } | undefined
  let client: pg.Client | undefined

  if (ready) {
    beforeAll(async () => {
      await buildTestImages()
      await removeContainers(containerPrefix)
    }, 120_000)
    beforeEach(async () => {
      database = await createServerDatabase()
      client = new pg.Client({ connectionString: database.connectionString })
      // A Postgres restart (database.test.ts) ends this idle client: without a listener
      // its 'error' would be an uncaught exception in the test process.
      client.on('error', () => undefined)
      await client.connect()
    })
    afterEach(async () => {
      await killAllManagers()
      await client?.end()
      await removeContainers(containerPrefix)
      await database?.drop()
      client = undefined
      database = undefined
    })
  }

  const current = (): { client: pg.Client; connectionString: string } => {
    if (!client || !database) throw new Error('the fault fixture has no database outside a test')
    return { client, connectionString: database.connectionString }
  }
  const spawn = async (extraEnv: Record<string, string> = {}): Promise<ManagerProcess> => {
    const manager = spawnManager({
      DATABASE_URL: current().connectionString,
      PORT: '0',
      SPECS_DIR: await mkdtemp(path.join(tmpdir(), `ff-${options.instance}-specs-`)),
      MANAGER_INSTANCE: options.instance,
      HOST_PORT_RANGE: options.hostPortRange,
      ...FAST_TIMINGS,
      ...extraEnv,
    })
    keepOutputOnFailure(manager, options.instance)
    return manager
  }
  const inspect = async (idOrName: string): Promise<InspectedContainer | undefined> => {
    const [container] = await inspectAll([idOrName])
    return container
  }

  return {
    ready,
    get client() {
      return current().client
    },
    get connectionString() {
      return current().connectionString
    },
    spawnManager: spawn,
    startManager: async (extraEnv) => {
      const manager = await spawn(extraEnv)
      await waitForLog(manager, 'controller running', 1, 60_000)
      return manager
    },
    killManager: async (manager) => {
      manager.kill('SIGKILL')
      await manager.exited
    },
    declarePlugins: async (plugins) => {
      const values = plugins.map((_, index) => `($${index * 3 + 1}, $${index * 3 + 2}, $${index * 3 + 3})`).join(', ')
      const parameters = plugins.flatMap((plugin) => [plugin.name, JSON.stringify(plugin.manifest), plugin.requestedHostPort ?? null])
      await current().client.query(`INSERT INTO plugins (forgehook_id, manifest, requested_host_port) VALUES ${values}`, parameters)
    },
    plugins: async () => {
      const result = await current().client.query<PluginRow>(`${SELECT_PLUGIN_ROWS} ORDER BY forgehook_id`)
      return result.rows
    },
    plugin: async (name) => {
      const result = await current().client.query<PluginRow>(`${SELECT_PLUGIN_ROWS} WHERE forgehook_id = $1`, [name])
      return result.rows[0]
    },
    eventTypes: async (name) => {
      const result = await current().client.query<{ event_type: string }>('SELECT event_type FROM plugin_events WHERE forgehook_id = $1 ORDER BY id', [name])
      return result.rows.map((row) => row.event_type)
    },
    ourContainers: async () => {
      const ids = (await docker('ps', '-aq', '--filter', `label=${LABELS.instance}=${options.instance}`)).split('\n').filter(Boolean)
      return inspectAll(ids)
    },
    inspect,
  }
}

interface DockerInspectJson {
  Id: string
  Name: string
  RestartCount: number
  State: { Status: string; StartedAt: string; FinishedAt: string }
  Config: { Labels: Record<string, string> | null }
  HostConfig: { PortBindings: Record<string, { HostPort: string }[] | null> | null }
}

/** Inspects containers in one call; a missing one is left out. */
async function inspectAll(idsOrNames: string[]): Promise<InspectedContainer[]> {
  if (idsOrNames.length === 0) return []
  // docker inspect prints what it found and exits non-zero when any is missing.
  const stdout = await docker('inspect', '--type', 'container', ...idsOrNames).catch((error: { stdout?: string; stderr?: string }) => {
    if (!error.stderr?.includes('No such')) throw error
    return (error.stdout ?? '').trim()
  })
  const found = JSON.parse(stdout || '[]') as DockerInspectJson[]
  return found.map((info) => {
    // The binding asked for at create time: present whether or not the container runs.
    const binding = Object.values(info.HostConfig.PortBindings ?? {})[0]?.[0]
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      state: info.State.Status,
      startedAt: info.State.StartedAt,
      finishedAt: info.State.FinishedAt,
      restartCount: info.RestartCount,
      hostPort: binding?.HostPort ? Number(binding.HostPort) : null,
      labels: info.Config.Labels ?? {},
    }
  })
}
