// Golden-text tests of the pure planner: one readable line per action, then the status,
// events and requeue it asks for.
import { describe, expect, test } from 'vitest'
import { describePlan, describeRecovery } from '../../src/controller/describe-plan.js'
import { planRecovery } from '../../src/controller/plan-recovery.js'
import { plan, planOrphanRemoval } from '../../src/controller/plan.js'
import { LABELS, type ObservedContainer } from '../../src/runtime/container-runtime.js'
import { buildContainerSpec } from '../../src/spec/container-spec.js'
import { parseManifest } from '../../src/spec/manifest.js'
import { golden, NOW, ourContainer, plugin, PLUGIN_ID, wantedFor } from '../helpers/plan-fixtures.js'

describe('plan', () => {
  test('a new plugin that should run is pulled, created and started', () => {
    expect(golden(plugin(), undefined)).toBe(
      [
        'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080 if-image-missing=pull  # the plugin has no container yet',
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
      ['stop c0ffee000000  # desired state is stopped', 'status status="stopped" error=null nextRestartAt=null', 'event plugin:stopped {}'].join('\n'),
    )
  })

  test('a plugin declared stopped from the start is installed but not started', () => {
    expect(golden(plugin({ desiredState: 'stopped' }), undefined)).toBe(
      [
        'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080 if-image-missing=pull  # the plugin has no container yet',
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

  test('config and environment changes are one field, env', () => {
    const before = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    const container = ourContainer(before)
    const after = { ...before, config: { rounds: 12 } }
    expect(describePlan(plan({ plugin: after, container, wanted: wantedFor(after), now: NOW }))).toContain('"changedFields":["env"]')
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
        'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080 if-image-missing=pull  # container dead00000000 is missing',
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
        'stop aaaa00000000  # container aaaa00000000 belongs to a deleted plugin (22222222-2222-4222-8222-222222222222)',
        'remove aaaa00000000  # container aaaa00000000 belongs to a deleted plugin (22222222-2222-4222-8222-222222222222)',
        'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080 if-image-missing=pull  # container aaaa00000000 belongs to a deleted plugin (22222222-2222-4222-8222-222222222222)',
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
        'stop c0ffee000000  # the plugin is being uninstalled',
        'remove c0ffee000000  # the plugin is being uninstalled',
        'delete-row  # deletion was requested',
        'event plugin:uninstalled {"containerId":"c0ffee000000aaaabbbbcccc"}',
      ].join('\n'),
    )
  })

  test('a deleted row leaves only its own managed container to remove, audited under its name', () => {
    const row = plugin()
    expect(describePlan(planOrphanRemoval(PLUGIN_ID, [ourContainer(row)]))).toBe(
      [
        'stop c0ffee000000  # its plugin was deleted',
        'remove c0ffee000000  # its plugin was deleted',
        'events about crypto (its row is gone)',
        `event plugin:uninstalled {"containerId":"c0ffee000000aaaabbbbcccc","pluginId":"${PLUGIN_ID}"}`,
      ].join('\n'),
    )
    expect(describePlan(planOrphanRemoval(PLUGIN_ID, [{ id: 'f0f0', name: 'forgehook-x', image: 'nginx', state: 'running', labels: {} }]))).toBe('')
    expect(describePlan(planOrphanRemoval(PLUGIN_ID, []))).toBe('')
  })
})

describe('plan: decisions the executor used to make', () => {
  test('imagePullPolicy Always pulls before anything is touched, for an update as for a new plugin', () => {
    const before = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    const container = ourContainer(before)
    const after = { ...before, manifest: { ...before.manifest, image: 'flowforge/crypto:2', imagePullPolicy: 'Always' }, generation: 2 }
    expect(golden(after, container).split('\n').slice(0, 2)).toEqual([
      'pull flowforge/crypto:2 (Always)  # update, Recreate: the new container is prepared before the old one is touched',
      'create forgehook-crypto_next image=flowforge/crypto:2 port=127.0.0.1:4100->8080  # update, Recreate: the new container is prepared before the old one is touched',
    ])
    const fresh = plugin({ manifest: { ...before.manifest, imagePullPolicy: 'Always' } })
    expect(golden(fresh, undefined).split('\n').slice(0, 2)).toEqual([
      'pull flowforge/crypto:1 (Always)  # imagePullPolicy Always for forgehook-crypto',
      'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080  # the plugin has no container yet',
    ])
  })

  test('imagePullPolicy Never: the create refuses a missing image instead of pulling it', () => {
    const row = plugin({ manifest: { name: 'Crypto', image: 'flowforge/crypto:1', port: 8080, imagePullPolicy: 'Never' } })
    expect(golden(row, undefined).split('\n')[0]).toBe(
      'create forgehook-crypto image=flowforge/crypto:1 port=127.0.0.1:4100->8080 if-image-missing=refuse  # the plugin has no container yet',
    )
  })

  test('no host port to be had is a problem looked at again in 30 s; the running container is left alone', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc', requestedHostPort: 4100 })
    const error = 'requested host port 4100 is already assigned to plugin other'
    expect(describePlan(plan({ plugin: row, container: ourContainer(row), wanted: { ok: false, error }, portProblem: error, now: NOW }))).toBe(
      [`status status="error" error="${error}"`, `event plugin:error {"error":"${error}"}`, 'requeue after 30000 ms'].join('\n'),
    )
  })

  test('a requested restart of a running container stops and starts it and takes the request', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    expect(describePlan(plan({ plugin: row, container: ourContainer(row), wanted: wantedFor(row), now: NOW, restartRequested: 'operator asked' }))).toBe(
      [
        'stop c0ffee000000  # operator asked',
        'start  # operator asked',
        'status status="running" error=null containerId="c0ffee000000aaaabbbbcccc"',
        'event plugin:restarted {"containerId":"c0ffee000000aaaabbbbcccc","reason":"operator asked"}',
        'restart request taken',
      ].join('\n'),
    )
    // Not running: the request waits; nothing takes it.
    const stopped = ourContainer(row, { state: 'exited', exitCode: 0 })
    expect(describePlan(plan({ plugin: { ...row, status: 'stopped' }, container: stopped, wanted: wantedFor(row), now: NOW, restartRequested: 'operator asked' }))).not.toContain('restart request taken')
  })

  test('a phase change that no event describes is audited as plugin:phase', () => {
    const row = plugin({ status: 'error', error: 'container exited with code 1; restart 1 in 10 s', containerId: 'c0ffee000000aaaabbbbcccc' })
    expect(golden(row, ourContainer(row))).toBe(
      [
        'status status="running" error=null nextRestartAt=null containerId="c0ffee000000aaaabbbbcccc" startedAt=2026-03-01T11:59:55.000Z',
        'event plugin:phase {"from":"error","to":"running"}',
      ].join('\n'),
    )
  })

  test('an uninstall with no container of ours only deletes the row', () => {
    const row = plugin({ status: 'running', deletionRequestedAt: new Date(NOW) })
    expect(golden(row, undefined)).toBe(['delete-row  # deletion was requested', 'event plugin:uninstalled {"containerId":null}'].join('\n'))
  })
})

describe('plan recovery: what a failed action leads to', () => {
  const row = plugin({ status: 'installing', hostPort: 4100 })

  test('a missing image is recorded as the error and retried with backoff', () => {
    expect(describeRecovery(planRecovery(row, { kind: 'image-missing', error: 'image not found: flowforge/crypto:9 (manifest unknown)' }))).toBe(
      [
        'abort, then retry with backoff',
        'status status="error" error="image not found: flowforge/crypto:9 (manifest unknown)"',
        'event plugin:error {"error":"image not found: flowforge/crypto:9 (manifest unknown)"}',
      ].join('\n'),
    )
    // The same error again is not audited again.
    const again = planRecovery({ ...row, error: 'image not found: flowforge/crypto:9 (manifest unknown)' }, { kind: 'image-missing', error: 'image not found: flowforge/crypto:9 (manifest unknown)' })
    expect(describeRecovery(again)).toBe(['abort, then retry with backoff', 'status status="error" error="image not found: flowforge/crypto:9 (manifest unknown)"'].join('\n'))
  })

  test('a pull the registry refused for credentials is recorded as such, not as a missing image, and retried with backoff', () => {
    const error = 'registry authentication failed for registry.example:5000 (no credentials for registry.example:5000 in /etc/flowforge/config.json: unauthorized: authentication required)'
    expect(describeRecovery(planRecovery(row, { kind: 'registry-auth', registryHost: 'registry.example:5000', error }))).toBe(
      ['abort, then retry with backoff', `status status="error" error=${JSON.stringify(error)}`, `event plugin:error ${JSON.stringify({ error })}`].join('\n'),
    )
  })

  test('a name taken by our own container (made while the create call failed) carries on with it', () => {
    expect(describeRecovery(planRecovery(row, { kind: 'name-taken', holder: ourContainer(row, { state: 'created' }) }))).toBe(
      "continue with c0ffee000000  # container c0ffee000000 under that name is this plugin's own",
    )
  })

  test('a name taken by a container that is not ours is a conflict, left alone and looked at in 30 s', () => {
    const foreign: ObservedContainer = { id: 'f0f0f0f0f0f0f0f0', name: 'forgehook-crypto', image: 'nginx', state: 'running', labels: {} }
    expect(describeRecovery(planRecovery(row, { kind: 'name-taken', holder: foreign }))).toBe(
      [
        'abort, then wait',
        'status status="error" error="container name forgehook-crypto is held by a container not managed by FlowForge (id f0f0f0f0f0f0); remove or rename it — FlowForge will not touch it"',
        'event plugin:error {"error":"container name forgehook-crypto is held by a container not managed by FlowForge (id f0f0f0f0f0f0); remove or rename it — FlowForge will not touch it"}',
        'requeue after 30000 ms',
      ].join('\n'),
    )
  })

  test('a name taken by a container gone again by the time it is looked at is retried', () => {
    expect(describeRecovery(planRecovery(row, { kind: 'name-taken', holder: undefined }))).toBe('abort, then retry with backoff')
  })

  test('an allocated port found taken outside FlowForge is released and the start retried (with another port)', () => {
    expect(describeRecovery(planRecovery(row, { kind: 'port-in-use', error: 'host port 4100 is already in use (address already in use)' }))).toBe(
      ['abort, then retry with backoff', 'release-port 4100  # host port 4100 is already in use (address already in use)'].join('\n'),
    )
  })

  test('a requested port found taken is the operator\'s to free: recorded, looked at in 30 s', () => {
    const requested = { ...row, requestedHostPort: 4100 }
    expect(describeRecovery(planRecovery(requested, { kind: 'port-in-use', error: 'host port 4100 is already in use (address already in use)' }))).toBe(
      [
        'abort, then wait',
        'status status="error" error="requested host port 4100 is already in use (address already in use)"',
        'event plugin:error {"error":"requested host port 4100 is already in use (address already in use)"}',
        'requeue after 30000 ms',
      ].join('\n'),
    )
  })
})

describe('plan: the installation network', () => {
  const OPTIONS = { hostIp: '127.0.0.1', instance: 'test', network: 'flowforge-test' }

  function onNetwork(row: ReturnType<typeof plugin>, networks: string[]): string {
    const parsed = parseManifest(row.manifest)
    if (!parsed.ok) throw new Error(parsed.error)
    const spec = buildContainerSpec(row, parsed.manifest, 4100, OPTIONS)
    const container = { ...ourContainer(row), labels: spec.labels, networks }
    return describePlan(plan({ plugin: row, container, wanted: { ok: true, spec, pullPolicy: 'IfNotPresent' }, now: NOW, installationNetwork: 'flowforge-test' }))
  }

  test('a running plugin found off the installation network is connected under its name, not recreated', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc' })
    expect(onNetwork(row, ['bridge']).split('\n')[0]).toBe('connect-network c0ffee000000 flowforge-test as crypto  # crypto is reached by name on flowforge-test')
    expect(onNetwork(row, ['flowforge-test'])).not.toContain('network')
  })

  test('an isolated plugin found on the installation network is taken off it', () => {
    const row = plugin({ status: 'running', containerId: 'c0ffee000000aaaabbbbcccc', network: { isolated: true } })
    expect(onNetwork(row, ['flowforge-test']).split('\n')[0]).toBe('disconnect-network c0ffee000000 flowforge-test  # spec.network.isolated: the plugin is kept off the installation network')
    expect(onNetwork(row, ['bridge'])).not.toContain('network')
  })
})

describe('plan: adopted containers', () => {
  test('an adopted container stays ours when a spec file takes the plugin over: its first spec change is a rollout, not a conflict', () => {
    const unlabelled: ObservedContainer = { id: 'abcabc000000', name: 'forgehook-crypto', image: 'legacy:1', state: 'running', labels: {}, hostPort: 4100, startedAt: new Date(NOW - 60_000) }
    const takenOver = plugin({ source: 'file:crypto.yaml', status: 'running', containerId: 'abcabc000000', generation: 2 })
    const text = golden(takenOver, unlabelled)
    expect(text).toContain('create forgehook-crypto_next')
    expect(text).not.toContain('held by')
  })
})
