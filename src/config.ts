// The one place that reads process.env. Everything else receives a typed Config.
import { existsSync } from 'node:fs'
import { isIP } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { isDnsLabel } from './util/dns-label.js'
import { ExpectedError } from './util/expected-error.js'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/** RUNTIME: what runs plugins. docker: one container per plugin on DOCKER_HOST; swarm: one Swarm service per plugin, DOCKER_HOST a manager node. */
export const RUNTIMES = ['docker', 'swarm'] as const
export type RuntimeName = (typeof RUNTIMES)[number]

/** How plugins run as Swarm services (RUNTIME=swarm). */
export interface SwarmConfig {
  /** SWARM_POLL_INTERVAL: how often the tasks and nodes are listed (Swarm has no task events). Default 2 s. */
  pollIntervalMs: number
  /** SWARM_PUBLISH_MODE: ingress publishes on every node (the routing mesh, needs IPVS); host on the task's node only. Default ingress. */
  publishMode: 'ingress' | 'host'
  /** SWARM_ENDPOINT_MODE: vip (a virtual IP, needs IPVS) or dnsrr (DNS round robin over the tasks). Default vip. */
  endpointMode: 'vip' | 'dnsrr'
  /** SWARM_RESTART_DELAY: Swarm's delay before it restarts an exited task. Default 5 s. */
  restartDelaySeconds: number
}

export interface PostgresServerConfig {
  kind: 'postgres'
  /** Full connection string; the password is never logged (see describeDatabase). */
  connectionString: string
}

export interface EmbeddedDatabaseConfig {
  kind: 'embedded'
  /** Folder holding the PGlite data (pgdata/) and the lock file. Default ./data. */
  dataDir: string
  /** Port of the Postgres wire protocol on 127.0.0.1; 0 turns it off. Default 5433. */
  sqlPort: number
  /** SQL_PASSWORD: the SQL port's password. Default: generated into <dataDir>/sql-password. Never logged. */
  sqlPassword?: string
  /** SQL_SOCKET_DIR: also serve a Unix socket .s.PGSQL.<port> there, mode 0600, without a password. Default none. */
  sqlSocketDir?: string
  /** SQL_TRANSACTION_TIMEOUT: an SQL client's transaction is ended after holding the database this long. Default 60 s. */
  sqlTransactionTimeoutMs?: number
  /** EMBEDDED_SHARED_BUFFERS_MB: PGlite's shared_buffers in MiB (Postgres' default is 128). Default 8; see EmbeddedOptions. */
  sharedBuffersMiB?: number
  /** EMBEDDED_WASM_OPTIMIZE: let V8 recompile PGlite's hot functions with its optimizing compiler. Default false; see EmbeddedOptions. */
  wasmOptimize?: boolean
}

export interface Config {
  database: PostgresServerConfig | EmbeddedDatabaseConfig
  /** How long start-up keeps retrying an unreachable database before giving up. Default 60 s. */
  dbConnectDeadlineMs: number
  /** statement_timeout for every query on a real server. Default 30 s. */
  dbStatementTimeoutMs: number
  /** Pool size on a real server. Default 20. */
  dbPoolMax: number
  migrationsDir: string
  logLevel: LogLevel
  controller: ControllerConfig
  api: ApiConfig
  specs: SpecsConfig
  console: ConsoleConfig
}

export interface ConsoleConfig {
  /** CATALOG_DIR: the marketplace's ForgeHook entries (YAML files). Default ./catalog. */
  catalogDir: string
  /** CATALOG_URL: also a JSON index of entries over HTTP(S). Default none. */
  catalogUrl?: string
}

export interface ApiConfig {
  /** HTTP port of the API. Default 4000. */
  port: number
  /**
   * Address the API listens on. Default 127.0.0.1 without a token, 0.0.0.0 with one; a
   * non-loopback address without FORGE_API_TOKEN is refused at start.
   */
  host: string
  /** FORGE_API_TOKEN: required as `Authorization: Bearer <token>` on /api and /plugins. */
  token?: string
  /** How often proxy request counters are written to plugin_metrics. Default 60 s. */
  usageFlushIntervalMs: number
  /**
   * Host names the API answers to besides IP literals and localhost: this machine's name and
   * API_ALLOWED_HOSTS (comma-separated; `.example.com` allows the names below it). Any other
   * Host is refused (DNS rebinding).
   */
  allowedHosts: string[]
  /** Live streams (event WebSockets and SSE, followed logs) open at once; more get 503. Default 32. */
  maxStreams: number
}

