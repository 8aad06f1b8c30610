import { defineConfig } from 'vitest/config';

/** Every project: two cores, so two workers; generous bounds for waits on processes. */
const common = {
  testTimeout: 30_000,
  hookTimeout: 30_000,
  maxWorkers: 2,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...common,
          name: 'fleet',
          include: ['test/**/*.test.ts'],
          exclude: ['test/package/**'],
          // dist/ compiled once (the CLI tests run the built `fleet`), and one Cosmos DB
          // test server (cosmosdb-server on 127.0.0.1) for every file.
          globalSetup: [
            'test/support/build-global-setup.ts',
            'test/support/cosmos-global-setup.ts',
          ],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...common,
          // The packed-tarball test compiles better-sqlite3 (a minute of a core): it runs
          // after the rest, so it never slows the timing-sensitive multi-process test.
          name: 'package',
          include: ['test/package/**/*.test.ts'],
          globalSetup: ['test/support/build-global-setup.ts'],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
