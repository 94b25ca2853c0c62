// The one definition of a DNS label (RFC 1123, as Kubernetes names objects), for plugin
// names (they become container names and URL paths) and MANAGER_INSTANCE. Migration 001
// checks forgehook_id with the same pattern in SQL (test/unit/dns-label.test.ts keeps the
// two equal).

/** Lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters. */
export const DNS_LABEL_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/

export function isDnsLabel(value: string): boolean {
  return DNS_LABEL_PATTERN.test(value)
}
