import { defineConfig } from 'vitest/config'

// npm run test:faults: the fault-injection suite. It kills managers, restarts and freezes
// dockerd, restarts and stops Postgres, so its files run one at a time, after `npm test`,
// on a machine where nothing else depends on those services (CI, or a developer's own box).
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 180_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/faults.json' },
  },
})
