/** The Azure Cosmos DB store adapter (for many Fleet processes on one database). */
export {
  type CosmosStore,
  type CosmosStoreOptions,
  type CosmosStoreStats,
  openCosmosStore,
} from './cosmos-store.js';
export { COSMOS_CONTAINERS, DERIVED_JOB_FIELDS, ORDERS } from './registration.js';
