// npm run bench: every benchmark, each measuring its peer in the same run.
import { benchControllerScale } from './controller-scale.js'
import { benchStore } from './store.js'

const only = process.argv[2]
if (!only || only === 'store') await benchStore()
if (!only || only === 'controller') await benchControllerScale()
process.exit(0)
