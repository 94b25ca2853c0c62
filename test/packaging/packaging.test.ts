// Packaging (issue #5): the compose file as docker-compose resolves it, the Dockerfile's
// inputs and outputs, the production start (npm start runs dist/), and the examples with
// their locally built images. The image itself is built and run, with the compose file, by
// npm run test:compose (test/compose/compose.test.ts), FROM local stand-ins of its base images.
import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { parse as parseYaml } from 'yaml'
import { loadClientConfig, loadConfig, packageRoot } from '../../src/config.js'
import { parseSpecText } from '../../src/spec/parse-yaml.js'
import { docker, probeEngine, requireEngineInCi } from '../helpers/docker.js'

const execFileAsync = promisify(execFile)
const ROOT = packageRoot()
const TOKEN = 'packaging-test-token-0123456789ab' // 32 characters
const CI = process.env.CI === 'true'

/** Only what a shell that never heard of this project has: no DATABASE_URL, no PORT, ... */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? os.tmpdir(), ...extra }
}

interface Run {
  code: number
  stdout: string
  stderr: string
}

async function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env ?? process.env,
      timeout: options.timeout ?? 60_000,
      maxBuffer: 16 * 1024 * 1024,
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string; message: string }
    if (typeof failed.code !== 'number') throw error // not started (ENOENT) or killed by the timeout
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? failed.message }
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  )
}

// --- (a) docker-compose.yml ----------------------------------------------------------

async function probeCompose(): Promise<{ available: boolean; reason: string }> {
  try {
    const { stdout } = await execFileAsync('docker-compose', ['version', '--short'], { timeout: 30_000 })
    return { available: true, reason: `docker-compose ${stdout.trim()}` }
  } catch (error) {
    return { available: false, reason: error instanceof Error ? error.message : String(error) }
  }
}

const compose = await probeCompose()

test.runIf(CI)('docker-compose is installed in CI', () => {
  expect(compose.available, `docker-compose is required in CI: ${compose.reason}`).toBe(true)
})

type ComposeService = Record<string, unknown> & {
  environment?: Record<string, string | number>
  volumes?: (string | { type?: string; source?: string; target?: string; read_only?: boolean })[]
  ports?: (string | { host_ip?: string; published?: string | number; target?: number })[]
  depends_on?: Record<string, { condition?: string }> | string[]
}

interface ComposeConfig {
  services: Record<string, ComposeService>
  volumes?: Record<string, unknown>
}

/**
 * `docker-compose config` in the repo root with only `env` (plus PATH and HOME). An empty
 * --env-file keeps a developer's own .env out of it.
 */
async function composeConfig(env: Record<string, string>, envFile?: string): Promise<Run & { config?: ComposeConfig }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ff-compose-'))
  try {
    const file = envFile ?? path.join(dir, 'empty.env')
    if (!envFile) await writeFile(file, '')
    const result = await run('docker-compose', ['--env-file', file, 'config'], { env: cleanEnv(env) })
    return result.code === 0 ? { ...result, config: parseYaml(result.stdout) as ComposeConfig } : result
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** A volume entry as {source, target, readOnly}, from v1's "src:dst:mode" or v2's long form. */
function volumeEntries(service: ComposeService): { source: string; target: string; readOnly: boolean }[] {
  return (service.volumes ?? []).map((volume) => {
    if (typeof volume !== 'string') return { source: volume.source ?? '', target: volume.target ?? '', readOnly: volume.read_only === true }
    const [source = '', target = '', mode = ''] = volume.split(':')
    return { source, target, readOnly: mode.split(',').includes('ro') }
  })
}

/** A port entry as "host_ip:published:target", from either form. */
function portEntries(service: ComposeService): string[] {
  return (service.ports ?? []).map((port) =>
    typeof port === 'string' ? port.replace(/\/tcp$/, '') : `${port.host_ip ?? ''}:${port.published ?? ''}:${port.target ?? ''}`,
  )
}

/** Compose durations: "60s", "1m30s", "1m0s", "90". */
function durationSeconds(value: unknown): number {
  const text = String(value)
  if (/^\d+$/.test(text)) return Number(text)
  let total = 0
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)/g)) {
    total += Number(amount) * ({ h: 3600, m: 60, s: 1, ms: 0.001, us: 1e-6, ns: 1e-9 } as Record<string, number>)[unit!]!
  }
  return total
}

