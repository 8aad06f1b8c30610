/**
 * Issue 10, item 4: a failed SQLite group commit must not leave phantom events
 * reported. Events reach listeners and live projections only once the write that stored
 * them is durable; what a failed commit rolled back is never reported, and the real
 * event written later at the same `seq` is reported then.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteStore, sqliteConnection } from '../../adapters/store/sqlite/index.js';
import { SimulatedClock } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { rebuildAll } from '../../runtime/projections.js';
import type { EventDoc } from '../../runtime/types.js';
import { must } from '../support/harness.js';

describe('4: a failed SQLite group commit leaves phantom events reported', () => {
  let dir: string;
  let store: ReturnType<typeof openSqliteStore>;
  let armed = false;
  let coord: Coordinator;
  const reported: EventDoc[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-commit-'));
    store = openSqliteStore({ path: join(dir, 'fleet.db') });
    const db = sqliteConnection(store);
    // A deferred foreign key violated inside the batch makes its COMMIT fail.
    db.pragma('foreign_keys = ON');
    db.exec(`CREATE TABLE t_parent (id TEXT PRIMARY KEY);
      CREATE TABLE t_child (p TEXT REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED)`);
    const violate = db.prepare("INSERT INTO t_child VALUES ('missing')");
    const failing: DocumentStore = new Proxy(store, {
      get(target, prop) {
        if (prop === 'sync') {
          return () => {
            if (armed && db.inTransaction) {
              armed = false;
              violate.run();
            }
            return target.sync();
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    coord = new Coordinator({
      store: failing,
      clock: new SimulatedClock(),
      liveProjections: true,
    });
    reported.length = 0;
    coord.subscribe((e) => reported.push(e));
  });

  afterEach(async () => {
    await coord.drain();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('4: nothing of a rolled-back batch is reported; the retried change is reported once', async () => {
    armed = true;
    await expect(coord.submit('p', { idempotencyKey: 'k', bodyMd: 'x' })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    expect(reported).toEqual([]);
    expect(coord.projections?.snapshot()).toEqual(rebuildAll([]));

    const { job } = must(await coord.submit('p', { idempotencyKey: 'k', bodyMd: 'x' }));
    const g = must(await coord.claimNextJob('p', { factoryId: 'f' }));
    expect(g?.job.id).toBe(job.id);
    const me = { factoryId: 'f', leaseEpoch: g!.lease.leaseEpoch };
    const seen = reported.length;
    // A move whose commit fails: neither listeners nor projections hear of it.
    armed = true;
    await expect(coord.transition('p', job.id, { ...me, to: 'building' })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    expect(reported).toHaveLength(seen);
    expect((await store.jobs.read('p', job.id))?.stage).toBe('assigned');
    must(await coord.transition('p', job.id, { ...me, to: 'building' }));
    const stored = await store.events.list(job.id, { limit: 100 });
    expect(stored.map((e) => e.type)).toEqual(['submitted', 'claimed', 'stage_changed']);
    expect(reported).toEqual(stored);
    expect(coord.projections?.snapshot()).toEqual(rebuildAll(stored));
  });
});
