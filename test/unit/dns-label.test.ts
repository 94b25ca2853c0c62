import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { expect, test } from 'vitest'
import { DNS_LABEL_PATTERN, isDnsLabel } from '../../src/util/dns-label.js'
import { migrationsDir } from '../helpers/databases.js'

test('a DNS label is 1 to 63 lower-case letters, digits and "-", starting and ending with a letter or digit', () => {
  expect(['a', '0', 'my-plugin-2', 'a--b', 'x'.repeat(63)].filter(isDnsLabel)).toHaveLength(5)
  expect(['', '-a', 'a-', 'My-plugin', 'a_b', 'a.b', 'x'.repeat(64)].filter(isDnsLabel)).toEqual([])
})

test('the database checks plugin names with the same pattern', async () => {
  const schema = await readFile(path.join(migrationsDir, '001_create_plugins_table.sql'), 'utf8')
  expect(schema).toContain(`CHECK (forgehook_id ~ '${DNS_LABEL_PATTERN.source}')`)
})
