// Node 22.10+ (the image runs Node 24) keeps V8's compiled code of the modules on disk
// (NODE_COMPILE_CACHE, else node-compile-cache in the temporary folder) and reads it back at
// the next start instead of compiling the bundle again; Node 20 has none, and both calls do
// nothing there. A folder that cannot be written only leaves the cache off: Node reports it,
// never throws. src/cli/forgectl.ts turns the cache on. docs/benchmarks.md, section 7e: a
// restarted daemon's way to /readyz.
import nodeModule from 'node:module'

const withCompileCache = nodeModule as { enableCompileCache?: () => unknown; flushCompileCache?: () => void }

/**
 * Writes what was compiled so far. Node writes the cache when the process exits, which a
 * daemon killed (-9, out of memory) never does: the daemon also writes it once it is ready,
 * when what a start runs has been compiled.
 */
export function flushCompileCache(): void {
  try {
    withCompileCache.flushCompileCache?.()
  } catch {
    // Only a faster next start is lost.
  }
}
