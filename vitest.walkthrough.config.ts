import { defineConfig } from 'vitest/config'

// npm run test:walkthrough: the README walk-through in a fresh clone (npm ci included), on
// its own because it is slow and starts a daemon on the default ports.
export default defineConfig({
  test: {
    include: ['test/walkthrough/**/*.test.ts'],
    testTimeout: 600_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/walkthrough.json' },
  },
})
