import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // dist/ compiled once (the CLI tests run the built `fleet`), and one Cosmos DB test
    // server (cosmosdb-server on 127.0.0.1) for every file.
    globalSetup: ['test/support/build-global-setup.ts', 'test/support/cosmos-global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: keep workers to what the machine has.
    maxWorkers: 2,
  },
});