export interface SpecsConfig {
  /** Folder of *.yaml / *.yml plugin specs. Default ./specs. */
  dir: string
  /** Full re-scan period (watch events are only hints). Default 60 s. */
  rescanIntervalMs: number
  /** How long a file must stay unchanged before it is read (a half-written file is never applied). Default 50 ms. */
  settleMs: number
  /** YAML documents one file may hold; a file with more is refused unread. Default 500. */
  maxDocuments: number
}

export interface ControllerConfig {
  /**
   * Name of this installation, carried by its containers: managers with different names
   * share one Docker engine without touching each other's containers. Default "default".
   */
  instance: string
  /**
   * This manager among several on one database (MANAGER_ID): shown as the leader in
   * /readyz and /metrics. Default <hostname>-<pid>.
   */
  managerId: string
  /**
   * RUNTIME: docker runs each plugin as one container on DOCKER_HOST (spec.replicas other
   * than 1 and spec.placement are refused); swarm runs each as a Swarm service, DOCKER_HOST
   * being a manager node's engine. Default docker.
   */
  runtime: RuntimeName
  /** Docker endpoint: unix:///path or tcp://host:port. Default unix:///var/run/docker.sock. */
  dockerHost: string
  /** Timeout of each Docker call (not of the event stream). Default 10 s. */
  dockerTimeoutMs: number
  /** Address plugin ports are published on. Default 127.0.0.1 (published ports bypass host firewalls). */
  pluginBindAddress: string
  /** Host ports allocated to plugins that request none, and the ones a plugin may request. Default 4100-4999. */
  hostPortRange: { from: number; to: number }
  /** ALLOW_ANY_HOST_PORT: a plugin may request any host port, not only one in hostPortRange. Default false. */
  allowAnyHostPort: boolean
  /** EVENT_RETENTION: audit events and tombstones older than this are deleted. Default 90 days. */
  eventRetentionMs: number
  /** Reconciles running at once (they mostly wait on Docker). Default 8. */
  workers: number
  /** Full resync period. Default 5 min. */
  resyncIntervalMs: number
  /** Health checks and resource samples. Default 30 s. */
  healthIntervalMs: number
  /** Resource and usage samples older than this are deleted. Default 7 days. */
  metricsRetentionMs: number
  /** Grace period of docker stop. Default 10 s. */
  stopTimeoutSeconds: number
  /** Retry delays of a failing reconcile: doubling from base to max. Default 1 s to 5 min. */
  retryBaseMs: number
  retryMaxMs: number
  /** REVISION_HISTORY_LIMIT: revisions of its spec kept per plugin (plugin_revisions). Default 10. */
  revisionHistoryLimit: number
  /** UPDATE_DRAIN_TIMEOUT: longest wait for requests to the old container after a start-first switch. Default 10 s. */
  updateDrainTimeoutMs: number
  /**
   * The Docker config.json whose `auths` give registry credentials to every pull
   * (REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json when DOCKER_CONFIG is set). Default
   * none: pulls go without credentials. Read again whenever it changes.
   */
  registryAuthFile?: string
  /** IMAGE_POLL_INTERVAL: imagePullPolicy Always images are pulled this often to notice a new push. Default 5 min. */
  imagePollIntervalMs: number
  /** RUNTIME=swarm only (docs/swarm.md). */
  swarm: SwarmConfig
  /** PLUGIN_PIDS_LIMIT: processes a plugin container may have when its manifest sets none. Default 512. */
  pluginPidsLimit: number
  /** PLUGIN_DEFAULT_MEMORY_MB: memory limit when the manifest sets none; 0 = none. Default 512. */
  pluginDefaultMemoryMb: number
  /** PLUGIN_LOG_MAX_SIZE / PLUGIN_LOG_MAX_FILES: json-file log rotation of every container. Default 10m × 3. */
  pluginLogMaxSize: string
  pluginLogMaxFiles: number
}

