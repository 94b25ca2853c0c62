// Plans as text: one readable line per action with its cause, then what is recorded. The
// reconciler logs it; the golden tests (test/controller/plan.test.ts) compare it.
import type { Action, Plan, Recovery } from './plan-types.js'

export function describePlan(planned: Plan | Action[]): string {
  const actions = Array.isArray(planned) ? planned : planned.actions
  const lines = actions.map((action) => `${describeAction(action)}  # ${action.cause}`)
  if (Array.isArray(planned)) return lines.join('\n')
  if (planned.deleteRow) lines.push(`delete-row  # ${planned.deleteRow.cause}`)
  const status = Object.entries(planned.status)
    .map(([field, value]) => `${field}=${value instanceof Date ? value.toISOString() : JSON.stringify(value)}`)
    .join(' ')
  if (status) lines.push(`status ${status}`)
  if (planned.subject) lines.push(`events about ${planned.subject.forgehookId} (its row is gone)`)
  for (const event of planned.events) lines.push(`event ${event.type} ${JSON.stringify(event.data)}`)
  if (planned.takesRestartRequest) lines.push('restart request taken')
  if (planned.requeueAfterMs !== undefined) lines.push(`requeue after ${planned.requeueAfterMs} ms`)
  return lines.join('\n')
}

export function describeRecovery(recovery: Recovery): string {
  if (recovery.kind === 'continue-with') return `continue with ${recovery.containerId.slice(0, 12)}  # ${recovery.cause}`
  const rest = describePlan(recovery.plan)
  return [`abort, then ${recovery.retry ? 'retry with backoff' : 'wait'}`, ...(rest ? [rest] : [])].join('\n')
}

function describeAction(action: Action): string {
  switch (action.kind) {
    case 'pull':
      return `pull ${action.image} (${action.policy})`
    case 'create': {
      const { spec } = action
      const missing = action.missingImage === undefined ? '' : action.missingImage === 'Never' ? ' if-image-missing=refuse' : ' if-image-missing=pull'
      return `create ${spec.name} image=${spec.image} port=${spec.hostIp}:${spec.hostPort}->${spec.containerPort}${missing}`
    }
    case 'remove':
      return `remove ${action.containerId.slice(0, 12)}`
    case 'release-port':
      return `release-port ${action.hostPort}`
    case 'start':
    case 'stop':
      return action.kind
  }
}
