/**
 * The store adapters every coordinator test runs on. A new adapter joins here and the
 * whole coordinator suite runs on it too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { cosmosTargets, openTestCosmosStore } from './cosmos-stores.js';

export interface StoreFactory {
  name: string;
  /** A fresh, empty store. */
  open(): Promise<DocumentStore>;
}

/**
 * A SQLite store on a new file in its own temporary folder (default durability, FULL),
 * removed when the store is closed. It offers what the real one offers, the
 * one-transaction `commit` and `commitMany` included, so the suites run the write path
 * production runs (the outbox path is compared with it in test/store/commit-paths.test.ts).
 */
async function openTempSqlite(): Promise<DocumentStore> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-test-'));
  const store = openSqliteStore({ path: join(dir, 'fleet.db') });
  return {
    kind: store.kind,
    jobs: store.jobs,
    runs: store.runs,
    leases: store.leases,
    factories: store.factories,
    profiles: store.profiles,
    events: store.events,
    artifacts: store.artifacts,
    commit: (c) => store.commit(c),
    commitMany: (c) => store.commitMany(c),
    mark: () => store.mark(),
    sync: (from?: number) => store.sync(from),
    ping: () => store.ping(),
    purgeJob: (productId: string, id: string, etag: string) => store.purgeJob(productId, id, etag),
    close: async () => {
      try {
        await store.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export const STORES: StoreFactory[] = [
  { name: 'memory', open: async () => createMemoryStore() },
  { name: 'sqlite', open: openTempSqlite },
  // A fresh database on the in-process cosmosdb-server (and on a real account when
  // COSMOS_ENDPOINT is set), dropped on close.
  ...cosmosTargets().map((target) => ({
    name: target.name,
    open: () => openTestCosmosStore(target),
  })),
];