/** A json-file max-size: a number with k, m or g (Docker's units), at least 100k. Default 10m. */
function readLogSize(env: Env, problems: string[]): string {
  const value = nonEmpty(env.PLUGIN_LOG_MAX_SIZE) ?? '10m'
  const match = /^(\d+)([kmg])$/.exec(value)
  const bytes = match ? Number(match[1]) * { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2] as 'k' | 'm' | 'g'] : Number.NaN
  if (!(bytes >= 100 * 1024)) problems.push(`PLUGIN_LOG_MAX_SIZE must be a size such as 10m, 500k or 1g (at least 100k), got "${value}"`)
  return value
}

export class ConfigError extends ExpectedError {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`)
    this.name = 'ConfigError'
  }
}

type Env = Record<string, string | undefined>

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/** Reads and validates the whole configuration; throws one ConfigError naming every bad value. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = []
  const read = new EnvReader(env, problems)

  const database = readDatabase(env, read, problems)
  const config: Config = {
    database,
    dbConnectDeadlineMs: read.seconds('DB_CONNECT_DEADLINE', 60) * 1000,
    dbStatementTimeoutMs: read.seconds('DB_STATEMENT_TIMEOUT', 30) * 1000,
    dbPoolMax: read.integer('DB_POOL_MAX', 20, 1, 1000),
    migrationsDir: path.resolve(env.MIGRATIONS_DIR ?? path.join(packageRoot(), 'migrations')),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    controller: {
      instance: readInstance(env, problems),
      managerId: readManagerId(env, problems),
      runtime: read.oneOf('RUNTIME', RUNTIMES, 'docker'),
      dockerHost: readDockerHost(env, problems),
      dockerTimeoutMs: read.seconds('DOCKER_TIMEOUT', 10) * 1000,
      pluginBindAddress: readAddress(env, 'PLUGIN_BIND_ADDRESS', '127.0.0.1', problems),
      hostPortRange: readPortRange(env, problems),
      allowAnyHostPort: read.flag('ALLOW_ANY_HOST_PORT', false),
      eventRetentionMs: read.seconds('EVENT_RETENTION', 90 * 24 * 3600) * 1000,
      workers: read.integer('RECONCILE_WORKERS', 8, 1, 64),
      resyncIntervalMs: read.seconds('RESYNC_INTERVAL', 300) * 1000,
      healthIntervalMs: read.seconds('HEALTH_INTERVAL', 30) * 1000,
      metricsRetentionMs: read.seconds('METRICS_RETENTION', 7 * 24 * 3600) * 1000,
      stopTimeoutSeconds: Math.max(1, Math.round(read.seconds('STOP_TIMEOUT', 10))),
      retryBaseMs: read.seconds('RECONCILE_RETRY_BASE', 1) * 1000,
      retryMaxMs: read.seconds('RECONCILE_RETRY_MAX', 300) * 1000,
      revisionHistoryLimit: read.integer('REVISION_HISTORY_LIMIT', 10, 1, 1000),
      updateDrainTimeoutMs: read.seconds('UPDATE_DRAIN_TIMEOUT', 10) * 1000,
      ...readRegistryAuthFile(env),
      imagePollIntervalMs: read.seconds('IMAGE_POLL_INTERVAL', 300) * 1000,
      swarm: {
        pollIntervalMs: read.seconds('SWARM_POLL_INTERVAL', 2) * 1000,
        publishMode: read.oneOf('SWARM_PUBLISH_MODE', ['ingress', 'host'] as const, 'ingress'),
        endpointMode: read.oneOf('SWARM_ENDPOINT_MODE', ['vip', 'dnsrr'] as const, 'vip'),
        restartDelaySeconds: read.seconds('SWARM_RESTART_DELAY', 5),
      },
      pluginPidsLimit: read.integer('PLUGIN_PIDS_LIMIT', 512, 16, 1_000_000),
      pluginDefaultMemoryMb: read.integer('PLUGIN_DEFAULT_MEMORY_MB', 512, 0, 1_048_576),
      pluginLogMaxSize: readLogSize(env, problems),
      pluginLogMaxFiles: read.integer('PLUGIN_LOG_MAX_FILES', 3, 1, 100),
    },
    api: readApi(env, read, problems),
    specs: {
      dir: path.resolve(nonEmpty(env.SPECS_DIR) ?? './specs'),
      rescanIntervalMs: read.seconds('SPECS_RESCAN_INTERVAL', 60) * 1000,
      settleMs: Math.round(read.seconds('SPECS_SETTLE', 0.05) * 1000),
      maxDocuments: read.integer('SPECS_MAX_DOCUMENTS', 500, 1, 100_000),
    },
    console: readConsole(env, problems),
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

function readDatabase(env: Env, read: EnvReader, problems: string[]): Config['database'] {
  const url = nonEmpty(env.DATABASE_URL)
  if (url) {
    const problem = checkConnectionString(url)
    if (problem) problems.push(`DATABASE_URL ${problem}`)
    return { kind: 'postgres', connectionString: url }
  }
  const host = nonEmpty(env.POSTGRES_HOST)
  if (host) {
    const port = read.integer('POSTGRES_PORT', 5432, 1, 65535)
    const user = nonEmpty(env.POSTGRES_USER) ?? 'postgres'
    const password = env.POSTGRES_PASSWORD ?? ''
    const database = nonEmpty(env.POSTGRES_DB) ?? user
    const auth = password ? `${encodeURIComponent(user)}:${encodeURIComponent(password)}` : encodeURIComponent(user)
    // A host that is a socket folder (starts with '/') goes in the query string, as libpq does.
    const connectionString = host.startsWith('/')
      ? `postgresql://${auth}@/${encodeURIComponent(database)}?host=${encodeURIComponent(host)}&port=${port}`
      : `postgresql://${auth}@${host}:${port}/${encodeURIComponent(database)}`
    return { kind: 'postgres', connectionString }
  }
  for (const name of ['POSTGRES_PORT', 'POSTGRES_USER', 'POSTGRES_PASSWORD', 'POSTGRES_DB']) {
    if (nonEmpty(env[name])) problems.push(`${name} is set but POSTGRES_HOST is not; set POSTGRES_HOST (or DATABASE_URL) to use a Postgres server`)
  }
  const sqlPassword = env.SQL_PASSWORD === '' ? undefined : env.SQL_PASSWORD
  if (sqlPassword !== undefined && (sqlPassword.length < 8 || /\s/.test(sqlPassword))) {
    problems.push('SQL_PASSWORD must be at least 8 characters without spaces (or unset, to have one generated)')
  }
  const sqlSocketDir = nonEmpty(env.SQL_SOCKET_DIR)
  const sqlTransactionTimeout = nonEmpty(env.SQL_TRANSACTION_TIMEOUT)
  const sharedBuffers = nonEmpty(env.EMBEDDED_SHARED_BUFFERS_MB)
  const wasmOptimize = nonEmpty(env.EMBEDDED_WASM_OPTIMIZE)
  return {
    kind: 'embedded',
    dataDir: path.resolve(nonEmpty(env.DATA_DIR) ?? './data'),
    sqlPort: read.integer('SQL_PORT', 5433, 0, 65535),
    ...(sqlPassword !== undefined ? { sqlPassword } : {}),
    ...(sqlSocketDir !== undefined ? { sqlSocketDir: path.resolve(sqlSocketDir) } : {}),
    ...(sqlTransactionTimeout !== undefined ? { sqlTransactionTimeoutMs: read.seconds('SQL_TRANSACTION_TIMEOUT', 60) * 1000 } : {}),
    ...(sharedBuffers !== undefined ? { sharedBuffersMiB: read.integer('EMBEDDED_SHARED_BUFFERS_MB', 8, 1, 4096) } : {}),
    ...(wasmOptimize !== undefined ? { wasmOptimize: read.flag('EMBEDDED_WASM_OPTIMIZE', false) } : {}),
  }
}

