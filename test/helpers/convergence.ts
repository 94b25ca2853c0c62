// "Converged" as an operator checks it after an outage: every plugin row shows its desired
// state, and `docker inspect` of the container the row names agrees (same id, same state,
// same host port).
import { eventually } from './databases.js'
import type { FaultFixture, InspectedContainer, PluginRow } from './fault-fixture.js'

export type DesiredStates = Record<string, 'running' | 'stopped'>

/** Where the rows and containers are read: the fixture, or a test's own database client. */
export type Witnesses = Pick<FaultFixture, 'plugins' | 'inspect'>

export interface ConvergedPlugin {
  row: PluginRow
  container: InspectedContainer
}

/** The rows and their containers when all of `desired` (and nothing else) is in its desired state. */
export async function desiredStateReached(witnesses: Witnesses, desired: DesiredStates): Promise<ConvergedPlugin[] | undefined> {
  const rows = await witnesses.plugins()
  if (rows.map((row) => row.forgehook_id).join() !== Object.keys(desired).sort().join()) return undefined
  const converged: ConvergedPlugin[] = []
  for (const row of rows) {
    if (row.status !== desired[row.forgehook_id] || row.container_id === null) return undefined
    const container = await witnesses.inspect(row.container_id)
    if (!container || container.hostPort !== row.host_port) return undefined
    // A stopped plugin keeps its container: created (never started) or exited.
    const dockerAgrees = row.status === 'running' ? container.state === 'running' : container.state === 'created' || container.state === 'exited'
    if (!dockerAgrees) return undefined
    converged.push({ row, container })
  }
  return converged
}

export function waitForDesiredState(witnesses: Witnesses, desired: DesiredStates, timeoutMs: number): Promise<ConvergedPlugin[]> {
  const what = `plugins in their desired state, rows matching docker inspect: ${JSON.stringify(desired)}`
  return eventually(() => desiredStateReached(witnesses, desired), timeoutMs, what)
}

/** Plugin name → container id, for "nothing was recreated". */
export function containerIds(plugins: ConvergedPlugin[]): Record<string, string> {
  return Object.fromEntries(plugins.map(({ row, container }) => [row.forgehook_id, container.id]))
}
