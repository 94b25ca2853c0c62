// npm run bench: every benchmark, each measuring its peer in the same run.
import { benchStore } from './store.js'

await benchStore()
process.exit(0)
