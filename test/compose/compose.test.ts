// The compose service end to end (npm run test:compose): the README's "Running it as a
// compose service" commands, as a newcomer runs them, in a fresh clone, on the real image.
//
// What runs: `cp .env.example .env`, FORGE_API_TOKEN set (the README's "set FORGE_API_TOKEN"
// step), `docker-compose up -d`, `docker-compose logs -f plugin-manager` and
// `docker-compose exec plugin-manager forgectl get`, exactly as the README writes them (the
// README offers `docker-compose` for `docker compose`; these machines have compose v1 only).
// `exec` runs in a pseudo-terminal (script(1)), as in the terminal the README assumes; the
// test's own probes (`exec -T postgres psql …`) need none.
//
// What is overridden, all in .env (the documented way to configure the compose file):
//   - NODE_IMAGE, POSTGRES_IMAGE: the base images, the only change the issue allows. No
//     Docker registry is reachable here, so they name local stand-ins built from Debian's
//     packages and the npm registry (test/compose/stand-ins/build.sh).
//   - COMPOSE_PROJECT_NAME, PORT (4700), POSTGRES_PORT (55470): so that this project, its API
//     on the host network and its Postgres port collide with nothing else on the machine
//     (the walkthrough uses 4000, a developer's own compose project 55432).
//   - MANAGER_INSTANCE (compose-e2e): the engine is shared with other tests; as `default`
//     this manager would adopt their unlabelled forgehook-* containers.
// The plugin's spec pins hostPort 4750, outside the other tests' port ranges (4100-4699).
//
// Cleanup, pass or fail (afterAll): `docker-compose down -v --rmi local`, then a sweep by
// label and name of whatever is left: the plugin containers, the project's containers,
// volume and network, the manager image and the untagged image of its build stage
// (LABEL io.flowforge.stage=build), the example image if this test built it, the clone.
// The stand-in base images are kept: they are a cache, rebuilt when their version changes.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { packageRoot } from '../../src/config.js'
import { LABELS } from '../../src/runtime/container-runtime.js'
import { probeEngine, requireEngineInCi } from '../helpers/docker.js'

const execFileAsync = promisify(execFile)
const ROOT = packageRoot()
const CI = process.env.CI === 'true'

const PROJECT = 'ffcompose-e2e'
const API_PORT = 4700
const POSTGRES_PORT = 55470
const INSTANCE = 'compose-e2e'
const PLUGIN = 'compose-e2e-hello'
const PLUGIN_HOST_PORT = 4750
const PLUGIN_CONTAINER = `forgehook-${PLUGIN}`
const PLUGIN_IMAGE = 'flowforge-example/hello:1'
const TOKEN = randomBytes(32).toString('hex') // openssl rand -hex 32

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Only PATH and HOME: compose must take its settings from .env, not from the caller. */
function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? os.tmpdir() }
}

async function run(file: string, args: string[], options: { cwd?: string; timeout?: number } = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, {
      cwd: options.cwd ?? ROOT,
      env: cleanEnv(),
      timeout: options.timeout ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string; message: string; killed?: boolean }
    if (typeof failed.code !== 'number' && !failed.killed) throw error
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? failed.message }
  }
}

