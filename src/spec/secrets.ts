// Which values of a plugin's spec are secret, and the redacted view every answer shows.
// The container gets the real values; the API, the live streams, forgectl and the log see
// `***` in their place. A value is hidden when
// - its key looks secret (PASSWORD, PASSWD, SECRET, TOKEN, KEY, CREDENTIAL, PRIVATE, AUTH,
//   DSN, DATABASE_URL, ...), in the environment or at any depth of config (the whole value
//   under such a key);
// - the manifest lists its environment key in `secrets`;
// - the value itself looks secret: a URL with a password, a PEM private key, a JWT;
// - or it equals the value of a secret of the same plugin (the value-based check: a secret
//   copied under a harmless name is still not printed).
// A write that sends `***` back keeps the stored value (restoreRedacted), and a write that
// would show a value hidden so far, without sending it, is refused (revealedValues): a merge
// patch that removes a key from `secrets`, or the secret a copy was equal to, must not make
// the next GET print it.
import type { Plugin } from '../db/plugin-store.js'

export const REDACTED = '***'

const SECRET_NAME = /PASS|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH(?!OR)|DSN|DATABASE_URL|CONNECTION_STRING|COOKIE|SIGNATURE|SALT/i
const SECRET_VALUES = [
  // scheme://user:password@host (a password, possibly empty user)
  /^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:[^/\s@]+@/i,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
  // header.payload.signature, base64url, a JSON header ("eyJ")
  /^eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}$/,
]

type SpecSecrets = Pick<Plugin, 'environment' | 'manifest'> & { config?: Record<string, unknown> }

export function isSecretName(key: string): boolean {
  return SECRET_NAME.test(key)
}

export function looksSecret(value: string): boolean {
  return SECRET_VALUES.some((pattern) => pattern.test(value))
}

/** Environment keys hidden by name, by the manifest's `secrets` list, or by their value's look. */
export function secretKeys(plugin: Pick<Plugin, 'environment' | 'manifest'>): Set<string> {
  const listed = Array.isArray(plugin.manifest.secrets) ? plugin.manifest.secrets.filter((key): key is string => typeof key === 'string') : []
  const named = Object.entries(plugin.environment).filter(([key, value]) => isSecretName(key) || looksSecret(value))
  return new Set([...named.map(([key]) => key), ...listed])
}

/** Every secret value of the plugin (non-empty strings): the values of secret keys, in the environment and in config. */
export function secretValues(plugin: SpecSecrets): Set<string> {
  const hidden = secretKeys(plugin)
  const values = new Set<string>()
  for (const [key, value] of Object.entries(plugin.environment)) if (hidden.has(key) && value !== '') values.add(value)
  walkConfig(plugin.config ?? {}, (value, underSecretName) => {
    if (typeof value === 'string' && value !== '' && (underSecretName || looksSecret(value))) values.add(value)
  })
  return values
}

export function redactEnvironment(plugin: SpecSecrets): Record<string, string> {
  const hidden = secretKeys(plugin)
  const values = secretValues(plugin)
  return Object.fromEntries(Object.entries(plugin.environment).map(([key, value]) => [key, hidden.has(key) || values.has(value) ? REDACTED : value]))
}

/** config with every value under a secret-looking key, every secret-looking string and every copy of a secret replaced by `***`. */
export function redactConfig(plugin: SpecSecrets): Record<string, unknown> {
  const values = secretValues(plugin)
  return redactJson(plugin.config ?? {}, values, false) as Record<string, unknown>
}

/** `text` with every secret value of the plugin replaced by `***` (status errors, messages). */
export function redactText(text: string, plugin: SpecSecrets): string {
  let redacted = text
  // Longest first, so a secret that contains another is replaced whole.
  for (const value of [...secretValues(plugin)].sort((a, b) => b.length - a.length)) redacted = redacted.split(value).join(REDACTED)
  return redacted
}

function redactJson(value: unknown, secrets: Set<string>, underSecretName: boolean): unknown {
  if (underSecretName) return REDACTED
  if (typeof value === 'string') return secrets.has(value) || looksSecret(value) ? REDACTED : value
  if (Array.isArray(value)) return value.map((item) => redactJson(item, secrets, false))
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactJson(item, secrets, isSecretName(key))]))
  return value
}

