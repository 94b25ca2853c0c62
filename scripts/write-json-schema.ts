// npm run schema: writes schema/plugin.schema.json from the zod schema, for editors
// (yaml-language-server: $schema=...). A test fails when the file is out of date.
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { packageRoot } from '../src/config.js'
import { pluginJsonSchema } from '../src/spec/plugin-spec.js'

export const SCHEMA_FILE = path.join(packageRoot(), 'schema', 'plugin.schema.json')

export function schemaText(): string {
  return JSON.stringify(pluginJsonSchema(), null, 2) + '\n'
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  await writeFile(SCHEMA_FILE, schemaText())
  process.stdout.write(`wrote ${path.relative(process.cwd(), SCHEMA_FILE)}\n`)
}
