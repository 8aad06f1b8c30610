/**
 * Retention over HTTP (issue 14): `POST /fleet/admin/prune` (and the client's
 * `prune`/`pruneAll`, which `fleet prune` uses), `FLEET_RETENTION` in the supervisor,
 * `fleet_pruned_jobs_total`, and a steady stream of jobs through a server on an SQLite
 * file whose database stops growing once the retention period is reached.
 *
 * The server is the standalone one (`buildServer`) in this process, on a temp SQLite
 * file, with a simulated clock: retention passes by advancing the clock, and sweeps run
 * when the test asks (`supervisor.sweepNow()`; the timed interval is an hour of real
 * time, so it never fires during a test). Requests are injected; nothing waits on time.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createFleetClient } from '../../adapters/client/index.js';
import { loadConfig } from '../../adapters/http/config.js';
import { buildServer, type FleetServer } from '../../adapters/http/server.js';
import {
  openSqliteStore,
  type SqliteStore,
  sqliteConnection,
} from '../../adapters/store/sqlite/index.js';
import { SimulatedClock } from '../../runtime/index.js';
import { injectFetch } from '../support/inject-fetch.js';
import { expectProblem } from './support.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const TOKENS = [
  { token: 'ops-token', productId: 'acme', roles: ['admin'], operator: true, subject: 'ops' },
  { token: 'admin-token', productId: 'acme', roles: ['admin'], subject: 'acme-admin' },
  { token: 'submit-token', productId: 'acme', roles: ['submitter'], subject: 'ci' },
  { token: 'factory-token', productId: 'acme', roles: ['factory'], subject: 'factories' },
];

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'fleet-http-retention-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const servers: FleetServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

interface Started {
  server: FleetServer;
  store: SqliteStore;
  clock: SimulatedClock;
  path: string;
  call(
    method: 'GET' | 'POST' | 'PATCH',
    url: string,
    token: string | null,
    body?: unknown,
  ): Promise<LightMyRequestResponse>;
}

async function start(retention: string): Promise<Started> {
  const dir = mkdtempSync(join(root, 'db-'));
  const path = join(dir, 'fleet.db');
  const store = openSqliteStore({ path });
  const clock = new SimulatedClock();
  const server = await buildServer(
    loadConfig({
      FLEET_TOKENS: JSON.stringify(TOKENS),
      FLEET_DB: path,
      FLEET_RETENTION: retention,
      // Sweeps run when the test asks; the timed one is an hour away in real time.
      FLEET_REAPER_INTERVAL_MS: String(HOUR),
      PORT: '0',
    }),
    { logger: false, store, clock },
  );
  servers.push(server);
  return {
    server,
    store,
    clock,
    path,
    call: (method, url, token, body) =>
      server.app.inject({
        method,
        url,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
        ...(body === undefined ? {} : { payload: body as object }),
      }),
  };
}

/** Submits `key`, claims it and moves it to shipped, all over HTTP; returns its id. */
async function shipOne(s: Started, key: string, deps: string[] = []): Promise<string> {
  const submitted = await s.call('POST', '/fleet/jobs', 'submit-token', {
    idempotencyKey: key,
    bodyMd: `# ${key}\n\nDo the work.`,
    ...(deps.length > 0 ? { deps } : {}),
  });
  expect(submitted.statusCode, submitted.body).toBe(201);
  const id = (submitted.json() as { id: string }).id;
  const claimed = await s.call('POST', '/fleet/claim', 'factory-token', { factoryId: 'f1' });
  expect(claimed.statusCode, claimed.body).toBe(200);
  const grant = claimed.json() as { job: { id: string }; lease: { leaseEpoch: number } };
  expect(grant.job.id).toBe(id);
  for (const to of ['building', 'review', 'testing', 'shipped']) {
    const moved = await s.call('PATCH', `/fleet/jobs/${id}`, 'factory-token', {
      factoryId: 'f1',
      leaseEpoch: grant.lease.leaseEpoch,
      to,
    });
    expect(moved.statusCode, moved.body).toBe(200);
  }
  return id;
}

/** Submits and cancels a job (it ends in dead_letter); returns its id. */
async function cancelOne(s: Started, key: string): Promise<string> {
  const submitted = await s.call('POST', '/fleet/jobs', 'submit-token', {
    idempotencyKey: key,
    bodyMd: `# ${key}`,
  });
  expect(submitted.statusCode, submitted.body).toBe(201);
  const id = (submitted.json() as { id: string }).id;
  const cancelled = await s.call('POST', `/fleet/jobs/${id}/cancel`, 'admin-token', {});
  expect(cancelled.statusCode, cancelled.body).toBe(200);
  return id;
}