describe('docker-compose.yml and .env.example (static)', () => {
  test('.env.example lists every variable the compose file uses, and sets no token', async () => {
    const composeText = await readFile(path.join(ROOT, 'docker-compose.yml'), 'utf8')
    const used = new Set([...composeText.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((match) => match[1]!))
    const example = await readFile(path.join(ROOT, '.env.example'), 'utf8')
    const listed = new Map(
      [...example.matchAll(/^([A-Z_][A-Z0-9_]*)=(.*)$/gm)].map((match) => [match[1]!, match[2]!.trim()] as const),
    )
    expect([...used].sort()).toEqual(expect.arrayContaining(['FORGE_API_TOKEN', 'POSTGRES_PASSWORD', 'POSTGRES_PORT']))
    expect([...used].filter((name) => !listed.has(name))).toEqual([])
    // A copied .env.example must not start the API on 0.0.0.0 with a token everyone knows.
    expect(listed.get('FORGE_API_TOKEN')).toBe('')
    expect(example).toContain('openssl rand -hex 32')
  })

  test('.env stays out of git and out of the image build context', async () => {
    const { stdout } = await execFileAsync('git', ['check-ignore', '.env'], { cwd: ROOT })
    expect(stdout.trim()).toBe('.env')
    expect(dockerignored(await readDockerignore(), '.env')).toBe(true)
  })
})

describe.skipIf(!compose.available)(`docker-compose config (${compose.reason})`, () => {
  test('resolves with FORGE_API_TOKEN set: Postgres with a health check and a volume, the manager on the host network', async () => {
    const result = await composeConfig({ FORGE_API_TOKEN: TOKEN })
    expect(result.stderr.replace(/^.*(warn|deprecat).*$/gim, '').trim(), result.stderr).toBe('')
    expect(result.code).toBe(0)
    const { services, volumes } = result.config!

    const postgres = services.postgres!
    // The public base images by default (POSTGRES_IMAGE, and NODE_IMAGE for the Dockerfile).
    expect(postgres.image).toBe('postgres:15')
    expect(JSON.stringify((postgres.healthcheck as { test: unknown }).test)).toContain('pg_isready')
    const data = volumeEntries(postgres).find((volume) => volume.target === '/var/lib/postgresql/data')
    expect(data?.source).toBe('postgres-data')
    expect(Object.keys(volumes ?? {})).toContain('postgres-data')
    // Published on loopback only, for the host-networked manager.
    expect(portEntries(postgres)).toEqual(['127.0.0.1:55432:5432'])

    const manager = services['plugin-manager']!
    expect(manager.build).toEqual({ context: ROOT, args: { NODE_IMAGE: 'node:24-slim' } })
    expect(manager.network_mode).toBe('host')
    expect(manager.ports ?? []).toEqual([]) // meaningless with the host network
    expect(manager.depends_on).toMatchObject({ postgres: { condition: 'service_healthy' } })
    expect(manager.restart).toBe('unless-stopped')
    expect(durationSeconds(manager.stop_grace_period)).toBeGreaterThanOrEqual(30)

    const environment = Object.fromEntries(Object.entries(manager.environment ?? {}).map(([key, value]) => [key, String(value)]))
    expect(environment).toMatchObject({
      DATABASE_URL: 'postgresql://flowforge:flowforge@127.0.0.1:55432/flowforge',
      FORGE_API_TOKEN: TOKEN,
      API_BIND_ADDRESS: '0.0.0.0',
      SPECS_DIR: '/app/specs',
      FORGE_URL: 'http://127.0.0.1:4000',
      MANAGER_INSTANCE: 'default',
    })

    const mounts = volumeEntries(manager)
    expect(mounts).toContainEqual({ source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: false })
    expect(mounts).toContainEqual({ source: path.join(ROOT, 'specs'), target: environment.SPECS_DIR, readOnly: true })

    // The daemon accepts that environment as it is (a token, so 0.0.0.0 is allowed).
    const config = loadConfig(environment)
    expect(config.database).toEqual({ kind: 'postgres', connectionString: environment.DATABASE_URL })
    expect(config.api).toMatchObject({ host: '0.0.0.0', port: 4000, token: TOKEN })
    expect(config.specs.dir).toBe('/app/specs')
    // forgectl run inside the container reaches that API with that token.
    expect(loadClientConfig(environment)).toEqual({ url: 'http://127.0.0.1:4000', token: TOKEN })
  })

  test('POSTGRES_PORT and POSTGRES_PASSWORD move the published port and DATABASE_URL together; PORT moves FORGE_URL', async () => {
    const result = await composeConfig({ FORGE_API_TOKEN: TOKEN, POSTGRES_PORT: '6543', POSTGRES_PASSWORD: 's3cret', PORT: '4100' })
    expect(result.code, result.stderr).toBe(0)
    const { services } = result.config!
    expect(portEntries(services.postgres!)).toEqual(['127.0.0.1:6543:5432'])
    expect(services.postgres!.environment).toMatchObject({ POSTGRES_PASSWORD: 's3cret' })
    expect(services['plugin-manager']!.environment).toMatchObject({
      DATABASE_URL: 'postgresql://flowforge:s3cret@127.0.0.1:6543/flowforge',
      PORT: expect.anything(),
      FORGE_URL: 'http://127.0.0.1:4100',
    })
    expect(String(services['plugin-manager']!.environment!.PORT)).toBe('4100')
  })

  test('POSTGRES_IMAGE, NODE_IMAGE and MANAGER_INSTANCE replace the base images and the installation name, nothing else', async () => {
    const plain = await composeConfig({ FORGE_API_TOKEN: TOKEN })
    const result = await composeConfig({
      FORGE_API_TOKEN: TOKEN,
      POSTGRES_IMAGE: 'mirror.example/postgres:15',
      NODE_IMAGE: 'mirror.example/node:24-slim',
      MANAGER_INSTANCE: 'second',
    })
    expect(result.code, result.stderr).toBe(0)
    const { services } = result.config!
    expect(services.postgres!.image).toBe('mirror.example/postgres:15')
    expect(services['plugin-manager']!.build).toEqual({ context: ROOT, args: { NODE_IMAGE: 'mirror.example/node:24-slim' } })
    expect(services['plugin-manager']!.environment!.MANAGER_INSTANCE).toBe('second')
    // Everything else resolves exactly as without them.
    const normalised = (config: ComposeConfig) => {
      const copy = structuredClone(config)
      delete copy.services.postgres!.image
      delete copy.services['plugin-manager']!.build
      delete copy.services['plugin-manager']!.environment!.MANAGER_INSTANCE
      return copy
    }
    expect(normalised(result.config!)).toEqual(normalised(plain.config!))
  })

  test('refuses without FORGE_API_TOKEN, naming it', async () => {
    const result = await composeConfig({})
    expect(result.code).not.toBe(0)
    expect(result.stderr).toContain('FORGE_API_TOKEN')
  })

  test('refuses with .env.example copied as is (its token is empty)', async () => {
    const result = await composeConfig({}, path.join(ROOT, '.env.example'))
    expect(result.code).not.toBe(0)
    expect(result.stderr).toContain('FORGE_API_TOKEN')
  })
})

// --- (b) the Dockerfile --------------------------------------------------------------

interface Copy {
  from?: string
  sources: string[]
  dest: string
}

interface Stage {
  image: string
  name?: string
  workdir: string
  copies: Copy[]
  runs: string[]
  cmd?: string[]
  healthcheck?: string
}

/** The instructions this Dockerfile uses, with line continuations joined and comments dropped; ARGs before the first FROM in `args`. */
function parseDockerfile(text: string): Stage[] & { args: Record<string, string> } {
  const instructions: string[] = []
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd()
    if (/^\s*#/.test(line)) continue
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' '
      continue
    }
    const instruction = (pending + line).trim()
    pending = ''
    if (instruction) instructions.push(instruction)
  }

  const stages: Stage[] = []
  const args: Record<string, string> = {}
  for (const instruction of instructions) {
    const [, keyword = '', rest = ''] = /^(\w+)\s+([\s\S]*)$/.exec(instruction) ?? []
    const stage = stages.at(-1)
    switch (keyword.toUpperCase()) {
      case 'ARG': {
        const [name = '', value = ''] = rest.trim().split('=', 2)
        if (!stage) args[name] = value
        break
      }
      case 'FROM': {
        const [image = '', as, name] = rest.split(/\s+/)
        stages.push({ image, ...(as?.toUpperCase() === 'AS' && name ? { name } : {}), workdir: '/', copies: [], runs: [] })
        break
      }
      case 'WORKDIR':
        stage!.workdir = path.posix.resolve(stage!.workdir, rest.trim())
        break
      case 'COPY':
      case 'ADD': {
        let args = rest.trim()
        let from: string | undefined
        for (let flag = /^--(\S+?)(?:=(\S+))?\s+/.exec(args); flag; flag = /^--(\S+?)(?:=(\S+))?\s+/.exec(args)) {
          if (flag[1] === 'from') from = flag[2]
          args = args.slice(flag[0].length)
        }
        const parts = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/)
        stage!.copies.push({ ...(from ? { from } : {}), sources: parts.slice(0, -1), dest: parts.at(-1)! })
        break
      }
      case 'RUN':
        stage!.runs.push(rest)
        break
      case 'CMD':
        stage!.cmd = JSON.parse(rest) as string[]
        break
      case 'HEALTHCHECK':
        stage!.healthcheck = rest
        break
    }
  }
  return Object.assign(stages, { args })
}

