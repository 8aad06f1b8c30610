/**
 * Issue 10, item 19: the etags the memory and SQLite stores make are unguessable per
 * document. Two documents written in turn: their etags must not reveal the order or
 * the number of writes (no counter, shared or not). Cosmos DB's etags are the server's
 * own and are not checked here.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import type { DocumentStore } from '../../runtime/index.js';
import { makeJob, uid } from '../support/docs.js';

const STORES: { name: string; open: () => DocumentStore }[] = [
  { name: 'memory', open: () => createMemoryStore() },
  { name: 'sqlite', open: () => openSqliteStore({ path: ':memory:' }) },
];

const WRITES = 200;

/** Length of the common prefix of two strings. */
function common(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

let open: DocumentStore | undefined;
afterEach(async () => {
  await open?.close();
  open = undefined;
});

describe.each(STORES)('19: etags on $name', ({ open: openStore }) => {
  it('19: etags of consecutive writes of two documents reveal no order and no count', async () => {
    const store = openStore();
    open = store;
    const productId = uid('product');
    let a = await store.jobs.create(makeJob({ productId, id: 'a' }));
    let b = await store.jobs.create(makeJob({ productId, id: 'b' }));
    const etags = [a._etag, b._etag];
    // A and B written in turn: B's writes are what a tenant reading A must not count.
    for (let i = 1; i < WRITES / 2; i++) {
      a = await store.jobs.replace({ ...a, version: i + 1 }, a._etag);
      b = await store.jobs.replace({ ...b, version: i + 1 }, b._etag);
      etags.push(a._etag, b._etag);
    }
    expect(new Set(etags).size).toBe(WRITES);
    for (const e of etags) expect(e).toMatch(/^"[^"]+"$/); // strong etags, as HTTP sends them

    // What varies from write to write: everything after the prefix all etags share.
    const shared = etags.reduce((n, e) => Math.min(n, common(etags[0]!, e)), etags[0]!.length);
    const varying = etags.map((e) => e.slice(shared, -1));
    // At least 72 bits' worth of base64url characters vary (a counter varies in 2 or 3).
    for (const v of varying) expect(v.length).toBeGreaterThanOrEqual(12);
    // Consecutive etags do not share leading characters beyond chance (1/64 per place)...
    let prefixes = 0;
    for (let i = 1; i < varying.length; i++) prefixes += common(varying[i - 1]!, varying[i]!);
    expect(prefixes / (varying.length - 1)).toBeLessThan(0.5);
    // ...and do not grow with the writes: about half of the steps go up, half down
    // (a counter, in any base, goes up at every step). 199 fair coin flips land
    // outside 50–150 with probability below 1e-12.
    let up = 0;
    for (let i = 1; i < etags.length; i++) if (etags[i]! > etags[i - 1]!) up++;
    expect(up).toBeGreaterThan(50);
    expect(up).toBeLessThan(150);
    // Still what a conditional write needs: the stale etag is refused.
    await expect(
      store.jobs.replace({ ...a, version: 999 }, etags[etags.length - 4]!),
    ).rejects.toMatchObject({
      code: 'PRECONDITION_FAILED',
    });
  });
});
