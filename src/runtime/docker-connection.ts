// How the driver reaches the engine (DOCKER_HOST-style address) and which API version it
// speaks there. Pure functions: docker-runtime.ts does the I/O.

import { RuntimeUnavailableError } from './container-runtime.js'

/** The oldest API we speak (Docker 20.10). */
export const MIN_API_VERSION = '1.41'
/** The newest API we have checked our requests against (Docker 27). */
export const MAX_API_VERSION = '1.47'

export type DockerEndpoint = { kind: 'socket'; socketPath: string } | { kind: 'tcp'; host: string; port: number }

/**
 * Parses `unix:///var/run/docker.sock` or `tcp://127.0.0.1:2375`. TLS (tcp on 2376 with
 * certificates) and ssh:// are not supported: the manager talks to a local engine.
 */
export function parseDockerHost(dockerHost: string): DockerEndpoint {
  if (dockerHost.startsWith('unix://')) {
    const socketPath = dockerHost.slice('unix://'.length)
    if (!socketPath.startsWith('/')) throw new Error(`Docker host ${dockerHost}: the socket path must be absolute`)
    return { kind: 'socket', socketPath }
  }
  if (!dockerHost.startsWith('tcp://')) {
    throw new Error(`Docker host ${dockerHost}: expected unix:///path/to/docker.sock or tcp://host:port`)
  }
  const url = new URL(dockerHost)
  const port = Number(url.port || '2375')
  if (!url.hostname || !Number.isInteger(port)) throw new Error(`Docker host ${dockerHost}: expected tcp://host:port`)
  // URL keeps the brackets of an IPv6 literal; http.request wants the bare address.
  return { kind: 'tcp', host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port }
}

export function describeEndpoint(endpoint: DockerEndpoint): string {
  return endpoint.kind === 'socket' ? `unix://${endpoint.socketPath}` : `tcp://${endpoint.host}:${endpoint.port}`
}

/** What `/version` says about the API; MinAPIVersion is missing on very old engines. */
export interface EngineVersion {
  Version: string
  ApiVersion: string
  MinAPIVersion?: string
}

/**
 * The API version to pin: the engine's own version, capped at the newest we know.
 * dockerode does no negotiation and an engine answers 400 to a version newer than its
 * own, so the pin must never exceed what the engine speaks; recent engines also refuse
 * versions below their MinAPIVersion.
 */
export function pinApiVersion(engine: EngineVersion): string {
  if (!isApiVersion(engine.ApiVersion)) {
    throw new RuntimeUnavailableError(`Docker engine ${engine.Version} reports an unreadable API version "${engine.ApiVersion}"`)
  }
  if (compareApiVersions(engine.ApiVersion, MIN_API_VERSION) < 0) {
    throw new RuntimeUnavailableError(
      `Docker engine ${engine.Version} speaks API ${engine.ApiVersion}; FlowForge needs ${MIN_API_VERSION} or newer`,
    )
  }
  const pinned = compareApiVersions(engine.ApiVersion, MAX_API_VERSION) > 0 ? MAX_API_VERSION : engine.ApiVersion
  if (engine.MinAPIVersion && isApiVersion(engine.MinAPIVersion) && compareApiVersions(engine.MinAPIVersion, pinned) > 0) {
    throw new RuntimeUnavailableError(
      `Docker engine ${engine.Version} accepts API ${engine.MinAPIVersion} or newer; FlowForge speaks up to ${MAX_API_VERSION}`,
    )
  }
  return pinned
}

function isApiVersion(value: string): boolean {
  return /^\d+\.\d+$/.test(value)
}

/** Numeric comparison: 1.9 < 1.41 (as strings it would not be). */
export function compareApiVersions(left: string, right: string): number {
  const [leftMajor = 0, leftMinor = 0] = left.split('.').map(Number)
  const [rightMajor = 0, rightMinor = 0] = right.split('.').map(Number)
  return leftMajor === rightMajor ? leftMinor - rightMinor : leftMajor - rightMajor
}
