// A real registry for tests: Debian's docker-registry (distribution 2.x) as a plain process
// on a free loopback port, with its storage in a temporary folder, optionally behind
// htpasswd authentication. The engine treats 127.0.0.0/8 registries as insecure by default,
// so plain HTTP works without any daemon.json change. Outside CI a missing binary skips the
// registry suites; under CI=true it is a failing test, never a skip.
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { execFileAsync } from './docker.js'

export const REGISTRY_BINARY = 'docker-registry'

export async function probeRegistryTools(): Promise<{ available: boolean; reason: string }> {
  for (const tool of [REGISTRY_BINARY, 'htpasswd']) {
    try {
      await execFileAsync('sh', ['-c', `command -v ${tool}`])
    } catch {
      return { available: false, reason: `${tool} is not installed (Debian: apt-get install docker-registry apache2-utils)` }
    }
  }
  return { available: true, reason: 'docker-registry and htpasswd found' }
}

/** Declares the CI check; call at the top level of a registry test file. */
export function requireRegistryInCi(tools: { available: boolean; reason: string }): void {
  test.runIf(process.env.CI === 'true')('docker-registry and htpasswd are installed in CI', () => {
    expect(tools.available, tools.reason).toBe(true)
  })
}

export interface TestRegistry {
  /** `127.0.0.1:PORT`: the host part of its image references. */
  host: string
  /** The manifest requests it answered so far (`HEAD /v2/<repo>/manifests/<tag> 200`), from its access log. */
  manifestRequests(): string[]
  stop(): Promise<void>
}

export interface RegistryOptions {
  /** htpasswd authentication with this one user. Default none: anyone may pull and push. */
  user?: { username: string; password: string }
}

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'flowforge-registry-'))
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const lines = ['version: 0.1', 'log:', '  level: error', 'storage:', `  filesystem: { rootdirectory: ${join(dir, 'data')} }`, '  delete: { enabled: true }', 'http:', `  addr: ${host}`]
  if (options.user) {
    const { stdout } = await execFileAsync('htpasswd', ['-Bbn', options.user.username, options.user.password])
    writeFileSync(join(dir, 'htpasswd'), stdout)
    lines.push('auth:', `  htpasswd: { realm: flowforge-test, path: ${join(dir, 'htpasswd')} }`)
  }
  writeFileSync(join(dir, 'config.yml'), `${lines.join('\n')}\n`)
  const logPath = join(dir, 'registry.log')
  const log = createWriteStream(logPath)
  const child: ChildProcess = spawn(REGISTRY_BINARY, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout?.pipe(log)
  child.stderr?.pipe(log)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await Promise.race([exited, delay(5_000).then(() => child.kill('SIGKILL'))])
    log.end()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitForRegistry(host, child)
  } catch (error) {
    const output = readLog(logPath)
    await stop()
    throw new Error(`${(error as Error).message}; its log: ${output.slice(-2_000)}`)
  }
  return {
    host,
    manifestRequests: () =>
      readLog(logPath)
        .split('\n')
        .map((line) => /"(HEAD|GET) (\/v2\/[^ ]+\/manifests\/[^ ]+) HTTP\/[\d.]+" (\d{3})/.exec(line))
        .filter((match): match is RegExpExecArray => match !== null)
        .map((match) => `${match[1]} ${match[2]} ${match[3]}`),
    stop,
  }
}

/** `docker push` as the CLI with its own config folder (a `docker login` there stays out of the host's). Returns the pushed digest. */
export async function pushImage(source: string, target: string, dockerConfigDir: string): Promise<string> {
  await execFileAsync('docker', ['tag', source, target])
  const { stdout } = await execFileAsync('docker', ['--config', dockerConfigDir, 'push', target])
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1]
  if (!digest) throw new Error(`docker push ${target} printed no digest: ${stdout}`)
  return digest
}

/** `docker login` into a config folder of its own: it writes config.json with `auths` there. */
export async function dockerLogin(dockerConfigDir: string, host: string, user: { username: string; password: string }): Promise<void> {
  // The password goes in on stdin, as $0 of the shell: never on a command line.
  await execFileAsync('sh', ['-c', 'printf %s "$0" | docker --config "$1" login -u "$2" --password-stdin "$3"', user.password, dockerConfigDir, user.username, host])
}

/** Removes local tags (`docker rmi` of a reference: the image stays while another tag or a container holds it). */
export async function removeTags(references: string[]): Promise<void> {
  for (const reference of references) {
    await execFileAsync('docker', ['rmi', reference]).catch((error: { stderr?: string }) => {
      if (!/No such image/i.test(error.stderr ?? '')) throw error
    })
  }
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return ''
  }
}

async function waitForRegistry(host: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${REGISTRY_BINARY} exited with code ${child.exitCode}`)
    try {
      // 200 without authentication, 401 with: either way it serves.
      const response = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1_000) })
      if (response.status === 200 || response.status === 401) return
    } catch {
      // Not listening yet.
    }
    await delay(100)
  }
  throw new Error(`${REGISTRY_BINARY} did not answer on ${host} within 10 s`)
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