async function mustRun(file: string, args: string[], options: { cwd?: string; timeout?: number } = {}): Promise<string> {
  const result = await run(file, args, options)
  if (result.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${result.code}:\n${result.stdout}\n${result.stderr}`)
  return result.stdout.trim()
}

const docker = (...args: string[]) => mustRun('docker', args)

async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

async function probeCompose(): Promise<{ available: boolean; reason: string }> {
  try {
    const { stdout } = await execFileAsync('docker-compose', ['version', '--short'], { timeout: 30_000 })
    return { available: true, reason: `docker-compose ${stdout.trim()}` }
  } catch (error) {
    return { available: false, reason: error instanceof Error ? error.message : String(error) }
  }
}

const compose = await probeCompose()
const engine = await probeEngine()
requireEngineInCi(engine)
test.runIf(CI)('docker-compose is installed in CI', () => {
  expect(compose.available, `docker-compose is required in CI: ${compose.reason}`).toBe(true)
})

/** The ```sh block under "### Running it as a compose service", comments and blank lines dropped. */
async function readmeComposeCommands(): Promise<string[]> {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8')
  const section = readme.split('### Running it as a compose service')[1] ?? ''
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? ''
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line && !line.startsWith('#'))
}

/** A manager log line: compose prefixes "plugin-manager_1  | ". */
interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

function parseManagerLog(text: string): { lines: LogLine[]; other: string[] } {
  const lines: LogLine[] = []
  const other: string[] = []
  for (const raw of text.split('\n')) {
    if (!raw.trim() || raw.startsWith('Attaching to ')) continue
    const payload = raw.replace(/^\S+\s+\|\s?/, '')
    try {
      lines.push(JSON.parse(payload) as LogLine)
    } catch {
      other.push(raw)
    }
  }
  return { lines, other }
}

describe.skipIf(!compose.available || !engine.reachable)(`the compose service end to end (${compose.reason}, ${engine.reason})`, () => {
  const started = Date.now()
  let work = ''
  let clone = ''
  let builtExampleImage = false
  let standIns: Record<string, string> = {}
  const measurements: Record<string, unknown> = {}

  const dc = (args: string[], timeout = 180_000) => run('docker-compose', args, { cwd: clone, timeout })
  const mustDc = async (args: string[], timeout = 180_000) => {
    const result = await dc(args, timeout)
    if (result.code !== 0) throw new Error(`docker-compose ${args.join(' ')} exited ${result.code}:\n${result.stdout}\n${result.stderr}`)
    return result
  }
  /** A README command as written, in a pseudo-terminal (`docker-compose exec` wants one). */
  const inTerminal = (command: string, timeout = 60_000) => run('script', ['-qefc', command, '/dev/null'], { cwd: clone, timeout })
  const serviceContainer = async (service: string) => (await mustDc(['ps', '-q', service])).stdout.trim()
  const inspect = (format: string, target: string) => docker('inspect', '-f', format, target)
  const health = async (service: string) => {
    const id = await serviceContainer(service)
    return id ? inspect('{{.State.Health.Status}}', id) : 'absent'
  }
  const psql = async (query: string) =>
    (await mustDc(['exec', '-T', 'postgres', 'psql', '-U', 'flowforge', '-d', 'flowforge', '-v', 'ON_ERROR_STOP=1', '-AtF', '|', '-c', query])).stdout.trim()
  const api = (route: string) =>
    fetch(`http://127.0.0.1:${API_PORT}${route}`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5_000) })
  const pluginState = async () => {
    const [id, startedAt, running] = (await inspect('{{.Id}} {{.State.StartedAt}} {{.State.Running}}', PLUGIN_CONTAINER)).split(' ')
    return { id, startedAt, running }
  }
  const lifecycleEvents = async () =>
    Number(await psql(`SELECT count(*) FROM plugin_events WHERE forgehook_id = '${PLUGIN}' AND event_type IN ('plugin:installed', 'plugin:started', 'plugin:updated', 'plugin:recovered', 'plugin:adopted')`))
  const managerLog = async () => parseManagerLog((await mustDc(['logs', '--no-color', 'plugin-manager'])).stdout)
  const bothHealthy = () =>
    eventually('postgres and plugin-manager to be healthy', async () => ((await health('postgres')) === 'healthy' && (await health('plugin-manager')) === 'healthy' ? true : undefined), 180_000, 1_000)

  async function sweep(): Promise<void> {
    const ids = async (...filters: string[]) => (await docker('ps', '-aq', ...filters.flatMap((filter) => ['--filter', filter]))).split('\n').filter(Boolean)
    const containers = [...(await ids(`label=${LABELS.instance}=${INSTANCE}`)), ...(await ids(`label=com.docker.compose.project=${PROJECT}`))]
    if (containers.length > 0) await docker('rm', '-f', '-v', ...new Set(containers))
    await docker('volume', 'rm', `${PROJECT}_postgres-data`).catch(() => undefined)
    await docker('network', 'rm', `${PROJECT}_default`).catch(() => undefined)
    await docker('rmi', `${PROJECT}_plugin-manager`).catch(() => undefined)
  }

  beforeAll(async () => {
    await sweep() // a run that was killed before its afterAll
    const built = await run('bash', [path.join(ROOT, 'test/compose/stand-ins/build.sh')], { timeout: 900_000 })
    if (built.code !== 0) throw new Error(`test/compose/stand-ins/build.sh failed:\n${built.stdout}\n${built.stderr}`)
    standIns = Object.fromEntries(
      (await mustRun('bash', [path.join(ROOT, 'test/compose/stand-ins/build.sh'), '--list'])).split('\n').map((line) => line.split('=') as [string, string]),
    )
    builtExampleImage = (await run('docker', ['image', 'inspect', PLUGIN_IMAGE])).code !== 0
    await mustRun('bash', [path.join(ROOT, 'examples/build-image.sh')], { timeout: 300_000 })

    work = await mkdtemp(path.join(os.tmpdir(), 'ff-compose-e2e-'))
    clone = path.join(work, 'flowforge')
    await mustRun('git', ['clone', '--quiet', ROOT, clone])
  }, 900_000)

  afterAll(async () => {
    if (clone && existsSync(clone)) {
      // What happened, for CI's artifacts, before it is gone.
      const logs = await dc(['logs', '--no-color', '--timestamps'])
      await mkdir(path.join(ROOT, 'test-results'), { recursive: true })
      await writeFile(path.join(ROOT, 'test-results', 'compose-logs.txt'), logs.stdout + logs.stderr)
      await dc(['down', '-v', '--rmi', 'local', '--remove-orphans', '-t', '20'], 180_000)
    }
    await sweep()
    // The untagged image of the Dockerfile's build stage that this run's builds left behind.
    const stageImages = (await docker('images', '-q', '--no-trunc', '-f', 'dangling=true', '-f', 'label=io.flowforge.stage=build')).split('\n').filter(Boolean)
    for (const image of new Set(stageImages)) {
      const created = Date.parse(await inspect('{{.Created}}', image).catch(() => ''))
      if (created >= started - 5_000) await docker('rmi', image).catch(() => undefined)
    }
    if (builtExampleImage) {
      for (const image of (await mustRun('bash', [path.join(ROOT, 'examples/build-image.sh'), '--list'])).split('\n').reverse()) {
        await docker('rmi', image).catch(() => undefined)
      }
    }
    if (work) await rm(work, { recursive: true, force: true })
    if (Object.keys(measurements).length > 0) {
      await writeFile(path.join(ROOT, 'test-results', 'compose-measurements.json'), JSON.stringify(measurements, null, 2) + '\n')
    }
  }, 300_000)

  test("the README's compose commands are the ones this test runs", async () => {
    expect(await readmeComposeCommands()).toEqual(['cp .env.example .env', 'docker compose up -d', 'docker compose logs -f plugin-manager'])
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8')
    expect(readme).toContain('`docker compose exec plugin-manager forgectl get`')
    expect(readme).toMatch(/^docker compose up -d +# or: docker-compose up -d$/m)
  })

  test('cp .env.example .env, then the token and the overrides in .env', async () => {
    await mustRun('cp', ['.env.example', '.env'], { cwd: clone })
    const example = await readFile(path.join(clone, '.env'), 'utf8')
    expect(example).toMatch(/^FORGE_API_TOKEN=$/m)
    // The README's step, then the overrides this test needs (see the top of this file), each
    // in place of the line .env.example has for it; COMPOSE_PROJECT_NAME is new.
    const settings: Record<string, string> = {
      FORGE_API_TOKEN: TOKEN,
      NODE_IMAGE: standIns.NODE_IMAGE!,
      POSTGRES_IMAGE: standIns.POSTGRES_IMAGE!,
      PORT: String(API_PORT),
      POSTGRES_PORT: String(POSTGRES_PORT),
      MANAGER_INSTANCE: INSTANCE,
    }
    let env = example
    for (const [name, value] of Object.entries(settings)) {
      const line = new RegExp(`^${name}=.*$`, 'm')
      expect(env, `.env.example sets ${name}`).toMatch(line)
      env = env.replace(line, `${name}=${value}`)
    }
    env += `\n# Added by test/compose/compose.test.ts: a project name of its own.\nCOMPOSE_PROJECT_NAME=${PROJECT}\n`
    await writeFile(path.join(clone, '.env'), env)
    const resolved = await mustDc(['config'])
    expect(resolved.stdout).toContain(`image: ${standIns.POSTGRES_IMAGE}`)
    expect(resolved.stdout).toContain(`NODE_IMAGE: ${standIns.NODE_IMAGE}`)
  })

  test(
    'docker-compose up -d builds the manager image FROM the Node stand-in and starts both services; both become healthy',
    async () => {
      const upStarted = Date.now()
      const up = await dc(['up', '-d'], 1_200_000)
      expect(up.code, `${up.stdout}\n${up.stderr}`).toBe(0)
      measurements.upSeconds = (Date.now() - upStarted) / 1000
      await bothHealthy()
      measurements.upUntilHealthySeconds = (Date.now() - upStarted) / 1000

      // The manager as the README describes it: host network, the socket and ./specs mounted.
      const manager = await serviceContainer('plugin-manager')
      expect(await inspect('{{.HostConfig.NetworkMode}}', manager)).toBe('host')
      const mounts = JSON.parse(await inspect('{{json .Mounts}}', manager)) as { Source: string; Destination: string; RW: boolean }[]
      expect(mounts).toContainEqual(expect.objectContaining({ Source: '/var/run/docker.sock', Destination: '/var/run/docker.sock', RW: true }))
      expect(mounts).toContainEqual(expect.objectContaining({ Source: path.join(clone, 'specs'), Destination: '/app/specs', RW: false }))
      expect(await inspect('{{.HostConfig.Init}}', manager)).toBe('true')
      const ready = await eventually('/readyz', async () => {
        const response = await api('/readyz')
        return response.ok ? ((await response.json()) as Record<string, unknown>) : undefined
      }, 30_000)
      expect(ready).toMatchObject({ role: 'leader' })
    },
    1_500_000,
  )

  test('the image: Node 24, production dependencies only, no tests or sources, root as documented; its size', async () => {
    const manager = await serviceContainer('plugin-manager')
    const image = await inspect('{{.Image}}', manager)
    expect(await docker('exec', manager, 'node', '--version')).toMatch(/^v24\./)
    // The stand-in is what it stands in for: Node 24 in /usr/local, user node.
    expect(await docker('run', '--rm', standIns.NODE_IMAGE!, 'node', '--version')).toMatch(/^v24\./)
    expect(await docker('run', '--rm', standIns.NODE_IMAGE!, 'id', '-u', 'node')).toBe('1000')

    const listing = JSON.parse(
      await docker(
        'exec',
        manager,
        'node',
        '-e',
        `
        const fs = require('fs'), path = require('path')
        const packages = [], tests = [], typescript = []
        function walk(dir, rel) {
          for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
            const full = path.join(dir, entry.name), relPath = rel ? rel + '/' + entry.name : entry.name
            if (entry.isDirectory()) {
              if (/(^|\\/)node_modules\\/(@[^/]+\\/)?[^@/][^/]*$/.test(relPath) && fs.existsSync(path.join(full, 'package.json'))) packages.push(relPath)
              walk(full, relPath)
            } else if (!relPath.includes('node_modules/')) {
              if (/\\.(test|spec)\\.[cm]?[jt]s$/.test(entry.name)) tests.push(relPath)
              if (/\\.[cm]?ts$/.test(entry.name) && !entry.name.endsWith('.d.ts')) typescript.push(relPath)
            }
          }
        }
        walk('/app', '')
        console.log(JSON.stringify({ top: fs.readdirSync('/app').sort(), packages, tests, typescript, uid: process.getuid() }))
        `,
      ),
    ) as { top: string[]; packages: string[]; tests: string[]; typescript: string[]; uid: number }

    expect(listing.top).toEqual(['data', 'dist', 'migrations', 'node_modules', 'package-lock.json', 'package.json', 'public', 'specs'])
    expect(listing.tests).toEqual([])
    expect(listing.typescript).toEqual([])
    // Every installed package is a production one of the lock file; none of the dev ones is there.
    const lock = JSON.parse(await readFile(path.join(clone, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
    const devOnly = Object.entries(lock.packages).filter(([, entry]) => entry.dev === true).map(([name]) => name)
    expect(devOnly.length).toBeGreaterThan(0)
    expect(listing.packages.filter((name) => lock.packages[name] === undefined)).toEqual([])
    expect(listing.packages.filter((name) => lock.packages[name]?.dev === true)).toEqual([])
    for (const devTool of ['node_modules/typescript', 'node_modules/tsx', 'node_modules/vitest', 'node_modules/esbuild']) {
      expect(listing.packages, devTool).not.toContain(devTool)
    }
    // Root, as the Dockerfile and the README explain: the socket is root on the host anyway.
    expect(listing.uid).toBe(0)
    expect(await inspect('{{.Config.User}}', image)).toBe('')

    const size = Number(await inspect('{{.Size}}', image))
    const baseSize = Number(await inspect('{{.Size}}', standIns.NODE_IMAGE!))
    Object.assign(measurements, {
      imageBytes: size,
      baseImageBytes: baseSize,
      addedByTheDockerfileBytes: size - baseSize,
      productionPackages: listing.packages.length,
      devPackagesInTheLock: devOnly.length,
      node: await docker('exec', manager, 'node', '--version'),
    })
    console.log(`image ${(size / 1e6).toFixed(0)} MB: base ${(baseSize / 1e6).toFixed(0)} MB + ${((size - baseSize) / 1e6).toFixed(0)} MB of dependencies and code`)
    // What the Dockerfile adds on top of node:24-slim: production dependencies, dist/, migrations/.
    expect(size - baseSize).toBeLessThan(100e6)
  })

  test('docker-compose logs -f plugin-manager shows the start-up lines, every line JSON, nothing above info, no password', async () => {
    // As written: it follows until Ctrl-C; here, for 5 s.
    const followed = await inTerminal('timeout 5 docker-compose logs -f plugin-manager', 30_000)
    expect(followed.stdout).toContain('database migrations completed')

    const { lines, other } = await managerLog()
    expect(other).toEqual([])
    const messages = lines.map((line) => line.msg)
    const migrations = (await readdir(path.join(clone, 'migrations'))).filter((file) => file.endsWith('.sql')).length
    for (const expected of [
      `database connection established: Postgres server postgresql://flowforge:***@127.0.0.1:${POSTGRES_PORT}/flowforge`,
      `database migrations completed: ${migrations} applied now, 0 earlier`,
      'API listening',
      'FlowForge plugin manager started',
      'connected to the Docker engine',
      'controller running: Docker observed, orphans adopted, workers started',
    ]) {
      expect(messages, expected).toContain(expected)
    }
    expect(lines.filter((line) => line.level >= 40)).toEqual([])
    const text = (await mustDc(['logs', '--no-color', 'plugin-manager'])).stdout
    expect(text).not.toContain(':flowforge@')
    expect(text).not.toContain(TOKEN)
  })

  test('a spec file dropped in ./specs runs as a plugin container, reachable through the proxy', async () => {
    const spec = [
      'apiVersion: flowforge.io/v1',
      'kind: Plugin',
      'metadata:',
      `  name: ${PLUGIN}`,
      'spec:',
      `  hostPort: ${PLUGIN_HOST_PORT}`,
      '  manifest:',
      '    name: Compose end to end',
      '    version: 1.0.0',
      `    image: ${PLUGIN_IMAGE}`,
      '    imagePullPolicy: Never',
      '    port: 8080',
      '    healthCheck: { path: /health, intervalSeconds: 2, timeoutSeconds: 2 }',
      '',
    ].join('\n')
    await writeFile(path.join(clone, 'specs', `${PLUGIN}.yaml`), spec)
    const state = await eventually('the plugin container to run', async () => ((await pluginState()).running === 'true' ? pluginState() : undefined), 60_000)
    expect(state.running).toBe('true')
    expect(await inspect(`{{index .Config.Labels "${LABELS.instance}"}}`, PLUGIN_CONTAINER)).toBe(INSTANCE)
    const body = await eventually('the plugin through /plugins/<name>/health', async () => {
      const response = await api(`/plugins/${PLUGIN}/health`)
      return response.ok ? (await response.text()).trim() : undefined
    }, 30_000)
    expect(body).toBe('ok')
  })

  test('its status is in Postgres (docker-compose exec postgres psql)', async () => {
    const row = await eventually('running and healthy in the plugins table', async () => {
      const line = await psql(`SELECT status, health_status, container_id, host_port, source FROM plugins WHERE forgehook_id = '${PLUGIN}'`)
      return line.startsWith('running|healthy|') ? line : undefined
    }, 60_000)
    const [status, healthStatus, containerId, hostPort, source] = row.split('|')
    expect({ status, healthStatus, hostPort, source }).toEqual({ status: 'running', healthStatus: 'healthy', hostPort: String(PLUGIN_HOST_PORT), source: `file:${PLUGIN}.yaml` })
    expect(containerId).toBe((await pluginState()).id)
  })

  test('docker-compose exec plugin-manager forgectl get lists it', async () => {
    const listed = await inTerminal('docker-compose exec plugin-manager forgectl get')
    expect(listed.code, listed.stdout + listed.stderr).toBe(0)
    const line = listed.stdout.split(/\r?\n/).find((text) => text.includes(PLUGIN))
    expect(line, listed.stdout).toBeDefined()
    expect(line).toMatch(/running/i)
  })

  test('docker-compose restart plugin-manager recreates nothing: same manager container, same plugin container, no new events', async () => {
    const manager = await serviceContainer('plugin-manager')
    const managerStartedAt = await inspect('{{.State.StartedAt}}', manager)
    const plugin = await pluginState()
    const events = await lifecycleEvents()

    await mustDc(['restart', 'plugin-manager'], 180_000)
    expect(await serviceContainer('plugin-manager')).toBe(manager)
    expect(await inspect('{{.State.StartedAt}}', manager)).not.toBe(managerStartedAt)
    await eventually('/readyz after the restart', async () => ((await api('/readyz')).ok ? true : undefined), 60_000)
    // The second start's resync found everything as it was.
    const resyncs = await eventually('the second start resync', async () => {
      const found = (await managerLog()).lines.filter((line) => line.msg.startsWith('resync (start)'))
      return found.length >= 2 ? found : undefined
    }, 60_000)
    expect(resyncs.at(-1)).toMatchObject({ plugins: 1, containers: 1, queued: 0 })
    await new Promise((resolve) => setTimeout(resolve, 3_000)) // anything it would set off shows by now
    expect(await pluginState()).toEqual(plugin)
    expect(await lifecycleEvents()).toBe(events)
    const { lines } = await managerLog()
    const migrations = (await readdir(path.join(clone, 'migrations'))).filter((file) => file.endsWith('.sql')).length
    expect(lines.filter((line) => line.msg === `database migrations completed: 0 applied now, ${migrations} earlier`)).toHaveLength(1)
    expect(lines.filter((line) => line.level >= 40)).toEqual([])
  })

  test('docker-compose down leaves the plugin container running; up -d picks it up again, recreating and restarting nothing', async () => {
    const plugin = await pluginState()
    const events = await lifecycleEvents()

    const down = await dc(['down'], 180_000)
    expect(down.code, down.stdout + down.stderr).toBe(0)
    expect((await mustDc(['ps', '-q'])).stdout.trim()).toBe('')
    expect(await pluginState()).toEqual(plugin) // still running, untouched
    expect(await docker('volume', 'ls', '-q', '--filter', `name=${PROJECT}_postgres-data`)).toBe(`${PROJECT}_postgres-data`)

    const upStarted = Date.now()
    const up = await dc(['up', '-d'], 600_000)
    expect(up.code, up.stdout + up.stderr).toBe(0)
    await bothHealthy()
    measurements.secondUpUntilHealthySeconds = (Date.now() - upStarted) / 1000
    const resync = await eventually('the start resync', async () => (await managerLog()).lines.find((line) => line.msg.startsWith('resync (start)')), 60_000)
    expect(resync).toMatchObject({ plugins: 1, containers: 1, queued: 0 })
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    expect(await pluginState()).toEqual(plugin)
    expect(await psql(`SELECT status, container_id FROM plugins WHERE forgehook_id = '${PLUGIN}'`)).toBe(`running|${plugin.id}`)
    expect(await lifecycleEvents()).toBe(events)
    const listed = await inTerminal('docker-compose exec plugin-manager forgectl get')
    expect(listed.stdout).toContain(PLUGIN)
    expect((await managerLog()).lines.filter((line) => line.level >= 40)).toEqual([])
  })
})
