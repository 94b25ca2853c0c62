// The plugin object the API answers with (every /api/v1/plugins route that returns a plugin,
// and the items of the list). This zod schema is its one definition: the OpenAPI component
// (api/openapi.ts) and forgectl's type (cli/plugin-object.ts) are derived from it, and a test
// parses real answers with it, so the three cannot drift apart again.
import { z } from 'zod'
import type { Plugin, PluginTask } from '../db/plugin-store.js'
import { DESIRED_STATES, HEALTH_STATUSES, NODE_STATES, PLUGIN_PHASES, ROLLOUT_PHASES, TASK_STATES, UPDATE_STRATEGIES } from '../db/schema.js'
import { volumeNameFor } from '../runtime/container-runtime.js'
import { API_VERSION, KIND, pluginNameSchema } from './plugin-spec.js'
import { redactConfig, redactEnvironment, redactText } from './secrets.js'

// The lists themselves stay in db/schema.ts, beside the table types and the CHECK constraints they mirror.
const pluginPhaseSchema = z.enum(PLUGIN_PHASES)
const healthStatusSchema = z.enum(HEALTH_STATUSES)
const desiredStateSchema = z.enum(DESIRED_STATES)

const timestamp = z.iso.datetime()
const hostPort = z.int().min(1).max(65535)
const count = z.int().min(0)

const apiVolumeSchema = z.strictObject({ name: z.string(), mountPath: z.string(), readOnly: z.boolean().optional() })

const rolloutSchema = z.strictObject({
  phase: z.enum(ROLLOUT_PHASES),
  strategy: z.enum(UPDATE_STRATEGIES),
  generation: count,
  fromImage: z.string().nullable(),
  toImage: z.string(),
  startedAt: timestamp,
  switchedAt: timestamp.optional(),
  finishedAt: timestamp.optional(),
  error: z.string().optional(),
  toHostPort: hostPort.optional(),
  fromHostPort: hostPort.optional(),
})

const taskStateSchema = z.enum(TASK_STATES)

const apiTaskSchema = z.strictObject({
  taskId: z.string(),
  slot: z.int().nullable().describe('The replica slot the task fills'),
  nodeId: z.string().nullable(),
  nodeName: z.string().nullable(),
  nodeState: z.enum(NODE_STATES).nullable().describe('The node as the manager saw it with the task'),
  state: taskStateSchema,
  desiredState: taskStateSchema,
  containerId: z.string().nullable(),
  error: z.string().nullable().describe("Swarm's error for a failed or rejected task"),
  message: z.string().nullable(),
  health: z.string().nullable(),
  hostPort: hostPort.nullable().describe('The host port the task publishes the plugin port on'),
  image: z.string().nullable(),
  createdAt: timestamp.nullable(),
  updatedAt: timestamp,
})

const apiPlacementSchema = z.strictObject({
  constraints: z.array(z.string()).optional(),
  preferences: z.array(z.strictObject({ spread: z.string() })).optional(),
  maxReplicasPerNode: count.optional(),
})

// Strict objects throughout: a field the server adds or drops without changing this schema
// fails the test that parses real answers.
export const apiPluginSchema = z
  .strictObject({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND),
    metadata: z.strictObject({
      name: pluginNameSchema,
      // Any hex uuid, as isUuid() accepts: an adopted container's label may carry one of another version.
      uid: z.guid(),
      generation: count.describe('Bumped by every spec change'),
      resourceVersion: z.string().describe('Bumped by every write; the ETag is "<resourceVersion>"'),
      labels: z.record(z.string(), z.string()),
      source: z.string().describe("Who declared it: 'api', 'sql', 'file:<path>', 'adopted'"),
      creationTimestamp: timestamp,
      deletionTimestamp: timestamp.optional().describe('Only while an uninstall is under way'),
    }),
    spec: z.strictObject({
      state: desiredStateSchema,
      hostPort: hostPort.optional().describe('Only when one was requested; status.hostPort is the one in use'),
      // As stored: rows written with SQL are not held to the document schema.
      manifest: z.record(z.string(), z.unknown()),
      config: z.record(z.string(), z.unknown()).describe('Values under secret-looking keys, and secret-looking values, read ***'),
      environment: z.record(z.string(), z.string()).describe('Secret-looking values read ***'),
      volumes: z.array(apiVolumeSchema).optional().describe('Only when declared'),
      update: z.strictObject({ strategy: z.enum(UPDATE_STRATEGIES).optional(), healthyTimeoutSeconds: count.optional() }).optional().describe('Only when declared'),
      network: z.strictObject({ isolated: z.boolean().optional() }).optional().describe('Only when declared: isolated keeps the plugin off the installation network'),
      replicas: count.optional().describe('Only when not 1: how many copies run (RUNTIME=swarm)'),
      placement: apiPlacementSchema.optional().describe('Only when declared: where the copies may run (RUNTIME=swarm)'),
    }),
    status: z.strictObject({
      phase: pluginPhaseSchema,
      health: healthStatusSchema,
      containerId: z.string().nullable(),
      containerName: z.string().nullable(),
      hostPort: hostPort.nullable(),
      error: z.string().nullable(),
      restartCount: count,
      observedGeneration: count.describe('The generation the controller last acted on'),
      lastHealthCheck: timestamp.nullable(),
      installedAt: timestamp.nullable(),
      startedAt: timestamp.nullable(),
      stoppedAt: timestamp.nullable(),
      nextRestartAt: timestamp.nullable().describe('When a crash-looping container is restarted next'),
      rollout: rolloutSchema.nullable().describe('The update in progress, or the last one'),
      imageDigest: z.string().nullable().describe("The registry digest (sha256:…) of the image the container runs, as the manager's last pull of it found it; null while unknown"),
      volumes: z.array(z.strictObject({ name: z.string(), dockerVolume: z.string(), mountPath: z.string(), readOnly: z.boolean() })).describe('The Docker volume of each declared volume'),
      extraPorts: z.array(z.strictObject({ name: z.string(), containerPort: hostPort, protocol: z.enum(['tcp', 'udp']), hostPort })).describe('The host ports of manifest.ports, as assigned'),
      replicas: z
        .strictObject({ desired: count, running: count })
        .optional()
        .describe("RUNTIME=swarm: the replicas the plugin's service asks for and how many of its tasks run; absent on the docker runtime"),
      tasks: z.array(apiTaskSchema).optional().describe('GET /api/v1/plugins/{id} only, when there are any: the Swarm tasks of its service as last observed'),
    }),
  })
  .describe('A plugin as the API returns it; secret environment and config values are shown as ***')

