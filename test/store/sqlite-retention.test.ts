/**
 * Retention on the SQLite store (issue 14): the finished-jobs query reads only the
 * partial index `jobs_finished` (schema v5), never the table and without a sort step;
 * a database of schema version 1 (the committed fixture) gets that index on open, and
 * its finished jobs are listed and pruned like any others.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  openSqliteStore,
  type SqliteStore,
  sqliteConnection,
} from '../../adapters/store/sqlite/index.js';
import { SCHEMA_VERSION } from '../../adapters/store/sqlite/schema.js';
import { JOB_QUERIES } from '../../adapters/store/sqlite/sqlite-store.js';
import { Coordinator, SimulatedClock } from '../../runtime/index.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/sqlite-schema-v1.db');
const dirs: string[] = [];
const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(copyOf?: string): SqliteStore {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-retention-'));
  dirs.push(dir);
  const path = join(dir, 'fleet.db');
  if (copyOf) copyFileSync(copyOf, path);
  const store = openSqliteStore({ path });
  stores.push(store);
  return store;
}

describe('SQLite retention', () => {
  it('lists finished jobs from the covering partial index jobs_finished, without a sort', () => {
    const db = sqliteConnection(open());
    for (const sql of [JOB_QUERIES.finished, JOB_QUERIES.finishedAfter]) {
      const n = (sql.match(/\?/g) ?? []).length;
      const plan = (
        db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...Array(n).fill(null)) as {
          detail: string;
        }[]
      )
        .map((r) => r.detail)
        .join('\n');
      expect(plan).toMatch(/^SEARCH jobs USING COVERING INDEX jobs_finished /);
      expect(plan).not.toContain('TEMP B-TREE');
    }
  });

  it('a schema v1 database gets the index on open; its finished jobs are listed and pruned', async () => {
    const store = open(FIXTURE);
    const db = sqliteConnection(store);
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(5);
    expect(db.prepare('SELECT value FROM meta').pluck().get()).toBe(String(SCHEMA_VERSION));
    expect(
      db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'jobs_finished'").pluck().get(),
    ).toBe(1);
    const finished = await store.jobs.finishedBefore({
      before: '2027-01-01T00:00:00.000Z',
      limit: 100,
    });
    expect(finished.map((j) => [j.stage, j.finishedAt])).toEqual([
      ['shipped', '2026-01-01T00:00:08.000Z'],
      ['dead_letter', '2026-01-01T00:00:12.000Z'],
    ]);
    // Pruned like any other finished job (unless a live job still names it).
    const clock = new SimulatedClock(Date.parse('2026-03-01T00:00:00.000Z'));
    const fleet = new Coordinator({ store, clock, retentionMs: 86_400_000 });
    const r = await fleet.sweep();
    const left = await store.jobs.finishedBefore({
      before: '2027-01-01T00:00:00.000Z',
      limit: 100,
    });
    expect(r.pruned).toBeGreaterThanOrEqual(1);
    expect(r.pruned + left.length).toBe(2);
    for (const j of left) {
      expect((await store.jobs.dependents(j.productId, j.id)).length).toBeGreaterThan(0);
    }
    for (const j of finished.filter((f) => !left.some((l) => l.id === f.id))) {
      expect(await store.jobs.read(j.productId, j.id)).toBeNull();
      expect(await store.events.list(j.id, { limit: 10 })).toEqual([]);
    }
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  });
});