function readApi(env: Env, read: EnvReader, problems: string[]): ApiConfig {
  const token = nonEmpty(env.FORGE_API_TOKEN)
  if (token !== undefined && token.length < 16) problems.push('FORGE_API_TOKEN must be at least 16 characters long')
  const host = readAddress(env, 'API_BIND_ADDRESS', token ? '0.0.0.0' : '127.0.0.1', problems)
  if (!token && !isLoopback(host)) {
    problems.push(`API_BIND_ADDRESS ${host} is not a loopback address and FORGE_API_TOKEN is not set: set a token, or bind 127.0.0.1`)
  }
  return {
    port: read.integer('PORT', 4000, 0, 65535),
    host,
    ...(token ? { token } : {}),
    usageFlushIntervalMs: read.seconds('USAGE_FLUSH_INTERVAL', 60) * 1000,
    allowedHosts: readAllowedHosts(env, problems),
    maxStreams: read.integer('API_MAX_STREAMS', 32, 1, 10_000),
  }
}

function readConsole(env: Env, problems: string[]): ConsoleConfig {
  const catalogUrl = nonEmpty(env.CATALOG_URL)
  if (catalogUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(catalogUrl)) problems.push(`CATALOG_URL must be an http(s) URL of a JSON index, got "${catalogUrl}"`)
  return { catalogDir: path.resolve(nonEmpty(env.CATALOG_DIR) ?? './catalog'), ...(catalogUrl !== undefined ? { catalogUrl } : {}) }
}

