/**
 * Entity tags for the stores that make their own (memory, SQLite): 96 random bits per
 * write, so an etag says nothing about any other write. A counter (what these stores
 * used before) let a tenant read off how many writes the whole store made between two
 * of its own reads, other tenants' included.
 *
 * Uniqueness: two versions of one document get the same etag with probability 2^-96
 * per pair, which is what a conditional write relies on (an etag never matches another
 * version). Nothing orders etags; callers only compare them for equality.
 *
 * Cost. The write path is hot (a claim makes five writes), so random bytes are drawn in
 * 4 KiB batches (one `randomFillSync` per 341 etags) and each etag is one base64url
 * encoding of 12 bytes of the batch. Measured here (2 cores, `npx tsx
 * bench/etag.bench.ts`): 77 ns per etag, against 26 ns for the counter (+51 ns per
 * write), 1,961 ns for a `randomBytes(12)` call per write and 2,073 ns for an
 * HMAC-SHA256 of a counter.
 */
import { randomFillSync } from 'node:crypto';

/** Random bytes per etag: 96 bits, 16 base64url characters. */
export const ETAG_RANDOM_BYTES = 12;

const POOL_BYTES = 4096 - (4096 % ETAG_RANDOM_BYTES);

/** Makes fresh, unguessable strong etags: `"<prefix><16 base64url characters>"`. */
export class RandomEtags {
  readonly #prefix: string;
  readonly #pool = Buffer.allocUnsafe(POOL_BYTES);
  #at = POOL_BYTES;

  /** `prefix` names the store kind in the etag (a debugging aid, the same for every write). */
  constructor(prefix: string) {
    this.#prefix = `"${prefix}`;
  }

  /** A new etag, unrelated to every earlier one. */
  next(): string {
    if (this.#at === POOL_BYTES) {
      randomFillSync(this.#pool);
      this.#at = 0;
    }
    const start = this.#at;
    this.#at = start + ETAG_RANDOM_BYTES;
    return `${this.#prefix}${this.#pool.toString('base64url', start, this.#at)}"`;
  }
}
