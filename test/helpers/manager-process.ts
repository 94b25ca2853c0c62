// The daemon as a real operating-system process (`forgectl serve`), for tests that kill it,
// restart it, or run several side by side: its output is kept, its API address is read from
// its start-up line, and every process a test started is killed at the end.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { onTestFailed } from 'vitest'
import { eventually } from './databases.js'
import { forgectlCommand, root } from './forgectl.js'

export interface ManagerProcess {
  child: ChildProcess
  pid: number
  /** stdout and stderr so far (pino JSON lines). */
  output(): string
  /** The exit code, or null when killed by a signal. */
  exited: Promise<number | null>
  /** http://host:port of its API, once it has logged that it started. */
  apiUrl(): Promise<string>
  kill(signal?: NodeJS.Signals): void
}

const started = new Set<ManagerProcess>()

/** Starts `forgectl serve` with exactly `env` (plus PATH and HOME). PORT=0 picks a free port. */
export function spawnManager(env: Record<string, string>): ManagerProcess {
  const [command, args] = forgectlCommand('serve')
  const child = spawn(command, args, {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const manager: ManagerProcess = {
    child,
    pid: child.pid!,
    output: () => output,
    exited,
    apiUrl: () =>
      eventually(() => /"api":"(http:\/\/[^"]+)"/.exec(output)?.[1], 30_000, `the API address in the output of manager ${child.pid}`),
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
  }
  started.add(manager)
  void exited.then(() => started.delete(manager))
  return manager
}

/** Waits until `text` has appeared `occurrences` times in the output. */
export async function waitForLog(manager: ManagerProcess, text: string, occurrences = 1, timeoutMs = 30_000): Promise<void> {
  await eventually(() => (manager.output().split(text).length - 1 >= occurrences ? true : undefined), timeoutMs, `log line "${text}" ×${occurrences}`)
}

/** SIGKILLs every manager still running (afterAll). */
export async function killAllManagers(): Promise<void> {
  const running = [...started]
  for (const manager of running) manager.kill('SIGKILL')
  await Promise.all(running.map((manager) => manager.exited))
}

/**
 * Call inside a test: if the test fails, the manager's output is written to
 * test-results/manager-logs/<file>-<pid>.log (the assertion alone rarely says why).
 */
export function keepOutputOnFailure(manager: ManagerProcess, label: string): void {
  onTestFailed(async () => {
    const dir = path.join(root, 'test-results', 'manager-logs')
    await mkdir(dir, { recursive: true })
    await writeFile(path.join(dir, `${label}-${manager.pid}.log`), manager.output())
  })
}