async function readDockerignore(): Promise<{ pattern: RegExp; negate: boolean }[]> {
  const text = await readFile(path.join(ROOT, '.dockerignore'), 'utf8')
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const negate = line.startsWith('!')
      const glob = (negate ? line.slice(1) : line).replace(/^\/+|\/+$/g, '')
      const source = glob
        .split(/(\*\*|\*|\?)/)
        .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
        .join('')
      return { pattern: new RegExp(`^${source}$`), negate }
    })
}

/** Whether .dockerignore keeps `file` (or a folder above it) out of the build context; the last match wins. */
function dockerignored(rules: { pattern: RegExp; negate: boolean }[], file: string): boolean {
  const parts = path.posix.normalize(file).split('/')
  const candidates = parts.map((_, index) => parts.slice(0, index + 1).join('/'))
  let ignored = false
  for (const rule of rules) if (candidates.some((candidate) => rule.pattern.test(candidate))) ignored = !rule.negate
  return ignored
}

/** COPY semantics: a folder's content goes into dest; a file goes to dest, or into it when dest is a folder. */
async function place(source: string, dest: string, destIsFolder: boolean): Promise<void> {
  if ((await stat(source)).isDirectory()) {
    await mkdir(dest, { recursive: true })
    await cp(source, dest, { recursive: true })
    return
  }
  const target = destIsFolder ? path.join(dest, path.basename(source)) : dest
  await mkdir(path.dirname(target), { recursive: true })
  await cp(source, target)
}

