/**
 * The SQLite store across its own history and its commits: a database written by an
 * older schema version (a committed fixture, test/fixtures/sqlite-schema-v1.db) opens,
 * is migrated and keeps working; and `sync(mark)` tells a unit of work whose writes
 * spanned several group commits about a failure in any of them.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  openSqliteStore,
  type SqliteStore,
  sqliteConnection,
} from '../../adapters/store/sqlite/index.js';
import { SCHEMA_VERSION } from '../../adapters/store/sqlite/schema.js';
import { SimulatedClock } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import { isFleetError } from '../../runtime/errors.js';
import type { JobDoc } from '../../runtime/types.js';
import { jobViolations } from '../support/invariants.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/sqlite-schema-v1.db');
const dirs: string[] = [];
const stores: SqliteStore[] = [];

function copyOfFixture(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-upgrade-'));
  dirs.push(dir);
  const path = join(dir, 'fleet.db');
  copyFileSync(FIXTURE, path);
  return path;
}

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('a database written by SQLite schema version 1', () => {
  it('is migrated on open, and every job keeps its documents, history and queue place', async () => {
    const path = copyOfFixture();
    const raw = new Database(path, { readonly: true });
    const v1 = raw.prepare('SELECT value FROM meta').pluck().get();
    const before = raw.prepare('SELECT pk, id, json FROM jobs ORDER BY id').all() as Array<{
      pk: string;
      id: string;
      json: string;
    }>;
    const eventCount = raw.prepare('SELECT count(*) FROM events').pluck().get() as number;
    raw.close();
    expect(v1).toBe('1');
    expect(before).toHaveLength(8);

    const store = openSqliteStore({ path });
    stores.push(store);
    const db = sqliteConnection(store);
    expect(db.prepare('SELECT value FROM meta').pluck().get()).toBe(String(SCHEMA_VERSION));
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    // Every document is as it was, etag included; the new column follows the document.
    for (const row of before) {
      const job = (await store.jobs.read(row.pk, row.id)) as JobDoc & { _etag: string };
      expect(job).toEqual(JSON.parse(row.json));
      const [link] = await store.jobs.links(row.pk, [row.id]);
      expect(link).toMatchObject({ id: row.id, stage: job.stage, depsMode: job.depsMode });
      expect(await jobViolations(store, job)).toEqual([]);
    }
    expect(db.prepare('SELECT count(*) FROM events').pluck().get()).toBe(eventCount);

    // The fleet goes on: the queued job is claimable, the blocked one waits for its dep.
    const clock = new SimulatedClock(Date.parse('2026-01-02T00:00:00.000Z'));
    const fleet = new Coordinator({ store, clock });
    const queued = JSON.parse(
      before.find((r) => JSON.parse(r.json).idempotencyKey === 'queued')!.json,
    );
    const g = await fleet.claimNextJob('fixture', { factoryId: 'factory-2' });
    expect(g.ok && g.value?.job.id).toBe(queued.id);
    const events = await fleet.listEvents('fixture', queued.id);
    expect(events.ok && events.value.items.map((e) => [e.seq, e.type])).toEqual([
      [1, 'submitted'],
      [2, 'claimed'],
    ]);
    const blocked = before.find((r) => JSON.parse(r.json).idempotencyKey === 'blocked')!;
    const dep = before.find((r) => JSON.parse(r.json).idempotencyKey === 'dep-of-blocked')!;
    const gDep = await fleet.claimNextJob('fixture', { factoryId: 'gpu-1', capabilities: ['gpu'] });
    expect(gDep.ok && gDep.value?.job.id).toBe(dep.id);
    const me = { factoryId: 'gpu-1', leaseEpoch: gDep.ok ? gDep.value!.lease.leaseEpoch : -1 };
    for (const to of ['building', 'review', 'testing', 'shipped'] as const) {
      const r = await fleet.transition('fixture', dep.id, { ...me, to });
      expect(r.ok, to).toBe(true);
    }
    const unblocked = await fleet.getJob('fixture', blocked.id);
    expect(unblocked.ok && unblocked.value.stage).toBe('queued');
  });
});

describe('sync(mark): a unit of work whose writes spanned several commits', () => {
  it('rejects when a commit since the mark failed, even one that ended before the call', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-mark-'));
    dirs.push(dir);
    const store = openSqliteStore({ path: join(dir, 'fleet.db') });
    stores.push(store);
    const db = sqliteConnection(store);
    db.pragma('foreign_keys = ON');
    db.exec(`CREATE TABLE t_parent (id TEXT PRIMARY KEY);
      CREATE TABLE t_child (p TEXT REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED)`);
    const factory = (id: string) => ({
      id,
      productId: 'p',
      factoryId: id,
      descriptor: {},
      capabilities: [],
      health: 'ok' as const,
      load: 0,
      seatLimit: null,
      heartbeatIntervalMs: 10_000,
      lastHeartbeatAt: '2026-01-01T00:00:00.000Z',
      registeredAt: '2026-01-01T00:00:00.000Z',
    });

    const mark = store.mark();
    await store.factories.create(factory('a')); // batch 1, made to fail below
    db.prepare("INSERT INTO t_child VALUES ('missing')").run();
    // Its commit runs (and fails): wait for the batch's end, not for a number of turns.
    await store.sync().catch(() => undefined);
    await store.factories.create(factory('b')); // batch 2, fine
    const later = store.mark();
    let failure: unknown;
    await store.sync(mark).catch((e: unknown) => {
      failure = e;
    });
    expect(isFleetError(failure, 'STORE_UNAVAILABLE')).toBe(true);
    // The same writes seen from a mark after the failed batch: durable.
    await expect(store.sync(later)).resolves.toBeUndefined();
    expect(await store.factories.read('p', 'a')).toBeNull();
    expect((await store.factories.read('p', 'b'))?.id).toBe('b');
  });
});
