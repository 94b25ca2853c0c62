// JSON Merge Patch (RFC 7386): what PATCH /api/v1/plugins/:id applies to the plugin document.
// Pure: neither argument is changed (parts the patch leaves alone are shared, not copied).

export type JsonObjectValue = Record<string, unknown>

/**
 * Applies `patch` to `target` as section 2 of the RFC says: an object patch merges key by
 * key (null removes the key), anything else replaces the target as a whole, arrays included.
 */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return patch
  const merged = new Map<string, unknown>(isJsonObject(target) ? Object.entries(target) : [])
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) merged.delete(key)
    else merged.set(key, applyMergePatch(merged.get(key), value))
  }
  // Object.fromEntries defines own properties, so a "__proto__" key stays a plain key
  // (assignment would change the result's prototype).
  return Object.fromEntries(merged)
}

/** A JSON object: not null, not an array. */
export function isJsonObject(value: unknown): value is JsonObjectValue {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
