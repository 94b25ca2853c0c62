import { defineConfig } from 'vitest/config'

// npm run test:compose: docker-compose.yml end to end, the README's compose commands on the
// real image (built FROM local stand-ins for node:24-slim and postgres:15, see
// test/compose/stand-ins/build.sh). On its own: it builds an image and runs a compose project.
export default defineConfig({
  test: {
    include: ['test/compose/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    // beforeAll builds the stand-ins (minutes on a fresh machine) and afterAll tears the project down.
    hookTimeout: 900_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/compose.json' },
  },
})
