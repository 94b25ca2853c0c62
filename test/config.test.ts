import os from 'node:os'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { ConfigError, describeDatabase, loadConfig, parseDurationSeconds, redactConnectionString } from '../src/config.js'

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  return []
}

describe('configuration', () => {
  test('with nothing set it uses the embedded database in ./data with the SQL port on 5433', () => {
    const config = loadConfig({})
    expect(config.database).toEqual({ kind: 'embedded', dataDir: path.resolve('./data'), sqlPort: 5433 })
    expect(config.dbConnectDeadlineMs).toBe(60_000)
    expect(config.dbStatementTimeoutMs).toBe(30_000)
    expect(config.dbPoolMax).toBe(20)
    expect(config.logLevel).toBe('info')
    expect(config.migrationsDir).toMatch(/migrations$/)
  })

  test('DATA_DIR and SQL_PORT=0 are honoured', () => {
    expect(loadConfig({ DATA_DIR: '/var/lib/flowforge', SQL_PORT: '0' }).database).toEqual({
      kind: 'embedded',
      dataDir: '/var/lib/flowforge',
      sqlPort: 0,
    })
  })

  test('DATABASE_URL selects a Postgres server', () => {
    const config = loadConfig({ DATABASE_URL: 'postgresql://ff:secret@db.internal:5432/flowforge' })
    expect(config.database).toEqual({ kind: 'postgres', connectionString: 'postgresql://ff:secret@db.internal:5432/flowforge' })
  })

  test('the POSTGRES_* variables build a connection string, escaping the password', () => {
    const config = loadConfig({
      POSTGRES_HOST: 'postgres',
      POSTGRES_PORT: '5433',
      POSTGRES_USER: 'flowforge',
      POSTGRES_PASSWORD: 'p@ss/word',
      POSTGRES_DB: 'flowforge',
    })
    expect(config.database).toEqual({ kind: 'postgres', connectionString: 'postgresql://flowforge:p%40ss%2Fword@postgres:5433/flowforge' })
  })

  test('DATABASE_URL wins over the POSTGRES_* variables', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://a@b/c', POSTGRES_HOST: 'elsewhere' })
    expect(config.database).toEqual({ kind: 'postgres', connectionString: 'postgres://a@b/c' })
  })

  test('every bad value is named in one error', () => {
    const problems = problemsOf({
      DATABASE_URL: 'mysql://root@localhost/db',
      DB_CONNECT_DEADLINE: 'soon',
      DB_POOL_MAX: '0',
      LOG_LEVEL: 'loud',
    })
    expect(problems).toEqual([
      'DATABASE_URL has scheme "mysql:"; expected postgresql://user:password@host:5432/database',
      'DB_CONNECT_DEADLINE must be a positive duration such as 30, 30s, 500ms, 5m or 7d, got "soon"',
      'DB_POOL_MAX must be a whole number from 1 to 1000, got "0"',
      'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ])
  })

  test('RUNTIME is docker unless swarm is asked for, and another value is named', () => {
    expect(loadConfig({}).controller.runtime).toBe('docker')
    expect(loadConfig({ RUNTIME: 'swarm' }).controller.runtime).toBe('swarm')
    expect(loadConfig({ RUNTIME: ' docker ' }).controller.runtime).toBe('docker')
    expect(problemsOf({ RUNTIME: 'kubernetes' })).toEqual(['RUNTIME must be one of docker, swarm, got "kubernetes"'])
    expect(problemsOf({ RUNTIME: 'Swarm' })).toEqual(['RUNTIME must be one of docker, swarm, got "Swarm"'])
  })

  test('the swarm settings are read and checked', () => {
    expect(loadConfig({ SWARM_PUBLISH_MODE: 'host', SWARM_ENDPOINT_MODE: 'dnsrr', SWARM_POLL_INTERVAL: '5s', SWARM_RESTART_DELAY: '1' }).controller.swarm).toEqual({ pollIntervalMs: 5_000, publishMode: 'host', endpointMode: 'dnsrr', restartDelaySeconds: 1 })
    expect(problemsOf({ SWARM_PUBLISH_MODE: 'mesh' })).toEqual(['SWARM_PUBLISH_MODE must be one of ingress, host, got "mesh"'])
  })

  test('an unparseable URL and a bad port are refused', () => {
    expect(problemsOf({ DATABASE_URL: 'not a url' })).toEqual(['DATABASE_URL is not a URL; expected postgresql://user:password@host:5432/database'])
    expect(problemsOf({ POSTGRES_HOST: 'db', POSTGRES_PORT: '70000' })).toEqual(['POSTGRES_PORT must be a whole number from 1 to 65535, got "70000"'])
    expect(problemsOf({ SQL_PORT: '-1' })).toEqual(['SQL_PORT must be a whole number from 0 to 65535, got "-1"'])
  })

  test('POSTGRES_* without POSTGRES_HOST is a mistake, not a silent fall-back to embedded', () => {
    expect(problemsOf({ POSTGRES_USER: 'flowforge' })).toEqual([
      'POSTGRES_USER is set but POSTGRES_HOST is not; set POSTGRES_HOST (or DATABASE_URL) to use a Postgres server',
    ])
  })

  test('the embedded engine\'s memory settings are read and checked', () => {
    expect(loadConfig({ EMBEDDED_SHARED_BUFFERS_MB: '64', EMBEDDED_WASM_OPTIMIZE: 'true' }).database).toMatchObject({ sharedBuffersMiB: 64, wasmOptimize: true })
    expect(problemsOf({ EMBEDDED_SHARED_BUFFERS_MB: '0' })).toEqual(['EMBEDDED_SHARED_BUFFERS_MB must be a whole number from 1 to 4096, got "0"'])
    expect(problemsOf({ EMBEDDED_WASM_OPTIMIZE: 'yes' })).toEqual(['EMBEDDED_WASM_OPTIMIZE must be true or false, got "yes"'])
  })

  test('passwords never appear in descriptions', () => {
    expect(redactConnectionString('postgresql://ff:secret@db:5432/x')).toBe('postgresql://ff:***@db:5432/x')
    const config = loadConfig({ DATABASE_URL: 'postgresql://ff:secret@db:5432/x' })
    expect(describeDatabase(config.database)).not.toContain('secret')
    expect(problemsOf({ DATABASE_URL: 'postgresql://ff:secret@db:99999/x' }).join(' ')).not.toContain('secret')
  })

  test('the security settings have safe defaults and are checked', () => {
    const defaults = loadConfig({})
    expect(defaults.api.allowedHosts).toEqual([os.hostname().toLowerCase()])
    expect(defaults.api.maxStreams).toBe(32)
    expect(defaults.specs.maxDocuments).toBe(500)
    expect(defaults.database).toEqual({ kind: 'embedded', dataDir: path.resolve('./data'), sqlPort: 5433 })
    const set = loadConfig({
      API_ALLOWED_HOSTS: 'Flowforge.example.com, .internal.example',
      API_MAX_STREAMS: '4',
      SPECS_MAX_DOCUMENTS: '20',
      SQL_PASSWORD: 'long-enough-password',
      SQL_SOCKET_DIR: '/run/flowforge',
      SQL_TRANSACTION_TIMEOUT: '10s',
      ALLOW_ANY_HOST_PORT: 'true',
      EVENT_RETENTION: '30d',
    })
    expect(set.api).toMatchObject({ allowedHosts: [os.hostname().toLowerCase(), 'flowforge.example.com', '.internal.example'], maxStreams: 4 })
    expect(set.specs.maxDocuments).toBe(20)
    expect(set.database).toMatchObject({ sqlPassword: 'long-enough-password', sqlSocketDir: '/run/flowforge', sqlTransactionTimeoutMs: 10_000 })
    expect(set.controller).toMatchObject({ allowAnyHostPort: true, eventRetentionMs: 30 * 24 * 3600_000 })
    expect(loadConfig({ SQL_PASSWORD: '' }).database).not.toHaveProperty('sqlPassword')
    expect(problemsOf({ SQL_PASSWORD: 'short', API_ALLOWED_HOSTS: 'evil.example/x', ALLOW_ANY_HOST_PORT: 'yes' })).toEqual([
      'SQL_PASSWORD must be at least 8 characters without spaces (or unset, to have one generated)',
      'ALLOW_ANY_HOST_PORT must be true or false, got "yes"',
      'API_ALLOWED_HOSTS must list host names such as flowforge.example.com or .example.com, got "evil.example/x"',
    ])
  })

  test('controller settings have documented defaults and are checked', () => {
    expect(loadConfig({}).controller).toEqual({
      instance: 'default',
      managerId: `${os.hostname()}-${process.pid}`,
      runtime: 'docker',
      dockerHost: 'unix:///var/run/docker.sock',
      dockerTimeoutMs: 10_000,
      pluginBindAddress: '127.0.0.1',
      hostPortRange: { from: 4100, to: 4999 },
      allowAnyHostPort: false,
      eventRetentionMs: 90 * 24 * 3600_000,
      workers: 8,
      resyncIntervalMs: 300_000,
      healthIntervalMs: 30_000,
      metricsRetentionMs: 7 * 24 * 3600_000,
      stopTimeoutSeconds: 10,
      retryBaseMs: 1_000,
      retryMaxMs: 300_000,
      revisionHistoryLimit: 10,
      updateDrainTimeoutMs: 10_000,
      pluginPidsLimit: 512,
      pluginDefaultMemoryMb: 512,
      pluginLogMaxSize: '10m',
      pluginLogMaxFiles: 3,
      imagePollIntervalMs: 300_000,
      swarm: { pollIntervalMs: 2_000, publishMode: 'ingress', endpointMode: 'vip', restartDelaySeconds: 5 },
    })
    expect(loadConfig({ MANAGER_ID: 'node-a' }).controller.managerId).toBe('node-a')
    expect(problemsOf({ MANAGER_ID: 'has space' })).toEqual(['MANAGER_ID must be 1 to 40 letters, digits, ".", "_" or "-", got "has space"'])
    expect(loadConfig({ METRICS_RETENTION: '2d', HOST_PORT_RANGE: '5000-5010' }).controller).toMatchObject({
      metricsRetentionMs: 2 * 24 * 3600_000,
      hostPortRange: { from: 5000, to: 5010 },
    })
    expect(problemsOf({ HOST_PORT_RANGE: '5000-4000', PLUGIN_BIND_ADDRESS: 'localhost', DOCKER_HOST: 'http://x', MANAGER_INSTANCE: 'Prod' })).toEqual([
      'MANAGER_INSTANCE must be a DNS label (lower-case letters, digits and "-"), got "Prod"',
      'DOCKER_HOST must look like unix:///var/run/docker.sock or tcp://127.0.0.1:2375, got "http://x"',
      'PLUGIN_BIND_ADDRESS must be an IP address such as 127.0.0.1 or 0.0.0.0, got "localhost"',
      'HOST_PORT_RANGE must look like 4100-4999 (two ports, the first not above the second), got "5000-4000"',
    ])
  })

  test('registry credentials come from REGISTRY_AUTH_FILE, else from DOCKER_CONFIG, else from nowhere', () => {
    expect(loadConfig({}).controller).not.toHaveProperty('registryAuthFile')
    expect(loadConfig({ REGISTRY_AUTH_FILE: '/etc/flowforge/auth.json', DOCKER_CONFIG: '/root/.docker' }).controller.registryAuthFile).toBe('/etc/flowforge/auth.json')
    expect(loadConfig({ DOCKER_CONFIG: '/root/.docker' }).controller.registryAuthFile).toBe('/root/.docker/config.json')
    expect(loadConfig({ IMAGE_POLL_INTERVAL: '30s' }).controller.imagePollIntervalMs).toBe(30_000)
    expect(problemsOf({ IMAGE_POLL_INTERVAL: 'often' })).toEqual(['IMAGE_POLL_INTERVAL must be a positive duration such as 30, 30s, 500ms, 5m or 7d, got "often"'])
  })

  test('the spec folder settles files for 50 ms unless SPECS_SETTLE says otherwise', () => {
    expect(loadConfig({}).specs.settleMs).toBe(50)
    expect(loadConfig({ SPECS_SETTLE: '250ms' }).specs.settleMs).toBe(250)
    expect(() => loadConfig({ SPECS_SETTLE: 'soon' })).toThrow(/SPECS_SETTLE must be a positive duration/)
  })

  test('durations take plain seconds or a unit', () => {
    expect(parseDurationSeconds('30')).toBe(30)
    expect(parseDurationSeconds('500ms')).toBe(0.5)
    expect(parseDurationSeconds('5m')).toBe(300)
    expect(parseDurationSeconds('1h')).toBe(3600)
    expect(parseDurationSeconds('-5')).toBeUndefined()
    expect(parseDurationSeconds('5 minutes')).toBeUndefined()
  })
})