const metric = async (s: Started, name: string): Promise<number> => {
  const text = (await s.call('GET', '/metrics', null)).body;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
};

const exists = async (s: Started, id: string) =>
  (await s.call('GET', `/fleet/jobs/${id}`, 'admin-token')).statusCode === 200;

describe('POST /fleet/admin/prune', () => {
  it('prunes jobs finished longer ago than olderThan; a dry run only counts; the metrics count them', async () => {
    const s = await start('0');
    const old = [await shipOne(s, 'old-1'), await cancelOne(s, 'old-2')];
    s.clock.advance(8 * DAY);
    const recent = await shipOne(s, 'recent');
    const dry = await s.call('POST', '/fleet/admin/prune', 'ops-token', {
      olderThan: '7d',
      dryRun: true,
    });
    expect(dry.statusCode, dry.body).toBe(200);
    expect(dry.json()).toMatchObject({
      dryRun: true,
      examined: 2,
      pruned: 2,
      prunedByStage: { shipped: 1, dead_letter: 1 },
      kept: 0,
      documents: { runs: 0, leases: 0, events: 0, artifacts: 0 },
      failedJobs: 0,
      nextCursor: null,
      before: new Date(s.clock.now() - 7 * DAY).toISOString(),
    });
    for (const id of old) expect(await exists(s, id)).toBe(true);
    expect(await metric(s, 'fleet_pruned_jobs_total')).toBe(0);

    const real = await s.call('POST', '/fleet/admin/prune', 'ops-token', { olderThan: '7d' });
    expect(real.statusCode, real.body).toBe(200);
    const body = real.json() as { pruned: number; documents: { runs: number; events: number } };
    expect(body.pruned).toBe(2);
    expect(body.documents.runs).toBe(1);
    expect(body.documents.events).toBeGreaterThanOrEqual(6);
    for (const id of old) expect(await exists(s, id)).toBe(false);
    expect(await exists(s, recent)).toBe(true);
    expect(await metric(s, 'fleet_pruned_jobs_total')).toBe(2);
  });

  it('needs operator admin credentials and a valid body: 401, 403, 400 with problem documents', async () => {
    const s = await start('0');
    const ok = { olderThan: '7d' };
    expectProblem(await s.call('POST', '/fleet/admin/prune', null, ok), 'UNAUTHENTICATED');
    expectProblem(await s.call('POST', '/fleet/admin/prune', 'submit-token', ok), 'FORBIDDEN');
    const admin = expectProblem(
      await s.call('POST', '/fleet/admin/prune', 'admin-token', ok),
      'FORBIDDEN',
    );
    expect(admin.detail).toContain('operator');
    for (const bad of [
      {},
      { olderThan: '7' },
      { olderThan: 'soon' },
      { olderThan: '7d', limit: 0 },
      { olderThan: '7d', dryRun: 'yes' },
      { olderThan: '7d', extra: 1 },
      { olderThan: '7d', cursor: 'not-a-cursor' },
    ]) {
      expectProblem(await s.call('POST', '/fleet/admin/prune', 'ops-token', bad), 'VALIDATION');
    }
  });

  it('the client’s pruneAll follows nextCursor until every finished job was looked at', async () => {
    const s = await start('0');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await shipOne(s, `paged-${i}`));
    s.clock.advance(2 * DAY);
    const client = createFleetClient({
      baseUrl: 'http://fleet.test',
      token: 'ops-token',
      fetch: injectFetch(s.server.app),
    });
    const passes: number[] = [];
    const total = await client.pruneAll({ olderThan: '1d', limit: 2 }, (p) =>
      passes.push(p.examined),
    );
    expect(passes).toEqual([2, 2, 1]);
    expect(total).toMatchObject({ examined: 5, pruned: 5, nextCursor: null });
    for (const id of ids) expect(await exists(s, id)).toBe(false);
  });
});

describe('FLEET_RETENTION', () => {
  it('the supervisor prunes what finished longer ago; a job named in deps is kept until its dependent is gone', async () => {
    const s = await start('2h');
    const dep = await shipOne(s, 'dep');
    s.clock.advance(1);
    const dependent = await shipOne(s, 'dependent', [dep]);
    s.clock.advance(HOUR);
    const fresh = await shipOne(s, 'fresh');
    s.clock.advance(HOUR + 1);
    const first = await s.server.supervisor.sweepNow();
    expect(first.phase).toBe('succeeded');
    expect(first.phase === 'succeeded' && first.report.pruned).toBe(1);
    expect(await exists(s, dependent)).toBe(false);
    expect(await exists(s, dep)).toBe(true);
    expect(await exists(s, fresh)).toBe(true);
    const second = await s.server.supervisor.sweepNow();
    expect(second.phase === 'succeeded' && second.report.pruned).toBe(1);
    expect(await exists(s, dep)).toBe(false);
    expect(await metric(s, 'fleet_pruned_jobs_total')).toBe(2);
    expect(await exists(s, fresh)).toBe(true);
  });
});

