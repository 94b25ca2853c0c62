// Crash recovery, as in the guide's start-up sequence: containers named forgehook-* (or
// carrying our label) that have no plugin row are adopted as new rows, unless their plugin
// was deleted (a tombstone), in which case the container is removed instead.
import type { Logger } from '../logger.js'
import { AlreadyExistsError } from '../db/errors.js'
import type { Plugin, PluginStore } from '../db/plugin-store.js'
import { CONTAINER_NAME_PREFIX, containerNameFor, isManaged, LABELS, type ObservedContainer } from '../runtime/container-runtime.js'
import { readDeclaredSpec, withSecretsFrom } from '../spec/container-spec.js'
import { isDnsLabel } from '../util/dns-label.js'
import { isUuid } from '../util/uuid.js'

export interface AdoptionInput {
  store: PluginStore
  /** MANAGER_INSTANCE. Only the default installation adopts unlabelled (legacy) containers. */
  instance: string
  containers: ObservedContainer[]
  rows: Plugin[]
  logger: Logger
  /** The engine's full view of one container (its settings and environment): looked at before adopting it. */
  inspect(containerId: string): Promise<ObservedContainer | undefined>
}

export interface AdoptionResult {
  created: number
  /** Plugin ids whose container must go (their plugin was deleted). */
  removeContainersOf: string[]
}

export const DEFAULT_INSTANCE = 'default'
/** When a foreign container publishes no port, the plugin port is a guess; the spec can fix it. */
const DEFAULT_CONTAINER_PORT = 8080

export async function adoptOrphans(input: AdoptionInput): Promise<AdoptionResult> {
  const { store, logger } = input
  const rowIds = new Set(input.rows.map((row) => row.id))
  const rowNames = new Set(input.rows.map((row) => row.forgehookId))
  const orphans = input.containers.filter((container) => {
    if (!container.name.startsWith(CONTAINER_NAME_PREFIX)) return false
    // Only a plugin's own container is adopted, never a rollout's beside it (forgehook-x_next).
    if (container.name !== containerNameFor(nameOf(container))) return false
    const pluginId = container.labels[LABELS.pluginId]
    if (isManaged(container) && pluginId && rowIds.has(pluginId)) return false
    // Containers of the guide's manager carry no labels; they belong to the default
    // installation, so that several named installations on one engine never take them.
    if (!isManaged(container) && input.instance !== DEFAULT_INSTANCE) return false
    // A row of that name exists under another id: the plugin's reconcile reports the conflict.
    return !rowNames.has(nameOf(container))
  })
  const labelledIds = orphans.map((container) => container.labels[LABELS.pluginId] ?? '').filter((id) => isUuid(id))
  const deleted = await store.deletedPluginIds(labelledIds)
  // An unlabelled container a deleted plugin had adopted: the deletion sticks, it goes.
  const unlabelled = orphans.filter((container) => !isManaged(container)).map((container) => container.id)
  const adoptedThenDeleted = new Map((await store.tombstonesOfContainers(unlabelled)).map((tombstone) => [tombstone.containerId, tombstone.pluginId]))

  const result: AdoptionResult = { created: 0, removeContainersOf: [] }
  for (const container of orphans) {
    const pluginId = container.labels[LABELS.pluginId]
    if (isManaged(container) && pluginId && deleted.has(pluginId)) {
      result.removeContainersOf.push(pluginId)
      continue
    }
    const deletedOwner = adoptedThenDeleted.get(container.id)
    if (deletedOwner) {
      result.removeContainersOf.push(deletedOwner)
      continue
    }
    // A list shows labels only; what the container really is, inspect tells.
    const inspected = await input.inspect(container.id)
    if (!inspected) continue
    if ((inspected.unsafe ?? []).length > 0) {
      logger.warn(
        { container: container.name, unsafe: inspected.unsafe },
        `not adopting ${container.name}: it has ${inspected.unsafe!.join(', ')}, which no FlowForge spec produces; it is treated as foreign and left alone`,
      )
      continue
    }
    if (await adoptOne(store, inspected, logger)) result.created += 1
  }
  return result
}

function nameOf(container: ObservedContainer): string {
  return container.labels[LABELS.forgehookId] ?? container.name.slice(CONTAINER_NAME_PREFIX.length)
}

async function adoptOne(store: PluginStore, container: ObservedContainer, logger: Logger): Promise<boolean> {
  const forgehookId = nameOf(container)
  if (!isDnsLabel(forgehookId)) {
    logger.warn({ container: container.name }, `not adopting ${container.name}: "${forgehookId}" is not a valid plugin name`)
    return false
  }
  const managed = isManaged(container)
  const labelledId = container.labels[LABELS.pluginId]
  // The label holds the spec with its secrets redacted; the container's own environment has them.
  const declared = managed ? withSecretsFrom(readDeclaredSpec(container.labels), container.env ?? {}) : undefined
  const manifest = declared?.manifest ?? { name: forgehookId, image: container.image, port: container.containerPort ?? DEFAULT_CONTAINER_PORT }
  try {
    const plugin = await store.createPlugin({
      // Keep a managed container's plugin id, so the container is recognised as ours.
      ...(managed && labelledId && isUuid(labelledId) ? { id: labelledId } : {}),
      forgehookId,
      source: 'adopted',
      manifest,
      config: declared?.config ?? {},
      environment: declared?.environment ?? {},
      labels: declared?.labels ?? {},
      requestedHostPort: declared?.requestedHostPort ?? null,
      ...(declared?.volumes ? { volumes: declared.volumes } : {}),
      ...(declared?.updatePolicy ? { updatePolicy: declared.updatePolicy } : {}),
      ...(declared?.network ? { network: declared.network } : {}),
      ...(declared?.replicas !== undefined ? { replicas: declared.replicas } : {}),
      ...(declared?.placement ? { placement: declared.placement } : {}),
      desiredState: container.state === 'running' ? 'running' : 'stopped',
    })
    // What is observed now; the first reconcile verifies it (observed_generation is still 0).
    await store.writeStatus(plugin.id, {
      status: container.state === 'running' ? 'running' : 'stopped',
      containerId: container.id,
      containerName: container.name,
      ...(container.hostPort !== undefined ? { hostPort: container.hostPort } : {}),
    })
    await store.logEvent({
      pluginId: plugin.id,
      forgehookId,
      type: 'plugin:adopted',
      data: { containerId: container.id, image: container.image, managed, state: container.state },
    })
    logger.info({ container: container.name, managed }, `adopted orphaned container ${container.name} as plugin ${forgehookId}`)
    return true
  } catch (error) {
    if (error instanceof AlreadyExistsError) return false
    logger.warn({ err: error, container: container.name }, `could not adopt ${container.name}: ${(error as Error).message}`)
    return false
  }
}
