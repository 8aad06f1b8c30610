/**
 * An ordered set of keys held in memory: the building block of every index of the
 * memory store (claim queues, due times, list orders).
 *
 * Layout: a list of sorted chunks plus the largest key of each chunk. A lookup is a
 * binary search over the chunk maxima, then one inside the chunk; an insert or delete
 * then moves at most one chunk's worth of references. Chunks split at twice the load
 * and merge with a neighbour below half of it, so their count stays about n / load.
 *
 * Numbers behind the default load of 512: at 1,000,000 keys there are about 1,000 to
 * 2,000 chunks, so a lookup is about 11 + 10 comparisons and an insert moves at most
 * 1,024 references (a `splice` of a few hundred nanoseconds); one million random
 * inserts take about a second on a 2-core machine, ascending inserts (the common case:
 * submission order) well under that. A balanced tree would allocate a node per key and
 * chase pointers; arrays are what V8 is fastest at.
 */

/** Orders two keys: negative when `a` sorts first, 0 when they are the same key, positive otherwise. */
export type Comparator<K> = (a: K, b: K) => number;

/** Tuning of a {@link SortedIndex}. */
export interface SortedIndexOptions {
  /**
   * Target number of keys per chunk: chunks split above twice this and merge below half.
   * @defaultValue 512
   */
  load?: number;
}

/** Where an iteration starts: at the first key `>= key`, or `> key` when `exclusive`. */
export interface LowerBound<K> {
  key: K;
  /** Start strictly after `key`. @defaultValue false */
  exclusive?: boolean;
}

/**
 * Orders strings by UTF-16 code units (the order of `<`), never by locale: ids and
 * ISO-8601 times sort the same way everywhere.
 */
export const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Orders tuples of numbers and strings element by element (numbers numerically,
 * strings by {@link compareStrings}); a shorter tuple that is a prefix of a longer one
 * sorts first. Comparing a number with a string at the same position sorts the number
 * first. Convenient for composite keys; a hand-written comparator is faster.
 */
export function compareTuples(
  a: readonly (string | number)[],
  b: readonly (string | number)[],
): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x < y ? -1 : 1;
    if (typeof x === 'string' && typeof y === 'string') return x < y ? -1 : 1;
    return typeof x === 'number' ? -1 : 1;
  }
  return a.length - b.length;
}

/**
 * An ordered set of keys under a comparator. Two keys the comparator calls equal are
 * the same key: inserting the second is a no-op, and deleting either removes the one
 * stored. Keys may carry extra fields the comparator ignores (a payload); the stored
 * key object is the one returned by iteration.
 *
 * Guarantees: insert, delete and has cost O(log n) comparisons plus moving at most
 * 2 × load references; `min`, `max` and `size` are O(1); iteration yields keys in
 * ascending order, O(1) per key. An iteration that outlives a mutation of the index
 * stays well defined: it resumes after the last key it yielded, in the index as it is
 * now (keys inserted behind it are not seen, keys deleted ahead of it are not yielded).
 * Keys must not be mutated in ways that change their order while stored.
 */
export class SortedIndex<K> {
  readonly #compare: Comparator<K>;
  readonly #load: number;
  /** Sorted, non-empty chunks; every key of chunk i sorts before every key of chunk i + 1. */
  #chunks: K[][] = [];
  /** The last (largest) key of each chunk. */
  #maxes: K[] = [];
  #size = 0;
  /** Bumped by every mutation, so live iterators know to re-seek. */
  #version = 0;

  /**
   * @param compare - the order of keys; must be a consistent total order.
   * @param options - chunk tuning (see {@link SortedIndexOptions}).
   * @throws RangeError when `load` is not an integer of at least 4.
   */
  constructor(compare: Comparator<K>, options: SortedIndexOptions = {}) {
    const load = options.load ?? 512;
    if (!Number.isInteger(load) || load < 4) {
      throw new RangeError(`SortedIndex load must be an integer >= 4, got ${load}`);
    }
    this.#compare = compare;
    this.#load = load;
  }

  /** Number of keys stored. */
  get size(): number {
    return this.#size;
  }

  /** The smallest key, or undefined when empty. */
  min(): K | undefined {
    return this.#chunks[0]?.[0];
  }

  /** The largest key, or undefined when empty. */
  max(): K | undefined {
    return this.#maxes[this.#maxes.length - 1];
  }

