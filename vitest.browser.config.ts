import { defineConfig } from 'vitest/config'

// npm run test:browser: the web console in Debian's chromium (playwright-core), against the
// daemon on the real Docker engine. Its own run: it starts a browser and plugin containers.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/browser.json' },
  },
})
