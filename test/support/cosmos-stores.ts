/**
 * Cosmos DB stores for tests: each `open()` makes a fresh database (dropped on close)
 * on the in-process test server, or, when `COSMOS_ENDPOINT` is set, on that account too.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { type CosmosStore, openCosmosStore } from '../../adapters/store/cosmos/index.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { TEST_COSMOS_KEY } from './cosmos-server.js';

export interface CosmosTarget {
  name: string;
  endpoint: string;
  key: string;
  allowSelfSignedCertificate: boolean;
}

/** Where the Cosmos suites run: the test server always, a real account when configured. */
export function cosmosTargets(): CosmosTarget[] {
  const targets: CosmosTarget[] = [
    {
      name: 'cosmos',
      endpoint: inject('cosmosEndpoint'),
      key: TEST_COSMOS_KEY,
      allowSelfSignedCertificate: true,
    },
  ];
  const endpoint = process.env.COSMOS_ENDPOINT;
  if (endpoint) {
    targets.push({
      name: 'cosmos-account',
      endpoint,
      key: process.env.COSMOS_KEY ?? '',
      allowSelfSignedCertificate: false,
    });
  }
  return targets;
}

/** A fresh database on the target; closing the store drops it. */
export async function openTestCosmosStore(target: CosmosTarget): Promise<CosmosStore> {
  const store = await openCosmosStore({
    endpoint: target.endpoint,
    key: target.key,
    database: `fleet_test_${randomBytes(6).toString('hex')}`,
    allowSelfSignedCertificate: target.allowSelfSignedCertificate,
  });
  const close = store.close.bind(store);
  return Object.assign(store, {
    close: async () => {
      try {
        await store.dropDatabase();
      } finally {
        await close();
      }
    },
  }) satisfies DocumentStore;
}
