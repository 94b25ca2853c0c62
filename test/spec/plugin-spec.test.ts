import { readFile } from 'node:fs/promises'
import { describe, expect, test } from 'vitest'
import type { Plugin } from '../../src/db/plugin-store.js'
import { toApiDocument } from '../../src/spec/api-plugin.js'
import { redactEnvironment, specDiffers, toNewPlugin, validateDocument, type PluginDocument } from '../../src/spec/plugin-spec.js'
import { SCHEMA_FILE, schemaText } from '../../scripts/write-json-schema.js'

function document(spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): unknown {
  return {
    apiVersion: 'flowforge.io/v1',
    kind: 'Plugin',
    metadata: { name: 'crypto-service', ...metadata },
    spec: { manifest: { name: 'Crypto', version: '1.2.0', image: 'flowforge/crypto-service:1.2.0', port: 8080 }, ...spec },
  }
}

function errorsOf(value: unknown): string[] {
  const result = validateDocument(value)
  return result.ok ? [] : result.errors.map((error) => `${error.field}: ${error.message}`)
}

describe('the plugin document', () => {
  test('accepts the issue\'s example and fills defaults when stored', () => {
    const result = validateDocument(
      document(
        {
          state: 'running',
          hostPort: 4105,
          config: { rounds: 12 },
          environment: { LOG_LEVEL: 'info' },
          manifest: {
            name: 'Crypto Service',
            version: '1.2.0',
            image: 'flowforge/crypto-service:1.2.0',
            imagePullPolicy: 'IfNotPresent',
            port: 8080,
            healthCheck: { path: '/health', intervalSeconds: 30, timeoutSeconds: 5 },
            resources: { memoryMb: 256, cpus: 0.5 },
          },
        },
        { labels: { team: 'payments' } },
      ),
    )
    expect(result.ok).toBe(true)
    const stored = toNewPlugin((result as { document: PluginDocument }).document, 'file:crypto.yaml')
    expect(stored).toMatchObject({ forgehookId: 'crypto-service', source: 'file:crypto.yaml', desiredState: 'running', requestedHostPort: 4105, labels: { team: 'payments' } })
    const minimal = validateDocument(document())
    expect(toNewPlugin((minimal as { document: PluginDocument }).document, 'api')).toMatchObject({ desiredState: 'running', requestedHostPort: null, config: {}, environment: {} })
  })

  test('names every bad field by its path', () => {
    expect(
      errorsOf(
        document({
          state: 'paused',
          hostPort: 70000,
          manifest: { image: 'Bad Image', port: 'eighty', resources: { memoryMb: -5 } },
          environment: { 'BAD-NAME': 'x', OK: 5 },
          replicas: 3,
        }),
      ),
    ).toEqual([
      'spec.state: Invalid option: expected one of "running"|"stopped"',
      'spec.hostPort: Too big: expected number to be <=65535',
      'spec.manifest.image: must be a Docker image reference such as flowforge/crypto-service:1.2.0',
      'spec.manifest.port: Invalid input: expected number, received string',
      'spec.manifest.resources.memoryMb: Too small: expected number to be >0',
      'spec.environment.BAD-NAME: must be an environment variable name',
      'spec.environment.OK: Invalid input: expected string, received number',
      'spec.replicas: unknown field',
    ])
  })

  test('refuses names that are not DNS labels, and a wrong apiVersion or kind', () => {
    expect(errorsOf(document({}, { name: '../etc' }))).toEqual([
      'metadata.name: must be a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters',
    ])
    expect(errorsOf({ ...(document() as object), apiVersion: 'v2', kind: 'Pod' })).toEqual([
      'apiVersion: Invalid input: expected "flowforge.io/v1"',
      'kind: Invalid input: expected "Plugin"',
    ])
  })

  test('refuses privileged mode, host mounts, host network and capabilities beyond the allowlist in the manifest', () => {
    const errors = errorsOf(
      document({ manifest: { image: 'x/y:1', port: 80, privileged: true, volumes: ['/:/host'], networkMode: 'host', capAdd: ['SYS_ADMIN'] } }),
    )
    expect(errors).toHaveLength(4)
    expect(errors).toContain(
      'spec.manifest.privileged: "privileged" is not allowed: plugins get no privileged mode, host mounts, host network or PID, devices or capabilities beyond a small allowlist',
    )
    expect(errors.map((error) => error.split(':')[0]).sort()).toEqual(['spec.manifest.capAdd.0', 'spec.manifest.networkMode', 'spec.manifest.privileged', 'spec.manifest.volumes'])
    expect(errors.find((error) => error.startsWith('spec.manifest.capAdd.0'))).toContain('only these may be added: AUDIT_WRITE')
  })

  test('command, args, a non-root user, a read-only root, capabilities and more ports are accepted; root needs allowRoot', () => {
    const workload = { image: 'x/y:1', port: 80, command: ['/bin/sh', '-c'], args: ['exec httpd'], user: '1000:1000', readOnlyRootFilesystem: true, tmpfs: ['/tmp'], capDrop: ['ALL'], capAdd: ['net_bind_service'], ports: [{ name: 'metrics', containerPort: 9090 }] }
    expect(errorsOf(document({ manifest: workload }))).toEqual([])
    expect(errorsOf(document({ manifest: { ...workload, user: 'root' } }))).toEqual(['spec.manifest.user: runs as root: set allowRoot: true to allow that, or use a non-root uid'])
    expect(errorsOf(document({ manifest: { ...workload, user: '0', allowRoot: true } }))).toEqual([])
    expect(errorsOf(document({ manifest: { ...workload, ports: [{ name: 'dup', containerPort: 80 }] } }))).toEqual(['spec.manifest.ports.0.containerPort: 80/tcp is declared twice (port is the primary one)'])
    expect(errorsOf(document({ manifest: { ...workload, tmpfs: ['relative'] } }))).toEqual(['spec.manifest.tmpfs.0: must be an absolute path inside the container'])
  })

  test('secret-looking environment values and listed secrets are redacted in the API shape', () => {
    const plugin = {
      forgehookId: 'crypto-service',
      environment: { DB_PASSWORD: 'hunter2', api_key: 'k', AUTH_TOKEN: 't', CLIENT_SECRET: 's', PLAIN: 'visible', CUSTOM: 'c' },
      manifest: { image: 'x/y:1', port: 80, secrets: ['CUSTOM'] },
    }
    expect(redactEnvironment(plugin)).toEqual({ DB_PASSWORD: '***', api_key: '***', AUTH_TOKEN: '***', CLIENT_SECRET: '***', PLAIN: 'visible', CUSTOM: '***' })
    const full = { ...samplePlugin(), ...plugin } as unknown as Plugin
    const api = JSON.stringify(toApiDocument(full))
    for (const secret of ['hunter2', '"k"', '"t"', '"s"', '"c"']) expect(api).not.toContain(secret)
    expect(api).toContain('visible')
  })

  test('specDiffers is false for the same spec in another key order', () => {
    const plugin = { ...samplePlugin(), manifest: { port: 8080, image: 'flowforge/crypto-service:1.2.0', version: '1.2.0', name: 'Crypto' } } as unknown as Plugin
    const same = validateDocument(document()) as { document: PluginDocument }
    expect(specDiffers(plugin, same.document)).toBe(false)
    const changed = validateDocument(document({ state: 'stopped' })) as { document: PluginDocument }
    expect(specDiffers(plugin, changed.document)).toBe(true)
  })

  test('schema/plugin.schema.json is up to date (npm run schema)', async () => {
    expect(await readFile(SCHEMA_FILE, 'utf8')).toBe(schemaText())
  })
})

function samplePlugin(): Record<string, unknown> {
  const now = new Date('2026-01-01T00:00:00Z')
  return {
    id: '11111111-1111-4111-8111-111111111111',
    forgehookId: 'crypto-service',
    manifest: {},
    config: {},
    environment: {},
    desiredState: 'running',
    requestedHostPort: null,
    labels: {},
    source: 'api',
    deletionRequestedAt: null,
    volumes: [],
    updatePolicy: {},
    purgeVolumes: false,
    rolloutRetryAt: null,
    network: {},
    extraPorts: [],
    status: 'running',
    containerId: null,
    containerName: null,
    hostPort: 4100,
    healthStatus: 'unknown',
    lastHealthCheck: null,
    error: null,
    restartCount: 0,
    observedGeneration: 1,
    installedAt: null,
    startedAt: null,
    stoppedAt: null,
    nextRestartAt: null,
    rollout: null,
    generation: 1,
    resourceVersion: 7,
    createdAt: now,
    updatedAt: now,
  }
}
