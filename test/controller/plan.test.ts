// Golden-text tests of the pure planner: one readable line per action, then the status,
// events and requeue it asks for.
import { describe, expect, test } from 'vitest'
import { describePlan, plan, planOrphanRemoval, type PlanInput } from '../../src/controller/plan.js'
import type { Plugin } from '../../src/db/plugin-store.js'
import { LABELS, type ObservedContainer } from '../../src/runtime/container-runtime.js'
import { buildContainerSpec } from '../../src/spec/container-spec.js'
import { parseManifest } from '../../src/spec/manifest.js'

const NOW = Date.parse('2026-03-01T12:00:00Z')
const PLUGIN_ID = '11111111-1111-4111-8111-111111111111'

function plugin(overrides: Partial<Plugin> = {}): Plugin {
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
    generation: 1,
    resourceVersion: 1,
    createdAt: new Date(NOW - 60_000),
    updatedAt: new Date(NOW - 60_000),
    ...overrides,
  }
}

function wantedFor(row: Plugin): PlanInput['wanted'] {
  const parsed = parseManifest(row.manifest)
  if (!parsed.ok) return parsed
  return { ok: true, spec: buildContainerSpec(row, parsed.manifest, row.hostPort ?? 4100, { hostIp: '127.0.0.1', instance: 'test' }), pullPolicy: parsed.manifest.imagePullPolicy }
}

