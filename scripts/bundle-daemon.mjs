#!/usr/bin/env node
// `npm run build`'s second step (and build-if-stale's): forgectl's module graph, as tsc
// wrote it to dist/src (from dist/src/cli/dispatch.js), in a few files: dist/bundle/
// forgectl.mjs, and one chunk per part a command loads when used (the daemon's is one).
// dist/src/cli/forgectl.js runs it instead of the ~570 modules of dist/src and node_modules
// it stands for, when it is not older than that file. Why: on Node 20, resolving, reading
// and compiling those modules one by one was about 1 s of CPU of the 1.0-1.2 s a restarted
// daemon took until /readyz (docs/benchmarks.md section 7d).
//
// The same code, not other code: esbuild only concatenates dist/ and the dependencies
// (no transpiling beyond that, target node20). Left outside: PGlite and its socket server
// (they load their WebAssembly and data files next to their own modules) and native
// add-ons. Two modules no daemon can reach are replaced by a stub that throws when called:
// docker-modem's ssh:// transport (src/config.ts refuses an ssh:// DOCKER_HOST) and
// dockerode's BuildKit session (for image builds; the daemon builds none). They were 0.1 s
// of CPU at every start (ssh2, gRPC, protobuf). And pg's test for Cloudflare Workers is
// answered "no" without its probe: it constructs a fetch Response, which loads Node's whole
// fetch implementation (undici) at start, 50-120 ms of CPU here.
// Plain JavaScript on purpose: build-if-stale.mjs runs it with no TypeScript at hand.
import { rmSync, renameSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const BUNDLE_DIR = path.join(root, 'dist', 'bundle')
const ENTRY = path.join(root, 'dist', 'src', 'cli', 'dispatch.js')

/** Resolved by the importer's package: only these two requires are stubbed, nothing of the same name elsewhere. */
const UNREACHABLE = [
  { request: './ssh', importer: `${path.sep}docker-modem${path.sep}`, why: 'ssh:// DOCKER_HOST is not supported (src/config.ts)' },
  { request: './session', importer: `${path.sep}dockerode${path.sep}`, why: 'the daemon builds no images (BuildKit session)' },
]

/** Exact replacements in a dependency's file; the build fails when the text is not there (a new version: look again). */
const PATCHES = [{ file: `${path.sep}pg${path.sep}lib${path.sep}stream.js`, from: 'if (isCloudflareRuntime()) {', to: 'if (false) { // not a Cloudflare Worker (scripts/bundle-daemon.mjs)' }]

const patchedModules = {
  name: 'patched-modules',
  setup(build) {
    build.onLoad({ filter: /[\\/]pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const patch = PATCHES.find((candidate) => args.path.endsWith(candidate.file))
      if (!patch) return undefined
      const text = await readFile(args.path, 'utf8')
      if (!text.includes(patch.from)) throw new Error(`${args.path}: ${JSON.stringify(patch.from)} not found; see PATCHES in scripts/bundle-daemon.mjs`)
      return { contents: text.replace(patch.from, patch.to), loader: 'js' }
    })
  },
}

const unreachableModules = {
  name: 'unreachable-modules',
  setup(build) {
    for (const { request, importer, why } of UNREACHABLE) {
      const filter = new RegExp(`^${request.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`)
      build.onResolve({ filter }, (args) => (args.importer.includes(importer) ? { path: request, namespace: 'unreachable', pluginData: why } : undefined))
    }
    build.onLoad({ filter: /.*/, namespace: 'unreachable' }, (args) => ({
      contents: `module.exports = function unreachable() { throw new Error(${JSON.stringify(`not in the bundled daemon: ${args.pluginData}`)}) }`,
      loader: 'js',
    }))
  },
}

/** Writes dist/bundle/ from dist/src; resolves to false when esbuild is not installed. */
export async function bundleDaemon() {
  let esbuild
  try {
    esbuild = await import(pathToFileURL(createRequire(path.join(root, 'package.json')).resolve('esbuild')).href)
  } catch {
    return false
  }
  // Written beside and renamed: a daemon starting meanwhile never reads half a file. Per
  // process: two builds at once (two prestarts) do not write into each other's files.
  const partial = `${BUNDLE_DIR}.partial-${process.pid}`
  rmSync(partial, { recursive: true, force: true })
  await esbuild.build({
    entryPoints: { forgectl: ENTRY },
    outdir: partial,
    outExtension: { '.js': '.mjs' },
    // A client command loads its own chunk, not the daemon's.
    splitting: true,
    chunkNames: 'chunk-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Smaller source, less to read and parse at every start; names are kept for stack traces.
    minifyWhitespace: true,
    minifySyntax: true,
    keepNames: true,
    sourcemap: false,
    external: ['@electric-sql/pglite', '@electric-sql/pglite/*', '@electric-sql/pglite-socket', '*.node', 'cpu-features'],
    plugins: [unreachableModules, patchedModules],
    logLevel: 'warning',
    // The CommonJS dependencies inside an ES module: require, __filename, __dirname as they expect.
    banner: {
      js: [
        "import { createRequire as __ffCreateRequire } from 'node:module'",
        "import { fileURLToPath as __ffFileURLToPath } from 'node:url'",
        "import { dirname as __ffDirname } from 'node:path'",
        'const require = __ffCreateRequire(import.meta.url)',
        'const __filename = __ffFileURLToPath(import.meta.url)',
        'const __dirname = __ffDirname(__filename)',
      ].join(';'),
    },
  })
  // The old one moved aside first (a rename onto a folder that has files fails); a build
  // that finished meanwhile made the same files.
  const old = `${BUNDLE_DIR}.old-${process.pid}`
  try {
    renameSync(BUNDLE_DIR, old)
  } catch (error) {
    if (error.code !== 'ENOENT') throw error
  }
  try {
    renameSync(partial, BUNDLE_DIR)
  } catch (error) {
    if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error
  }
  rmSync(old, { recursive: true, force: true })
  rmSync(partial, { recursive: true, force: true })
  return true
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const bundled = await bundleDaemon()
  if (!bundled) {
    console.error('esbuild is not installed: dist/bundle/ not written; forgectl loads dist/src module by module')
  }
}
