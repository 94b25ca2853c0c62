// Spec files as text: YAML documents (several per file, split by `---`) turned into plugin
// documents, with every problem reported at its line and column so an author can find it.
import { Composer, isAlias, isMap, isScalar, isSeq, LineCounter, Parser, type Document, type YAMLError } from 'yaml'
import { hostPortErrors, type HostPortPolicy } from './host-port-policy.js'
import type { SpecFileError } from './spec-file-error.js'
import { pluginNameSchema, validateDocument, type PluginDocument, type ValidateOptions } from './plugin-spec.js'

/** yaml has no input limit of its own: files are capped before parsing. */
export const MAX_SPEC_FILE_BYTES = 1024 * 1024

/** Aliases a document may expand; more is treated as an alias bomb ("billion laughs"). */
const MAX_ALIAS_COUNT = 100

/** SPECS_MAX_DOCUMENTS' default: YAML documents one file may hold. */
export const DEFAULT_MAX_SPEC_DOCUMENTS = 500

export interface ParsedSpecText {
  /** The valid documents, with their 0-based index in the file. */
  documents: { index: number; document: PluginDocument }[]
  /** Every plugin name the file declares, valid document or not (as far as it could be read), first occurrence order. */
  names: string[]
  errors: SpecFileError[]
  /** The plugin name of each document by its index, where one could be read. */
  namesByDocument: (string | undefined)[]
  /** The file holds more documents than allowed: none of it was read (errors says so). */
  tooManyDocuments?: true
}

export interface ParseOptions extends ValidateOptions {
  /** More YAML documents than this and the file is refused without being read further. Default 500. */
  maxDocuments?: number
  /** Which spec.hostPort a document may ask for; default: any the schema allows. */
  hostPorts?: HostPortPolicy
}

type ParsedDocument = Document.Parsed

/**
 * Parses a spec file. Never throws on bad input: YAML and schema problems become errors,
 * each with line, column, field and document index. Each document stands on its own, so
 * one broken document does not hide the others.
 */
export function parseSpecText(text: string, options: ParseOptions = {}): ParsedSpecText {
  const maxDocuments = options.maxDocuments ?? DEFAULT_MAX_SPEC_DOCUMENTS
  const lineCounter = new LineCounter()
  const yamlDocuments = composeDocuments(text, lineCounter, maxDocuments)
  const result: ParsedSpecText = { documents: [], names: [], errors: [], namesByDocument: [] }
  if (yamlDocuments === undefined) {
    const message = `the file holds more than ${maxDocuments} YAML documents (SPECS_MAX_DOCUMENTS); not read`
    return { ...result, errors: [{ message }], tooManyDocuments: true }
  }
  const firstDocumentOfName = new Map<string, number>()
  const position = (offset: number) => toLineColumn(lineCounter, offset)

  yamlDocuments.forEach((yamlDocument, index) => {
    if (isEmptyDocument(yamlDocument)) return
    const plain = toPlainValue(yamlDocument)
    const pluginName = readPluginName(yamlDocument, plain.ok ? plain.value : undefined)
    result.namesByDocument[index] = pluginName

    const checked = checkDocument(yamlDocument, plain, position, options)
    const documentErrors = checked.errors.map((error) => ({ ...error, document: index }))
    if (pluginName !== undefined) {
      const firstIndex = firstDocumentOfName.get(pluginName)
      if (firstIndex === undefined) {
        firstDocumentOfName.set(pluginName, index)
        result.names.push(pluginName)
      } else {
        documentErrors.push({
          message: `plugin "${pluginName}" is declared twice in this file (first in document ${firstIndex})`,
          field: 'metadata.name',
          document: index,
          ...position(locateField(yamlDocument, 'metadata.name')),
        })
      }
    }

    if (documentErrors.length > 0) {
      result.errors.push(...documentErrors)
      return
    }
    if (checked.document) result.documents.push({ index, document: checked.document })
  })
  return result
}

/**
 * The YAML documents of `text`, as parseAllDocuments gives them, composed one at a time so
 * that a file of thousands stops at `maxDocuments + 1`: undefined then.
 */
function composeDocuments(text: string, lineCounter: LineCounter, maxDocuments: number): ParsedDocument[] | undefined {
  const composer = new Composer({})
  const documents: ParsedDocument[] = []
  for (const yamlDocument of composer.compose(new Parser(lineCounter.addNewLine).parse(text))) {
    if (documents.length >= maxDocuments) return undefined
    documents.push(yamlDocument as ParsedDocument)
  }
  return documents
}

type PlainValue = { ok: true; value: unknown } | { ok: false; message: string }

