import { defineConfig } from 'vitest/config'

// npm run test:swarm: tests on a real 3-node Docker Swarm on this machine (issue 17), built
// and torn down by test/helpers/swarm-cluster.ts: dockerd processes in network namespaces,
// a bridge, a DOCKER-USER rule, a registry. Root only; files one at a time (each brings up
// a swarm of its own); after compose, before the fault suite, which restarts the host's dockerd.
export default defineConfig({
  test: {
    include: ['test/swarm/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 180_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/swarm.json' },
  },
})
