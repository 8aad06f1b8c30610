/**
 * Found by the model's failing-commit paths (test/model/commit-failure.ts, issue 10's
 * "the proof should have found these"): after a SQLite group commit failed, every read
 * (`getJob`, `listEvents`, the overview) threw STORE_UNAVAILABLE until some write
 * opened a new batch, because reads waited with `store.sync()`, which keeps rejecting
 * with the last batch's failure (so that a writer of that batch never acknowledges it).
 * A read has nothing of that batch to wait for: the rolled-back writes are gone, and
 * what it reads is committed. In a quiet fleet (no write coming) reads failed for good.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { SimulatedClock } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import { type CommitFaults, commitFaults } from '../sim/commit-fault.js';
import { must } from '../support/harness.js';

describe('a read after a failed SQLite group commit', () => {
  let dir: string;
  let inner: ReturnType<typeof openSqliteStore>;
  let faults: CommitFaults;
  let coord: Coordinator;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-read-commit-'));
    inner = openSqliteStore({ path: join(dir, 'fleet.db') });
    faults = commitFaults(inner, () => 1);
    coord = new Coordinator({ store: faults.store, clock: new SimulatedClock() });
  });

  afterEach(async () => {
    await coord.drain();
    await inner.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers from what is committed, without waiting for a write to come first', async () => {
    const { job } = must(await coord.submit('p', { idempotencyKey: 'k', bodyMd: 'x' }));
    faults.arm();
    await expect(coord.claimNextJob('p', { factoryId: 'f' })).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    // No write since: the claim was rolled back, and reads say so.
    expect(must(await coord.getJob('p', job.id)).stage).toBe('queued');
    const events = must(await coord.listEvents('p', job.id));
    expect(events.items.map((e) => e.type)).toEqual(['submitted']);
  });
});
