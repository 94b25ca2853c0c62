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
  if (planned.leavesGenerationUnobserved) lines.push('generation left unobserved')
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
      const mounts = [...(spec.volumes ?? []), ...(action.extraVolumes ?? [])].map((volume) => ` mount=${short(volume.source)}:${volume.target}${volume.readOnly ? ':ro' : ''}`).join('')
      const imageId = spec.imageId ? `@${spec.imageId.replace(/^sha256:/, '').slice(0, 12)}` : ''
      return `create ${action.name ?? spec.name} image=${spec.image}${imageId} port=${spec.hostIp}:${spec.hostPort}->${spec.containerPort}${mounts}${missing}`
    }
    case 'remove':
      return `remove ${action.containerId.slice(0, 12)}${action.anonymousVolumes ? ' with its anonymous volumes' : ''}`
    case 'rename':
      return `rename ${action.containerId.slice(0, 12)} ${action.name}`
    case 'release-port':
      return `release-port ${action.hostPort}`
    case 'connect-network':
      return `connect-network ${action.containerId.slice(0, 12)} ${action.network} as ${action.aliases.join(',')}`
    case 'disconnect-network':
      return `disconnect-network ${action.containerId.slice(0, 12)} ${action.network}`
    case 'reserve-port':
      return 'reserve-port'
    case 'ensure-volumes':
      return `ensure-volumes ${action.volumes.map((volume) => volume.name).join(' ')}`
    case 'remove-volumes':
      return `remove-volumes ${action.names.join(' ')}`
    case 'stop':
      return `stop ${action.containerId.slice(0, 12)}`
    case 'start':
      return action.containerId === undefined ? 'start' : `start ${action.containerId.slice(0, 12)}`
  }
}

/** A 64-hex anonymous volume name, shortened like a container id. */
function short(volumeName: string): string {
  return /^[0-9a-f]{64}$/.test(volumeName) ? volumeName.slice(0, 12) : volumeName
}
