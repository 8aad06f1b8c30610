import { defineConfig } from 'vitest/config';

/** Every project: two cores, so two workers. */
const common = {
  testTimeout: 30_000,
  hookTimeout: 30_000,
  maxWorkers: 2,
};

/**
 * Two groups, one after the other. First the in-process suites and the multi-process
 * Cosmos DB test; then the tests that start many processes (`fleet serve`, `fleet
 * agent`, the CLI, `npm pack` and an offline install that compiles better-sqlite3),
 * whose load would otherwise stretch the first group (no test depends on timing; this
 * only keeps `npm test` short).
 */
const PROCESS_TESTS = ['test/agent/**', 'test/cli/**', 'test/crash-http/**', 'test/package/**'];

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...common,
          name: 'fleet',
          include: ['test/**/*.test.ts'],
          exclude: PROCESS_TESTS,
          // dist/ compiled once (tests run the built `fleet`), and one Cosmos DB test
          // server (cosmosdb-server on 127.0.0.1) for every file.
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
          name: 'processes',
          include: PROCESS_TESTS.map((p) => `${p}/*.test.ts`),
          globalSetup: ['test/support/build-global-setup.ts'],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
