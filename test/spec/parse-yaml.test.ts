import { describe, expect, test } from 'vitest'
import { MAX_SPEC_FILE_BYTES, parseSpecText } from '../../src/spec/parse-yaml.js'

/** A valid document for plugin `name`; `extra` lines are appended under spec.manifest. */
function pluginYaml(name: string, options: { port?: string; extraManifest?: string[]; extraSpec?: string[] } = {}): string {
  return [
    'apiVersion: flowforge.io/v1',
    'kind: Plugin',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  manifest:',
    `    image: flowforge/${name}:1.0.0`,
    `    port: ${options.port ?? '8080'}`,
    ...(options.extraManifest ?? []).map((line) => `    ${line}`),
    ...(options.extraSpec ?? []).map((line) => `  ${line}`),
    '',
  ].join('\n')
}

describe('parseSpecText', () => {
  test('reads a full document as in the issue', () => {
    const text = `apiVersion: flowforge.io/v1
kind: Plugin
metadata:
  name: crypto-service
  labels: { team: payments }
spec:
  state: running
  hostPort: 4105
  manifest: { name: Crypto Service, version: 1.2.0, image: flowforge/crypto-service:1.2.0, imagePullPolicy: IfNotPresent, port: 8080, healthCheck: { path: /health, intervalSeconds: 30, timeoutSeconds: 5 }, resources: { memoryMb: 256, cpus: 0.5 } }
  config: { rounds: 12 }
  environment: { LOG_LEVEL: info }
`
    const parsed = parseSpecText(text)
    expect(parsed.errors).toEqual([])
    expect(parsed.names).toEqual(['crypto-service'])
    expect(parsed.documents).toHaveLength(1)
    expect(parsed.documents[0]!.index).toBe(0)
    expect(parsed.documents[0]!.document.spec).toMatchObject({ state: 'running', hostPort: 4105, config: { rounds: 12 }, environment: { LOG_LEVEL: 'info' } })
  })

  test('reads several documents and ignores empty ones such as a trailing ---', () => {
    const parsed = parseSpecText(`---\n${pluginYaml('alpha')}---\n${pluginYaml('beta')}---\n`)
    expect(parsed.errors).toEqual([])
    expect(parsed.names).toEqual(['alpha', 'beta'])
    expect(parsed.documents.map((entry) => [entry.index, entry.document.metadata.name])).toEqual([
      [0, 'alpha'],
      [1, 'beta'],
    ])
  })

  test('an empty file or one with only comments declares nothing', () => {
    expect(parseSpecText('')).toEqual({ documents: [], names: [], errors: [], namesByDocument: [] })
    expect(parseSpecText('# nothing here yet\n')).toEqual({ documents: [], names: [], errors: [], namesByDocument: [] })
  })

  test('reports a YAML syntax error with its line and column, without the quoted source', () => {
    const parsed = parseSpecText('apiVersion: flowforge.io/v1\nkind: Plugin\nmetadata: { name: broken\nspec: 1\n')
    expect(parsed.documents).toEqual([])
    expect(parsed.errors.length).toBeGreaterThan(0)
    const [first] = parsed.errors
    expect(first).toMatchObject({ document: 0, line: expect.any(Number), column: expect.any(Number) })
    expect(first!.line).toBeGreaterThanOrEqual(3)
    expect(first!.message).not.toMatch(/\n/)
    expect(first!.message).not.toMatch(/at line \d+/)
  })

  test('reports a duplicate key as a YAML error at the second key', () => {
    const parsed = parseSpecText(pluginYaml('dup-key', { extraManifest: ['port: 9090'] }))
    expect(parsed.documents).toEqual([])
    expect(parsed.errors).toEqual([expect.objectContaining({ line: 9, column: 5, document: 0, message: expect.stringMatching(/unique/i) })])
  })

  test('points a schema error at the field, with its dotted path', () => {
    const parsed = parseSpecText(pluginYaml('typed', { port: '"eighty"' }))
    expect(parsed.errors).toEqual([{ field: 'spec.manifest.port', line: 8, column: 5, document: 0, message: expect.stringMatching(/number/) }])
  })

  test('points a missing field at its parent', () => {
    const text = ['apiVersion: flowforge.io/v1', 'kind: Plugin', 'metadata:', '  name: no-port', 'spec:', '  manifest:', '    image: flowforge/x:1', ''].join('\n')
    const parsed = parseSpecText(text)
    expect(parsed.errors).toEqual([expect.objectContaining({ field: 'spec.manifest.port', line: 6, column: 3 })])
  })

  test('reports unknown fields one by one, where they are', () => {
    const parsed = parseSpecText(pluginYaml('extra', { extraSpec: ['shape: round', 'colour: blue'] }))
    expect(parsed.errors).toEqual([
      { field: 'spec.shape', message: 'unknown field', line: 9, column: 3, document: 0 },
      { field: 'spec.colour', message: 'unknown field', line: 10, column: 3, document: 0 },
    ])
  })

  test('on the docker runtime (the default) replicas other than 1 are an error where they are; on swarm they are read', () => {
    const text = pluginYaml('scaled', { extraSpec: ['replicas: 3', 'placement: { constraints: [node.labels.zone==a] }'] })
    expect(parseSpecText(text).errors).toEqual([
      { field: 'spec.replicas', message: '3 replicas need RUNTIME=swarm; the docker runtime runs one container per plugin', line: 9, column: 3, document: 0 },
      { field: 'spec.placement', message: expect.stringContaining('placement needs RUNTIME=swarm'), line: 10, column: 3, document: 0 },
    ])
    const onSwarm = parseSpecText(text, { runtime: 'swarm' })
    expect(onSwarm.errors).toEqual([])
    expect(onSwarm.documents[0]!.document.spec).toMatchObject({ replicas: 3, placement: { constraints: ['node.labels.zone==a'] } })
  })

  test('rejects a privileged manifest field', () => {
    const parsed = parseSpecText(pluginYaml('root-please', { extraManifest: ['privileged: true'] }))
    expect(parsed.documents).toEqual([])
    expect(parsed.errors).toEqual([expect.objectContaining({ field: 'spec.manifest.privileged', line: 9, column: 5, message: expect.stringMatching(/not allowed/) })])
  })

  test('finds keys that contain dots, such as label keys', () => {
    const text = pluginYaml('labelled').replace('  name: labelled\n', '  name: labelled\n  labels:\n    example.com/team: payments\n    "bad key!": x\n')
    const parsed = parseSpecText(text)
    expect(parsed.errors).toEqual([expect.objectContaining({ field: 'metadata.labels.bad key!', line: 7, column: 5 })])
  })

  test('keeps the valid documents of a file whose other documents are broken, with document indexes', () => {
    const text = `${pluginYaml('good-one')}---\n${pluginYaml('bad-one', { port: '-1' })}---\nfoo: [1, 2\n`
    const parsed = parseSpecText(text)
    expect(parsed.documents.map((entry) => entry.document.metadata.name)).toEqual(['good-one'])
    expect(parsed.errors.map((error) => error.document)).toEqual([1, 2])
    // Document 1 starts on line 10 (after 9 lines and the ---): its port is on line 17.
    expect(parsed.errors[0]).toMatchObject({ field: 'spec.manifest.port', line: 17, column: 5 })
    expect(parsed.errors[1]).toMatchObject({ line: 20 })
  })

  test('reports the names of invalid documents when they can be read', () => {
    const text = `${pluginYaml('broken-port', { port: 'nope' })}---\napiVersion: flowforge.io/v1\nkind: Plugin\nmetadata: { name: half-written\nspec:\n`
    const parsed = parseSpecText(text)
    expect(parsed.documents).toEqual([])
    expect(parsed.names).toContain('broken-port')
    // A name that is not a plugin name names no plugin.
    expect(parseSpecText(pluginYaml('Not_A_Label')).names).toEqual([])
  })

  test('refuses a second document with the same name, keeping the first', () => {
    const parsed = parseSpecText(`${pluginYaml('twice')}---\n${pluginYaml('twice', { port: '9090' })}`)
    expect(parsed.documents.map((entry) => [entry.index, entry.document.spec.manifest.port])).toEqual([[0, 8080]])
    expect(parsed.names).toEqual(['twice'])
    expect(parsed.errors).toEqual([
      { field: 'metadata.name', document: 1, line: 13, column: 3, message: 'plugin "twice" is declared twice in this file (first in document 0)' },
    ])
  })

  test('refuses an alias bomb quickly with a clear error', () => {
    const levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for (let level = 1; level < 12; level++) levels.push(`a${level}: &a${level} [${Array(9).fill(`*a${level - 1}`).join(',')}]`)
    const bomb = ['apiVersion: flowforge.io/v1', 'kind: Plugin', 'metadata:', '  name: laughs', 'spec:', '  config:', ...levels.map((line) => `    ${line}`), ''].join('\n')
    const started = performance.now()
    const parsed = parseSpecText(bomb)
    expect(performance.now() - started).toBeLessThan(1_000)
    expect(parsed.documents).toEqual([])
    expect(parsed.names).toEqual(['laughs'])
    expect(parsed.errors).toEqual([{ message: expect.stringMatching(/alias/), line: 1, column: 1, document: 0 }])
  })

  test('a few aliases are fine', () => {
    const text = pluginYaml('aliased').replace('spec:\n', 'spec:\n  environment: &env { LOG_LEVEL: info }\n  config: { copy: *env }\n')
    const parsed = parseSpecText(text)
    expect(parsed.errors).toEqual([])
    expect(parsed.documents[0]!.document.spec.config).toEqual({ copy: { LOG_LEVEL: 'info' } })
  })

  test('reports a document that is not a mapping', () => {
    const parsed = parseSpecText('- just\n- a list\n')
    expect(parsed.errors).toEqual([expect.objectContaining({ field: '(document)', line: 1, column: 1, document: 0 })])
  })

  test('the size limit is 1 MiB', () => {
    expect(MAX_SPEC_FILE_BYTES).toBe(1_048_576)
  })
})
