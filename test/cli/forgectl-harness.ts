// forgectl as an operator runs it against a daemon: the real daemon in this process (in-memory
// runtime, embedded database), forgectl as a child process with a clean environment.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { expect } from 'vitest'
import { stringify as toYaml } from 'yaml'
import { loadConfig } from '../../src/config.js'
import { silentLogger } from '../../src/logger.js'
import { startDaemon, type Daemon } from '../../src/main.js'
import { FakeRuntime } from '../../src/runtime/fake-runtime.js'
import { eventually } from '../helpers/databases.js'
import { ALWAYS_READY } from '../helpers/controller-harness.js'
import { forgectlCommand, root } from '../helpers/forgectl.js'

export const IMAGE = 'flowforge/test:1'
export const OTHER_IMAGE = 'flowforge/test:2'

export interface TestDaemon {
  daemon: Daemon
  runtime: FakeRuntime
  url: string
  /** The daemon's watched spec folder (empty: these tests declare through the API). */
  specsDir: string
  /** A scratch folder for the spec files forgectl reads. */
  workDir: string
  stop(): Promise<void>
}

/** Starts the daemon on a free port; `env` adds settings (FORGE_API_TOKEN, ...). */
export async function startTestDaemon(env: Record<string, string> = {}): Promise<TestDaemon> {
  const specsDir = await mkdtemp(path.join(tmpdir(), 'ff-cli-specs-'))
  const workDir = await mkdtemp(path.join(tmpdir(), 'ff-cli-work-'))
  const runtime = new FakeRuntime({ images: [IMAGE, OTHER_IMAGE] })
  // Short retries: a plugin that failed while Docker was away recovers within the test.
  const config = loadConfig({ PORT: '0', SPECS_DIR: specsDir, MANAGER_INSTANCE: 'cli', RECONCILE_RETRY_BASE: '100ms', RECONCILE_RETRY_MAX: '1s', ...env })
  const daemon = await startDaemon({ ...config, database: { kind: 'embedded', dataDir: 'memory', sqlPort: 0 } }, silentLogger(), { runtime, readiness: ALWAYS_READY })
  await daemon.ready
  return {
    daemon,
    runtime,
    url: `http://127.0.0.1:${daemon.apiAddress.port}`,
    specsDir,
    workDir,
    stop: async () => {
      await daemon.stop()
      await rm(specsDir, { recursive: true, force: true })
      await rm(workDir, { recursive: true, force: true })
    },
  }
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Only PATH, HOME and what the test gives: never the test process's own environment. */
function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...env }
}

export function runForgectl(args: string[], env: Record<string, string>): Promise<RunResult> {
  const [command, commandArgs] = forgectlCommand(...args)
  return new Promise((resolve) => {
    execFile(command, commandArgs, { cwd: root, env: cleanEnv(env), timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0
      resolve({ code, stdout, stderr })
    })
  })
}

/** A forgectl that keeps running (--watch, -f): read its output as it comes, then stop it. */
export class RunningForgectl {
  stdout = ''
  stderr = ''
  private readonly child: ChildProcess
  private readonly exited: Promise<number | null>

  constructor(args: string[], env: Record<string, string>) {
    const [command, commandArgs] = forgectlCommand(...args)
    this.child = spawn(command, commandArgs, { cwd: root, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()))
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()))
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)))
  }

  /** Waits until stdout matches `pattern`; fails with what was printed. */
  async waitForOutput(pattern: RegExp, what: string, timeoutMs = 20_000): Promise<void> {
    await eventually(async () => pattern.test(this.stdout) || undefined, timeoutMs, `${what}; stdout so far:\n${this.stdout}\nstderr:\n${this.stderr}`)
  }

  /** Ctrl-C's twin, SIGTERM by default; resolves with the exit code and the output. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<RunResult> {
    if (this.child.exitCode === null) this.child.kill(signal)
    const code = await this.exited
    return { code, stdout: this.stdout, stderr: this.stderr }
  }

  /** Waits for the command to end by itself. */
  async waitForExit(timeoutMs = 20_000): Promise<RunResult> {
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref())
    const code = await Promise.race([this.exited, timeout])
    if (code === 'timeout') throw new Error(`forgectl did not exit within ${timeoutMs} ms; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`)
    return { code, stdout: this.stdout, stderr: this.stderr }
  }

  /** Last resort in afterEach: the child must not outlive the test. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}

export function expectNoStackTrace(result: RunResult): void {
  expect(result.stdout + result.stderr).not.toMatch(/\n\s+at /)
}

export interface PluginSpecOptions {
  image?: string
  state?: 'running' | 'stopped'
  labels?: Record<string, string>
  config?: Record<string, unknown>
  environment?: Record<string, string>
}

/** A spec document as YAML text. */
export function pluginYaml(name: string, options: PluginSpecOptions = {}): string {
  return toYaml({
    apiVersion: 'flowforge.io/v1',
    kind: 'Plugin',
    metadata: { name, ...(options.labels ? { labels: options.labels } : {}) },
    spec: {
      ...(options.state ? { state: options.state } : {}),
      manifest: { name: `Plugin ${name}`, version: '1.0.0', image: options.image ?? IMAGE, port: 8080 },
      ...(options.config ? { config: options.config } : {}),
      ...(options.environment ? { environment: options.environment } : {}),
    },
  })
}

export async function writeSpecFile(dir: string, fileName: string, ...documents: string[]): Promise<string> {
  const file = path.join(dir, fileName)
  await writeFile(file, documents.join('---\n'))
  return file
}

/** The API's plugin object, or undefined on 404. */
export async function fetchPlugin(url: string, name: string, token?: string): Promise<Record<string, any> | undefined> {
  const response = await fetch(`${url}/api/v1/plugins/${name}`, token ? { headers: { authorization: `Bearer ${token}` } } : {})
  if (response.status === 404) return undefined
  expect(response.status).toBe(200)
  return (await response.json()) as Record<string, any>
}

export function waitForPhase(url: string, name: string, phase: string, timeoutMs = 10_000): Promise<Record<string, any>> {
  return eventually(
    async () => {
      const plugin = await fetchPlugin(url, name)
      return plugin?.status.phase === phase && plugin.status.observedGeneration === plugin.metadata.generation ? plugin : undefined
    },
    timeoutMs,
    `${name} in phase ${phase}`,
  )
}

/** Declares a plugin through the API (not through forgectl) and waits until it runs. */
export async function declarePlugin(url: string, name: string, options: PluginSpecOptions = {}): Promise<Record<string, any>> {
  const document = {
    apiVersion: 'flowforge.io/v1',
    kind: 'Plugin',
    metadata: { name, ...(options.labels ? { labels: options.labels } : {}) },
    spec: {
      state: options.state ?? 'running',
      manifest: { name: `Plugin ${name}`, version: '1.0.0', image: options.image ?? IMAGE, port: 8080 },
      ...(options.config ? { config: options.config } : {}),
      ...(options.environment ? { environment: options.environment } : {}),
    },
  }
  const response = await fetch(`${url}/api/v1/plugins/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(document) })
  expect(response.status).toBe(201)
  return waitForPhase(url, name, options.state ?? 'running')
}
