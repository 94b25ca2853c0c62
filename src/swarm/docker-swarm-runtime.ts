// The ServiceRuntime on a Docker Swarm manager's engine, through dockerode. As in
// docker-runtime.ts, every engine error is translated here: "not found" and "conflict" by
// status code.
import Docker from 'dockerode'
import type { Readable } from 'node:stream'
import { LABELS, NameConflictError, RuntimeNotConnectedError } from '../runtime/container-runtime.js'
import { pinApiVersion } from '../runtime/docker-connection.js'
import { engineMessageOf, statusCodeOf } from '../runtime/docker-errors.js'
import { EngineDriver } from '../runtime/engine-driver.js'
import { LineSplitter } from '../runtime/docker-streams.js'
import type { Logger } from '../logger.js'
import { Backoff, sleep } from '../util/backoff.js'
import {
  ServiceVersionConflictError,
  SwarmUnavailableError,
  type ObservedNode,
  type ObservedService,
  type ObservedTask,
  type ServicePort,
  type ServiceRuntime,
  type SwarmInfo,
  type SwarmStreamItem,
  type TaskState,
  type WantedService,
} from './service-runtime.js'
import { SERVICE_NAME_PREFIX } from './service-spec.js'

export interface DockerSwarmRuntimeOptions {
  /** A swarm manager's engine: `unix:///…` or `tcp://host:port`. */
  dockerHost: string
  requestTimeoutMs?: number
  logger: Logger
}

interface EngineService {
  ID: string
  Version?: { Index?: number }
  CreatedAt?: string
  UpdatedAt?: string
  Spec?: EngineServiceSpec
  PreviousSpec?: EngineServiceSpec
  Endpoint?: { Ports?: EnginePort[] }
  UpdateStatus?: { State?: string; Message?: string; StartedAt?: string; CompletedAt?: string }
}

interface EngineServiceSpec {
  Name?: string
  Labels?: Record<string, string>
  Mode?: { Replicated?: { Replicas?: number } }
  TaskTemplate?: { ContainerSpec?: { Image?: string; Env?: string[] }; ForceUpdate?: number }
  EndpointSpec?: { Ports?: EnginePort[] }
}

interface EnginePort {
  TargetPort?: number
  PublishedPort?: number
  Protocol?: string
  PublishMode?: string
}

interface EngineTask {
  ID: string
  ServiceID: string
  Slot?: number
  NodeID?: string
  CreatedAt?: string
  UpdatedAt?: string
  DesiredState?: string
  Spec?: { ContainerSpec?: { Image?: string } }
  Status?: {
    State?: string
    Message?: string
    Err?: string
    Timestamp?: string
    ContainerStatus?: { ContainerID?: string; ExitCode?: number }
    PortStatus?: { Ports?: EnginePort[] }
  }
}

interface EngineNode {
  ID: string
  Description?: { Hostname?: string }
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> }
  Status?: { State?: string; Addr?: string }
  ManagerStatus?: { Addr?: string }
}

export class DockerSwarmRuntime extends EngineDriver implements ServiceRuntime {
  private client: Docker | undefined
  private streaming: Docker | undefined

  constructor(private readonly options: DockerSwarmRuntimeOptions) {
    super(options.dockerHost, options.requestTimeoutMs)
  }

