/**
 * The SQLite store's online backup (`store.backup(file)`): a consistent copy written
 * while the store keeps serving. Writes are made at every step of the copy (from its
 * progress callback, so they interleave with it deterministically, whatever the
 * machine's speed); the copy must still open, pass `integrity_check` and the store
 * invariants, and hold every write acknowledged before the backup began.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  openSqliteStore,
  PAGES_PER_STEP,
  type SqliteStore,
  sqliteConnection,
} from '../../adapters/store/sqlite/index.js';
import { Coordinator, FleetError, type JobDoc, SimulatedClock } from '../../runtime/index.js';
import { allJobs, storeViolations } from '../support/invariants.js';

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'fleet-backup-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const PRODUCT = 'acme';
/** 2 KB bodies: 600 jobs make a database of several backup steps. */
const BODY = 'b'.repeat(2000);

function fresh(name: string): { store: SqliteStore; coordinator: Coordinator; folder: string } {
  const folder = mkdtempSync(join(root, `${name}-`));
  const store = openSqliteStore({ path: join(folder, 'fleet.db') });
  const coordinator = new Coordinator({ store, clock: new SimulatedClock() });
  return { store, coordinator, folder };
}

async function submitMany(coordinator: Coordinator, prefix: string, n: number): Promise<JobDoc[]> {
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      coordinator.submit(PRODUCT, { idempotencyKey: `${prefix}-${i}`, bodyMd: BODY }),
    ),
  );
  return results.map((r) => {
    if (!r.ok) throw r.error;
    return r.value.job;
  });
}

const integrity = (store: SqliteStore): unknown =>
  sqliteConnection(store).pragma('integrity_check', { simple: true });

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

describe('SQLite online backup', () => {
  it('copies a store that keeps writing at every step: the copy opens, passes integrity_check and the invariants, and holds every job acknowledged before', async () => {
    const { store, coordinator, folder } = fresh('load');
    const copyPath = join(folder, 'copy.db');
    try {
      const before = await submitMany(coordinator, 'before', 1000);
      // Claims and moves too, so the copy holds runs, leases and events mid-lifecycle.
      for (let i = 0; i < 20; i++) {
        const c = await coordinator.claimNextJob(PRODUCT, { factoryId: `f${i}` });
        if (!c.ok || c.value === null) throw new Error('claim failed');
        const me = { factoryId: `f${i}`, leaseEpoch: c.value.lease.leaseEpoch };
        await coordinator.transition(PRODUCT, c.value.job.id, { ...me, to: 'building' });
      }
      const pages = sqliteConnection(store).pragma('page_count', { simple: true }) as number;
      expect(pages).toBeGreaterThan(3 * PAGES_PER_STEP);

      // At every step: more submits, a claim and a move, started from the progress
      // callback (inside the step), so each step finds writes made since the last one.
      const during: Promise<unknown>[] = [];
      let steps = 0;
      let n = 0;
      const result = await store.backup(copyPath, {
        onProgress: () => {
          steps++;
          during.push(submitMany(coordinator, `during-${n++}`, 5));
          during.push(
            (async () => {
              const c = await coordinator.claimNextJob(PRODUCT, { factoryId: `g${n}` });
              if (c.ok && c.value) {
                await coordinator.transition(PRODUCT, c.value.job.id, {
                  factoryId: `g${n}`,
                  leaseEpoch: c.value.lease.leaseEpoch,
                  to: 'building',
                });
              }
            })(),
          );
        },
      });
      await Promise.all(during);
      expect(steps).toBeGreaterThan(3);
      expect(result.pages).toBeGreaterThanOrEqual(pages);
      expect(result.bytes).toBe(statSync(copyPath).size);
      expect(statSync(copyPath).mode & 0o777).toBe(0o600);
      // Nothing else was left in the folder (no partial file, no journal).
      expect(readdirSync(folder).sort()).toEqual(['copy.db', 'fleet.db', 'fleet.db-wal']);

      // The original keeps working after the backup.
      await submitMany(coordinator, 'after', 3);
      await coordinator.drain();
      await store.close();

      const copy = openSqliteStore({ path: copyPath });
      try {
        expect(integrity(copy)).toBe('ok');
        expect(await storeViolations(copy)).toEqual([]);
        const jobs = new Map((await allJobs(copy)).map((j) => [j.id, j]));
        for (const job of before) expect(jobs.get(job.id)?.idempotencyKey).toBe(job.idempotencyKey);
        // Nothing acknowledged after the backup ended can be in it.
        expect([...jobs.values()].some((j) => j.idempotencyKey.startsWith('after-'))).toBe(false);
        // A restore is Fleet on the copy: it reads and serves the jobs.
        const restored = new Coordinator({ store: copy, clock: new SimulatedClock() });
        const read = await restored.getJob(PRODUCT, before[0]!.id);
        expect(read.ok && read.value.bodyMd).toBe(BODY);
        const claimed = await restored.claimNextJob(PRODUCT, { factoryId: 'restored' });
        expect(claimed.ok && claimed.value !== null).toBe(true);
        await restored.drain();
      } finally {
        await copy.close();
      }
    } finally {
      await store.close();
    }
  });

  it('refuses a file that exists and a folder that does not; the existing file is untouched', async () => {
    const { store, coordinator, folder } = fresh('refuse');
    try {
      await submitMany(coordinator, 'x', 3);
      const taken = join(folder, 'taken.db');
      writeFileSync(taken, 'mine');
      const exists = await rejection(store.backup(taken));
      expect(exists).toBeInstanceOf(FleetError);
      expect((exists as FleetError).code).toBe('ALREADY_EXISTS');
      expect(statSync(taken).size).toBe(4);
      const missing = await rejection(store.backup(join(folder, 'nope', 'copy.db')));
      expect((missing as FleetError).code).toBe('VALIDATION');
      expect(readdirSync(folder).sort()).toEqual(['fleet.db', 'fleet.db-wal', 'taken.db']);
    } finally {
      await coordinator.drain();
      await store.close();
    }
  });

  it('an abort stops the copy and leaves nothing behind; the store goes on', async () => {
    const { store, coordinator, folder } = fresh('abort');
    try {
      await submitMany(coordinator, 'x', 600);
      const controller = new AbortController();
      let steps = 0;
      const error = await rejection(
        store.backup(join(folder, 'copy.db'), {
          signal: controller.signal,
          onProgress: () => {
            if (++steps === 2) controller.abort(new Error('stop'));
          },
        }),
      );
      expect((error as Error).message).toBe('stop');
      expect(readdirSync(folder).sort()).toEqual(['fleet.db', 'fleet.db-wal']);
      await submitMany(coordinator, 'y', 2);
      expect(integrity(store)).toBe('ok');
    } finally {
      await coordinator.drain();
      await store.close();
    }
  });

  it('a store closed during the copy fails it with STORE_UNAVAILABLE and leaves nothing behind', async () => {
    const { store, coordinator, folder } = fresh('closed');
    await submitMany(coordinator, 'x', 600);
    await coordinator.drain();
    let closing: Promise<void> | undefined;
    const error = await rejection(
      store.backup(join(folder, 'copy.db'), {
        onProgress: () => {
          closing ??= store.close();
        },
      }),
    );
    await closing;
    expect((error as FleetError).code).toBe('STORE_UNAVAILABLE');
    expect(readdirSync(folder).sort()).toEqual(['fleet.db']);
  });
});
