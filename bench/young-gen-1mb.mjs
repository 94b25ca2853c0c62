// Preloaded by the footprint bench's young-gen-1mb rows (node --import): V8 keeps the young
// generation's semi-spaces at their initial 1 MiB instead of letting them grow to 16 MiB
// each under a burst of allocation. Set at runtime, before the daemon's modules load.
import { setFlagsFromString } from 'node:v8'
setFlagsFromString('--semi-space-growth-factor=1')
