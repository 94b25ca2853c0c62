// forgectl describe NAME: one plugin for a person, kubectl-style: what was declared, what
// the controller observed, the drift between the two, and the latest events.
import { stringify as toYaml } from 'yaml'
import { HELP_OPTION, parseCommandArgs, requireName, showUsage } from '../args.js'
import type { Command } from '../context.js'
import { formatAge, formatTable, NONE, oneLine, shortValue, writeLines } from '../output.js'
import { convergenceOf, manifestImage, readyReplicas, summarizeEventData, type PluginEvent, type PluginObject } from '../plugin-object.js'

const EVENT_COUNT = 10
const INDENT = '  '

const USAGE = `Usage: forgectl describe NAME

Shows one plugin: its spec (image, ports, state, replicas, labels, environment with secret
values hidden as ***, config), its status (phase, ready replicas, health, container,
restarts, error, times), on RUNTIME=swarm its tasks (slot, node, state, container, error),
the drift between the two (converged, pending or error), and its last ${EVENT_COUNT} events.

Options:
  -h, --help  show this help`

export const describeCommand: Command = {
  usage: USAGE,
  async run(argv, context) {
    const args = parseCommandArgs('describe', argv, HELP_OPTION)
    if (args.values.help) return showUsage(context, USAGE)
    const pluginName = requireName('describe', args.positionals)
    const api = context.api()
    const plugin = await api.getPlugin(pluginName)
    // By the uid: the events of this plugin, not of an earlier one that had the same name.
    const events = await api.listEvents(plugin.metadata.uid, EVENT_COUNT)
    writeLines(context.stdout, describePlugin(plugin, events, context.now()))
    return 0
  },
}

function describePlugin(plugin: PluginObject, events: PluginEvent[], nowMs: number): string[] {
  const { metadata } = plugin
  const labels = Object.entries(metadata.labels ?? {}).map(([key, value]) => `${key}=${value}`)
  return [
    ...fields('', [
      ['Name', metadata.name],
      ['UID', metadata.uid],
      ['Labels', labels.length > 0 ? labels.join(', ') : NONE],
      ['Source', metadata.source],
      ['Created', timeWithAge(metadata.creationTimestamp, nowMs)],
      ...(metadata.deletionTimestamp ? [['Deleting', `since ${timeWithAge(metadata.deletionTimestamp, nowMs)}`] as [string, string]] : []),
    ]),
    'Spec:',
    ...specLines(plugin),
    'Status:',
    ...statusLines(plugin, nowMs),
    ...taskLines(plugin),
    'Drift:',
    ...driftLines(plugin),
    `Events (last ${EVENT_COUNT}):`,
    ...eventLines(events, nowMs),
  ]
}

function specLines(plugin: PluginObject): string[] {
  const { spec, status } = plugin
  const manifest = spec.manifest
  const healthCheck = manifest.healthCheck as { path?: unknown; intervalSeconds?: unknown } | undefined
  const resources = manifest.resources as { memoryMb?: unknown; cpus?: unknown } | undefined
  const lines = fields(INDENT, [
    ['State', spec.state],
    ['Image', manifestImage(manifest) ?? NONE],
    ['Manifest', [manifest.name, manifest.version].filter((part) => typeof part === 'string').join(' ') || NONE],
    ['Pull Policy', typeof manifest.imagePullPolicy === 'string' ? manifest.imagePullPolicy : 'IfNotPresent (default)'],
    ['Port', manifest.port === undefined ? NONE : `${shortValue(manifest.port)} (in the container)`],
    ['Host Port', `requested ${spec.hostPort ?? `${NONE} (one from the range)`}, assigned ${status.hostPort ?? NONE}`],
    ['Health Check', healthCheck?.path ? `GET ${shortValue(healthCheck.path)} every ${shortValue(healthCheck.intervalSeconds ?? 30)}s` : NONE],
    ['Resources', resources ? describeResources(resources) : NONE],
    ['Volumes', describeVolumes(plugin)],
    ['More Ports', plugin.status.extraPorts.length === 0 ? NONE : plugin.status.extraPorts.map((port) => `${port.name} ${port.containerPort}/${port.protocol} on ${port.hostPort}`).join(', ')],
    ['Network', spec.network?.isolated ? 'isolated (off the installation network)' : `the installation network, as ${plugin.metadata.name}`],
    ['Update', `${spec.update?.strategy ?? 'Recreate'}, healthy within ${spec.update?.healthyTimeoutSeconds ?? 60}s or rolled back`],
    ['Replicas', String(spec.replicas ?? 1)],
    ['Placement', describePlacement(spec.placement)],
  ])
  const environment = Object.entries(spec.environment ?? {}).sort(([left], [right]) => left.localeCompare(right))
  lines.push(`${INDENT}Environment:${environment.length === 0 ? ` ${NONE}` : ''}`)
  lines.push(...fields(INDENT.repeat(2), environment))
  const config = spec.config ?? {}
  if (Object.keys(config).length === 0) {
    lines.push(`${INDENT}Config: ${NONE}`)
  } else {
    lines.push(`${INDENT}Config:`, ...toYaml(config).trimEnd().split('\n').map((line) => INDENT.repeat(2) + line))
  }
  return lines
}