describe('a steady stream of jobs with a short retention', () => {
  it('levels off: after warm-up, row counts stay bounded and the database stops growing', async () => {
    // Every round (20 minutes of simulated time): 12 jobs shipped (every sixth
    // depending on the one before it) and 2 cancelled, over HTTP; then a sweep. With a
    // retention of one hour, the database holds about three rounds of jobs at any time.
    const s = await start('1h');
    const db = sqliteConnection(s.store);
    const rows = () => {
      const count = (t: string) => db.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number;
      return {
        jobs: count('jobs'),
        runs: count('runs'),
        leases: count('leases'),
        events: count('events'),
        deps: count('job_deps'),
      };
    };
    const pages = () => ({
      pageCount: db.pragma('page_count', { simple: true }) as number,
      freelist: db.pragma('freelist_count', { simple: true }) as number,
    });
    const ROUNDS = 12;
    const WARM_UP = 5;
    const samples: Array<{
      round: number;
      rows: ReturnType<typeof rows>;
      pageCount: number;
      freelist: number;
      fileBytes: number;
      pruned: number;
    }> = [];
    let submitted = 0;
    for (let round = 0; round < ROUNDS; round++) {
      let previous: string | null = null;
      for (let i = 0; i < 12; i++) {
        const deps = i % 6 === 5 && previous !== null ? [previous] : [];
        previous = await shipOne(s, `r${round}-j${i}`, deps);
        submitted++;
      }
      for (let i = 0; i < 2; i++) {
        await cancelOne(s, `r${round}-c${i}`);
        submitted++;
      }
      s.clock.advance(20 * 60_000);
      const outcome = await s.server.supervisor.sweepNow();
      expect(outcome.phase).toBe('succeeded');
      const pruned = outcome.phase === 'succeeded' ? outcome.report.pruned : 0;
      await s.store.sync();
      // Everything is committed: fold the WAL into the file, so its size is the database's.
      db.pragma('wal_checkpoint(TRUNCATE)');
      samples.push({ round, rows: rows(), ...pages(), fileBytes: statSync(s.path).size, pruned });
    }
    const table = samples.map(
      (x) =>
        `round ${x.round}: jobs ${x.rows.jobs}, events ${x.rows.events}, runs ${x.rows.runs}, pages ${x.pageCount} (free ${x.freelist}), file ${x.fileBytes} B, pruned ${x.pruned}`,
    );
    console.log(`steady stream, ${submitted} jobs submitted:\n${table.join('\n')}`);

    const warm = samples.slice(0, WARM_UP);
    const steady = samples.slice(WARM_UP);
    const why = table.join('\n');
    // Pruning keeps pace: every round after warm-up prunes what it adds (14 jobs), give
    // or take the two deps kept one sweep longer than their dependents.
    for (const x of steady) expect(x.pruned, why).toBeGreaterThanOrEqual(12);
    // Row counts are bounded: the rounds within the retention (three) plus the deps kept
    // one sweep longer than their dependents: never four rounds' worth. Round 0 is one
    // round's worth (nothing was pruned yet).
    const oneRound = samples[0]!.rows;
    for (const x of steady) {
      for (const k of ['jobs', 'runs', 'leases', 'events', 'deps'] as const) {
        expect(x.rows[k], `${k} in round ${x.round}\n${why}`).toBeLessThan(4 * oneRound[k]);
      }
    }
    expect(Math.max(...steady.map((x) => x.rows.jobs))).toBeLessThan(submitted / 3);
    // The database stops growing: freed pages are reused. Before pruning starts, each
    // round adds 20–40% to the file (without pruning, the steady rounds would more than
    // double it); after warm-up, the whole rest of the run adds less than 10% (page
    // layout varies a little with the random ids and etags).
    const growth = (samples[2]!.pageCount - samples[0]!.pageCount) / 2;
    expect(growth).toBeGreaterThan(0.1 * samples[2]!.pageCount);
    const base = warm.at(-1)!;
    for (const x of steady) {
      expect(x.pageCount, why).toBeLessThanOrEqual(Math.floor(base.pageCount * 1.1));
      expect(x.fileBytes, why).toBeLessThanOrEqual(Math.floor(base.fileBytes * 1.1));
    }
    // The file is the pages, nothing more (checkpointed): it levels off with them.
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    for (const x of samples) expect(x.fileBytes).toBe(x.pageCount * pageSize);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    // Some 950 requests, each committed durably: generous for a machine under load.
  }, 180_000);
});
