// Fixtures of the planner's golden tests: a plugin row, the container its spec makes, and
// the plan as text.
import { describePlan } from '../../src/controller/describe-plan.js'
import { plan } from '../../src/controller/plan.js'
import type { PlanInput } from '../../src/controller/plan-types.js'
import type { Plugin } from '../../src/db/plugin-store.js'
import type { ObservedContainer } from '../../src/runtime/container-runtime.js'
import { buildContainerSpec } from '../../src/spec/container-spec.js'
import { parseManifest } from '../../src/spec/manifest.js'

export const NOW = Date.parse('2026-03-01T12:00:00Z')
export const PLUGIN_ID = '11111111-1111-4111-8111-111111111111'

export function plugin(overrides: Partial<Plugin> = {}): Plugin {
  return {
    id: PLUGIN_ID,
    forgehookId: 'crypto',
    manifest: { name: 'Crypto', image: 'flowforge/crypto:1', port: 8080 },
    config: {},
    environment: { LOG_LEVEL: 'info' },
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
    status: 'installing',
    containerId: null,
    containerName: null,
    hostPort: 4100,
    healthStatus: 'unknown',
    lastHealthCheck: null,
    error: null,
    restartCount: 0,
    observedGeneration: 0,
    installedAt: null,
    startedAt: null,
    stoppedAt: null,
    nextRestartAt: null,
    rollout: null,
    imageDigest: null,
    replicasDesired: null,
    replicasRunning: null,
    generation: 1,
    resourceVersion: 1,
    createdAt: new Date(NOW - 60_000),
    updatedAt: new Date(NOW - 60_000),
    ...overrides,
  }
}

export function wantedFor(row: Plugin): PlanInput['wanted'] {
  const parsed = parseManifest(row.manifest)
  if (!parsed.ok) return parsed
  return { ok: true, spec: buildContainerSpec(row, parsed.manifest, row.hostPort ?? 4100, { hostIp: '127.0.0.1', instance: 'test' }), pullPolicy: parsed.manifest.imagePullPolicy }
}

/** The container our current spec would create, in a given state. */
export function ourContainer(row: Plugin, overrides: Partial<ObservedContainer> = {}): ObservedContainer {
  const wanted = wantedFor(row)
  if (!wanted.ok) throw new Error('bad fixture')
  return {
    id: 'c0ffee000000aaaabbbbcccc',
    name: wanted.spec.name,
    image: wanted.spec.image,
    state: 'running',
    labels: wanted.spec.labels,
    startedAt: new Date(NOW - 5_000),
    hostPort: 4100,
    ...overrides,
  }
}

export function golden(row: Plugin, container: ObservedContainer | undefined): string {
  return describePlan(plan({ plugin: row, container, wanted: wantedFor(row), now: NOW }))
}
