// The door to an orchestrator that runs each plugin as a replicated service (RUNTIME=swarm).
// The service reconciler (service-reconciler.ts) depends on this interface only; the Docker
// Swarm driver (docker-swarm-runtime.ts) implements it. A Kubernetes runtime would be a
// second implementation: a Deployment per plugin for createService/updateService, its Pods
// for listTasks, Nodes for listNodes (see docs/swarm.md, "Beyond Swarm").
import { ExpectedError } from '../util/expected-error.js'

/** How a replicated workload publishes a port: on the node its task runs on, or on every node (Swarm's routing mesh). */
export type PublishMode = 'host' | 'ingress'
/** How other tasks find the service: a virtual IP, or DNS round robin over the task addresses. */
export type EndpointMode = 'vip' | 'dnsrr'

/** One published port of a service. */
export interface ServicePort {
  targetPort: number
  publishedPort: number
  protocol: 'tcp' | 'udp'
  mode: PublishMode
}

/**
 * What the reconciler asks for: the orchestrator's own spec document (for Swarm the Engine
 * API's ServiceSpec), ready to send, and the hash of it that its labels carry.
 */
export interface WantedService {
  name: string
  /** The Engine API ServiceSpec, labels (with the hash) included. */
  spec: Record<string, unknown>
  specHash: string
  replicas: number
  image: string
  /** The registry credentials' header for the image (X-Registry-Auth), when some are configured. */
  registryAuth?: string
}

export type TaskState =
  | 'new'
  | 'allocated'
  | 'pending'
  | 'assigned'
  | 'accepted'
  | 'preparing'
  | 'ready'
  | 'starting'
  | 'running'
  | 'complete'
  | 'shutdown'
  | 'failed'
  | 'rejected'
  | 'remove'
  | 'orphaned'

/** Where an update of the service stands, as the orchestrator says. */
export interface ServiceUpdateStatus {
  /** updating, paused, completed, rollback_started, rollback_paused, rollback_completed. */
  state: string
  message?: string
  startedAt?: Date
  completedAt?: Date
}

export interface ObservedService {
  id: string
  name: string
  /** The orchestrator's version of the object: an update must name the one it read. */
  version: number
  labels: Record<string, string>
  replicas: number
  image: string
  createdAt?: Date
  updatedAt?: Date
  updateStatus?: ServiceUpdateStatus
  /** The labels of the spec before the last update (Swarm keeps one): after a rollback, the spec it rolled back from. */
  previousLabels?: Record<string, string>
  ports: ServicePort[]
  /** The environment its tasks get (adoption reads the secrets back from it). */
  env: Record<string, string>
  /** TaskTemplate.ForceUpdate: raised by one to restart every task without a spec change. */
  forceUpdate: number
}

export interface ObservedTask {
  id: string
  serviceId: string
  slot?: number
  nodeId?: string
  state: TaskState
  desiredState: TaskState
  /** Why it is in this state: Swarm's status message. */
  message?: string
  /** The error that ended it, when it failed. */
  error?: string
  containerId?: string
  exitCode?: number
  /** The host ports it publishes on its node (host mode). */
  hostPorts: number[]
  createdAt?: Date
  updatedAt?: Date
  /** The image of the spec it runs. */
  image?: string
}

export interface ObservedNode {
  id: string
  hostname: string
  /** ready, down, unknown, disconnected. */
  state: string
  /** active, pause, drain. */
  availability: string
  role: 'manager' | 'worker'
  /** The address other nodes (and we) reach it at. */
  address?: string
  labels: Record<string, string>
}

export interface SwarmInfo {
  engineVersion: string
  apiVersion: string
  /** The node the manager talks to, and whether it is a swarm manager. */
  nodeId: string
  clusterId: string
}

/** What the swarm driver's event stream says: something changed (look again), or it was lost and is back. */
export type SwarmStreamItem =
  | { type: 'change'; kind: 'service' | 'node' | 'container'; action: string; id: string }
  | { type: 'disconnected'; reason: string }
  | { type: 'resync'; reason: string }

export interface ServiceRuntime {
  /** Pings the engine, pins an API version, and checks that it is a swarm manager (SwarmUnavailableError if not). */
  connect(): Promise<SwarmInfo>
  /** Services named forgehook-*, ours or not (adoption, name conflicts). */
  listServices(): Promise<ObservedService[]>
  inspectService(idOrName: string): Promise<ObservedService | undefined>
  /**
   * NameConflictError when the name is taken. Returns the new service as it was sent, with
   * its id: its version is 0 (not read yet), so an update made with it is refused as
   * ServiceVersionConflictError and the caller reads the service again.
   */
  createService(wanted: WantedService): Promise<ObservedService>
  /** ServiceVersionConflictError when `version` is no longer the service's (someone updated it meanwhile). */
  updateService(id: string, version: number, wanted: WantedService): Promise<void>
  /** Removing a missing service is a no-op. */
  removeService(id: string): Promise<void>
  /** The tasks of services carrying the managed label of this installation, in one call. */
  listTasks(): Promise<ObservedTask[]>
  listNodes(): Promise<ObservedNode[]>
  /** Creates the attachable overlay network when there is none of that name; returns whether it had to. */
  ensureOverlayNetwork(name: string, labels: Record<string, string>): Promise<boolean>
  /** The last `tail` lines of every task of the service, through the manager; ContainerNotFoundError when there is no such service. */
  logs(idOrName: string, options: { tail: number }): Promise<string>
  /** The tail, then what the tasks write, until `signal` aborts; the tasks' lines interleaved as the manager gathers them. */
  followLogs(idOrName: string, options: { tail: number; signal: AbortSignal }): AsyncIterable<string>
  /** Service, node and container events until `signal` aborts; reconnects like the container runtime's stream. */
  events(signal: AbortSignal): AsyncIterable<SwarmStreamItem>
}

/** The engine is reachable but is not a manager of a swarm. */
export class SwarmUnavailableError extends ExpectedError {
  override name = 'SwarmUnavailableError'
}

/** The service changed since it was read: read again and decide again. */
export class ServiceVersionConflictError extends ExpectedError {
  override name = 'ServiceVersionConflictError'
}

/** States a task passes through before it runs. */
export const STARTING_TASK_STATES: ReadonlySet<TaskState> = new Set(['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting'])
/** States a task ends in. */
export const ENDED_TASK_STATES: ReadonlySet<TaskState> = new Set(['complete', 'shutdown', 'failed', 'rejected', 'remove', 'orphaned'])