  async connect(): Promise<SwarmInfo> {
    type EngineInfo = { Swarm?: { NodeID?: string; LocalNodeState?: string; ControlAvailable?: boolean; Cluster?: { ID?: string } } }
    const { engine, extra: info } = await this.handshake(async (client) => (await client.info()) as EngineInfo)
    const swarm = info.Swarm ?? {}
    if (swarm.LocalNodeState !== 'active') {
      throw new SwarmUnavailableError(`RUNTIME=swarm, but the engine at ${this.where()} is not part of a swarm (state ${swarm.LocalNodeState ?? 'unknown'}): run docker swarm init there, or point DOCKER_HOST at a manager`)
    }
    if (swarm.ControlAvailable !== true) {
      throw new SwarmUnavailableError(`RUNTIME=swarm, but the engine at ${this.where()} is a swarm worker: point DOCKER_HOST at a manager node (docker node ls shows them)`)
    }
    const apiVersion = pinApiVersion(engine)
    this.client = this.makeClient(apiVersion, this.requestTimeoutMs)
    this.streaming = this.makeClient(apiVersion, undefined)
    this.options.logger.info({ engineVersion: engine.Version, apiVersion, nodeId: swarm.NodeID }, 'connected to the swarm manager')
    return { engineVersion: engine.Version, apiVersion, nodeId: swarm.NodeID ?? '', clusterId: swarm.Cluster?.ID ?? '' }
  }

  async listServices(): Promise<ObservedService[]> {
    const services = (await this.call('list services', () => this.connected().listServices({ filters: { name: [SERVICE_NAME_PREFIX] } }))) as EngineService[]
    // The name filter matches a prefix anywhere in the name's start; keep exact prefixes only.
    return services.map(observedService).filter((service) => service.name.startsWith(SERVICE_NAME_PREFIX))
  }

  async inspectService(idOrName: string): Promise<ObservedService | undefined> {
    try {
      return observedService((await this.connected().getService(idOrName).inspect()) as EngineService)
    } catch (error) {
      if (statusCodeOf(error) === 404) return undefined
      throw this.driverError(`inspect service ${idOrName}`, error)
    }
  }

  async createService(wanted: WantedService): Promise<ObservedService> {
    try {
      // docker-modem sends `_body` as the body, and the auth as X-Registry-Auth (--with-registry-auth).
      const service = (await this.connected().createService(authOf(wanted) as never, { _body: wanted.spec } as never)) as unknown as { id: string }
      // What was sent is what the service is; no inspect (an engine busy starting tasks answers one in 0.1-0.9 s).
      return observedService({ ID: service.id, Spec: wanted.spec as EngineServiceSpec })
    } catch (error) {
      if (statusCodeOf(error) === 409) throw new NameConflictError(wanted.name)
      throw this.driverError(`create service ${wanted.name}`, error)
    }
  }

  async updateService(id: string, version: number, wanted: WantedService): Promise<void> {
    try {
      // registryAuthFrom=spec would reuse the stored credentials; ours are sent again, as `docker service update --with-registry-auth` does.
      await this.connected().getService(id).update(authOf(wanted) as never, { _query: { version }, _body: wanted.spec } as never)
    } catch (error) {
      const status = statusCodeOf(error)
      const message = engineMessageOf(error)
      if (status === 404) throw new ServiceVersionConflictError(`service ${wanted.name} is gone`, { cause: error })
      // "update out of sequence": the version we read is stale.
      if (/out of sequence/i.test(message)) throw new ServiceVersionConflictError(`service ${wanted.name} changed since it was read`, { cause: error })
      throw this.driverError(`update service ${wanted.name}`, error)
    }
  }

  async removeService(id: string): Promise<void> {
    try {
      await this.connected().getService(id).remove()
    } catch (error) {
      if (statusCodeOf(error) === 404) return
      throw this.driverError(`remove service ${id}`, error)
    }
  }

  async listTasks(): Promise<ObservedTask[]> {
    // Tasks do not carry their service's labels: every task, and the caller keeps those of its services.
    const tasks = (await this.call('list tasks', () => this.connected().listTasks())) as EngineTask[]
    return tasks.map(observedTask)
  }

  async listNodes(): Promise<ObservedNode[]> {
    const nodes = (await this.call('list nodes', () => this.connected().listNodes())) as EngineNode[]
    return nodes.map((node) => ({
      id: node.ID,
      hostname: node.Description?.Hostname ?? node.ID.slice(0, 12),
      state: node.Status?.State ?? 'unknown',
      availability: node.Spec?.Availability ?? 'active',
      role: node.Spec?.Role === 'manager' ? 'manager' : 'worker',
      ...(nodeAddress(node) ? { address: nodeAddress(node)! } : {}),
      labels: { ...(node.Spec?.Labels ?? {}) },
    }))
  }

