/**
 * The store-level model-based suite, defined once and instantiated per store by the test
 * files (split in two files so vitest runs them on both cores).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { STORES, type StoreFactory } from '../support/stores.js';
import { formatViolation, pairId, type RunOptions, runPaths } from './check.js';
import { makePlan, sampleOf } from './plan.js';

/** Stores the whole plan runs on; any other store (Cosmos DB) runs the sample. */
export const FULL_STORES = new Set(['memory', 'sqlite']);

/**
 * SQLite as in STORES (a new file in its own temporary folder), but with
 * `synchronous: 'NORMAL'`: the same adapter code (statements, indexes, group commit)
 * without an fsync per commit, which is not what this suite tests and which made it
 * 40% slower (a fresh store per path, about 10,000 commits).
 */
const sqliteNormal: StoreFactory = {
  name: 'sqlite',
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-model-'));
    const store = openSqliteStore({ path: join(dir, 'fleet.db'), synchronous: 'NORMAL' });
    const close = store.close.bind(store);
    return Object.assign(store, {
      close: async () => {
        try {
          await close();
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    });
  },
};

/** The stores the model runs on: every store of STORES (SQLite without fsync). */
export const MODEL_STORES: StoreFactory[] = STORES.map((s) =>
  s.name === 'sqlite' ? sqliteNormal : s,
);

export function defineStoreSuites(include: (name: string) => boolean): void {
  for (const factory of MODEL_STORES.filter((s) => include(s.name))) defineStoreSuite(factory);
}

function defineStoreSuite(factory: StoreFactory): void {
  const full = FULL_STORES.has(factory.name);
  describe(`job model on the coordinator (${factory.name}${full ? '' : ', sample'})`, () => {
    it(full
      ? 'every generated path: the stored job equals the model after every step; every (state, event) pair of the adjacency map behaves as the model says'
      : 'a sample of paths taking every (stage, event type) transition, and every rejected event in one state per stage', async () => {
      const plan = makePlan();
      const sample = full ? null : sampleOf(plan);
      const paths = sample ? sample.paths : plan.driven;
      const opts: RunOptions = {
        factory,
        model: plan.model,
        rejectedByKey: sample ? sample.rejectedByKey : plan.rejectedByKey,
        visited: new Set(),
        checked: new Set(),
      };
      const started = performance.now();
      const violations = await runPaths(paths, opts);
      const steps = paths.reduce((n, p) => n + p.steps.length, 0);
      console.log(
        `[model] ${factory.name}: ${paths.length} paths, ${steps} steps, ${opts.checked.size} (state, event) pairs checked in ${Math.round(performance.now() - started)} ms`,
      );
      expect(violations.map(formatViolation)).toEqual([]);
      if (full) {
        const missing = plan.pairs
          .map((p) => pairId(p.key, p.case.label))
          .filter((id) => !opts.checked.has(id));
        expect(missing).toEqual([]);
      }
    }, 180_000);
  });
}
