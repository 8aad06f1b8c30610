/**
 * The store adapters every coordinator test runs on. A new adapter joins here and the
 * whole coordinator suite runs on it too.
 */
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';

export interface StoreFactory {
  name: string;
  /** A fresh, empty store. */
  open(): Promise<DocumentStore>;
}

export const STORES: StoreFactory[] = [{ name: 'memory', open: async () => createMemoryStore() }];
