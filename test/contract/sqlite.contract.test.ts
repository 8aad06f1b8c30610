/** The store contract suite on the SQLite adapter: a fresh database file per opened store. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { openSqliteStore, type SqliteStore } from '../../adapters/store/sqlite/index.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { describeStoreContract } from './store.contract.js';

describeStoreContract(
  'sqlite',
  async () =>
    openSqliteStore({ path: join(mkdtempSync(join(tmpdir(), 'fleet-contract-')), 'fleet.db') }),
  async (store: DocumentStore) => {
    await store.close();
    rmSync(dirname((store as SqliteStore).path), { recursive: true, force: true });
  },
);