  async ensureOverlayNetwork(name: string, labels: Record<string, string>): Promise<boolean> {
    try {
      await this.connected().getNetwork(name).inspect()
      return false
    } catch (error) {
      if (statusCodeOf(error) !== 404) throw this.driverError(`inspect network ${name}`, error)
    }
    try {
      await this.connected().createNetwork({ Name: name, Driver: 'overlay', Attachable: true, CheckDuplicate: true, Labels: labels })
      return true
    } catch (error) {
      if (statusCodeOf(error) === 409) return false
      throw this.driverError(`create overlay network ${name}`, error)
    }
  }

  async *events(signal: AbortSignal): AsyncIterable<SwarmStreamItem> {
    const backoff = new Backoff({ initialMs: 250, maxMs: 5_000, jitter: 0.2 })
    let lost: string | undefined
    while (!signal.aborted) {
      let body: Readable
      try {
        const filters = { type: ['service', 'node', 'container'] }
        body = (await this.streamingClient().getEvents({ filters, abortSignal: signal } as never)) as unknown as Readable
      } catch (error) {
        if (signal.aborted) return
        if (lost === undefined) {
          lost = `the swarm event stream could not be opened: ${engineMessageOf(error)}`
          yield { type: 'disconnected', reason: lost }
        }
        await sleep(backoff.next(), signal)
        continue
      }
      if (lost !== undefined) {
        yield { type: 'resync', reason: `the swarm event stream is back after: ${lost}` }
        lost = undefined
      }
      backoff.reset()
      const lines = new LineSplitter()
      try {
        for await (const chunk of body) {
          for (const line of lines.push(chunk as Buffer)) {
            const item = changeOf(line)
            if (item) yield item
          }
        }
        if (!signal.aborted) lost = 'the swarm event stream ended'
      } catch (error) {
        if (signal.aborted) return
        lost = `the swarm event stream broke: ${engineMessageOf(error)}`
      } finally {
        body.destroy()
      }
      if (lost !== undefined && !signal.aborted) {
        yield { type: 'disconnected', reason: lost }
        await sleep(backoff.next(), signal)
      }
    }
  }

  logs(idOrName: string, options: { tail: number }): Promise<string> {
    return this.readLogs(this.connected(), `/services/${encodeURIComponent(idOrName)}/logs`, `service ${idOrName}`, options.tail)
  }

  followLogs(idOrName: string, options: { tail: number; signal: AbortSignal }): AsyncIterable<string> {
    return this.followLogStream(this.streamingClient(), `/services/${encodeURIComponent(idOrName)}/logs`, `service ${idOrName}`, options.tail, options.signal)
  }

  private connected(): Docker {
    if (!this.client) throw new RuntimeNotConnectedError('DockerSwarmRuntime: call connect() before using the runtime')
    return this.client
  }

  private streamingClient(): Docker {
    if (!this.streaming) throw new RuntimeNotConnectedError('DockerSwarmRuntime: call connect() before using the runtime')
    return this.streaming
  }
}

/** The registry credentials for X-Registry-Auth, or none. */
function authOf(wanted: WantedService): { base64: string } | undefined {
  return wanted.registryAuth ? { base64: wanted.registryAuth } : undefined
}

