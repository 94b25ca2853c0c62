import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The README walk-through, the fault suite, the compose service end to end and the web
    // console in a browser have their own runs (npm run test:walkthrough, test:faults,
    // test:compose, test:browser).
    exclude: ['test/walkthrough/**', 'test/faults/**', 'test/compose/**', 'test/browser/**', 'test/swarm/**', 'node_modules/**'],
    // Database suites open their own engines; a fresh PGlite takes a few seconds.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: keep the number of PGlite instances (each ~300 MiB) in check.
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
})