  /** True when a key equal to `key` is stored. */
  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  /** The stored key equal to `key` (with its payload), or undefined. */
  get(key: K): K | undefined {
    const ci = this.#chunkAtLeast(key);
    if (ci === this.#chunks.length) return undefined;
    const chunk = this.#chunks[ci]!;
    const pos = this.#lowerBound(chunk, key);
    const found = chunk[pos];
    return pos < chunk.length && this.#compare(found as K, key) === 0 ? found : undefined;
  }

  /** Adds `key`; returns false (and changes nothing) when an equal key is already stored. */
  insert(key: K): boolean {
    const chunks = this.#chunks;
    if (chunks.length === 0) {
      chunks.push([key]);
      this.#maxes.push(key);
      this.#size = 1;
      this.#version++;
      return true;
    }
    let ci = this.#chunkAtLeast(key);
    if (ci === chunks.length) ci--; // larger than every key: append to the last chunk
    const chunk = chunks[ci]!;
    const pos = this.#lowerBound(chunk, key);
    if (pos < chunk.length && this.#compare(chunk[pos]!, key) === 0) return false;
    if (pos === chunk.length) {
      chunk.push(key);
      this.#maxes[ci] = key;
    } else {
      chunk.splice(pos, 0, key);
    }
    this.#size++;
    this.#version++;
    if (chunk.length > 2 * this.#load) this.#split(ci);
    return true;
  }

  /** Removes the key equal to `key`; returns false when there was none. */
  delete(key: K): boolean {
    const chunks = this.#chunks;
    const ci = this.#chunkAtLeast(key);
    if (ci === chunks.length) return false;
    const chunk = chunks[ci]!;
    const pos = this.#lowerBound(chunk, key);
    if (pos === chunk.length || this.#compare(chunk[pos]!, key) !== 0) return false;
    if (pos === chunk.length - 1) chunk.pop();
    else chunk.splice(pos, 1);
    this.#size--;
    this.#version++;
    if (chunk.length === 0) {
      chunks.splice(ci, 1);
      this.#maxes.splice(ci, 1);
      return true;
    }
    if (pos === chunk.length) this.#maxes[ci] = chunk[chunk.length - 1]!;
    if (chunk.length < this.#load / 2 && chunks.length > 1) this.#mergeWithNeighbour(ci);
    return true;
  }

  /** Removes every key. */
  clear(): void {
    this.#chunks = [];
    this.#maxes = [];
    this.#size = 0;
    this.#version++;
  }

  /** Every key in ascending order. */
  [Symbol.iterator](): IterableIterator<K> {
    return this.values();
  }

  /**
   * Keys in ascending order, starting at `from` (every key when omitted): the first key
   * `>= from.key`, or `> from.key` when `from.exclusive`.
   */
  *values(from?: LowerBound<K>): IterableIterator<K> {
    let version = this.#version;
    let [ci, pos] = from === undefined ? [0, 0] : this.#seek(from.key, from.exclusive === true);
    while (ci < this.#chunks.length) {
      const chunk = this.#chunks[ci]!;
      if (pos >= chunk.length) {
        ci++;
        pos = 0;
        continue;
      }
      const key = chunk[pos]!;
      yield key;
      if (version !== this.#version) {
        // The index changed while the caller held this key: find our place again.
        version = this.#version;
        [ci, pos] = this.#seek(key, true);
      } else {
        pos++;
      }
    }
  }

  /** Position of the first key `>= key` (or `> key`), as [chunk, offset]; [chunks.length, 0] if none. */
  #seek(key: K, exclusive: boolean): [number, number] {
    const ci = exclusive ? this.#chunkAbove(key) : this.#chunkAtLeast(key);
    if (ci === this.#chunks.length) return [ci, 0];
    const chunk = this.#chunks[ci]!;
    return [ci, exclusive ? this.#upperBound(chunk, key) : this.#lowerBound(chunk, key)];
  }

  /** Index of the first chunk whose max is `>= key`, or chunks.length. */
  #chunkAtLeast(key: K): number {
    const maxes = this.#maxes;
    let lo = 0;
    let hi = maxes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compare(maxes[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Index of the first chunk whose max is `> key`, or chunks.length. */
  #chunkAbove(key: K): number {
    const maxes = this.#maxes;
    let lo = 0;
    let hi = maxes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compare(maxes[mid]!, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First offset in `chunk` whose key is `>= key`. */
  #lowerBound(chunk: K[], key: K): number {
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compare(chunk[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** First offset in `chunk` whose key is `> key`. */
  #upperBound(chunk: K[], key: K): number {
    let lo = 0;
    let hi = chunk.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#compare(chunk[mid]!, key) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Splits chunk `ci` in two halves. */
  #split(ci: number): void {
    const chunk = this.#chunks[ci]!;
    const right = chunk.splice(chunk.length >>> 1);
    this.#chunks.splice(ci + 1, 0, right);
    this.#maxes[ci] = chunk[chunk.length - 1]!;
    this.#maxes.splice(ci + 1, 0, right[right.length - 1]!);
  }

  /** Merges the under-full chunk `ci` with a neighbour, re-splitting if the result is too big. */
  #mergeWithNeighbour(ci: number): void {
    const left = ci > 0 ? ci - 1 : ci;
    const merged = this.#chunks[left]!.concat(this.#chunks[left + 1]!);
    this.#chunks.splice(left, 2, merged);
    this.#maxes.splice(left, 2, merged[merged.length - 1]!);
    if (merged.length > 2 * this.#load) this.#split(left);
  }
}
