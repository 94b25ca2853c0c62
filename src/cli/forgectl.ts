#!/usr/bin/env node
// forgectl's entry (`npm start`, the image, the package's bin): runs the CLI of dispatch.ts,
// from its one-file build (dist/bundle/, scripts/bundle-daemon.mjs) when that build is not
// older than this file, else module by module. The same code either way; the build saves a
// restarted daemon most of its start-up CPU on Node 20, where loading the ~570 modules of
// dist/src and node_modules one by one was about 1 s of the 1.0-1.2 s until /readyz
// (docs/benchmarks.md, section 7d). Older: dist/src was compiled again (tsc alone) after
// the bundle was made, so the bundle may be of other code and is not used. From the
// sources (tsx) there is no bundle next to this file.
import { statSync } from 'node:fs'
import nodeModule from 'node:module'
import { fileURLToPath } from 'node:url'

// Before the bundle or the modules load: Node 22.10+ reads their compiled code from its
// cache (src/util/compile-cache.ts says more; serve writes it once ready). Inline here: this
// entry imports nothing of dist/ before it has chosen between the bundle and the modules.
const withCompileCache = nodeModule as { enableCompileCache?: () => unknown; flushCompileCache?: () => void }
if (withCompileCache.flushCompileCache) withCompileCache.enableCompileCache?.()

const BUNDLE = new URL('../../bundle/forgectl.mjs', import.meta.url)

function bundleIsCurrent(): boolean {
  try {
    return statSync(BUNDLE).mtimeMs >= statSync(fileURLToPath(import.meta.url)).mtimeMs
  } catch {
    return false
  }
}

await import(bundleIsCurrent() ? BUNDLE.href : './dispatch.js')
