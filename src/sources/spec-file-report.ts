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
  errors: SpecFileError[]
  /** When the file was last read. */
  checkedAt: string
}

/** The folder as the API reads it. */
export interface SpecFolderView {
  list(): SpecFileReport[]
}