function describeResources(resources: { memoryMb?: unknown; cpus?: unknown }): string {
  const parts = [
    resources.memoryMb !== undefined ? `memory ${shortValue(resources.memoryMb)} MiB` : undefined,
    resources.cpus !== undefined ? `cpus ${shortValue(resources.cpus)}` : undefined,
  ].filter((part) => part !== undefined)
  return parts.length > 0 ? parts.join(', ') : NONE
}

function statusLines(plugin: PluginObject, nowMs: number): string[] {
  const { status } = plugin
  const container = status.containerId ? `${status.containerName ?? NONE} (${status.containerId.slice(0, 12)})` : NONE
  return fields(INDENT, [
    ['Phase', status.phase],
    ['Ready', describeReady(plugin)],
    ['Health', status.lastHealthCheck ? `${status.health} (checked ${formatAge(status.lastHealthCheck, nowMs)} ago)` : status.health],
    ['Container', container],
    ['Restarts', String(status.restartCount)],
    ['Error', status.error ? oneLine(status.error) : NONE],
    ['Installed', timeWithAge(status.installedAt, nowMs)],
    ['Started', timeWithAge(status.startedAt, nowMs)],
    ['Stopped', timeWithAge(status.stoppedAt, nowMs)],
    ...(status.nextRestartAt ? [['Next Restart', status.nextRestartAt] as [string, string]] : []),
    ...(status.rollout ? [['Rollout', describeRollout(status.rollout, nowMs)] as [string, string]] : []),
  ])
}

function describePlacement(placement: PluginObject['spec']['placement']): string {
  if (!placement) return NONE
  const parts = [
    ...(placement.constraints ?? []),
    ...(placement.preferences ?? []).map((preference) => `spread over ${preference.spread}`),
    ...(placement.maxReplicasPerNode !== undefined ? [`at most ${placement.maxReplicasPerNode} per node`] : []),
  ]
  return parts.length > 0 ? parts.join(', ') : NONE
}

function describeReady(plugin: PluginObject): string {
  const ready = readyReplicas(plugin)
  return `${ready.running}/${ready.desired}${plugin.status.replicas ? ' tasks running' : ''}`
}

/** The Swarm tasks of the plugin's service, when it has any (RUNTIME=swarm). */
function taskLines(plugin: PluginObject): string[] {
  const tasks = plugin.status.tasks ?? []
  if (tasks.length === 0) return []
  const rows = tasks.map((task) => [
    task.slot === null ? NONE : String(task.slot),
    `${task.nodeName ?? task.nodeId ?? NONE}${task.nodeState && task.nodeState !== 'ready' ? ` (${task.nodeState})` : ''}`,
    task.state === task.desiredState ? task.state : `${task.state} (desired ${task.desiredState})`,
    task.containerId ? task.containerId.slice(0, 12) : NONE,
    task.error ? oneLine(task.error) : NONE,
  ])
  return ['Tasks:', ...formatTable([['SLOT', 'NODE', 'STATE', 'CONTAINER', 'ERROR'], ...rows]).map((line) => INDENT + line)]
}

function describeVolumes(plugin: PluginObject): string {
  if (plugin.status.volumes.length === 0) return NONE
  return plugin.status.volumes.map((volume) => `${volume.dockerVolume} at ${volume.mountPath}${volume.readOnly ? ' (read-only)' : ''}`).join(', ')
}

function describeRollout(rollout: NonNullable<PluginObject['status']['rollout']>, nowMs: number): string {
  const what = `${rollout.phase} (${rollout.strategy}, generation ${rollout.generation}): ${rollout.fromImage ?? NONE} -> ${rollout.toImage}, started ${formatAge(rollout.startedAt, nowMs)} ago`
  return rollout.error ? `${what}; ${oneLine(rollout.error)}` : what
}

function driftLines(plugin: PluginObject): string[] {
  const convergence = convergenceOf(plugin)
  const result = convergence.state === 'converged' ? 'converged' : `${convergence.state}: ${oneLine(convergence.reason)}`
  return fields(INDENT, [
    ['Desired', `state ${plugin.spec.state}, generation ${plugin.metadata.generation}`],
    ['Observed', `phase ${plugin.status.phase}, generation ${plugin.status.observedGeneration}`],
    ['Result', result],
  ])
}

/** Oldest first, as kubectl lists them; the API pages newest first. */
function eventLines(events: PluginEvent[], nowMs: number): string[] {
  if (events.length === 0) return [`${INDENT}${NONE}`]
  const rows = [...events].reverse().map((event) => [formatAge(event.timestamp, nowMs), event.type, summarizeEventData(event.data)])
  return formatTable([['AGE', 'TYPE', 'DATA'], ...rows]).map((line) => INDENT + line)
}

/** `Label:  value` lines with the values aligned. */
function fields(indent: string, pairs: [string, string][]): string[] {
  const width = Math.max(0, ...pairs.map(([label]) => label.length + 1))
  return pairs.map(([label, value]) => `${indent}${`${label}:`.padEnd(width)}  ${value}`)
}

function timeWithAge(timestamp: string | null | undefined, nowMs: number): string {
  return timestamp ? `${timestamp} (${formatAge(timestamp, nowMs)} ago)` : NONE
}
