// The swarm runtime's pure parts: a plugin row as a ServiceSpec (service-spec.ts), and what
// its tasks say about it (service-status.ts).
import { describe, expect, test } from 'vitest'
import type { Plugin } from '../../src/db/plugin-store.js'
import { LABELS } from '../../src/runtime/container-runtime.js'
import { readDeclaredSpec } from '../../src/spec/container-spec.js'
import { parseManifest } from '../../src/spec/manifest.js'
import type { ObservedNode, ObservedService, ObservedTask } from '../../src/swarm/service-runtime.js'
import { buildServiceSpec, type ServiceSpecOptions } from '../../src/swarm/service-spec.js'
import { observeService, type TaskRecord } from '../../src/swarm/service-status.js'
import { NOW, plugin } from '../helpers/plan-fixtures.js'

const OPTIONS: ServiceSpecOptions = {
  hostIp: '127.0.0.1',
  instance: 'default',
  network: 'flowforge-default',
  publishMode: 'host',
  endpointMode: 'dnsrr',
  stopTimeoutSeconds: 10,
  restartDelaySeconds: 5,
}

function spec(row: Plugin, options: Partial<ServiceSpecOptions> = {}) {
  const parsed = parseManifest(row.manifest)
  if (!parsed.ok) throw new Error(parsed.error)
  return buildServiceSpec(row, parsed.manifest, row.hostPort ?? 4100, { ...OPTIONS, ...options })
}

type Doc = {
  Labels: Record<string, string>
  Mode: { Replicated: { Replicas: number } }
  TaskTemplate: { ContainerSpec: Record<string, unknown>; Placement: Record<string, unknown>; RestartPolicy: Record<string, unknown>; Resources: { Limits: Record<string, number> }; Networks?: unknown[] }
  UpdateConfig: Record<string, unknown>
  EndpointSpec: { Mode: string; Ports: Record<string, unknown>[] }
}

