// The import graph of src/ and the two properties it must keep: no cycle among files, and
// every import points down the layers (layers.ts). Pure functions over a graph, so a test
// can feed them a small made-up graph and see them fail.
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import ts from 'typescript'

/** Paths relative to the repository root, with '/' separators: src/api/deps.ts. */
export interface ImportGraph {
  files: string[]
  /** `from` imports `to` (static, type-only, re-export or dynamic import). */
  edges: { from: string; to: string }[]
}

/**
 * Every module specifier a file names. TypeScript's own pre-processor reads them, so
 * `import type`, `export ... from`, `import('...')` and statements split over lines count,
 * and text inside comments or strings does not.
 */
export function moduleSpecifiers(fileName: string, text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((file) => file.fileName)
}

/** The graph of the .ts files under `folder` (relative to `root`); imports of packages are left out. */
export function readImportGraph(root: string, folder = 'src'): ImportGraph {
  const files = listTypeScriptFiles(path.join(root, folder)).map((file) => toPosix(path.relative(root, file)))
  const edges = files.flatMap((from) =>
    moduleSpecifiers(from, readFileSync(path.join(root, from), 'utf8'))
      .filter((specifier) => specifier.startsWith('.'))
      .map((specifier) => ({ from, to: resolveRelative(from, specifier) })),
  )
  return { files, edges }
}

function listTypeScriptFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(folder, entry.name)
    if (entry.isDirectory()) return listTypeScriptFiles(full)
    return entry.name.endsWith('.ts') ? [full] : []
  })
}

// NodeNext specifiers name the emitted .js file; the source is the .ts beside it.
function resolveRelative(from: string, specifier: string): string {
  const target = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier))
  return target.endsWith('.js') ? `${target.slice(0, -'.js'.length)}.ts` : target
}

function toPosix(file: string): string {
  return file.split(path.sep).join('/')
}

/** The layer unit of a file: its top folder under src/ (`api`), or its name for a root file (`main.ts`). */
export function unitOf(file: string): string {
  const parts = file.split('/')
  return parts.length > 2 ? parts[1]! : parts[parts.length - 1]!
}

/**
 * Imports that do not point down: to another unit of the same layer or a higher one, or
 * from or to a unit that has no layer. One line per import, e.g.
 * `src/spec/parse-yaml.ts -> src/api/deps.ts (spec, layer 4 -> api, layer 6)`.
 */
export function layeringViolations(graph: ImportGraph, layers: readonly (readonly string[])[]): string[] {
  const rank = new Map(layers.flatMap((units, index) => units.map((unit) => [unit, index] as const)))
  const describe = (unit: string): string => (rank.has(unit) ? `${unit}, layer ${rank.get(unit)}` : `${unit}, in no layer`)
  const unranked = graph.files.filter((file) => !rank.has(unitOf(file))).map((file) => `${file} (${describe(unitOf(file))})`)
  const upward = graph.edges
    .filter(({ from, to }) => to.startsWith('src/') && unitOf(from) !== unitOf(to))
    .filter(({ from, to }) => !((rank.get(unitOf(to)) ?? Infinity) < (rank.get(unitOf(from)) ?? -Infinity)))
    .map(({ from, to }) => `${from} -> ${to} (${describe(unitOf(from))} -> ${describe(unitOf(to))})`)
  return [...unranked, ...upward]
}

/**
 * One line per strongly connected group of files (Tarjan): a shortest path around it,
 * `a.ts -> b.ts -> a.ts`, then the group's other files, which every fix must also untangle.
 * A file importing itself is a cycle too.
 */
export function importCycles(graph: ImportGraph): string[] {
  const next = adjacency(graph)
  return stronglyConnected(graph.files, next)
    .filter((group) => group.length > 1 || next.get(group[0]!)?.includes(group[0]!))
    .map((group) => {
      const cycle = cyclePath(group, next)
      const others = group.filter((file) => !cycle.includes(file))
      return cycle.join(' -> ') + (others.length > 0 ? ` (in the same tangle: ${others.join(', ')})` : '')
    })
    .sort()
}

function adjacency(graph: ImportGraph): Map<string, string[]> {
  const next = new Map<string, string[]>(graph.files.map((file) => [file, []]))
  for (const { from, to } of graph.edges) next.get(from)?.push(to)
  return next
}

function stronglyConnected(files: string[], next: Map<string, string[]>): string[][] {
  const index = new Map<string, number>()
  const lowLink = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const groups: string[][] = []
  const visit = (file: string): void => {
    index.set(file, index.size)
    lowLink.set(file, index.get(file)!)
    stack.push(file)
    onStack.add(file)
    for (const target of next.get(file) ?? []) {
      if (!next.has(target)) continue
      if (!index.has(target)) {
        visit(target)
        lowLink.set(file, Math.min(lowLink.get(file)!, lowLink.get(target)!))
      } else if (onStack.has(target)) {
        lowLink.set(file, Math.min(lowLink.get(file)!, index.get(target)!))
      }
    }
    if (lowLink.get(file) !== index.get(file)) return
    const group: string[] = []
    let member: string
    do {
      member = stack.pop()!
      onStack.delete(member)
      group.push(member)
    } while (member !== file)
    groups.push(group.sort())
  }
  for (const file of files) if (!index.has(file)) visit(file)
  return groups
}

// A shortest way from the group's first file back to itself, staying inside the group.
function cyclePath(group: string[], next: Map<string, string[]>): string[] {
  const members = new Set(group)
  const start = group[0]!
  const cameFrom = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0) {
    const file = queue.shift()!
    for (const target of next.get(file) ?? []) {
      if (!members.has(target)) continue
      if (target === start) return [...pathTo(file, cameFrom, start), start]
      if (cameFrom.has(target)) continue
      cameFrom.set(target, file)
      queue.push(target)
    }
  }
  return group
}

function pathTo(file: string, cameFrom: Map<string, string>, start: string): string[] {
  const trail = [file]
  while (trail[0] !== start) trail.unshift(cameFrom.get(trail[0]!)!)
  return trail
}
