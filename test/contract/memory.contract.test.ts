/** The store contract suite on the in-memory adapter. */
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { describeStoreContract } from './store.contract.js';

describeStoreContract('memory', async () => createMemoryStore());
