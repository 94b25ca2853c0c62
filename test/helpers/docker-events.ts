// `docker events` as a test witness: what the engine itself saw happen to containers
// (create, start, die, destroy ...), independent of what the daemon logs or writes.
import { spawn } from 'node:child_process'
import { eventually } from './databases.js'

export interface DockerEvent {
  /** create, start, kill, die, stop, destroy, ... */
  action: string
  containerId: string
  /** Without the leading slash. */
  name: string
  /** Engine time, in milliseconds. */
  timeMs: number
}

export interface DockerEventWatch {
  /** Every event seen so far, in order. */
  events(): DockerEvent[]
  /** Resolves with the first event matching `match` (one already seen counts). */
  waitFor(match: (event: DockerEvent) => boolean, timeoutMs: number, what: string): Promise<DockerEvent>
  stop(): Promise<void>
}

/**
 * Watches container events matching `filters` (as for `docker events --filter`), from the
 * moment of the call on: `--since` makes the engine replay what happened while the
 * subscription was being set up, so no event is lost to that race.
 */
export function watchDockerEvents(filters: string[]): DockerEventWatch {
  const sinceSeconds = (Date.now() / 1000).toFixed(3)
  const args = ['events', '--since', sinceSeconds, '--format', '{{json .}}', '--filter', 'type=container', ...filters.flatMap((filter) => ['--filter', filter])]
  const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const seen: DockerEvent[] = []
  let pending = ''
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      if (!line.trim()) continue
      const raw = JSON.parse(line) as { Action: string; Actor: { ID: string; Attributes: Record<string, string> }; timeNano: number }
      seen.push({ action: raw.Action, containerId: raw.Actor.ID, name: raw.Actor.Attributes.name ?? '', timeMs: raw.timeNano / 1e6 })
    }
  })
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  return {
    events: () => [...seen],
    waitFor: (match, timeoutMs, what) => eventually(() => seen.find(match), timeoutMs, what),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}
