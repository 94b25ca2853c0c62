// --wait: poll each plugin (GET every ~500 ms: simple, and nothing is lost when an event is)
// until it converges, fails or the time is up, showing one line of progress per plugin.
import { setTimeout as delay } from 'node:timers/promises'
import { InterruptedError } from './cli-errors.js'
import type { CliContext } from './context.js'
import { ansi, formatTable } from './output.js'
import { convergenceOf, type PluginObject } from './plugin-object.js'
import type { TextOutput } from './text-output.js'

export interface WaitOptions {
  timeoutMs: number
  /** Between two GETs of a plugin. Default 500 ms. */
  pollIntervalMs?: number
}

export interface PluginOutcome {
  name: string
  state: 'converged' | 'error' | 'pending' | 'gone'
  reason: string
}

const DEFAULT_POLL_MS = 500

/** Waits until every plugin converged or failed, or the timeout; returns each one's last state. */
export async function waitForConvergence(context: CliContext, pluginNames: string[], options: WaitOptions): Promise<PluginOutcome[]> {
  const api = context.api()
  const deadline = context.now() + options.timeoutMs
  const outcomes = new Map<string, PluginOutcome>(pluginNames.map((name) => [name, { name, state: 'pending', reason: 'not read yet' }]))
  const progressRows = new Map<string, string[]>(pluginNames.map((name) => [name, [`plugin/${name}`]]))
  const progress = new ProgressLines(context.stdout)
  for (;;) {
    for (const pluginName of pluginNames) {
      // A plugin that converged or failed is settled: its last line stays as it is.
      if (outcomes.get(pluginName)!.state !== 'pending') continue
      const plugin = await api.findPlugin(pluginName)
      const outcome = outcomeOf(pluginName, plugin)
      outcomes.set(pluginName, outcome)
      progressRows.set(pluginName, progressRow(pluginName, plugin, outcome))
    }
    progress.update(pluginNames.map((pluginName) => progressRows.get(pluginName)!))
    const remainingMs = deadline - context.now()
    if ([...outcomes.values()].every((outcome) => outcome.state !== 'pending') || remainingMs <= 0) break
    await pause(Math.min(options.pollIntervalMs ?? DEFAULT_POLL_MS, remainingMs), context.interrupt)
  }
  return [...outcomes.values()]
}

/** Polls until the plugin is gone (404), or the timeout; returns whether it is gone. */
export async function waitUntilGone(context: CliContext, pluginName: string, options: WaitOptions): Promise<boolean> {
  const api = context.api()
  const deadline = context.now() + options.timeoutMs
  for (;;) {
    if ((await api.findPlugin(pluginName)) === undefined) return true
    const remainingMs = deadline - context.now()
    if (remainingMs <= 0) return false
    await pause(Math.min(options.pollIntervalMs ?? DEFAULT_POLL_MS, remainingMs), context.interrupt)
  }
}

function outcomeOf(name: string, plugin: PluginObject | undefined): PluginOutcome {
  if (!plugin) return { name, state: 'gone', reason: 'it was deleted while waiting' }
  const convergence = convergenceOf(plugin)
  if (convergence.state === 'converged') return { name, state: 'converged', reason: `phase ${plugin.status.phase}` }
  return { name, state: convergence.state, reason: convergence.reason }
}

function progressRow(name: string, plugin: PluginObject | undefined, outcome: PluginOutcome): string[] {
  const phase = plugin?.status.phase ?? '-'
  const health = plugin?.status.health ?? '-'
  const verdict: Record<PluginOutcome['state'], string> = {
    converged: 'converged',
    error: `error: ${outcome.reason}`,
    pending: `waiting: ${outcome.reason}`,
    gone: 'deleted',
  }
  return [`plugin/${name}`, phase, health, verdict[outcome.state]]
}

/** Sleeps, unless Ctrl-C comes first. */
export async function pause(ms: number, interrupt: AbortSignal): Promise<void> {
  try {
    await delay(ms, undefined, { signal: interrupt })
  } catch (error) {
    if (interrupt.aborted) throw new InterruptedError()
    throw error
  }
}

/**
 * One aligned line per item. On a terminal the lines are redrawn in place (cursor up, clear
 * line); otherwise (a log, a pipe) a line is printed only when its item changed, so the
 * output reads as a history of state changes.
 */
export class ProgressLines {
  private shownRows: string[][] = []

  constructor(private readonly output: TextOutput) {}

  update(rows: string[][]): void {
    const lines = formatTable(rows)
    if (this.output.isTTY) {
      this.output.write(ansi.cursorUp(this.shownRows.length) + lines.map((line) => ansi.clearLine + this.fitted(line) + '\n').join(''))
    } else {
      // Compared by cells, not by text: a wider cell elsewhere re-pads every line without changing it.
      const changed = lines.filter((_line, index) => rows[index]!.join('\t') !== this.shownRows[index]?.join('\t'))
      if (changed.length > 0) this.output.write(changed.join('\n') + '\n')
    }
    this.shownRows = rows
  }

  // A line wider than the terminal wraps, and moving up by the line count would then miss.
  private fitted(line: string): string {
    const columns = this.output.columns
    // An unknown width (0, as under `script`) truncates nothing.
    return columns !== undefined && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line
  }
}
