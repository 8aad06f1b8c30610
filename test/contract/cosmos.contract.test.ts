/**
 * The store contract suite on the Cosmos DB adapter: against the in-process
 * cosmosdb-server always, and against a real account when `COSMOS_ENDPOINT` is set
 * (the global setup prints which).
 */
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { cosmosTargets, openTestCosmosStore } from '../support/cosmos-stores.js';
import { describeStoreContract } from './store.contract.js';

for (const target of cosmosTargets()) {
  describeStoreContract(
    target.name,
    () => openTestCosmosStore(target),
    (store: DocumentStore) => store.close(),
  );
}
