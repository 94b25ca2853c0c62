// What the spec-folder watcher reports about each file. The API shows it (GET /api/v1/specs)
// and sits above this folder, so the type is defined here, by the code that produces it.
import type { SpecFileError } from '../spec/spec-file-error.js'

/** One spec file as the folder watcher last saw it (GET /api/v1/specs). */
export interface SpecFileReport {
  /** Relative to SPECS_DIR, with '/' separators. */
  path: string
  /** ok: applied (or unchanged); invalid: YAML or schema errors; conflict: names a plugin owned elsewhere; refused: too big, outside the folder, unreadable. */
  status: 'ok' | 'invalid' | 'conflict' | 'refused'
  /** Names of the plugins the file declares (as far as they could be read). */
  plugins: string[]
  /** The first MAX_REPORTED_ERRORS problems, in file order. */
  errors: SpecFileError[]
  /** How many problems there are beyond `errors`; absent when none. */
  moreErrors?: number
  /** When the file was last read. */
  checkedAt: string
}

/** A file with thousands of bad documents is still one report of bounded size. */
export const MAX_REPORTED_ERRORS = 50

export function cappedErrors(errors: SpecFileError[], max = MAX_REPORTED_ERRORS): { errors: SpecFileError[]; moreErrors?: number } {
  if (errors.length <= max) return { errors }
  return { errors: errors.slice(0, max), moreErrors: errors.length - max }
}

/** The folder as the API reads it. */
export interface SpecFolderView {
  list(): SpecFileReport[]
}