/** Calls `visit` on every leaf of config with whether a key above it looks secret. */
function walkConfig(value: unknown, visit: (leaf: unknown, underSecretName: boolean) => void, underSecretName = false): void {
  if (Array.isArray(value)) {
    for (const item of value) walkConfig(item, visit, underSecretName)
    return
  }
  if (isObject(value)) {
    for (const [key, item] of Object.entries(value)) walkConfig(item, visit, underSecretName || isSecretName(key))
    return
  }
  visit(value, underSecretName)
}

export interface SpecValues {
  environment: Record<string, string>
  config: Record<string, unknown>
  manifest: Record<string, unknown>
}

export interface SecretFieldError {
  field: string
  message: string
}

/**
 * `incoming` with each `***` that stands where the stored plugin shows `***` replaced by the
 * stored value. A `***` where the incoming spec would hide a value but nothing is stored is an
 * error: the client must send the real value. Any other `***` is a literal value.
 */
export function restoreRedacted(incoming: SpecValues, stored: SpecValues | undefined): { ok: true; values: SpecValues } | { ok: false; errors: SecretFieldError[] } {
  const errors: SecretFieldError[] = []
  const storedView = stored ? { environment: redactEnvironment(stored), config: redactConfig(stored) } : { environment: {}, config: {} }
  const incomingView = { environment: redactEnvironment(incoming), config: redactConfig(incoming) }
  const restore = (value: unknown, storedValue: unknown, shownStored: unknown, shownIncoming: unknown, field: string): unknown => {
    if (value === REDACTED) {
      if (shownStored === REDACTED && storedValue !== undefined) return storedValue
      if (shownIncoming === REDACTED) errors.push({ field, message: `"${REDACTED}" stands for a hidden secret, and this plugin has no value for it yet: send the real value` })
      return value
    }
    const each = (item: unknown, key: string) => restore(item, child(storedValue, key), child(shownStored, key), child(shownIncoming, key), `${field}.${key}`)
    if (Array.isArray(value)) return value.map((item, index) => each(item, String(index)))
    if (!isObject(value)) return value
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, each(item, key)]))
  }
  const environment = restore(incoming.environment, stored?.environment, storedView.environment, incomingView.environment, 'spec.environment') as Record<string, string>
  const config = restore(incoming.config, stored?.config, storedView.config, incomingView.config, 'spec.config') as Record<string, unknown>
  if (errors.length > 0) return { ok: false, errors }
  return { ok: true, values: { ...incoming, environment, config } }
}

/**
 * Values the stored plugin hides that `next` would show, unchanged, although the request did
 * not send them (`sent`: the request's own environment and config, as the client wrote them).
 * Such a write would let a client that cannot read a secret make the next GET print it.
 */
export function revealedValues(stored: SpecValues, next: SpecValues, sent: { environment?: unknown; config?: unknown }): SecretFieldError[] {
  const errors: SecretFieldError[] = []
  const check = (storedValue: unknown, shownStored: unknown, nextValue: unknown, shownNext: unknown, sentValue: unknown, field: string): void => {
    if (shownStored === REDACTED) {
      const revealed = shownNext !== REDACTED && JSON.stringify(nextValue) === JSON.stringify(storedValue)
      const sentAgain = sentValue !== undefined && sentValue !== REDACTED
      if (revealed && !sentAgain) {
        errors.push({ field, message: `holds a hidden value that this change would show: send its value (or a new one) with the change to show it` })
      }
      return
    }
    if (!isContainer(shownStored) || !isContainer(nextValue)) return
    for (const key of Object.keys(shownStored)) {
      check(child(storedValue, key), child(shownStored, key), child(nextValue, key), child(shownNext, key), child(sentValue, key), `${field}.${key}`)
    }
  }
  const storedView = { environment: redactEnvironment(stored), config: redactConfig(stored) }
  const nextView = { environment: redactEnvironment(next), config: redactConfig(next) }
  check(stored.environment, storedView.environment, next.environment, nextView.environment, sent.environment, 'spec.environment')
  check(stored.config, storedView.config, next.config, nextView.config, sent.config, 'spec.config')
  return errors
}

/** An object's member, or an array's item by its index as text. */
function child(value: unknown, key: string): unknown {
  if (Array.isArray(value)) return /^\d+$/.test(key) ? (value[Number(key)] as unknown) : undefined
  return isObject(value) ? value[key] : undefined
}

function isContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  return typeof value === 'object' && value !== null
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
