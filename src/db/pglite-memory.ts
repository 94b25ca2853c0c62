// How much memory the embedded engine takes. PGlite's defaults cost a daemon about 250 MiB
// of RSS before it manages a single plugin (docs/benchmarks.md, "Memory"):
//   - shared_buffers is Postgres' 128 MB, and PGlite touches all of it at start: 128 MiB
//     resident in the WASM heap, although the daemon's tables fit in a few MiB;
//   - V8 compiles PGlite's 9 MB of WASM with its baseline compiler (Liftoff) and then
//     recompiles every hot function with its optimizing one (TurboFan): that code and the
//     compiler's working memory add 30-70 MiB.
// At 16 MB the WASM heap still had about 30 MiB resident, 16 of them the buffers; at 8 MB
// an idle daemon with 200 plugins is about 10 MiB smaller (docs/benchmarks.md, 4b and 11).
// The daemon's tables do not fill 8 MB below a few thousand plugins; past that, pages come
// from the data folder through the OS page cache, which the controller scale measures.
// Neither changes what is stored or when it is flushed: durability is the same.
import { setFlagsFromString } from 'node:v8'
import { PGlite } from '@electric-sql/pglite'

/** shared_buffers of the embedded engine, in MiB, unless EMBEDDED_SHARED_BUFFERS_MB says otherwise. */
export const DEFAULT_SHARED_BUFFERS_MIB = 8

/** PGlite's own start parameters plus our memory settings (startParams replaces its list, so it is kept). */
export function pgliteStartParams(sharedBuffersMiB = DEFAULT_SHARED_BUFFERS_MIB): string[] {
  return [...PGlite.defaultStartParams, '-c', `shared_buffers=${sharedBuffersMiB}MB`]
}

/**
 * Liftoff only (optimize = false), or Liftoff then TurboFan for hot functions (V8's default).
 * A V8 flag is process-wide and read when WASM is compiled, so this runs before PGlite
 * compiles its module; PGlite compiles it once per process and reuses it, so the first open
 * decides. The only other WASM in the daemon is undici's HTTP parser (fetch), which is
 * small and runs as well on Liftoff.
 */
export function applyWasmTier(optimize: boolean): void {
  setFlagsFromString(optimize ? '--no-liftoff-only' : '--liftoff-only')
}