/** YAML errors first; only a document that parsed cleanly is checked against the schema. */
function checkDocument(
  yamlDocument: ParsedDocument,
  plain: PlainValue,
  position: (offset: number) => LineColumn,
  options: ParseOptions,
): { document?: PluginDocument; errors: SpecFileError[] } {
  if (yamlDocument.errors.length > 0) return { errors: yamlDocument.errors.map((error) => toYamlError(error, position)) }
  if (!plain.ok) return { errors: [{ message: plain.message, ...position(yamlDocument.range[0]) }] }
  const validated = validateDocument(plain.value, options)
  const fieldErrors = validated.ok ? hostPortErrors(validated.document.spec, options.hostPorts) : validated.errors
  if (validated.ok && fieldErrors.length === 0) return { document: validated.document, errors: [] }
  const errors = fieldErrors.map((error) => ({
    message: error.message,
    field: error.field,
    ...position(locateField(yamlDocument, error.field)),
  }))
  return { errors }
}

function toPlainValue(yamlDocument: ParsedDocument): PlainValue {
  try {
    return { ok: true, value: yamlDocument.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) }
  } catch (error) {
    // yaml throws a ReferenceError when aliases expand past maxAliasCount; anything else is
    // still a property of this document, reported on it rather than crashing the sync.
    const reason = error instanceof Error ? error.message : String(error)
    if (/alias/i.test(reason)) {
      return { ok: false, message: `too many YAML alias expansions (more than ${MAX_ALIAS_COUNT}): refused as a possible alias bomb` }
    }
    return { ok: false, message: `could not read the YAML document: ${reason}` }
  }
}

/** A trailing `---` or a document holding only comments: nothing was declared. */
function isEmptyDocument(yamlDocument: ParsedDocument): boolean {
  if (yamlDocument.errors.length > 0) return false
  const contents = yamlDocument.contents
  if (contents === null) return true
  return isScalar(contents) && contents.value === null && contents.source === ''
}

/** metadata.name when it is a valid plugin name; anything else names no plugin. */
function readPluginName(yamlDocument: ParsedDocument, value: unknown): string | undefined {
  const fromValue = isRecord(value) && isRecord(value.metadata) ? value.metadata.name : undefined
  const fromNode = yamlDocument.getIn(['metadata', 'name'], true)
  const candidate = fromValue ?? (isScalar(fromNode) ? fromNode.value : undefined)
  if (typeof candidate !== 'string') return undefined
  return pluginNameSchema.safeParse(candidate).success ? candidate : undefined
}

function toYamlError(error: YAMLError, position: (offset: number) => LineColumn): SpecFileError {
  // Pretty errors repeat the position and quote the source after the first line.
  const firstLine = error.message.split('\n')[0] ?? error.message
  const message = firstLine.replace(/ at line \d+, column \d+:?\s*$/, '')
  const start = error.linePos?.[0]
  return { message, ...(start ? { line: start.line, column: start.col } : position(error.pos[0])) }
}

interface LineColumn {
  line: number
  column: number
}

function toLineColumn(lineCounter: LineCounter, offset: number): LineColumn {
  const { line, col } = lineCounter.linePos(offset)
  return { line, column: col }
}

/**
 * The source offset of a dotted field path: the key of the deepest entry that exists, so a
 * missing field points at its parent and an unknown one at itself. Keys may contain dots
 * (label keys such as example.com/team), so the longest key matching the next segments wins.
 */
export function locateField(yamlDocument: ParsedDocument, field: string): number {
  const segments = field === '(document)' ? [] : field.split('.')
  let node: unknown = yamlDocument.contents
  let offset = rangeStart(node) ?? yamlDocument.range[0]
  let consumed = 0
  while (consumed < segments.length) {
    const step = childAt(node, segments, consumed)
    if (!step) break
    offset = step.offset
    node = step.value
    consumed += step.segmentCount
  }
  return offset
}

function childAt(node: unknown, segments: string[], from: number): { offset: number; value: unknown; segmentCount: number } | undefined {
  if (isSeq(node)) {
    const item: unknown = node.items[Number(segments[from])]
    const offset = rangeStart(item)
    return offset === undefined ? undefined : { offset, value: item, segmentCount: 1 }
  }
  if (!isMap(node)) return undefined
  for (let end = segments.length; end > from; end--) {
    const key = segments.slice(from, end).join('.')
    const pair = node.items.find((candidate) => isScalar(candidate.key) && String(candidate.key.value) === key)
    const offset = pair ? (rangeStart(pair.key) ?? rangeStart(pair.value)) : undefined
    // An alias is not followed: its target sits elsewhere in the file.
    if (pair && offset !== undefined) return { offset, value: isAlias(pair.value) ? undefined : pair.value, segmentCount: end - from }
  }
  return undefined
}

function rangeStart(node: unknown): number | undefined {
  if (typeof node !== 'object' || node === null || !('range' in node)) return undefined
  const range = (node as { range?: unknown }).range
  return Array.isArray(range) && typeof range[0] === 'number' ? range[0] : undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
