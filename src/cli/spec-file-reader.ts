// What apply and diff read: -f FILE or DIR (every *.yaml / *.yml in it, not recursive),
// several documents per file, checked here with the daemon's own parser so that a bad file
// is reported at its line and column before anything is sent.
import { readdir, readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import type { SpecFileError } from '../spec/spec-file-error.js'
import { MAX_SPEC_FILE_BYTES, parseSpecText } from '../spec/parse-yaml.js'
import type { PluginDocument } from '../spec/plugin-spec.js'

export interface DeclaredPlugin {
  /** The file as the user named it (or the folder joined with the file name). */
  file: string
  document: PluginDocument
}

export interface SpecInputs {
  /** In file order, files in name order within a folder. */
  plugins: DeclaredPlugin[]
  /** One line each, `file:line:column: field: message`; nothing may be sent when there are any. */
  problems: string[]
}

const SPEC_FILE = /\.ya?ml$/i

export async function readSpecInputs(inputs: string[]): Promise<SpecInputs> {
  const result: SpecInputs = { plugins: [], problems: [] }
  const fileOfPlugin = new Map<string, string>()
  for (const input of inputs) {
    const files = await expandInput(input, result.problems)
    for (const file of files) {
      for (const document of await readSpecFile(file, result.problems)) {
        const name = document.metadata.name
        const earlierFile = fileOfPlugin.get(name)
        if (earlierFile !== undefined) {
          // parseSpecText already refuses a name twice in one file; across files the later one would silently win.
          result.problems.push(`${file}: plugin "${name}" is also declared in ${earlierFile}`)
          continue
        }
        fileOfPlugin.set(name, file)
        result.plugins.push({ file, document })
      }
    }
  }
  if (result.plugins.length === 0 && result.problems.length === 0) {
    result.problems.push(`no plugin documents found in ${inputs.join(', ')}`)
  }
  return result
}

/** A file stands for itself; a folder for its *.yaml and *.yml files. */
async function expandInput(input: string, problems: string[]): Promise<string[]> {
  const entry = await stat(input).catch((error: unknown) => fileProblem(input, error, problems))
  if (!entry) return []
  if (!entry.isDirectory()) return [input]
  const names = await readdir(input).catch((error: unknown) => fileProblem(input, error, problems))
  if (!names) return []
  const files: string[] = []
  for (const name of names.filter((candidate) => SPEC_FILE.test(candidate)).sort()) {
    const file = path.join(input, name)
    // A folder named like a spec file is not one; symlinks to files are followed.
    const fileEntry = await stat(file).catch((error: unknown) => fileProblem(file, error, problems))
    if (fileEntry?.isFile()) files.push(file)
  }
  return files
}

async function readSpecFile(file: string, problems: string[]): Promise<PluginDocument[]> {
  const entry = await stat(file).catch((error: unknown) => fileProblem(file, error, problems))
  if (!entry) return []
  if (entry.size > MAX_SPEC_FILE_BYTES) {
    problems.push(`${file}: the file is larger than ${MAX_SPEC_FILE_BYTES / 1024 / 1024} MiB, the limit for spec files`)
    return []
  }
  const text = await readFile(file, 'utf8').catch((error: unknown) => fileProblem(file, error, problems))
  if (text === undefined) return []
  // The daemon's runtime is not known here: only the schema is checked, and the daemon
  // refuses what its runtime cannot run (replicas on the docker runtime) when it is sent.
  const parsed = parseSpecText(text, { runtime: 'any' })
  problems.push(...parsed.errors.map((error) => describeSpecError(file, error)))
  return parsed.documents.map((entry) => entry.document)
}

export function describeSpecError(file: string, error: SpecFileError): string {
  const position = error.line !== undefined ? `:${error.line}${error.column !== undefined ? `:${error.column}` : ''}` : ''
  const field = error.field !== undefined && error.field !== '(document)' ? `${error.field}: ` : ''
  return `${file}${position}: ${field}${error.message}`
}

const FILE_PROBLEMS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  ENOTDIR: 'not a directory',
}

/** Records why `file` cannot be read; returns undefined so callers can skip it. */
function fileProblem(file: string, error: unknown, problems: string[]): undefined {
  const code = (error as { code?: unknown }).code
  const reason = typeof code === 'string' && FILE_PROBLEMS[code] ? FILE_PROBLEMS[code] : error instanceof Error ? error.message : String(error)
  problems.push(`${file}: cannot read: ${reason}`)
  return undefined
}
