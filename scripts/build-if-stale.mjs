#!/usr/bin/env node
// `prestart` and `premigrate`: compile src/ to dist/ when dist/ is missing or older than the
// sources, so that `npm start` always runs the compiled daemon of the sources at hand:
//   - a fresh clone (`npm ci && npm start`) is built once (about 10 s);
//   - later starts cost a look at file times (a few ms) unless a source changed;
//   - without TypeScript (`npm ci --omit=dev`) a present dist/ is used as it is (with a
//     warning if it looks older than src/), and a missing one is an error that says why;
//   - type errors do not stop the start, as they did not under tsx: tsc writes dist/ anyway
//     (its exit code 2), the errors are printed and dist/ is started. `npm run build` (and so
//     the image build) and `npm run typecheck` fail on them.
//   - then the one-file build of dist/ (scripts/bundle-daemon.mjs, what forgectl runs when it
//     is current) is made again when it is older than dist/, if esbuild is installed.
// Plain JavaScript on purpose: it runs where no devDependency is installed.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const entry = path.join(root, 'dist', 'src', 'cli', 'forgectl.js')
/** Files that change every output, besides the sources. */
const CONFIG_FILES = ['tsconfig.json', 'tsconfig.build.json']

/** Why dist/ must be built again, or undefined when it is up to date. */
function staleness() {
  if (!existsSync(entry)) return 'dist/ has not been built'
  const outputs = []
  let oldestOutput = Infinity
  for (const file of readdirSync(path.join(root, 'src'), { recursive: true })) {
    if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue
    const source = path.join(root, 'src', file)
    const output = path.join(root, 'dist', 'src', file.replace(/\.ts$/, '.js'))
    if (!existsSync(output)) return `${path.join('src', file)} has no compiled output`
    const outputTime = statSync(output).mtimeMs
    if (statSync(source).mtimeMs > outputTime) return `${path.join('src', file)} changed since the last build`
    outputs.push(output)
    oldestOutput = Math.min(oldestOutput, outputTime)
  }
  for (const file of CONFIG_FILES) {
    const config = path.join(root, file)
    if (existsSync(config) && statSync(config).mtimeMs > oldestOutput) return `${file} changed since the last build`
  }
  return undefined
}

const reason = staleness()
if (reason !== undefined) {
  let tsc
  try {
    tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc')
  } catch {
    tsc = undefined
  }
  if (tsc === undefined) {
    if (!existsSync(entry)) {
      console.error(
        `${reason}, and TypeScript is not installed (npm ci --omit=dev?): ` +
          'build it where the dev dependencies are (npm ci && npm run build), or install them',
      )
      process.exit(1)
    }
    console.error(`warning: ${reason}, but TypeScript is not installed: starting dist/ as it is`)
  } else {
    console.error(`${reason}: compiling (npm run build)`)
    const built = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' })
    // 2: diagnostics reported, outputs written; 1: outputs skipped.
    if (built.status === 2 && existsSync(entry)) {
      console.error('warning: the sources have type errors (above); dist/ was written and is started anyway (npm run typecheck lists them)')
    } else if (built.status !== 0) {
      process.exit(built.status ?? 1)
    }
  }
}

/** dist/bundle/ is made from dist/src: again whenever it is older than the entry tsc wrote. */
function bundleIsStale() {
  const bundle = path.join(root, 'dist', 'bundle', 'forgectl.mjs')
  return existsSync(entry) && (!existsSync(bundle) || statSync(bundle).mtimeMs < statSync(entry).mtimeMs)
}

/** scripts/bundle-daemon.mjs's bundleDaemon, or undefined where that script is not (a checkout of another layout). */
async function bundler() {
  const script = path.join(root, 'scripts', 'bundle-daemon.mjs')
  if (!existsSync(script)) return undefined
  return (await import(pathToFileURL(script).href)).bundleDaemon
}

const bundleDaemon = bundleIsStale() ? await bundler() : undefined
if (bundleDaemon && !(await bundleDaemon())) {
  console.error('note: esbuild is not installed: forgectl runs dist/src module by module (a slower start), not dist/bundle/')
}