function readAllowedHosts(env: Env, problems: string[]): string[] {
  const listed = (env.API_ALLOWED_HOSTS ?? '').split(',').map((name) => name.trim().toLowerCase()).filter(Boolean)
  for (const name of listed) {
    if (!/^\.?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) problems.push(`API_ALLOWED_HOSTS must list host names such as flowforge.example.com or .example.com, got "${name}"`)
  }
  return [os.hostname().toLowerCase(), ...listed]
}

export function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.')
}

function readInstance(env: Env, problems: string[]): string {
  const value = nonEmpty(env.MANAGER_INSTANCE) ?? 'default'
  if (!isDnsLabel(value)) {
    problems.push(`MANAGER_INSTANCE must be a DNS label (lower-case letters, digits and "-"), got "${value}"`)
  }
  return value
}

function readManagerId(env: Env, problems: string[]): string {
  const value = nonEmpty(env.MANAGER_ID) ?? `${os.hostname()}-${process.pid}`
  if (!/^[A-Za-z0-9][-A-Za-z0-9._]{0,39}$/.test(value)) {
    problems.push(`MANAGER_ID must be 1 to 40 letters, digits, ".", "_" or "-", got "${value}"`)
  }
  return value
}

/**
 * REGISTRY_AUTH_FILE, or the file the Docker CLI itself reads when DOCKER_CONFIG names its
 * folder. Not ~/.docker/config.json by default: a daemon should send credentials only
 * where it was told to. A missing file is no error (`docker login` may write it later).
 */
function readRegistryAuthFile(env: Env): { registryAuthFile?: string } {
  const file = nonEmpty(env.REGISTRY_AUTH_FILE)
  if (file) return { registryAuthFile: path.resolve(file) }
  const dockerConfig = nonEmpty(env.DOCKER_CONFIG)
  if (dockerConfig) return { registryAuthFile: path.resolve(dockerConfig, 'config.json') }
  return {}
}

function readDockerHost(env: Env, problems: string[]): string {
  const value = nonEmpty(env.DOCKER_HOST) ?? 'unix:///var/run/docker.sock'
  if (!/^(unix:\/\/\/.+|tcp:\/\/[^/:]+:\d+\/?)$/.test(value)) {
    problems.push(`DOCKER_HOST must look like unix:///var/run/docker.sock or tcp://127.0.0.1:2375, got "${value}"`)
  }
  return value
}

function readAddress(env: Env, name: string, fallback: string, problems: string[]): string {
  const value = nonEmpty(env[name]) ?? fallback
  if (!isIP(value)) problems.push(`${name} must be an IP address such as 127.0.0.1 or 0.0.0.0, got "${value}"`)
  return value
}

function readPortRange(env: Env, problems: string[]): { from: number; to: number } {
  const raw = nonEmpty(env.HOST_PORT_RANGE) ?? '4100-4999'
  const match = /^(\d+)-(\d+)$/.exec(raw)
  const from = Number(match?.[1])
  const to = Number(match?.[2])
  if (!match || !isPort(from) || !isPort(to) || from > to) {
    problems.push(`HOST_PORT_RANGE must look like 4100-4999 (two ports, the first not above the second), got "${raw}"`)
    return { from: 4100, to: 4999 }
  }
  return { from, to }
}

