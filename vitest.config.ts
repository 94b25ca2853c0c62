import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The README walk-through has its own run (npm run test:walkthrough).
    exclude: ['test/walkthrough/**', 'node_modules/**'],
    // Database suites open their own engines; a fresh PGlite takes a few seconds.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: keep the number of PGlite instances (each ~300 MiB) in check.
    maxWorkers: 2,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
})