function observedService(service: EngineService): ObservedService {
  const spec = service.Spec ?? {}
  const update = service.UpdateStatus
  return {
    id: service.ID,
    name: spec.Name ?? '',
    version: service.Version?.Index ?? 0,
    labels: { ...(spec.Labels ?? {}) },
    replicas: spec.Mode?.Replicated?.Replicas ?? 0,
    image: spec.TaskTemplate?.ContainerSpec?.Image ?? '',
    ...dateField('createdAt', service.CreatedAt),
    ...dateField('updatedAt', service.UpdatedAt),
    ...(update?.State
      ? {
          updateStatus: {
            state: update.State,
            ...(update.Message ? { message: update.Message } : {}),
            ...dateField('startedAt', update.StartedAt),
            ...dateField('completedAt', update.CompletedAt),
          },
        }
      : {}),
    ...(service.PreviousSpec ? { previousLabels: { ...(service.PreviousSpec.Labels ?? {}) } } : {}),
    ports: (service.Endpoint?.Ports ?? spec.EndpointSpec?.Ports ?? []).map(servicePort),
    env: envOf(spec.TaskTemplate?.ContainerSpec?.Env ?? []),
    forceUpdate: spec.TaskTemplate?.ForceUpdate ?? 0,
  }
}

function envOf(entries: string[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const entry of entries) {
    const equals = entry.indexOf('=')
    if (equals > 0) env[entry.slice(0, equals)] = entry.slice(equals + 1)
  }
  return env
}

function servicePort(port: EnginePort): ServicePort {
  return {
    targetPort: port.TargetPort ?? 0,
    publishedPort: port.PublishedPort ?? 0,
    protocol: port.Protocol === 'udp' ? 'udp' : 'tcp',
    mode: port.PublishMode === 'host' ? 'host' : 'ingress',
  }
}

function observedTask(task: EngineTask): ObservedTask {
  const status = task.Status ?? {}
  return {
    id: task.ID,
    serviceId: task.ServiceID,
    ...(task.Slot !== undefined ? { slot: task.Slot } : {}),
    ...(task.NodeID ? { nodeId: task.NodeID } : {}),
    state: (status.State ?? 'new') as TaskState,
    desiredState: (task.DesiredState ?? 'running') as TaskState,
    ...(status.Message ? { message: status.Message } : {}),
    ...(status.Err ? { error: status.Err } : {}),
    ...(status.ContainerStatus?.ContainerID ? { containerId: status.ContainerStatus.ContainerID } : {}),
    ...(status.ContainerStatus?.ExitCode !== undefined ? { exitCode: status.ContainerStatus.ExitCode } : {}),
    hostPorts: (status.PortStatus?.Ports ?? []).map((port) => port.PublishedPort ?? 0).filter((port) => port > 0),
    ...dateField('createdAt', task.CreatedAt),
    ...dateField('updatedAt', status.Timestamp ?? task.UpdatedAt),
    ...(task.Spec?.ContainerSpec?.Image ? { image: task.Spec.ContainerSpec.Image } : {}),
  }
}

function nodeAddress(node: EngineNode): string | undefined {
  const address = node.Status?.Addr
  // A manager may report 0.0.0.0 in Status.Addr; its ManagerStatus.Addr (host:port) is the real one.
  if (address && address !== '0.0.0.0') return address
  return node.ManagerStatus?.Addr?.replace(/:\d+$/, '')
}

function dateField<K extends string>(key: K, value: string | undefined): Partial<Record<K, Date>> {
  if (!value) return {}
  const date = new Date(value)
  return Number.isNaN(date.getTime()) || date.getTime() <= 0 ? {} : ({ [key]: date } as Record<K, Date>)
}

/** An event line as a "look again": ours are the forgehook-* services, the nodes, and our containers. */
function changeOf(line: string): SwarmStreamItem | undefined {
  let message: { Type?: string; Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } }
  try {
    message = JSON.parse(line) as typeof message
  } catch {
    return undefined
  }
  const attributes = message.Actor?.Attributes ?? {}
  const id = message.Actor?.ID ?? ''
  if (message.Type === 'service') {
    const name = attributes.name ?? ''
    if (name !== '' && !name.startsWith(SERVICE_NAME_PREFIX)) return undefined
    return { type: 'change', kind: 'service', action: message.Action ?? '', id }
  }
  if (message.Type === 'node') return { type: 'change', kind: 'node', action: message.Action ?? '', id }
  if (message.Type === 'container' && attributes[LABELS.managed] === 'true') return { type: 'change', kind: 'container', action: message.Action ?? '', id }
  return undefined
}
