// The shape of src/ stays as layers.ts draws it: no import cycle among files, and no import
// (type-only ones included) from a folder to a higher one or a sibling of its layer.
import { describe, expect, test } from 'vitest'
import { packageRoot } from '../../src/config.js'
import { importCycles, layeringViolations, moduleSpecifiers, readImportGraph, type ImportGraph } from './import-graph.js'
import { LAYERS } from './layers.js'

describe('the import graph of src/', () => {
  const graph = readImportGraph(packageRoot())

  test('is read in full (so that the checks below are not vacuous)', () => {
    expect(graph.files).toContain('src/main.ts')
    expect(graph.edges.length).toBeGreaterThan(200)
    expect(graph.edges).toContainEqual({ from: 'src/api/deps.ts', to: 'src/db/plugin-store.ts' })
  })

  test('has no import cycles', () => {
    expect(importCycles(graph), 'import cycles among files of src/').toEqual([])
  })

  test('imports only downwards through the layers of test/architecture/layers.ts', () => {
    expect(layeringViolations(graph, LAYERS), 'imports that do not point to a lower layer').toEqual([])
  })
})

describe('the import-graph checks', () => {
  const layers = [['util'], ['db', 'runtime'], ['api']]
  const graph: ImportGraph = {
    files: ['src/util/clock.ts', 'src/db/store.ts', 'src/db/rows.ts', 'src/runtime/docker.ts', 'src/api/app.ts', 'src/api/deps.ts', 'src/api/routes.ts', 'src/web/page.ts'],
    edges: [
      { from: 'src/api/app.ts', to: 'src/db/store.ts' },
      { from: 'src/db/store.ts', to: 'src/db/rows.ts' },
      { from: 'src/db/rows.ts', to: 'src/util/clock.ts' },
      // Upwards, and closing a cycle through three folders.
      { from: 'src/util/clock.ts', to: 'src/api/app.ts' },
      // A longer way round the same cycle.
      { from: 'src/db/store.ts', to: 'src/api/routes.ts' },
      { from: 'src/api/routes.ts', to: 'src/api/app.ts' },
      // Sideways: two folders of one layer.
      { from: 'src/runtime/docker.ts', to: 'src/db/rows.ts' },
      { from: 'src/api/deps.ts', to: 'src/api/deps.ts' },
      { from: 'src/web/page.ts', to: 'src/api/app.ts' },
    ],
  }

  test('report a cycle as the path around it, and a file importing itself', () => {
    expect(importCycles(graph)).toEqual([
      'src/api/app.ts -> src/db/store.ts -> src/api/routes.ts -> src/api/app.ts (in the same tangle: src/db/rows.ts, src/util/clock.ts)',
      'src/api/deps.ts -> src/api/deps.ts',
    ])
  })

  test('report upward and sideways imports, and files of a folder that has no layer', () => {
    expect(layeringViolations(graph, layers)).toEqual([
      'src/web/page.ts (web, in no layer)',
      'src/util/clock.ts -> src/api/app.ts (util, layer 0 -> api, layer 2)',
      'src/db/store.ts -> src/api/routes.ts (db, layer 1 -> api, layer 2)',
      'src/runtime/docker.ts -> src/db/rows.ts (runtime, layer 1 -> db, layer 1)',
      'src/web/page.ts -> src/api/app.ts (web, in no layer -> api, layer 2)',
    ])
  })

  test('find nothing wrong in a graph that points down', () => {
    const downward: ImportGraph = { files: graph.files.slice(0, 5), edges: graph.edges.slice(0, 3) }
    expect(downward.edges.every(({ to }) => downward.files.includes(to))).toBe(true)
    expect(importCycles(downward)).toEqual([])
    expect(layeringViolations(downward, layers)).toEqual([])
  })

  test('read type-only imports, re-exports, dynamic and multi-line imports, but not comments or strings', () => {
    const text = [
      "import type { Plugin } from '../db/plugin-store.js'",
      "export type { SpecFileError } from './spec-file-error.js'",
      "export * from './plan.js'",
      'import {',
      '  first,',
      '  second,',
      "} from './split.js'",
      "// import { old } from './commented-out.js'",
      "const text = \"import { quoted } from './in-a-string.js'\"",
      "const loaded = await import('./commands/apply.js')",
      "import { z } from 'zod'",
    ].join('\n')
    expect(moduleSpecifiers('example.ts', text)).toEqual([
      '../db/plugin-store.js',
      './spec-file-error.js',
      './plan.js',
      './split.js',
      './commands/apply.js',
      'zod',
    ])
  })
})
