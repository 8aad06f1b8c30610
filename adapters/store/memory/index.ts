/**
 * The in-memory store adapter: `createMemoryStore()` implements the `DocumentStore`
 * port; `SortedIndex` is the ordered index it is built on.
 */
export { createMemoryStore } from './memory-store.js';
export {
  type Comparator,
  compareStrings,
  compareTuples,
  type LowerBound,
  SortedIndex,
  type SortedIndexOptions,
} from './sorted-index.js';
