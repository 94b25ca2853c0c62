// The real Docker engine for tests: reachable or not, decided once per file. Outside CI a
// missing engine skips the Docker suites; under CI=true it is a failing test, never a skip.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { expect, test } from 'vitest'
import { silentLogger } from '../../src/logger.js'
import { DockerRuntime } from '../../src/runtime/docker-runtime.js'

export const DOCKER_HOST = 'unix:///var/run/docker.sock'
export const execFileAsync = promisify(execFile)

export async function probeEngine(): Promise<{ reachable: boolean; reason: string }> {
  try {
    const info = await new DockerRuntime({ dockerHost: DOCKER_HOST, requestTimeoutMs: 3_000, logger: silentLogger() }).connect()
    return { reachable: true, reason: `engine ${info.engineVersion}` }
  } catch (error) {
    return { reachable: false, reason: error instanceof Error ? error.message : String(error) }
  }
}

/** Declares the CI check; call at the top level of a Docker test file. */
export function requireEngineInCi(engine: { reachable: boolean; reason: string }): void {
  test.runIf(process.env.CI === 'true')('the Docker engine is reachable in CI', () => {
    expect(engine.reachable, `Docker is required in CI (${DOCKER_HOST}): ${engine.reason}`).toBe(true)
  })
}

/** Builds the test images that are missing (idempotent, no registry needed). */
export async function buildTestImages(): Promise<void> {
  await execFileAsync('bash', ['test/images/build.sh'])
}

export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('docker', args)
  return stdout.trim()
}

/** Removes every container whose name starts with `prefix`. */
export async function removeContainers(prefix: string): Promise<void> {
  const ids = (await docker('ps', '-aq', '--filter', `name=^/${prefix}`)).split('\n').filter(Boolean)
  if (ids.length > 0) await docker('rm', '-f', ...ids)
}
