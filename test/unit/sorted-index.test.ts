/**
 * SortedIndex against a model: a plain sorted array. Randomized runs use a fixed seed
 * (printed in the title) so a failure replays exactly; tests assert results, never time.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStrings, compareTuples, SortedIndex } from '../../adapters/store/memory/index.js';
import { seededRandom as prng } from '../support/random.js';

const byNumber = (a: number, b: number): number => a - b;

/** The model: a sorted array of distinct numbers. */
class Model {
  readonly keys: number[] = [];
  #find(k: number): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid]! < k) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  insert(k: number): boolean {
    const i = this.#find(k);
    if (this.keys[i] === k) return false;
    this.keys.splice(i, 0, k);
    return true;
  }
  delete(k: number): boolean {
    const i = this.#find(k);
    if (this.keys[i] !== k) return false;
    this.keys.splice(i, 1);
    return true;
  }
  from(k: number, exclusive: boolean): number[] {
    return this.keys.filter((x) => (exclusive ? x > k : x >= k));
  }
}

function expectSame(index: SortedIndex<number>, model: Model): void {
  expect(index.size).toBe(model.keys.length);
  expect([...index]).toEqual(model.keys);
  expect(index.min()).toBe(model.keys[0]);
  expect(index.max()).toBe(model.keys[model.keys.length - 1]);
}