export type ApiPlugin = z.output<typeof apiPluginSchema>

/**
 * The plugin as the API returns it: the document, with status; secrets redacted. `tasks`:
 * its Swarm tasks (plugin_tasks), shown when there are any.
 */
export function toApiDocument(plugin: Plugin, tasks: PluginTask[] = []): ApiPlugin {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: plugin.forgehookId,
      uid: plugin.id,
      generation: plugin.generation,
      resourceVersion: String(plugin.resourceVersion),
      labels: plugin.labels,
      source: plugin.source,
      creationTimestamp: plugin.createdAt.toISOString(),
      ...(plugin.deletionRequestedAt ? { deletionTimestamp: plugin.deletionRequestedAt.toISOString() } : {}),
    },
    spec: {
      state: plugin.desiredState,
      ...(plugin.requestedHostPort !== null ? { hostPort: plugin.requestedHostPort } : {}),
      manifest: plugin.manifest,
      config: redactConfig(plugin),
      environment: redactEnvironment(plugin),
      ...(plugin.volumes.length > 0 ? { volumes: plugin.volumes } : {}),
      ...(Object.keys(plugin.updatePolicy).length > 0 ? { update: plugin.updatePolicy } : {}),
      ...(Object.keys(plugin.network).length > 0 ? { network: plugin.network } : {}),
      ...(plugin.replicas !== 1 ? { replicas: plugin.replicas } : {}),
      ...(Object.keys(plugin.placement).length > 0 ? { placement: plugin.placement } : {}),
    },
    status: {
      phase: plugin.status,
      health: plugin.healthStatus,
      containerId: plugin.containerId,
      containerName: plugin.containerName,
      hostPort: plugin.hostPort,
      error: plugin.error === null ? null : redactText(plugin.error, plugin),
      restartCount: plugin.restartCount,
      observedGeneration: plugin.observedGeneration,
      lastHealthCheck: iso(plugin.lastHealthCheck),
      installedAt: iso(plugin.installedAt),
      startedAt: iso(plugin.startedAt),
      stoppedAt: iso(plugin.stoppedAt),
      nextRestartAt: iso(plugin.nextRestartAt),
      rollout: plugin.rollout,
      imageDigest: plugin.imageDigest ?? null,
      volumes: plugin.volumes.map((volume) => ({ name: volume.name, dockerVolume: volumeNameFor(plugin.forgehookId, volume.name), mountPath: volume.mountPath, readOnly: volume.readOnly ?? false })),
      extraPorts: plugin.extraPorts,
      ...(plugin.replicasDesired !== null || plugin.replicasRunning !== null
        ? { replicas: { desired: plugin.replicasDesired ?? 0, running: plugin.replicasRunning ?? 0 } }
        : {}),
      ...(tasks.length > 0 ? { tasks: tasks.map((task) => toApiTask(task, plugin)) } : {}),
    },
  }
}

function toApiTask(task: PluginTask, plugin: Plugin): NonNullable<ApiPlugin['status']['tasks']>[number] {
  return {
    taskId: task.taskId,
    slot: task.slot,
    nodeId: task.nodeId,
    nodeName: task.nodeName,
    nodeState: task.nodeState,
    state: task.state,
    desiredState: task.desiredState,
    containerId: task.containerId,
    // Swarm's messages may quote the container's command line or environment.
    error: task.error === null ? null : redactText(task.error, plugin),
    message: task.message === null ? null : redactText(task.message, plugin),
    health: task.health,
    hostPort: task.hostPort,
    image: task.image,
    createdAt: iso(task.createdAt),
    updatedAt: task.updatedAt.toISOString(),
  }
}

function iso(value: Date | null): string | null {
  return value ? value.toISOString() : null
}
