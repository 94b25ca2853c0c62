// Whether a rollout's new container made it: running, and healthy by whatever health check
// it has, within spec.update.healthyTimeoutSeconds. Pure; plan-rollout.ts acts on the verdict.
import type { Plugin } from '../db/plugin-store.js'
import type { ObservedContainer } from '../runtime/container-runtime.js'
import { formatDuration } from '../util/format-duration.js'
import { DEFAULT_ROLLOUT_SETTINGS, type PlanInput } from './plan-types.js'

export const DEFAULT_HEALTHY_TIMEOUT_SECONDS = 60
/** How often a rollout that waits looks again. */
export const VERIFY_POLL_MS = 1_000

export type Verdict = { kind: 'good' } | { kind: 'wait'; afterMs: number } | { kind: 'bad'; reason: string; exitCode?: number; oomKilled?: boolean; healthOutput?: string }

/** Whether the new container made it: running, and healthy by whatever health check it has, within the timeout. */
export function judge(input: PlanInput, candidate: ObservedContainer, since: number): Verdict {
  const timeoutMs = (input.plugin.updatePolicy.healthyTimeoutSeconds ?? DEFAULT_HEALTHY_TIMEOUT_SECONDS) * 1000
  const elapsed = input.now - since
  const late = elapsed >= timeoutMs
  const wait: Verdict = { kind: 'wait', afterMs: Math.max(1, Math.min(VERIFY_POLL_MS, timeoutMs - elapsed)) }
  if (candidate.state === 'exited' || candidate.state === 'dead') {
    return { kind: 'bad', reason: `the new container ${exitOf(candidate)}`, exitCode: candidate.exitCode ?? -1, oomKilled: candidate.oomKilled ?? false }
  }
  if (candidate.state !== 'running') return late ? { kind: 'bad', reason: `the new container is ${candidate.state}, not running, after ${formatDuration(timeoutMs)}` } : wait
  if (candidate.health !== undefined) {
    // The image's own HEALTHCHECK: Docker's verdict is final either way.
    if (candidate.health === 'healthy') return { kind: 'good' }
    const output = candidate.healthOutput ? ` (last check: ${candidate.healthOutput})` : ''
    if (candidate.health === 'unhealthy') return { kind: 'bad', reason: `the new container is unhealthy${output}`, ...(candidate.healthOutput ? { healthOutput: candidate.healthOutput } : {}) }
    return late ? { kind: 'bad', reason: `the new container was not healthy within ${formatDuration(timeoutMs)}${output}`, ...(candidate.healthOutput ? { healthOutput: candidate.healthOutput } : {}) } : wait
  }
  const probe = input.rollout?.probe
  const hasHealthPath = hasHttpHealthCheck(input.plugin)
  // Without any health check the new one must keep running a while, and answer on its port.
  const stableWindowMs = (input.rolloutSettings ?? DEFAULT_ROLLOUT_SETTINGS).stableWindowMs
  const settled = hasHealthPath || elapsed >= Math.min(stableWindowMs, timeoutMs)
  if (settled && probe?.ok) return { kind: 'good' }
  if (!late) return wait
  const what = hasHealthPath ? 'healthy' : 'answering on its port'
  return { kind: 'bad', reason: `the new container was not ${what} within ${formatDuration(timeoutMs)}${probe ? ` (${probe.detail})` : ''}`, ...(probe ? { healthOutput: probe.detail } : {}) }
}

export function hasHttpHealthCheck(plugin: Plugin): boolean {
  const healthCheck = plugin.manifest.healthCheck as { path?: unknown } | undefined
  return typeof healthCheck?.path === 'string'
}

export function exitOf(container: ObservedContainer): string {
  if (container.oomKilled) return `was killed for running out of memory (exit code ${container.exitCode ?? 'unknown'})`
  return `exited with code ${container.exitCode ?? 'unknown'}`
}