describe('buildServiceSpec', () => {
  test('maps the spec: image, env with FORGEHOOK_CONFIG, replicas, placement, limits, health check, update order and monitor, host-mode port, dnsrr, overlay network', () => {
    const row = plugin({
      manifest: { name: 'Crypto', image: 'flowforge/crypto:1', port: 8080, resources: { memoryMb: 64, cpus: 0.5 }, healthCheck: { path: '/health', intervalSeconds: 2 } },
      config: { a: 1 },
      replicas: 3,
      placement: { constraints: ['node.labels.zone==a'], preferences: [{ spread: 'node.labels.zone' }], maxReplicasPerNode: 1 },
      updatePolicy: { strategy: 'StartFirst', healthyTimeoutSeconds: 7 },
    } as Partial<Plugin>)
    const wanted = spec(row)
    const doc = wanted.spec as unknown as Doc
    expect(wanted.name).toBe('forgehook-crypto')
    expect(wanted.replicas).toBe(3)
    expect(doc.Mode.Replicated.Replicas).toBe(3)
    expect(doc.TaskTemplate.ContainerSpec.Image).toBe('flowforge/crypto:1')
    expect(doc.TaskTemplate.ContainerSpec.Env).toEqual(expect.arrayContaining(['LOG_LEVEL=info', 'FORGEHOOK_CONFIG={"a":1}']))
    expect(doc.TaskTemplate.Placement).toEqual({ Constraints: ['node.labels.zone==a'], Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }], MaxReplicas: 1 })
    expect(doc.TaskTemplate.Resources.Limits).toMatchObject({ MemoryBytes: 64 * 1024 * 1024, NanoCPUs: 500_000_000 })
    expect(doc.TaskTemplate.ContainerSpec.HealthCheck).toMatchObject({ Test: ['CMD-SHELL', expect.stringContaining("'http://127.0.0.1:8080/health'")], Interval: 2_000_000_000 })
    expect(doc.TaskTemplate.RestartPolicy).toEqual({ Condition: 'any', Delay: 5_000_000_000 })
    expect(doc.UpdateConfig).toMatchObject({ Order: 'start-first', FailureAction: 'rollback', Monitor: 7_000_000_000 })
    expect(doc.EndpointSpec).toEqual({ Mode: 'dnsrr', Ports: [{ TargetPort: 8080, PublishedPort: 4100, Protocol: 'tcp', PublishMode: 'host' }] })
    expect(doc.TaskTemplate.Networks).toEqual([{ Target: 'flowforge-default', Aliases: ['crypto'] }])
    expect(doc.Labels).toMatchObject({ [LABELS.managed]: 'true', [LABELS.instance]: 'default', [LABELS.pluginId]: row.id, [LABELS.specHash]: wanted.specHash })
  })

  test('the hash is stable for the same row and changes with any field that reaches the service', () => {
    const row = plugin()
    expect(spec(row).specHash).toBe(spec(plugin()).specHash)
    const changed = [
      plugin({ replicas: 2 } as Partial<Plugin>),
      plugin({ environment: { LOG_LEVEL: 'debug' } }),
      plugin({ manifest: { name: 'Crypto', image: 'flowforge/crypto:2', port: 8080 } }),
      plugin({ placement: { constraints: ['node.role==worker'] } } as Partial<Plugin>),
      plugin({ updatePolicy: { strategy: 'StartFirst' } }),
      plugin({ desiredState: 'stopped' }),
    ]
    const hashes = new Set([spec(row).specHash, ...changed.map((candidate) => spec(candidate).specHash)])
    expect(hashes.size).toBe(changed.length + 1)
    expect(spec(row, { publishMode: 'ingress' }).specHash).not.toBe(spec(row).specHash)
  })

  test('a stopped plugin keeps its service with 0 replicas', () => {
    const wanted = spec(plugin({ desiredState: 'stopped', replicas: 3 } as Partial<Plugin>))
    expect(wanted.replicas).toBe(0)
    expect((wanted.spec as unknown as Doc).Mode.Replicated.Replicas).toBe(0)
  })

  test('a service whose row is lost is adopted from its declared-spec label into a row that builds the same service (replicas, placement, update config, volumes): no update', () => {
    const row = plugin({
      replicas: 3,
      placement: { constraints: ['node.role==worker'], maxReplicasPerNode: 1 },
      updatePolicy: { strategy: 'StartFirst', healthyTimeoutSeconds: 9 },
      volumes: [{ name: 'data', mountPath: '/data' }],
      network: { isolated: true },
    } as Partial<Plugin>)
    const wanted = spec(row)
    const declared = readDeclaredSpec((wanted.spec as unknown as Doc).Labels)
    expect(declared).toBeDefined()
    // What adoptOne writes from the label: the declared fields, the defaults for the rest.
    const adopted = plugin({
      manifest: declared!.manifest,
      config: declared!.config,
      environment: declared!.environment,
      labels: declared!.labels,
      requestedHostPort: declared!.requestedHostPort,
      replicas: declared!.replicas ?? 1,
      placement: declared!.placement ?? {},
      updatePolicy: declared!.updatePolicy ?? {},
      volumes: declared!.volumes ?? [],
      network: declared!.network ?? {},
    } as Partial<Plugin>)
    expect(spec(adopted).specHash).toBe(wanted.specHash)
    // A plugin that declares none of them has a label without them (as before they were added).
    expect(Object.keys(readDeclaredSpec((spec(plugin()).spec as unknown as Doc).Labels)!).sort()).toEqual(['config', 'environment', 'labels', 'manifest', 'requestedHostPort'])
  })
})

const NODES = new Map<string, ObservedNode>([
  ['n1', { id: 'n1', hostname: 'node-1', state: 'ready', availability: 'active', role: 'manager', labels: {} }],
  ['n2', { id: 'n2', hostname: 'node-2', state: 'ready', availability: 'active', role: 'worker', labels: {} }],
  ['n3', { id: 'n3', hostname: 'node-3', state: 'ready', availability: 'active', role: 'worker', labels: {} }],
])

function service(overrides: Partial<ObservedService> = {}): ObservedService {
  return { id: 's1', name: 'forgehook-crypto', version: 10, labels: { [LABELS.specHash]: 'h1', [LABELS.managed]: 'true' }, replicas: 3, image: 'flowforge/crypto:1', ports: [], env: {}, forceUpdate: 0, ...overrides }
}

function task(id: string, slot: number, nodeId: string, state: ObservedTask['state'], overrides: Partial<ObservedTask> = {}): ObservedTask {
  return { id, serviceId: 's1', slot, nodeId, state, desiredState: 'running', hostPorts: [4100], updatedAt: new Date(NOW - 1_000), ...overrides }
}

function look(tasks: ObservedTask[], options: { previous?: TaskRecord[]; nodes?: Map<string, ObservedNode>; service?: Partial<ObservedService>; row?: Partial<Plugin>; replicas?: number } = {}) {
  return observeService({
    plugin: plugin({ status: 'running', ...options.row }),
    service: service(options.service),
    tasks,
    nodes: options.nodes ?? NODES,
    previous: options.previous ?? [],
    wantedHash: 'h1',
    wantedReplicas: options.replicas ?? 3,
    now: new Date(NOW),
  })
}