/** The container our current spec would create, in a given state. */
function ourContainer(row: Plugin, overrides: Partial<ObservedContainer> = {}): ObservedContainer {
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

function golden(row: Plugin, container: ObservedContainer | undefined): string {
  return describePlan(plan({ plugin: row, container, wanted: wantedFor(row), now: NOW }))
}

describe('plan', () => {
  test('a new plugin that should run is pulled, created and started', () => {
    expect(golden(plugin(), undefined)).toBe(
      [
        'pull flowforge/crypto:1 (IfNotPresent)  # image for forgehook-crypto',
        'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080  # the plugin has no container yet',
        'start  # desired state is running',
        'status status="running" error=null nextRestartAt=null restartCount=0',
        'event plugin:installed {"image":"flowforge/crypto:1","hostPort":4100}',
        'event plugin:started {"hostPort":4100}',
      ].join('\n'),
    )
  })

  test('a converged plugin needs nothing', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    expect(golden(row, ourContainer(row))).toBe('status status="running" error=null nextRestartAt=null containerId="c0ffee000000aaaabbbbcccc"')
  })

  test('a container found running while the row is still installing is recorded as started, late', () => {
    // The manager that created and started it was killed before its status and events were written.
    const row = plugin({ status: 'installing', containerId: null })
    const container = ourContainer(row)
    expect(golden(row, container)).toBe(
      [
        `status status="running" error=null nextRestartAt=null containerId="c0ffee000000aaaabbbbcccc" startedAt=${container.startedAt!.toISOString()}`,
        'event plugin:started {"containerId":"c0ffee000000aaaabbbbcccc","recordedLate":"found running in phase installing: started by a reconcile that ended before recording it"}',
      ].join('\n'),
    )
  })

  test('desired stopped stops a running container and keeps it', () => {
    const row = plugin({ status: 'running', desiredState: 'stopped', containerId: 'c0ffee000000aaaabbbbcccc' })
    expect(golden(row, ourContainer(row))).toBe(
      ['stop  # desired state is stopped', 'status status="stopped" error=null nextRestartAt=null', 'event plugin:stopped {}'].join('\n'),
    )
  })

  test('a plugin declared stopped from the start is installed but not started', () => {
    expect(golden(plugin({ desiredState: 'stopped' }), undefined)).toBe(
      [
        'pull flowforge/crypto:1 (IfNotPresent)  # image for forgehook-crypto',
        'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080  # the plugin has no container yet',
        'status status="stopped" error=null nextRestartAt=null',
        'event plugin:installed {"image":"flowforge/crypto:1","hostPort":4100}',
      ].join('\n'),
    )
  })

  test('a stopped plugin whose container was removed is just stopped', () => {
    const row = plugin({ status: 'stopped', desiredState: 'stopped', containerId: 'gone00000000' })
    expect(golden(row, undefined)).toBe('status status="stopped" error=null nextRestartAt=null containerId=null')
  })

  test('desired running starts a stopped container', () => {
    const row = plugin({ status: 'stopped', containerId: 'c0ffee000000aaaabbbbcccc' })
    expect(golden(row, ourContainer(row, { state: 'exited', exitCode: 0 }))).toBe(
      [
        'start  # desired state is running',
        'status status="running" error=null nextRestartAt=null containerId="c0ffee000000aaaabbbbcccc"',
        'event plugin:started {"containerId":"c0ffee000000aaaabbbbcccc","restartCount":0}',
      ].join('\n'),
    )
  })

  test('an image change recreates the container on the same port and says which fields changed', () => {
    const before = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    const container = ourContainer(before)
    const after = { ...before, manifest: { ...before.manifest, image: 'flowforge/crypto:2' }, generation: 2 }
    expect(golden(after, container)).toBe(
      [
        'pull flowforge/crypto:2 (IfNotPresent)  # image for forgehook-crypto',
        'stop  # spec changed: image',
        'remove c0ffee000000  # spec changed: image',
        'create forgehook-crypto image=flowforge/crypto:2 port=127.0.0.1:4100->8080  # spec changed: image',
        'start  # desired state is running',
        'status status="running" error=null nextRestartAt=null restartCount=0',
        'event plugin:updated {"changedFields":["image"],"previousContainerId":"c0ffee000000aaaabbbbcccc","image":"flowforge/crypto:2","hostPort":4100}',
      ].join('\n'),
    )
  })

  test('config and environment changes are one field, env', () => {
    const before = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    const container = ourContainer(before)
    const after = { ...before, config: { rounds: 12 } }
    expect(describePlan(plan({ plugin: after, container, wanted: wantedFor(after), now: NOW }))).toContain('# spec changed: env')
  })

  test('a container that exited behind our back is a crash, restarted after backoff', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    expect(golden(row, ourContainer(row, { state: 'exited', exitCode: 137 }))).toBe(
      [
        `status status="error" error="container exited with code 137; restart 1 in 10 s" restartCount=1 nextRestartAt=${new Date(NOW + 10_000).toISOString()} containerId="c0ffee000000aaaabbbbcccc"`,
        'event plugin:crashed {"containerId":"c0ffee000000aaaabbbbcccc","exitCode":137,"oomKilled":false,"restartCount":1,"restartInMs":10000}',
        'requeue after 10000 ms',
      ].join('\n'),
    )
  })

  test('the crash-loop backoff doubles and an out-of-memory kill is named', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc', restartCount: 3 })
    const planned = plan({ plugin: row, container: ourContainer(row, { state: 'exited', exitCode: 137, oomKilled: true }), wanted: wantedFor(row), now: NOW })
    expect(planned.status.error).toBe('container was killed for running out of memory (exit code 137); restart 4 in 80 s')
    expect(planned.requeueAfterMs).toBe(80_000)
    const capped = plan({ plugin: { ...row, restartCount: 20 }, container: ourContainer(row, { state: 'exited', exitCode: 1 }), wanted: wantedFor(row), now: NOW })
    expect(capped.requeueAfterMs).toBe(300_000)
  })

  test('during backoff nothing happens until the restart is due, then it starts', () => {
    const row = plugin({ status: 'error', containerId: 'c0ffee000000aaaabbbbcccc', restartCount: 1, nextRestartAt: new Date(NOW + 4_000) })
    const container = ourContainer(row, { state: 'exited', exitCode: 1 })
    expect(golden(row, container)).toBe('requeue after 4000 ms')
    const due = { ...row, nextRestartAt: new Date(NOW - 1) }
    expect(golden(due, container)).toBe(
      [
        'start  # restart 1 after a crash (backoff elapsed)',
        'status status="running" error=null nextRestartAt=null containerId="c0ffee000000aaaabbbbcccc"',
        'event plugin:started {"containerId":"c0ffee000000aaaabbbbcccc","restartCount":1}',
        'requeue after 600000 ms',
      ].join('\n'),
    )
  })

  test('a due restart whose start failed is started again, not counted as another crash', () => {
    // The restart wrote 'starting', then the engine did not answer: the container still shows the exit already counted.
    const row = plugin({ status: 'starting', containerId: 'c0ffee000000aaaabbbbcccc', restartCount: 1, nextRestartAt: new Date(NOW - 30_000) })
    const container = ourContainer(row, { state: 'exited', exitCode: 0, startedAt: new Date(NOW - 50_000), finishedAt: new Date(NOW - 40_000) })
    expect(golden(row, container)).toBe(
      [
        'start  # restart 1 after a crash (backoff elapsed)',
        'status status="running" error=null nextRestartAt=null containerId="c0ffee000000aaaabbbbcccc"',
        'event plugin:started {"containerId":"c0ffee000000aaaabbbbcccc","restartCount":1}',
        'requeue after 600000 ms',
      ].join('\n'),
    )
    // Started by that restart and exited since (the manager died before writing 'running'): a new crash.
    const restartedThenCrashed = ourContainer(row, { state: 'exited', exitCode: 3, startedAt: new Date(NOW - 29_000), finishedAt: new Date(NOW - 28_000) })
    expect(golden(row, restartedThenCrashed)).toContain('restartCount=2')
  })

  test('ten minutes of running resets the restart count', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc', restartCount: 2 })
    expect(golden(row, ourContainer(row, { startedAt: new Date(NOW - 600_000) }))).toContain('restartCount=0')
    expect(golden(row, ourContainer(row, { startedAt: new Date(NOW - 60_000) }))).toContain('requeue after 540000 ms')
  })

  test('a container removed behind our back is recreated and the recovery recorded', () => {
    const row = plugin({ status: 'running', containerId: 'dead00000000ffff' })
    expect(golden(row, undefined)).toBe(
      [
        'pull flowforge/crypto:1 (IfNotPresent)  # image for forgehook-crypto',
        'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080  # container dead00000000 is missing',
        'start  # desired state is running',
        'status status="running" error=null nextRestartAt=null restartCount=0',
        'event plugin:recovered {"previousContainerId":"dead00000000ffff","image":"flowforge/crypto:1","hostPort":4100}',
        'event plugin:started {"hostPort":4100}',
      ].join('\n'),
    )
  })

  test('a container created but never started by a crashed manager is started, not replaced', () => {
    const row = plugin({ status: 'installing' })
    expect(golden(row, ourContainer(row, { state: 'created' }))).toBe(
      [
        'start  # the container was created but never started',
        'status status="running" error=null nextRestartAt=null containerId="c0ffee000000aaaabbbbcccc"',
        'event plugin:started {"containerId":"c0ffee000000aaaabbbbcccc","restartCount":0}',
      ].join('\n'),
    )
  })

  test('a foreign container holding the name is a conflict and is never touched', () => {
    const row = plugin()
    const foreign: ObservedContainer = { id: 'f0f0f0f0f0f0f0f0', name: 'forgehook-crypto', image: 'nginx', state: 'running', labels: {} }
    expect(golden(row, foreign)).toBe(
      [
        'status status="error" error="container name forgehook-crypto is held by a container not managed by FlowForge (id f0f0f0f0f0f0); remove or rename it — FlowForge will not touch it"',
        'event plugin:error {"error":"container name forgehook-crypto is held by a container not managed by FlowForge (id f0f0f0f0f0f0); remove or rename it — FlowForge will not touch it"}',
        'requeue after 30000 ms',
      ].join('\n'),
    )
    // Uninstalling the plugin leaves the foreign container alone too.
    expect(golden({ ...row, deletionRequestedAt: new Date(NOW) }, foreign)).toBe(
      ['delete-row  # deletion was requested', 'event plugin:uninstalled {"containerId":null}'].join('\n'),
    )
  })

  test('our container left by a plugin whose row is gone is replaced, not a conflict', () => {
    const row = plugin()
    const stale = ourContainer(row, { id: 'aaaa00000000bbbb', labels: { ...ourContainer(row).labels, [LABELS.pluginId]: '22222222-2222-4222-8222-222222222222' } })
    expect(describePlan(plan({ plugin: row, container: stale, wanted: wantedFor(row), now: NOW, containerOwnerGone: true }))).toBe(
      [
        'pull flowforge/crypto:1 (IfNotPresent)  # image for forgehook-crypto',
        'stop  # container aaaa00000000 belongs to a deleted plugin (22222222-2222-4222-8222-222222222222)',
        'remove aaaa00000000  # container aaaa00000000 belongs to a deleted plugin (22222222-2222-4222-8222-222222222222)',
        'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080  # container aaaa00000000 belongs to a deleted plugin (22222222-2222-4222-8222-222222222222)',
        'start  # desired state is running',
        'status status="running" error=null nextRestartAt=null restartCount=0',
        'event plugin:installed {"image":"flowforge/crypto:1","hostPort":4100,"replacedContainerId":"aaaa00000000bbbb"}',
        'event plugin:started {"hostPort":4100}',
      ].join('\n'),
    )
  })

  test('a managed container of another plugin id under our name is a conflict too', () => {
    const row = plugin()
    const other = ourContainer(row, { labels: { ...ourContainer(row).labels, [LABELS.pluginId]: '22222222-2222-4222-8222-222222222222' } })
    expect(golden(row, other)).toContain('held by a FlowForge container of another plugin id (22222222-2222-4222-8222-222222222222)')
  })

  test('an invalid manifest is an error that leaves the running container alone', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    const container = ourContainer(row)
    const broken = { ...row, manifest: { name: 'x', image: 'Not An Image!', port: 0 }, generation: 2 }
    expect(golden(broken, container)).toBe(
      [
        'status status="error" error="invalid manifest: image: must be a Docker image reference such as flowforge/crypto-service:1.2.0; port: Too small: expected number to be >=1"',
        'event plugin:error {"error":"invalid manifest: image: must be a Docker image reference such as flowforge/crypto-service:1.2.0; port: Too small: expected number to be >=1"}',
      ].join('\n'),
    )
  })

  test('uninstall stops and removes our container, then deletes the row', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc', deletionRequestedAt: new Date(NOW) })
    expect(golden(row, ourContainer(row))).toBe(
      [
        'stop  # the plugin is being uninstalled',
        'remove c0ffee000000  # the plugin is being uninstalled',
        'delete-row  # deletion was requested',
        'event plugin:uninstalled {"containerId":"c0ffee000000aaaabbbbcccc"}',
      ].join('\n'),
    )
  })

  test('a deleted row leaves only its own managed container to remove', () => {
    const row = plugin()
    expect(describePlan(planOrphanRemoval(ourContainer(row)))).toBe(
      ['stop  # its plugin was deleted', 'remove c0ffee000000  # its plugin was deleted'].join('\n'),
    )
    expect(planOrphanRemoval({ id: 'f0f0', name: 'forgehook-x', image: 'nginx', state: 'running', labels: {} })).toEqual([])
  })
})