function checkConnectionString(value: string): string | undefined {
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    return 'is not a URL; expected postgresql://user:password@host:5432/database'
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    return `has scheme "${parsed.protocol}"; expected postgresql://user:password@host:5432/database`
  }
  if (parsed.port && !isPort(Number(parsed.port))) return `has an invalid port "${parsed.port}"`
  return undefined
}

/** The connection string with its password replaced, for logs and error messages. */
export function redactConnectionString(value: string): string {
  try {
    const parsed = new URL(value)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '<unparseable connection string>'
  }
}

export function describeDatabase(database: Config['database']): string {
  if (database.kind === 'embedded') return `embedded Postgres (PGlite) in ${database.dataDir}`
  return `Postgres server ${redactConnectionString(database.connectionString)}`
}

class EnvReader {
  constructor(
    private readonly env: Env,
    private readonly problems: string[],
  ) {}

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = nonEmpty(this.env[name])
    if (raw === undefined) return fallback
    const value = Number(raw)
    if (!/^-?\d+$/.test(raw) || value < min || value > max) {
      this.problems.push(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`)
      return fallback
    }
    return value
  }

  /** Seconds as a plain number ("30") or with a unit ("500ms", "30s", "5m", "7d"). */
  seconds(name: string, fallbackSeconds: number): number {
    const raw = nonEmpty(this.env[name])
    if (raw === undefined) return fallbackSeconds
    const parsed = parseDurationSeconds(raw)
    if (parsed === undefined || parsed <= 0) {
      this.problems.push(`${name} must be a positive duration such as 30, 30s, 500ms, 5m or 7d, got "${raw}"`)
      return fallbackSeconds
    }
    return parsed
  }

  /** true, false, 1 or 0. */
  flag(name: string, fallback: boolean): boolean {
    const raw = nonEmpty(this.env[name])
    if (raw === undefined) return fallback
    if (raw === 'true' || raw === '1') return true
    if (raw === 'false' || raw === '0') return false
    this.problems.push(`${name} must be true or false, got "${raw}"`)
    return fallback
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = nonEmpty(this.env[name])
    if (raw === undefined) return fallback
    if ((allowed as readonly string[]).includes(raw)) return raw as T
    this.problems.push(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`)
    return fallback
  }
}

export function parseDurationSeconds(raw: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim())
  if (!match) return undefined
  const amount = Number(match[1])
  const factors: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }
  const factor = factors[match[2] ?? 's']!
  return amount * factor
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim()
  return trimmed ? trimmed : undefined
}

function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 65535
}

/** The folder holding package.json, found from this file (works from src/ and dist/src/). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error('cannot find package.json above ' + fileURLToPath(import.meta.url))
    dir = parent
  }
  return dir
}

/** What forgectl's client commands need: where the daemon's HTTP API is, and its token. */
export interface ClientConfig {
  /** FORGE_URL without a trailing slash. Default http://127.0.0.1:4000 (the daemon's default PORT on loopback). */
  url: string
  /** FORGE_API_TOKEN, sent as `Authorization: Bearer <token>`. Default none. */
  token?: string
}

/** Reads FORGE_URL and FORGE_API_TOKEN for forgectl; throws one ConfigError naming a bad value. */
export function loadClientConfig(env: Env = process.env): ClientConfig {
  const raw = nonEmpty(env.FORGE_URL) ?? 'http://127.0.0.1:4000'
  const problem = checkApiUrl(raw)
  if (problem) throw new ConfigError([`FORGE_URL ${problem}, got "${raw}"`])
  const token = nonEmpty(env.FORGE_API_TOKEN)
  // A path is kept (a daemon behind a reverse proxy at /forge); the API paths are appended to it.
  const url = raw.replace(/\/+$/, '')
  return token ? { url, token } : { url }
}

function checkApiUrl(value: string): string | undefined {
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    return 'is not a URL; expected http://host:port such as http://127.0.0.1:4000'
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `must be an http:// or https:// URL (not ${parsed.protocol})`
  if (parsed.search || parsed.hash) return 'must not have a query string or fragment'
  if (parsed.username || parsed.password) return 'must not carry credentials: set FORGE_API_TOKEN instead'
  return undefined
}
