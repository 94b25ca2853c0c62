// Which host port a plugin may ask for (spec.hostPort): one inside HOST_PORT_RANGE, unless
// ALLOW_ANY_HOST_PORT. Any port from 1 to 65535 would let a spec publish a plugin on a port
// the host uses for something else (and the proxy would forward to it). Checked where
// documents come in (the API, the spec folder); hostPortProblem is the one rule, for any
// other reader of a requested port (a row written in SQL) too.

export interface HostPortPolicy {
  /** HOST_PORT_RANGE. */
  range: { from: number; to: number }
  /** ALLOW_ANY_HOST_PORT: any port from 1 to 65535. Default false. */
  allowAny: boolean
}

/** Why `hostPort` may not be requested; undefined when it may. */
export function hostPortProblem(hostPort: number, policy: HostPortPolicy): string | undefined {
  if (policy.allowAny) return undefined
  const { from, to } = policy.range
  if (hostPort >= from && hostPort <= to) return undefined
  return `must be within HOST_PORT_RANGE ${from}-${to} (set ALLOW_ANY_HOST_PORT=true to allow any port)`
}

/** The field error of a document's spec.hostPort, if any. */
export function hostPortErrors(spec: { hostPort?: number | undefined }, policy: HostPortPolicy | undefined): { field: string; message: string }[] {
  if (policy === undefined || spec.hostPort === undefined) return []
  const problem = hostPortProblem(spec.hostPort, policy)
  return problem === undefined ? [] : [{ field: 'spec.hostPort', message: problem }]
}
