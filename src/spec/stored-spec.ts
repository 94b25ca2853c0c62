// A plugin row as stored, judged by the same schema as a document the API or a spec file
// brings: rows written in SQL skip those checks on the way in, so the controller applies
// them before it builds anything from a row (forbidden manifest fields included).
import type { Plugin } from '../db/plugin-store.js'
import { hostPortErrors, type HostPortPolicy } from './host-port-policy.js'
import { toSpecDocument, validateDocument, type FieldError, type ValidateOptions } from './plugin-spec.js'

/**
 * What is wrong with the stored spec, by field path; empty when it is a valid document.
 * `options.runtime`: the runtime that is to run it (default docker, which refuses replicas
 * other than 1 and a placement: a row written in SQL with `replicas = 3` is an error there).
 */
export function storedSpecErrors(plugin: Plugin, hostPorts?: HostPortPolicy, options: ValidateOptions = {}): FieldError[] {
  const result = validateDocument(toSpecDocument(plugin), options)
  const errors = result.ok ? [] : result.errors
  return [...errors, ...(plugin.requestedHostPort === null ? [] : hostPortErrors({ hostPort: plugin.requestedHostPort }, hostPorts))]
}

/** The plugin's error for a stored spec that is not valid: every field named. */
export function describeStoredSpecErrors(errors: FieldError[]): string {
  return `invalid spec: ${errors.map((error) => `${error.field}: ${error.message}`).join('; ')}`
}
