// The plugin page's spec editor, server side: the YAML an operator typed, checked exactly as
// PUT /api/v1/plugins/:name would check its JSON (api/plugin-documents.ts' requireValidDocument:
// the schema, the name, HOST_PORT_RANGE, `***` standing for stored secrets, no secret shown
// without being sent), each problem placed at its line and column, and a diff of what the
// write would change, as forgectl diff shows it. Nothing is written here: the page's script
// sends the document to the API itself, with If-Match.
import type { RuntimeName } from '../config.js'
import { isMap, LineCounter, parseDocument } from 'yaml'
import { stringify } from 'yaml'
import type { Plugin } from '../db/plugin-store.js'
import { ApiError } from '../api/errors.js'
import { requireValidDocument } from '../api/plugin-documents.js'
import type { HostPortPolicy } from '../spec/host-port-policy.js'
import { locateField } from '../spec/parse-yaml.js'
import { specDiffers, toSpecDocument, type PluginDocument } from '../spec/plugin-spec.js'
import { REDACTED, redactConfig, redactEnvironment } from '../spec/secrets.js'
import { unifiedDiff } from '../util/unified-diff.js'
import { sortKeys } from '../util/sort-keys.js'

/** What the editor may send: a plugin document is a few KiB; the API's body limit is 1 MiB. */
export const MAX_EDIT_BYTES = 256 * 1024
const MAX_ALIAS_COUNT = 100

export interface EditProblem {
  message: string
  field?: string
  line?: number
  column?: number
}

export type EditCheck =
  | { ok: false; errors: EditProblem[] }
  | {
      ok: true
      /** The document as typed (secrets still `***`), for the PUT. */
      document: unknown
      /** Whether the write would change the spec at all. */
      changed: boolean
      /** diff -u of the live spec and the edited one, secrets redacted on both sides. */
      diff: string[]
      /** Hidden values that change (the diff shows `***` on both sides). */
      notes: string[]
    }

/** The document the editor opens with: what a client may send back, secrets as `***`. */
export function editableYaml(plugin: Plugin): string {
  return stringify(redactedView(toSpecDocument(plugin)), { lineWidth: 0 })
}

/** `runtime`: RUNTIME, whose rules the API will apply to the write (default docker). */
export function checkSpecEdit(text: string, current: Plugin, hostPorts: HostPortPolicy, runtime: RuntimeName = 'docker'): EditCheck {
  if (Buffer.byteLength(text) > MAX_EDIT_BYTES) return { ok: false, errors: [{ message: `the document is larger than ${MAX_EDIT_BYTES / 1024} KiB` }] }
  const lineCounter = new LineCounter()
  const yamlDocument = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset)
    return { line, column: col }
  }
  if (yamlDocument.errors.length > 0) {
    return { ok: false, errors: yamlDocument.errors.map((error) => ({ message: error.message.split('\n')[0] ?? error.message, ...at(error.pos[0]) })) }
  }
  if (!isMap(yamlDocument.contents)) return { ok: false, errors: [{ message: 'the document must be a mapping (apiVersion, kind, metadata, spec)', line: 1, column: 1 }] }
  let value: unknown
  try {
    value = yamlDocument.toJS({ maxAliasCount: MAX_ALIAS_COUNT })
  } catch (error) {
    return { ok: false, errors: [{ message: `could not read the YAML document: ${error instanceof Error ? error.message : String(error)}`, line: 1, column: 1 }] }
  }
  let document: PluginDocument
  try {
    document = requireValidDocument(value, { name: current.forgehookId, stored: current, hostPorts, runtime })
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 422) throw error
    return { ok: false, errors: error.details.map((detail) => ({ field: detail.field, message: detail.message, ...at(locateField(yamlDocument, detail.field)) })) }
  }
  const live = redactedView(toSpecDocument(current))
  const wanted = redactedView(document)
  const diff = unifiedDiff(stringify(sortKeys(live), { lineWidth: 0 }), stringify(sortKeys(wanted), { lineWidth: 0 }), {
    oldLabel: `plugin/${current.forgehookId} (live)`,
    newLabel: `plugin/${current.forgehookId} (edited)`,
  })
  return { ok: true, document: value, changed: specDiffers(current, document), diff, notes: hiddenChanges(current, document) }
}

/** A document with secret environment and config values as `***`, as the API shows them. */
function redactedView(document: PluginDocument): PluginDocument {
  const values = { environment: document.spec.environment ?? {}, config: document.spec.config ?? {}, manifest: document.spec.manifest as Record<string, unknown> }
  return {
    ...document,
    spec: {
      ...document.spec,
      ...(document.spec.environment !== undefined ? { environment: redactEnvironment(values) } : {}),
      ...(document.spec.config !== undefined ? { config: redactConfig(values) } : {}),
    },
  }
}

/** Environment keys shown as `***` on both sides whose real values differ. */
function hiddenChanges(current: Plugin, document: PluginDocument): string[] {
  const shownNow = redactEnvironment(current)
  const environment = document.spec.environment ?? {}
  const shownNext = redactEnvironment({ environment, config: document.spec.config ?? {}, manifest: document.spec.manifest as Record<string, unknown> })
  return Object.keys(environment)
    .filter((key) => shownNow[key] === REDACTED && shownNext[key] === REDACTED && current.environment[key] !== environment[key])
    .sort()
    .map((key) => `the hidden value of spec.environment.${key} changes`)
}