/** The bare module specifiers imported by the .js files below `dir`. */
async function importedPackages(dir: string): Promise<Set<string>> {
  const packages = new Set<string>()
  const files = (await readdir(dir, { recursive: true })).filter((file) => file.endsWith('.js'))
  for (const file of files) {
    const text = await readFile(path.join(dir, file), 'utf8')
    const specifiers = [
      ...text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]/gm),
      ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
      ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
    ].map((match) => match[1]!)
    for (const specifier of specifiers) {
      if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0]!)) continue
      const segments = specifier.split('/')
      packages.add(specifier.startsWith('@') ? segments.slice(0, 2).join('/') : segments[0]!)
    }
  }
  return packages
}

describe('Dockerfile', () => {
  let stages: Stage[] & { args: Record<string, string> }
  let build: Stage
  let runtime: Stage
  let work: string

  beforeAll(async () => {
    stages = parseDockerfile(await readFile(path.join(ROOT, 'Dockerfile'), 'utf8'))
    expect(stages).toHaveLength(2)
    build = stages[0]!
    runtime = stages[1]!
    work = await mkdtemp(path.join(os.tmpdir(), 'ff-dockerfile-'))
  })

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true })
  })

  test('two stages FROM NODE_IMAGE (node:24-slim by default); production dependencies, NODE_ENV, port, health check and command of the runtime stage', async () => {
    expect(stages.args).toEqual({ NODE_IMAGE: 'node:24-slim' })
    expect(stages.map((stage) => stage.image)).toEqual(['${NODE_IMAGE}', '${NODE_IMAGE}'])
    expect(build.name).toBe('build')
    expect(build.runs).toEqual(expect.arrayContaining([expect.stringMatching(/^npm ci\b/), 'npm run build']))
    expect(runtime.runs.some((line) => /\bnpm ci\b.*--omit=dev/.test(line))).toBe(true)
    const text = await readFile(path.join(ROOT, 'Dockerfile'), 'utf8')
    expect(text).toMatch(/^ENV NODE_ENV=production$/m)
    expect(text).toMatch(/^EXPOSE 4000$/m)
    expect(runtime.healthcheck).toMatch(/CMD \["node", "-e", ".*\/healthz/)
    expect(runtime.cmd).toEqual(['node', 'dist/src/cli/forgectl.js', 'serve'])
    expect(runtime.copies.filter((copy) => copy.from !== undefined).every((copy) => copy.from === build.name)).toBe(true)
  })

  test('every path it copies is in the build context, and not ignored by .dockerignore', async () => {
    const rules = await readDockerignore()
    const sources = stages.flatMap((stage) => stage.copies.filter((copy) => copy.from === undefined).flatMap((copy) => copy.sources))
    expect(sources).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'src', 'migrations']))
    for (const source of sources) {
      expect(await exists(path.join(ROOT, source)), `${source} exists`).toBe(true)
      expect(dockerignored(rules, source), `${source} is not in .dockerignore`).toBe(false)
    }
    for (const kept of ['node_modules', 'dist', 'data', 'test-results', '.git', 'bench/results', '.env']) {
      expect(dockerignored(rules, kept), `${kept} is in .dockerignore`).toBe(true)
    }
  })

  test(
    'the build stage builds from what it copies, and the runtime stage it assembles migrates and serves from dist/src/cli/forgectl.js',
    async () => {
      // The build stage: exactly what it copies (nothing else of the repo), its dependencies, `npm run build`.
      const buildRoot = path.join(work, 'build')
      for (const copy of build.copies) {
        expect(copy.from, 'the build stage copies from the context only').toBeUndefined()
        for (const source of copy.sources) {
          await place(path.join(ROOT, source), path.join(buildRoot, build.workdir, copy.dest), copy.dest.endsWith('/') || copy.sources.length > 1)
        }
      }
      const buildDir = path.join(buildRoot, build.workdir)
      await symlink(path.join(ROOT, 'node_modules'), path.join(buildDir, 'node_modules'), 'dir')
      const built = await run('npm', ['run', 'build'], { cwd: buildDir, timeout: 240_000 })
      expect(built.code, `npm run build:\n${built.stdout}\n${built.stderr}`).toBe(0)
      expect(await exists(path.join(buildDir, 'dist/src/cli/forgectl.js'))).toBe(true)

      // The runtime stage: its copies, from the context and from the build stage's output.
      const imageRoot = path.join(work, 'image')
      for (const copy of runtime.copies) {
        for (const source of copy.sources) {
          const from = copy.from === undefined ? path.join(ROOT, source) : path.join(buildRoot, path.posix.resolve(build.workdir, source))
          expect(await exists(from), `COPY ${copy.from ? `--from=${copy.from} ` : ''}${source}`).toBe(true)
          await place(from, path.join(imageRoot, path.posix.resolve(runtime.workdir, copy.dest)), copy.dest.endsWith('/') || copy.sources.length > 1)
        }
      }
      const app = path.join(imageRoot, runtime.workdir)
      expect(await exists(path.join(app, 'package.json'))).toBe(true)
      expect(await exists(path.join(app, 'migrations'))).toBe(true)
      expect(await exists(path.join(app, runtime.cmd![1]!)), `${runtime.cmd![1]} in the image`).toBe(true)
      // The forgectl wrapper on the PATH points at a file the image has.
      const wrapped = runtime.runs.flatMap((line) => [...line.matchAll(/exec node (\/\S+\.js)/g)].map((match) => match[1]!))
      expect(wrapped).toEqual([path.posix.join(runtime.workdir, runtime.cmd![1]!)])
      expect(runtime.runs.join('\n')).toContain('/usr/local/bin/forgectl')

      // `npm ci --omit=dev` is enough: the compiled code imports production dependencies only.
      const packageJson = JSON.parse(await readFile(path.join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
      const imported = [...(await importedPackages(path.join(app, 'dist')))]
      expect(imported.length).toBeGreaterThan(0)
      expect(imported.filter((name) => !(name in packageJson.dependencies))).toEqual([])

      // In that layout the daemon finds package.json, and migrations/ next to it (packageRoot()).
      await symlink(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'), 'dir')
      const migrated = await run('node', [runtime.cmd![1]!, 'migrate'], {
        cwd: app,
        env: cleanEnv({ NODE_ENV: 'production', DATA_DIR: path.join(work, 'data') }),
        timeout: 120_000,
      })
      expect(migrated.code, `${migrated.stdout}\n${migrated.stderr}`).toBe(0)
      expect(migrated.stdout).toContain('001_create_plugins_table.sql')
    },
    360_000,
  )
})

// --- (b2) the production start: npm start runs the compiled daemon -------------------

interface PackageJson {
  scripts: Record<string, string>
  engines: { node: string }
  bin: Record<string, string>
  devDependencies: Record<string, string>
}

/** Whether `version` (e.g. v24.21.0) satisfies a range made of `^X.Y.Z` alternatives joined by `||`. */
function satisfiesCaretRange(version: string, range: string): boolean {
  const parse = (text: string) => text.replace(/^[v^]/, '').split('.').map(Number) as [number, number, number]
  const [major, minor, patch] = parse(version)
  return range.split('||').some((alternative) => {
    const [wantMajor, wantMinor = 0, wantPatch = 0] = parse(alternative.trim())
    return major === wantMajor && (minor > wantMinor || (minor === wantMinor && patch >= wantPatch))
  })
}

describe('the production start', () => {
  let packageJson: PackageJson
  let work: string
  const prestart = path.join(ROOT, 'scripts', 'build-if-stale.mjs')

  beforeAll(async () => {
    packageJson = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as PackageJson
    work = await mkdtemp(path.join(os.tmpdir(), 'ff-start-'))
  })

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true })
  })

  test('npm start and npm run migrate run dist/ with node (no tsx), built first by prestart; npm run dev runs the sources with tsx', async () => {
    const dockerfile = parseDockerfile(await readFile(path.join(ROOT, 'Dockerfile'), 'utf8'))
    const entry = dockerfile.at(-1)!.cmd![1]! // the image's: dist/src/cli/forgectl.js
    expect(packageJson.scripts.start).toBe(`node ${entry} serve`)
    expect(packageJson.scripts.migrate).toBe(`node ${entry} migrate`)
    expect(packageJson.bin.forgectl).toBe(entry)
    expect(packageJson.scripts.prestart).toBe('node scripts/build-if-stale.mjs')
    expect(packageJson.scripts.premigrate).toBe('node scripts/build-if-stale.mjs')
    expect(packageJson.scripts.dev).toMatch(/^tsx watch .*src\/cli\/forgectl\.ts serve$/)
    expect('tsx' in packageJson.devDependencies).toBe(true)
    for (const name of ['start', 'prestart', 'migrate', 'premigrate']) expect(packageJson.scripts[name], name).not.toMatch(/\btsx\b/)
  })

  test('engines names the tested Node lines: that of the image (NODE_IMAGE) and the one running this test', async () => {
    const dockerfile = parseDockerfile(await readFile(path.join(ROOT, 'Dockerfile'), 'utf8'))
    const imageMajor = /^node:(\d+)-slim$/.exec(dockerfile.args.NODE_IMAGE!)![1]!
    expect(packageJson.engines.node).toBe('^20.19.0 || ^24.0.0')
    expect(satisfiesCaretRange(`v${imageMajor}.0.0`, packageJson.engines.node), `node:${imageMajor} in engines`).toBe(true)
    expect(satisfiesCaretRange(process.version, packageJson.engines.node), `${process.version} in engines`).toBe(true)
    expect(satisfiesCaretRange('v22.12.0', packageJson.engines.node), 'Node 22 is not tested').toBe(false)
  })

  /** A checkout with one source file: src/cli/forgectl.ts, a tsconfig, and the prestart script; node_modules only if asked. */
  async function miniCheckout(name: string, withTypeScript: boolean): Promise<string> {
    const dir = path.join(work, name)
    await mkdir(path.join(dir, 'src', 'cli'), { recursive: true })
    await mkdir(path.join(dir, 'scripts'), { recursive: true })
    await writeFile(path.join(dir, 'package.json'), '{ "type": "module" }\n')
    // The project's tsconfig.build.json, on a tsconfig.json without @types/node (a third of the time).
    const compilerOptions = { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, types: [], outDir: 'dist', rootDir: '.' }
    await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, include: ['src'] }))
    await cp(path.join(ROOT, 'tsconfig.build.json'), path.join(dir, 'tsconfig.build.json'))
    await cp(prestart, path.join(dir, 'scripts', 'build-if-stale.mjs'))
    await writeFile(path.join(dir, 'src', 'cli', 'forgectl.ts'), "console.log('version 1')\n")
    if (withTypeScript) await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir')
    return dir
  }

  /** Sets a file's times `seconds` from now: file times decide, and tests must not wait for the clock. */
  async function setTime(file: string, seconds: number): Promise<void> {
    const time = new Date(Date.now() + seconds * 1000)
    await utimes(file, time, time)
  }

  test('with TypeScript: it compiles a missing or outdated dist/ and does nothing while dist/ is current', async () => {
    const dir = await miniCheckout('with-typescript', true)
    const node = (args: string[]) => run(process.execPath, args, { cwd: dir, env: cleanEnv(), timeout: 120_000 })
    const first = await node(['scripts/build-if-stale.mjs'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toContain('dist/ has not been built: compiling')
    expect((await node(['dist/src/cli/forgectl.js'])).stdout.trim()).toBe('version 1')

    const again = await node(['scripts/build-if-stale.mjs'])
    expect({ code: again.code, stdout: again.stdout, stderr: again.stderr }).toEqual({ code: 0, stdout: '', stderr: '' })

    const source = path.join(dir, 'src', 'cli', 'forgectl.ts')
    await writeFile(source, "console.log('version 2')\n")
    await setTime(source, 5)
    const changed = await node(['scripts/build-if-stale.mjs'])
    expect(changed.code, changed.stderr).toBe(0)
    expect(changed.stderr).toContain('src/cli/forgectl.ts changed since the last build: compiling')
    expect((await node(['dist/src/cli/forgectl.js'])).stdout.trim()).toBe('version 2')

    // A type error stops npm run build, not npm start (as under tsx): printed, then started.
    await writeFile(source, "const version: number = 'three'\nconsole.log(`version ${version}`)\n")
    await setTime(source, 10)
    const typeError = await node(['scripts/build-if-stale.mjs'])
    expect(typeError.code, typeError.stderr).toBe(0)
    expect(typeError.stdout).toContain('error TS2322')
    expect(typeError.stderr).toContain('warning: the sources have type errors (above); dist/ was written and is started anyway')
    expect((await node(['dist/src/cli/forgectl.js'])).stdout.trim()).toBe('version three')
    // What `npm run build` runs (and the Dockerfile): it fails.
    expect((await node(['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'])).code).toBe(2)
  })

  test('without TypeScript (npm ci --omit=dev): a present dist/ is used as it is; a missing one is an error saying why', async () => {
    const built = await miniCheckout('built', true)
    expect((await run(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: built, env: cleanEnv(), timeout: 120_000 })).code).toBe(0)
    const dir = await miniCheckout('without-typescript', false)
    const prestartHere = () => run(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: dir, env: cleanEnv() })

    const missing = await prestartHere()
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('dist/ has not been built, and TypeScript is not installed (npm ci --omit=dev?)')

    await cp(path.join(built, 'dist'), path.join(dir, 'dist'), { recursive: true })
    await setTime(path.join(dir, 'dist', 'src', 'cli', 'forgectl.js'), 5)
    expect(await prestartHere()).toEqual({ code: 0, stdout: '', stderr: '' })

    await setTime(path.join(dir, 'src', 'cli', 'forgectl.ts'), 60)
    const stale = await prestartHere()
    expect(stale.code).toBe(0)
    expect(stale.stderr).toContain('warning: src/cli/forgectl.ts changed since the last build, but TypeScript is not installed: starting dist/ as it is')
  })
})