describe('observeService', () => {
  test('3 running tasks on 3 nodes: running 3/3, healthy, the generation observed, one row per task', () => {
    const observed = look([task('t1', 1, 'n1', 'running'), task('t2', 2, 'n2', 'running'), task('t3', 3, 'n3', 'running')])
    expect(observed.status).toMatchObject({ status: 'running', replicasDesired: 3, replicasRunning: 3, healthStatus: 'healthy', error: null, observedGeneration: 1 })
    expect(observed.tasks.map((row) => [row.slot, row.nodeName, row.state])).toEqual([
      [1, 'node-1', 'running'],
      [2, 'node-2', 'running'],
      [3, 'node-3', 'running'],
    ])
    expect(observed.events).toEqual([])
  })

  test('never running with no task running: starting while tasks start, error when the last ones failed', () => {
    expect(look([task('t1', 1, 'n1', 'preparing')], { replicas: 1 }).status.status).toBe('starting')
    const failed = look([task('t1', 1, 'n1', 'failed', { error: 'task: non-zero exit (3)' })], { replicas: 1 })
    expect(failed.status).toMatchObject({ status: 'error', replicasRunning: 0 })
    expect(failed.status.error).toContain('task: non-zero exit (3)')
    expect(failed.events.map((event) => event.type)).toEqual(['plugin:task-failed'])
  })

  test('a node going down: its running task no longer counts, the audit trail says so, and the slot moving elsewhere is a reschedule', () => {
    const before = look([task('t1', 1, 'n1', 'running'), task('t2', 2, 'n2', 'running'), task('t3', 3, 'n3', 'running')]).tasks
    const down = new Map(NODES)
    down.set('n3', { ...NODES.get('n3')!, state: 'down' })
    const lost = look([task('t1', 1, 'n1', 'running'), task('t2', 2, 'n2', 'running'), task('t3', 3, 'n3', 'running')], { previous: before, nodes: down })
    expect(lost.status).toMatchObject({ status: 'running', replicasRunning: 2 })
    expect(lost.events.map((event) => [event.type, event.data?.node])).toEqual([['plugin:node-down', 'node-3']])

    const moved = look(
      [task('t1', 1, 'n1', 'running'), task('t2', 2, 'n2', 'running'), task('t3', 3, 'n3', 'running', { desiredState: 'shutdown' }), task('t4', 3, 'n1', 'running')],
      { previous: lost.tasks, nodes: down },
    )
    expect(moved.status).toMatchObject({ replicasRunning: 3 })
    expect(moved.events).toEqual([expect.objectContaining({ type: 'plugin:task-rescheduled', data: expect.objectContaining({ slot: 3, fromNode: 'node-3', toNode: 'node-1', reason: 'node node-3 is down' }) })])
  })

  test('a drained node: the move names the drain', () => {
    const before = look([task('t1', 1, 'n1', 'running')], { replicas: 1 }).tasks
    const drained = new Map(NODES)
    drained.set('n1', { ...NODES.get('n1')!, availability: 'drain' })
    const moved = look([task('t1', 1, 'n1', 'shutdown', { desiredState: 'shutdown' }), task('t2', 1, 'n2', 'running')], { previous: before, nodes: drained, replicas: 1 })
    expect(moved.events).toEqual([expect.objectContaining({ type: 'plugin:task-rescheduled', data: expect.objectContaining({ fromNode: 'node-1', toNode: 'node-2', reason: 'node node-1 is drained' }) })])
  })

  test('a move is seen when the last look already had the old task marked for shutdown, and a rolling update on a ready node is no move', () => {
    const drained = new Map(NODES)
    drained.set('n1', { ...NODES.get('n1')!, availability: 'drain' })
    const marked = look([task('t1', 1, 'n1', 'running', { desiredState: 'shutdown' })], { nodes: drained, replicas: 1 }).tasks
    // As seen on a real swarm: the replacement first appears unplaced, then with desired state ready.
    const unplaced = look([task('t1', 1, 'n1', 'running', { desiredState: 'shutdown' }), { ...task('t2', 1, 'n2', 'pending', { desiredState: 'ready' }), nodeId: undefined }], { previous: marked, nodes: drained, replicas: 1 })
    expect(unplaced.events).toEqual([])
    const moved = look([task('t1', 1, 'n1', 'running', { desiredState: 'shutdown' }), task('t2', 1, 'n2', 'ready', { desiredState: 'ready' })], { previous: unplaced.tasks, nodes: drained, replicas: 1 })
    expect(moved.events.map((event) => event.type)).toEqual(['plugin:task-rescheduled'])
    const later = look([task('t1', 1, 'n1', 'shutdown', { desiredState: 'shutdown' }), task('t2', 1, 'n2', 'running')], { previous: moved.tasks, nodes: drained, replicas: 1 })
    expect(later.events).toEqual([])
    const before = look([task('t1', 1, 'n1', 'running')], { replicas: 1 }).tasks
    const updated = look([task('t1', 1, 'n1', 'shutdown', { desiredState: 'shutdown' }), task('t2', 1, 'n2', 'running')], { previous: before, replicas: 1 })
    expect(updated.events).toEqual([])
  })

  test('Swarm rolled back from the spec the row declares: rolled-back with its reason, once, and the generation left unobserved', () => {
    const rolledBack = service({ labels: { [LABELS.specHash]: 'h0' }, previousLabels: { [LABELS.specHash]: 'h1' }, updateStatus: { state: 'rollback_completed', message: 'rollback completed' } })
    const observed = observeService({
      plugin: plugin({ status: 'running', generation: 2, observedGeneration: 1 }),
      service: rolledBack,
      tasks: [task('t1', 1, 'n1', 'running')],
      nodes: NODES,
      previous: [],
      wantedHash: 'h1',
      wantedReplicas: 1,
      now: new Date(NOW),
    })
    expect(observed.rolledBack).toBe(true)
    expect(observed.status.rollout).toMatchObject({ phase: 'rolled-back', generation: 2 })
    expect(observed.status.observedGeneration).toBeUndefined()
    expect(observed.events.map((event) => event.type)).toEqual(['plugin:rolled-back'])
    const again = observeService({
      plugin: plugin({ status: 'running', generation: 2, rollout: observed.status.rollout! }),
      service: rolledBack,
      tasks: [task('t1', 1, 'n1', 'running')],
      nodes: NODES,
      previous: observed.tasks,
      wantedHash: 'h1',
      wantedReplicas: 1,
      now: new Date(NOW),
    })
    expect(again.events).toEqual([])
  })

  test('a rollback Swarm made after our update of this generation counts though Swarm emptied PreviousSpec; one of an older generation does not', () => {
    const rolledBack = service({ labels: { [LABELS.specHash]: 'h0' }, updateStatus: { state: 'rollback_started', message: 'update paused due to failure or early termination of task t9' } })
    const ours = { phase: 'progressing' as const, strategy: 'StartFirst' as const, generation: 3, fromImage: 'a:1', toImage: 'a:2', startedAt: new Date(NOW - 5_000).toISOString() }
    const input = { service: rolledBack, tasks: [task('t1', 1, 'n1', 'running')], nodes: NODES, previous: [], wantedHash: 'h1', wantedReplicas: 1, now: new Date(NOW) }
    const now = observeService({ ...input, plugin: plugin({ status: 'running', generation: 3, rollout: ours }) })
    expect(now.rolledBack).toBe(true)
    expect(now.status.error).toBe('Swarm rolled the update back: update paused due to failure or early termination of task t9')
    const older = observeService({ ...input, plugin: plugin({ status: 'running', generation: 4, rollout: ours }) })
    expect(older.rolledBack).toBe(false)
  })

  test('the generation is observed only when no update or rollback is under way; one that ended or paused on the wanted spec (a restart undone) counts, and a pause says why', () => {
    const running = [task('t1', 1, 'n1', 'running'), task('t2', 2, 'n2', 'running'), task('t3', 3, 'n3', 'running')]
    for (const state of ['updating', 'rollback_started']) {
      expect(look(running, { service: { updateStatus: { state } } }).status.observedGeneration, state).toBeUndefined()
    }
    for (const state of ['completed', 'rollback_completed', 'paused', 'rollback_paused']) {
      expect(look(running, { service: { updateStatus: { state } } }).status.observedGeneration, state).toBe(1)
    }
    expect(look(running, { service: { updateStatus: { state: 'rollback_completed' } } }).status.rollout?.phase).toBe('complete')
    const paused = look(running, { service: { updateStatus: { state: 'rollback_paused', message: 'update paused due to failure or early termination of task t9' } } })
    expect(paused.status.rollout).toMatchObject({ phase: 'failed', error: 'Swarm paused the rollback: update paused due to failure or early termination of task t9' })
    expect(paused.status).toMatchObject({ status: 'running', replicasRunning: 3, error: null })
  })

  test('stopped: 0 desired and no task left is stopped; a task still running is stopping', () => {
    expect(look([], { replicas: 0 }).status).toMatchObject({ status: 'stopped', replicasDesired: 0, replicasRunning: 0 })
    expect(look([task('t1', 1, 'n1', 'running', { desiredState: 'shutdown' })], { replicas: 0 }).status.status).toBe('stopping')
  })
})