describe('SortedIndex', () => {
  it('starts empty', () => {
    const index = new SortedIndex(byNumber);
    expect(index.size).toBe(0);
    expect(index.min()).toBeUndefined();
    expect(index.max()).toBeUndefined();
    expect([...index]).toEqual([]);
    expect([...index.values({ key: 3 })]).toEqual([]);
    expect(index.delete(1)).toBe(false);
    expect(index.has(1)).toBe(false);
  });

  it('rejects a load below 4', () => {
    expect(() => new SortedIndex(byNumber, { load: 3 })).toThrow(RangeError);
    expect(() => new SortedIndex(byNumber, { load: 4.5 })).toThrow(RangeError);
  });

  it('keeps one key per comparator-equal key, with the first payload', () => {
    const index = new SortedIndex<{ k: number; payload: string }>((a, b) => a.k - b.k);
    expect(index.insert({ k: 1, payload: 'first' })).toBe(true);
    expect(index.insert({ k: 1, payload: 'second' })).toBe(false);
    expect(index.size).toBe(1);
    expect(index.get({ k: 1, payload: '' })?.payload).toBe('first');
    expect(index.delete({ k: 1, payload: 'anything' })).toBe(true);
    expect(index.size).toBe(0);
  });

  it('iterates from a lower bound, inclusive or exclusive', () => {
    const index = new SortedIndex(byNumber, { load: 4 });
    for (let i = 0; i < 100; i += 2) index.insert(i);
    expect([...index.values({ key: 10 })].slice(0, 3)).toEqual([10, 12, 14]);
    expect([...index.values({ key: 10, exclusive: true })].slice(0, 3)).toEqual([12, 14, 16]);
    expect([...index.values({ key: 11 })].slice(0, 2)).toEqual([12, 14]);
    expect([...index.values({ key: 11, exclusive: true })].slice(0, 2)).toEqual([12, 14]);
    expect([...index.values({ key: -5 })]).toHaveLength(50);
    expect([...index.values({ key: 98 })]).toEqual([98]);
    expect([...index.values({ key: 98, exclusive: true })]).toEqual([]);
    expect([...index.values({ key: 1000 })]).toEqual([]);
  });

  it('an iteration resumes after its last key when the index changes under it', () => {
    const index = new SortedIndex(byNumber, { load: 4 });
    for (let i = 0; i < 40; i++) index.insert(i);
    const seen: number[] = [];
    for (const k of index.values()) {
      seen.push(k);
      if (k === 5) {
        index.delete(5); // the current key
        index.delete(6); // just ahead
        index.insert(-1); // behind: not seen
        index.insert(6.5); // ahead: seen
        for (let j = 10; j < 30; j++) index.delete(j); // many chunks ahead
      }
    }
    expect(seen).toEqual([
      0,
      1,
      2,
      3,
      4,
      5,
      6.5,
      7,
      8,
      9,
      ...Array.from({ length: 10 }, (_, i) => 30 + i),
    ]);
  });

  for (const load of [4, 8, 64, 512]) {
    const seed = 0x5eed + load;
    it(`matches a sorted array over 20,000 random operations (load ${load}, seed ${seed})`, () => {
      const rand = prng(seed);
      const index = new SortedIndex(byNumber, { load });
      const model = new Model();
      const range = 3000;
      for (let step = 0; step < 20_000; step++) {
        const k = Math.floor(rand() * range);
        const r = rand();
        // Phases that grow, then shrink, then churn, so chunks split and merge.
        const insertBias = step < 8000 ? 0.8 : step < 14_000 ? 0.25 : 0.5;
        if (r < insertBias) expect(index.insert(k)).toBe(model.insert(k));
        else expect(index.delete(k)).toBe(model.delete(k));
        if (step % 97 === 0) expect(index.has(k)).toBe(model.keys.includes(k));
        if (step % 500 === 0) {
          expectSame(index, model);
          const bound = Math.floor(rand() * range);
          const exclusive = rand() < 0.5;
          expect([...index.values({ key: bound, exclusive })]).toEqual(
            model.from(bound, exclusive),
          );
        }
      }
      expectSame(index, model);
      for (const k of [...model.keys]) {
        expect(index.delete(k)).toBe(true);
        model.delete(k);
      }
      expectSame(index, model);
    });
  }

  it('matches a sorted array on arbitrary operation sequences (fast-check)', () => {
    const op = fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 60 }));
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 400 }),
        fc.integer({ min: 0, max: 60 }),
        (ops, bound) => {
          const index = new SortedIndex(byNumber, { load: 4 });
          const model = new Model();
          for (const [insert, k] of ops) {
            if (insert) expect(index.insert(k)).toBe(model.insert(k));
            else expect(index.delete(k)).toBe(model.delete(k));
          }
          expectSame(index, model);
          expect([...index.values({ key: bound })]).toEqual(model.from(bound, false));
          expect([...index.values({ key: bound, exclusive: true })]).toEqual(
            model.from(bound, true),
          );
        },
      ),
      { seed: 20_260_101, numRuns: 300 },
    );
  });

  it('holds 1,000,000 composite keys in order', () => {
    type Key = readonly [number, number, string];
    const compare = (a: Key, b: Key): number =>
      a[0] - b[0] || a[1] - b[1] || compareStrings(a[2], b[2]);
    const index = new SortedIndex<Key>(compare);
    const rand = prng(42);
    const n = 1_000_000;
    const keys: Key[] = [];
    for (let i = 0; i < n; i++)
      keys.push([Math.floor(rand() * 4), Math.floor(rand() * 1e9), `j${i}`]);
    for (const k of keys) index.insert(k);
    expect(index.size).toBe(n);
    // Plain counters: a million expect() calls would dominate the run.
    let prev: Key | undefined;
    let count = 0;
    let outOfOrder = 0;
    for (const k of index) {
      if (prev !== undefined && compare(prev, k) >= 0) outOfOrder++;
      prev = k;
      count++;
    }
    expect(count).toBe(n);
    expect(outOfOrder).toBe(0);
    // n distinct keys, strictly ascending: the iteration is the sorted key set.
    const sorted = [...index];
    const least = keys.reduce((m, k) => (compare(k, m) < 0 ? k : m));
    const greatest = keys.reduce((m, k) => (compare(k, m) > 0 ? k : m));
    expect(sorted[0]).toBe(least);
    expect(index.min()).toBe(least);
    expect(index.max()).toBe(greatest);
    // Range iteration from the middle.
    const mid = sorted[n >>> 1]!;
    const it = index.values({ key: mid, exclusive: true });
    expect(it.next().value).toBe(sorted[(n >>> 1) + 1]);
    // Delete every other key (by an equal, not identical, key).
    let missed = 0;
    for (let i = 0; i < n; i += 2) if (!index.delete([...sorted[i]!] as Key)) missed++;
    expect(missed).toBe(0);
    expect(index.size).toBe(n / 2);
    expect(index.min()).toBe(sorted[1]);
    expect(index.has(sorted[2]!)).toBe(false);
    expect(index.has(sorted[3]!)).toBe(true);
  }, 60_000);
});

describe('comparators', () => {
  it('compareStrings orders by code units, not locale', () => {
    expect(['b', 'a', 'B', 'é', 'e', ''].sort(compareStrings)).toEqual([
      '',
      'B',
      'a',
      'b',
      'e',
      'é',
    ]);
    expect(compareStrings('x', 'x')).toBe(0);
    expect(compareStrings('2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.001Z')).toBeLessThan(0);
  });

  it('compareTuples orders element by element, prefixes first', () => {
    expect(compareTuples([1, 'b'], [1, 'a'])).toBeGreaterThan(0);
    expect(compareTuples([1, 'a'], [2, 'a'])).toBeLessThan(0);
    expect(compareTuples([10], [9])).toBeGreaterThan(0);
    expect(compareTuples([1], [1, 'a'])).toBeLessThan(0);
    expect(compareTuples([1, 'a'], [1, 'a'])).toBe(0);
    expect(compareTuples([1], ['1'])).toBeLessThan(0);
    expect(compareTuples(['1'], [1])).toBeGreaterThan(0);
  });
});
