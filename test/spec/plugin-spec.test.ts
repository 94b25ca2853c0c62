import { readFile } from 'node:fs/promises'
import { describe, expect, test } from 'vitest'
import type { Plugin } from '../../src/db/plugin-store.js'
import { toApiDocument } from '../../src/spec/api-plugin.js'
import { redactEnvironment, specDiffers, toNewPlugin, toSpecDocument, validateDocument, type PluginDocument } from '../../src/spec/plugin-spec.js'
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
      // Named although the document failed the schema elsewhere.
      'spec.replicas: 3 replicas need RUNTIME=swarm; the docker runtime runs one container per plugin',
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

  test('replicas and placement are accepted on the swarm runtime, and stored with their defaults', () => {
    const placement = { constraints: ['node.labels.zone==a', 'node.role != manager'], preferences: [{ spread: 'node.labels.zone' }], maxReplicasPerNode: 2 }
    const result = validateDocument(document({ replicas: 3, placement }), { runtime: 'swarm' })
    expect(result.ok).toBe(true)
    expect(toNewPlugin((result as { document: PluginDocument }).document, 'api')).toMatchObject({ replicas: 3, placement })
    const minimal = validateDocument(document(), { runtime: 'swarm' }) as { document: PluginDocument }
    expect(toNewPlugin(minimal.document, 'api')).toMatchObject({ replicas: 1, placement: {} })
  })

  test('the docker runtime refuses more than one replica and a placement, naming the field and why', () => {
    expect(errorsOf(document({ replicas: 3 }))).toEqual(['spec.replicas: 3 replicas need RUNTIME=swarm; the docker runtime runs one container per plugin'])
    expect(errorsOf(document({ placement: { constraints: ['node.labels.zone==a'] } }))).toEqual([
      'spec.placement: placement needs RUNTIME=swarm; the docker runtime runs every plugin on its one engine, with no nodes to choose from',
    ])
    expect(errorsOf(document({ placement: { maxReplicasPerNode: 1 } }))).toHaveLength(1)
    // What changes nothing is no reason to refuse.
    expect(errorsOf(document({ replicas: 1, placement: {} }))).toEqual([])
    expect(errorsOf(document({ placement: { constraints: [], preferences: [] } }))).toEqual([])
    // forgectl, which does not know the daemon's runtime, checks the schema only.
    expect(validateDocument(document({ replicas: 3, placement: { constraints: ['node.labels.zone==a'] } }), { runtime: 'any' }).ok).toBe(true)
  })

  test('replicas and placement are held to their bounds on every runtime', () => {
    const swarmErrors = (spec: Record<string, unknown>) => {
      const result = validateDocument(document(spec), { runtime: 'swarm' })
      return result.ok ? [] : result.errors.map((error) => error.field)
    }
    expect(swarmErrors({ replicas: 0 })).toEqual(['spec.replicas'])
    expect(swarmErrors({ replicas: 101 })).toEqual(['spec.replicas'])
    expect(swarmErrors({ replicas: 1.5 })).toEqual(['spec.replicas'])
    expect(swarmErrors({ replicas: '3' })).toEqual(['spec.replicas'])
    expect(swarmErrors({ placement: { constraints: ['node.labels.zone=a'] } })).toEqual(['spec.placement.constraints.0'])
    expect(swarmErrors({ placement: { constraints: [''] } })).toEqual(['spec.placement.constraints.0'])
    expect(swarmErrors({ placement: { constraints: [`node.labels.zone==${'a'.repeat(256)}`] } })).toEqual(['spec.placement.constraints.0'])
    expect(swarmErrors({ placement: { constraints: ['node.labels.zone==a\nb'] } })).toEqual(['spec.placement.constraints.0'])
    expect(swarmErrors({ placement: { preferences: [{ spread: 'zone' }] } })).toEqual(['spec.placement.preferences.0.spread'])
    expect(swarmErrors({ placement: { preferences: [{ spread: 'node.labels.zone', weight: 2 }] } })).toEqual(['spec.placement.preferences.0.weight'])
    expect(swarmErrors({ placement: { maxReplicasPerNode: 0 } })).toEqual(['spec.placement.maxReplicasPerNode'])
    expect(swarmErrors({ placement: { spreadOver: 'zones' } })).toEqual(['spec.placement.spreadOver'])
    // On docker a replica count out of bounds is one error, the schema's.
    expect(errorsOf(document({ replicas: 0 }))).toEqual(['spec.replicas: Too small: expected number to be >=1'])
  })

  test('specDiffers sees a change of replicas or placement, and the stored document reads back as written', () => {
    const placement = { constraints: ['node.labels.zone==a'] }
    const plugin = { ...samplePlugin(), manifest: { port: 8080, image: 'flowforge/crypto-service:1.2.0', version: '1.2.0', name: 'Crypto' }, replicas: 3, placement } as unknown as Plugin
    const same = validateDocument(document({ replicas: 3, placement }), { runtime: 'swarm' }) as { document: PluginDocument }
    expect(specDiffers(plugin, same.document)).toBe(false)
    expect(specDiffers(plugin, (validateDocument(document({ replicas: 2, placement }), { runtime: 'swarm' }) as { document: PluginDocument }).document)).toBe(true)
    expect(specDiffers(plugin, (validateDocument(document({ replicas: 3 }), { runtime: 'swarm' }) as { document: PluginDocument }).document)).toBe(true)
    expect(toSpecDocument(plugin).spec).toMatchObject({ replicas: 3, placement })
    // The defaults are left out, as they were before these fields existed.
    const single = toSpecDocument({ ...plugin, replicas: 1, placement: {} })
    expect(Object.keys(single.spec)).not.toContain('replicas')
    expect(Object.keys(single.spec)).not.toContain('placement')
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
    replicas: 1,
    placement: {},
    extraPorts: [],
    replicasDesired: null,
    replicasRunning: null,
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