// --- (c) the examples ----------------------------------------------------------------

const EXAMPLES = ['hello-http', 'hello-healthcheck', 'hello-stopped', 'network-pair', 'readonly-root']
/** The plugins each example file declares (one, named like the file, unless listed). */
const EXAMPLE_PLUGINS: Record<string, string[]> = { 'network-pair': ['network-back', 'network-front'] }

async function exampleImages(): Promise<string[]> {
  const { stdout } = await execFileAsync('bash', ['examples/build-image.sh', '--list'], { cwd: ROOT })
  return stdout.split('\n').filter(Boolean)
}

describe('examples', () => {
  test('every example spec is valid, its plugins named like the file', async () => {
    const files = (await readdir(path.join(ROOT, 'examples'))).filter((file) => /\.ya?ml$/.test(file)).sort()
    expect(files).toEqual(EXAMPLES.map((name) => `${name}.yaml`).sort())
    for (const file of files) {
      const parsed = parseSpecText(await readFile(path.join(ROOT, 'examples', file), 'utf8'))
      expect(parsed.errors, file).toEqual([])
      const name = file.replace(/\.ya?ml$/, '')
      expect(parsed.documents.map((entry) => entry.document.metadata.name)).toEqual(EXAMPLE_PLUGINS[name] ?? [name])
    }
  })

  test('hello-http is checked over HTTP, hello-healthcheck by its image, hello-stopped is declared stopped', async () => {
    const read = async (name: string) => parseSpecText(await readFile(path.join(ROOT, 'examples', `${name}.yaml`), 'utf8')).documents[0]!.document
    expect((await read('hello-http')).spec.manifest).toMatchObject({ image: 'flowforge-example/hello:1', healthCheck: { path: '/health' } })
    expect((await read('hello-healthcheck')).spec.manifest.image).toBe('flowforge-example/hello-healthcheck:1')
    expect((await read('hello-healthcheck')).spec.manifest.healthCheck).toBeUndefined()
    expect((await read('hello-stopped')).spec.state).toBe('stopped')
    expect((await read('readonly-root')).spec.manifest).toMatchObject({ user: '1000:1000', readOnlyRootFilesystem: true, tmpfs: ['/tmp'], capDrop: ['ALL'] })
    const pair = parseSpecText(await readFile(path.join(ROOT, 'examples', 'network-pair.yaml'), 'utf8')).documents.map((entry) => entry.document)
    expect(pair[1]!.spec.environment).toEqual({ BACKEND_URL: 'http://network-back:8080/' })
  })

  test('the examples use exactly the images examples/build-image.sh builds, and never pull them', async () => {
    const used = new Set<string>()
    for (const name of EXAMPLES) {
      const parsed = parseSpecText(await readFile(path.join(ROOT, 'examples', `${name}.yaml`), 'utf8'))
      for (const { document } of parsed.documents) {
        used.add(document.spec.manifest.image as string)
        expect(document.spec.manifest.imagePullPolicy, name).toBe('Never')
      }
    }
    expect([...used].sort()).toEqual((await exampleImages()).sort())
  })
})

