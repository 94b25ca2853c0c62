// One problem found in a spec file, at its position. Parsing (parse-yaml.ts) produces these;
// the folder watcher, forgectl and GET /api/v1/specs pass them on unchanged, so the type
// lives here, below all of them.

export interface SpecFileError {
  message: string
  line?: number
  column?: number
  /** Dotted field path inside the document, e.g. spec.manifest.port. */
  field?: string
  /** 0-based index of the YAML document in the file. */
  document?: number
}