// --- (d) the example images on the Docker engine -------------------------------------

const engine = await probeEngine()
requireEngineInCi(engine)

const CONTAINER_PREFIX = 'ff-packaging-'

async function removeOurContainers(): Promise<void> {
  const ids = (await docker('ps', '-aq', '--filter', `name=^/${CONTAINER_PREFIX}`)).split('\n').filter(Boolean)
  if (ids.length > 0) await docker('rm', '-f', ...ids)
}

async function imageExists(image: string): Promise<boolean> {
  return docker('image', 'inspect', image).then(
    () => true,
    () => false,
  )
}

async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

describe.skipIf(!engine.reachable)(`the example images (${engine.reason})`, () => {
  let images: string[] = []
  const builtHere: string[] = []

  beforeAll(async () => {
    images = await exampleImages()
    for (const image of images) if (!(await imageExists(image))) builtHere.push(image)
    await removeOurContainers()
  })

  afterAll(async () => {
    await removeOurContainers()
    // Images this test built are removed again, children (built FROM the others) first.
    for (const image of [...builtHere].reverse()) await docker('rmi', image).catch(() => undefined)
  })

  test(
    'examples/build-image.sh builds them without a registry, and a second run builds nothing',
    async () => {
      const first = await run('bash', ['examples/build-image.sh'], { timeout: 180_000 })
      expect(first.code, first.stderr).toBe(0)
      for (const image of images) expect(await imageExists(image), image).toBe(true)
      const second = await run('bash', ['examples/build-image.sh'], { timeout: 60_000 })
      expect(second.code, second.stderr).toBe(0)
      expect(second.stdout).toBe('')
    },
    240_000,
  )

  test('flowforge-example/hello:1 answers /health and names its example; it stops at once on SIGTERM', async () => {
    const name = `${CONTAINER_PREFIX}hello`
    await docker('run', '-d', '--name', name, '-p', '127.0.0.1::8080', 'flowforge-example/hello:1')
    const port = Number((await docker('port', name, '8080/tcp')).split('\n')[0]!.split(':').at(-1))
    const health = await eventually(async () => {
      const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_000) })
      return response.ok ? (await response.text()).trim() : undefined
    }, 10_000, '/health')
    expect(health).toBe('ok')
    const index = await (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2_000) })).text()
    expect(index).toContain('hello-http')

    const started = Date.now()
    await docker('stop', '-t', '10', name)
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(await docker('inspect', '-f', '{{.State.ExitCode}}', name)).toBe('0')
  })

  test('flowforge-example/hello-healthcheck:1 becomes healthy through its own HEALTHCHECK', async () => {
    const name = `${CONTAINER_PREFIX}hello-healthcheck`
    await docker('run', '-d', '--name', name, 'flowforge-example/hello-healthcheck:1')
    const status = await eventually(async () => {
      const health = await docker('inspect', '-f', '{{.State.Health.Status}}', name)
      return health === 'healthy' ? health : undefined
    }, 30_000, `${name} to report healthy`)
    expect(status).toBe('healthy')
    expect(await docker('exec', name, 'cat', '/www/index.html')).toContain('hello-healthcheck')
  }, 45_000)
})
