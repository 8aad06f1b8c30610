/**
 * Bulk submission (issue 13, goal 4): `Coordinator.submitMany` answers each item on its
 * own (created / existing / its problem), decides items in order (an item may depend on
 * an earlier one), is idempotent as a whole, and writes the new jobs as one unit: a
 * store failure leaves none of them and reports nothing. Run on every store, and on
 * SQLite both with its one-transaction path (`commitMany`) and without it (the outbox
 * path Cosmos DB takes).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { openSqliteStore, sqliteConnection } from '../../adapters/store/sqlite/index.js';
import { jobIdFor } from '../../runtime/canonical.js';
import { Coordinator } from '../../runtime/coordinator.js';
import type { DocumentStore, JobCommit } from '../../runtime/document-store.port.js';
import type { EventDoc, SubmitManyItem } from '../../runtime/types.js';
import { faulty } from '../support/faulty-store.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES, type StoreFactory } from '../support/stores.js';

/** The SQLite store itself (with `commit` and `commitMany`) on a temporary file. */
function openSqliteTemp(): ReturnType<typeof openSqliteStore> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bulk-'));
  const store = openSqliteStore({ path: join(dir, 'fleet.db') });
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
}

/** The store's port, its methods bound to it, with `overrides` on top. */
function delegate<O extends object>(inner: DocumentStore, overrides: O): DocumentStore & O {
  const port: DocumentStore = {
    kind: inner.kind,
    jobs: inner.jobs,
    runs: inner.runs,
    leases: inner.leases,
    factories: inner.factories,
    profiles: inner.profiles,
    events: inner.events,
    artifacts: inner.artifacts,
    mark: () => inner.mark(),
    sync: (from?: number) => inner.sync(from),
    ping: () => inner.ping(),
    close: () => inner.close(),
  };
  if (inner.commit) port.commit = inner.commit.bind(inner);
  if (inner.commitMany) port.commitMany = inner.commitMany.bind(inner);
  return Object.assign(port, overrides);
}

/** How a test breaks the store's write of a batch once. */
type Breaker = (store: DocumentStore) => DocumentStore & { arm(): void };

/**
 * A store whose next `commitMany` fails on its last commit, inside the store: that
 * commit claims to replace a job that does not exist, so the store refuses it after
 * (SQLite: while) applying the commits before it — all of which must be undone.
 */
const failLastCommit: Breaker = (inner) => {
  let armed = false;
  const real = inner.commitMany?.bind(inner);
  if (real === undefined) throw new Error('store without commitMany');
  return delegate(inner, {
    commitMany: (commits: readonly JobCommit[]) => {
      if (!armed || commits.length === 0) return real(commits);
      armed = false;
      const last = commits[commits.length - 1] as JobCommit;
      return real([...commits.slice(0, -1), { ...last, job: { ...last.job }, etag: 'gone' }]);
    },
    arm: () => {
      armed = true;
    },
  });
};

/** A store without `commitMany` whose third job create of the batch fails. */
const failThirdCreate: Breaker = (inner) => {
  const f = faulty(inner);
  return Object.assign(f, { arm: () => f.failNext('jobs', 'create', { skip: 2 }) });
};

const cosmos = STORES.filter((s) => s.name.startsWith('cosmos'));
const sqliteOutbox = STORES.find((s) => s.name === 'sqlite');
if (sqliteOutbox === undefined) throw new Error('no sqlite in STORES');

const FACTORIES: Array<StoreFactory & { breaker: Breaker }> = [
  { name: 'memory', open: async () => createMemoryStore(), breaker: failLastCommit },
  { name: 'sqlite', open: async () => openSqliteTemp(), breaker: failLastCommit },
  { name: 'sqlite, outbox path', open: sqliteOutbox.open, breaker: failThirdCreate },
  ...cosmos.map((s) => ({ ...s, breaker: failThirdCreate })),
];

/** Outcome or code of each answer, for compact assertions. */
const shape = (answers: Awaited<ReturnType<Harness['coord']['submitMany']>>) =>
  must(answers).map((a) => (a.ok ? a.value.outcome : a.error.code));

describe.each(FACTORIES.map((s) => [s.name, s] as const))('bulk submission (%s)', (_n, factory) => {
  let h: Harness;
  let reported: EventDoc[];
  beforeEach(async () => {
    h = await makeHarness(factory);
    reported = [];
    h.coord.subscribe((e) => reported.push(e));
  });
  afterEach(async () => {
    await h.coord.drain();
    await h.close();
  });

  const id = (key: string) => jobIdFor(h.product, key);
  const allJobs = async () => must(await h.coord.listJobs(h.product, { limit: 500 })).items;

  it('a mixed batch answers each item: new, same again, other content, invalid, deps on earlier items and on stored jobs', async () => {
    // A queued job only a gpu factory can take, and one already claimed.
    const queued = await h.submit({ idempotencyKey: 'queued', bodyMd: 'q', capabilities: ['gpu'] });
    const claimed = await h.submit({ idempotencyKey: 'claimed', bodyMd: 'c' });
    const grant = await h.claim('f0');
    expect(grant.job.id).toBe(claimed.id);
    reported.length = 0;

    const items: SubmitManyItem[] = [
      { idempotencyKey: 'n1', bodyMd: 'one' },
      { idempotencyKey: 'queued', bodyMd: 'q', capabilities: ['gpu'] },
      { idempotencyKey: 'queued', bodyMd: 'other' },
      { idempotencyKey: 'claimed', bodyMd: 'other' },
      { idempotencyKey: 'bad' } as SubmitManyItem,
      { idempotencyKey: 'n2', bodyMd: 'two', depKeys: ['n1'] },
      { idempotencyKey: 'n3', bodyMd: 'three', deps: [queued.id] },
      { idempotencyKey: 'n4', bodyMd: 'four', depKeys: ['later'] },
      { idempotencyKey: 'later', bodyMd: 'later' },
      { idempotencyKey: 'n1', bodyMd: 'one' },
      { idempotencyKey: 'n1', bodyMd: 'not one' },
      { idempotencyKey: 'n5', bodyMd: 'five', depKeys: ['bad'] },
      { idempotencyKey: 'n6', bodyMd: 'six', deps: [id('n6')] },
    ];
    const r = await h.coord.submitMany(h.product, items, 'alice');
    expect(shape(r)).toEqual([
      'created',
      'existing',
      'IDEMPOTENCY_CONFLICT',
      'IDEMPOTENCY_CONFLICT',
      'VALIDATION',
      'created',
      'created',
      'UNKNOWN_DEPENDENCY',
      'created',
      'existing',
      'IDEMPOTENCY_CONFLICT',
      'UNKNOWN_DEPENDENCY',
      'DEPENDENCY_CYCLE',
    ]);
    const answers = must(r);
    const job = (i: number) =>
      must(answers[i] ?? ({ ok: false, error: new Error('none') } as never)).job;
    expect(job(0).id).toBe(id('n1'));
    expect(job(0).stage).toBe('queued');
    expect(job(1).id).toBe(queued.id);
    expect(job(1)._etag).toBe(queued._etag);
    expect(job(5).stage).toBe('blocked');
    expect(job(5).deps).toEqual([id('n1')]);
    expect(job(6).stage).toBe('blocked');
    expect(job(6).deps).toEqual([queued.id]);
    expect(job(9).id).toBe(job(0).id);
    expect(failure(answers[3] as never).extra).toMatchObject({ stage: 'assigned' });
    expect(failure(answers[4] as never).detail).toMatch(/bodyMd/);
    expect(failure(answers[7] as never).extra).toMatchObject({ unknown: [id('later')] });

    // Exactly the four new jobs were written, each with one `submitted` event by the actor.
    const created = ['n1', 'n2', 'n3', 'later'].map(id);
    expect((await allJobs()).map((j) => j.id).sort()).toEqual(
      [...created, queued.id, claimed.id].sort(),
    );
    for (const jobId of created) {
      const events = await h.events(jobId);
      expect(events.map((e) => [e.type, e.actor])).toEqual([['submitted', 'alice']]);
    }
    expect(reported.map((e) => e.jobId).sort()).toEqual([...created].sort());
    expect(await h.job(queued.id)).toEqual(queued);

    // The intra-batch dep is a real dep: shipping n1 unblocks n2.
    const g = await h.claim('f1');
    expect(g.job.id).toBe(id('n1'));
    await h.advance(g, 'building', 'review', 'testing', 'shipped');
    await h.coord.drain();
    expect((await h.job(id('n2'))).stage).toBe('queued');
    expect((await h.job(id('n3'))).stage).toBe('blocked');
  });

  it('the whole batch again is idempotent: every item answered as before, nothing written or reported', async () => {
    const base = await h.submit({ idempotencyKey: 'base', bodyMd: 'b' });
    const items: SubmitManyItem[] = Array.from({ length: 50 }, (_, i) => ({
      idempotencyKey: `k${i}`,
      bodyMd: `job ${i}`,
      priority: i % 2 === 0 ? 'high' : 'low',
      ...(i > 0 && i % 5 === 0 ? { depKeys: [`k${i - 1}`], deps: [base.id] } : {}),
    }));
    items.push({ idempotencyKey: 'broken', bodyMd: 'x', deps: ['job_nope'] });
    const first = must(await h.coord.submitMany(h.product, items));
    expect(first.filter((a) => a.ok && a.value.outcome === 'created')).toHaveLength(50);
    const dumps = await Promise.all(items.slice(0, 50).map((_, i) => h.dump(id(`k${i}`))));
    reported.length = 0;

    const again = must(await h.coord.submitMany(h.product, items));
    expect(again.map((a) => (a.ok ? a.value.outcome : a.error.code))).toEqual([
      ...Array(50).fill('existing'),
      'UNKNOWN_DEPENDENCY',
    ]);
    for (const [i, a] of again.entries()) {
      const before = first[i];
      if (a.ok && before?.ok) {
        expect(a.value.job.id).toBe(before.value.job.id);
        expect(a.value.job._etag).toBe(before.value.job._etag);
      }
    }
    expect(await Promise.all(items.slice(0, 50).map((_, i) => h.dump(id(`k${i}`))))).toEqual(dumps);
    expect(reported).toEqual([]);
    expect(await allJobs()).toHaveLength(51);
  });

  it('a store failure while writing the batch writes nothing and reports nothing; the retry creates every job once', async () => {
    const broken = factory.breaker(h.store);
    const coord = new Coordinator({ store: broken, clock: h.clock, liveProjections: true });
    const seen: EventDoc[] = [];
    coord.subscribe((e) => seen.push(e));
    const items: SubmitManyItem[] = [
      { idempotencyKey: 'a', bodyMd: 'a' },
      { idempotencyKey: 'b', bodyMd: 'b', depKeys: ['a'] },
      { idempotencyKey: 'c', bodyMd: 'c' },
      { idempotencyKey: 'd', bodyMd: 'd' },
    ];
    broken.arm();
    await expect(coord.submitMany(h.product, items)).rejects.toMatchObject({
      code: expect.stringMatching(/NOT_FOUND|STORE_UNAVAILABLE/),
    });
    expect(seen).toEqual([]);
    expect(coord.projections?.snapshot().stageCounts).toEqual({});
    expect(await allJobs()).toEqual([]);
    for (const key of ['a', 'b', 'c', 'd']) {
      expect(await h.store.events.list(id(key), { limit: 10 })).toEqual([]);
    }

    expect(shape(await coord.submitMany(h.product, items))).toEqual([
      'created',
      'created',
      'created',
      'created',
    ]);
    await coord.drain();
    expect(seen.map((e) => [e.jobId, e.type])).toEqual(
      ['a', 'b', 'c', 'd'].map((k) => [id(k), 'submitted']),
    );
    for (const key of ['a', 'b', 'c', 'd']) {
      expect((await h.events(id(key))).map((e) => e.seq)).toEqual([1]);
    }
  });

  it('the call as a whole: not an array or over 1,000 items is VALIDATION; an empty batch answers nothing', async () => {
    const tooMany = Array.from({ length: 1001 }, (_, i) => ({
      idempotencyKey: `k${i}`,
      bodyMd: 'x',
    }));
    const over = failure(await h.coord.submitMany(h.product, tooMany));
    expect(over.code).toBe('VALIDATION');
    expect(over.detail).toMatch(/1000/);
    const notArray = failure(await h.coord.submitMany(h.product, { jobs: [] } as never));
    expect(notArray.code).toBe('VALIDATION');
    expect(must(await h.coord.submitMany(h.product, []))).toEqual([]);
    expect(await allJobs()).toEqual([]);
  });
});

describe('bulk submission on SQLite: one durable commit', () => {
  let store: ReturnType<typeof openSqliteTemp>;
  let h: Harness;
  beforeEach(async () => {
    store = openSqliteTemp();
    h = await makeHarness({ name: 'sqlite', open: async () => store });
  });
  afterEach(async () => {
    await h.coord.drain();
    await h.close();
  });

  it('1,000 jobs are one commit', async () => {
    await h.submit({ idempotencyKey: 'warm', bodyMd: 'x' });
    const before = store.commits;
    const items = Array.from({ length: 1000 }, (_, i) => ({
      idempotencyKey: `k${i}`,
      bodyMd: `job ${i}`,
      ...(i > 0 ? { depKeys: [`k${i - 1}`] } : {}),
    }));
    const answers = must(await h.coord.submitMany(h.product, items));
    expect(answers.every((a) => a.ok && a.value.outcome === 'created')).toBe(true);
    expect(store.commits - before).toBe(1);
  });

  it('a failed group commit: the call fails, nothing is durable, nothing is reported', async () => {
    const db = sqliteConnection(store);
    db.pragma('foreign_keys = ON');
    db.exec(`CREATE TABLE t_parent (id TEXT PRIMARY KEY);
      CREATE TABLE t_child (p TEXT REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED)`);
    const violate = db.prepare("INSERT INTO t_child VALUES ('missing')");
    let armed = true;
    const failing = delegate(store, {
      sync: (from?: number) => {
        if (armed && db.inTransaction) {
          armed = false;
          violate.run();
        }
        return store.sync(from);
      },
    });
    const coord = new Coordinator({ store: failing, clock: h.clock });
    const seen: EventDoc[] = [];
    coord.subscribe((e) => seen.push(e));
    const items = [
      { idempotencyKey: 'a', bodyMd: 'a' },
      { idempotencyKey: 'b', bodyMd: 'b' },
    ];
    await expect(coord.submitMany(h.product, items)).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    expect(seen).toEqual([]);
    expect(await store.jobs.read(h.product, jobIdFor(h.product, 'a'))).toBeNull();
    expect(shape(await coord.submitMany(h.product, items))).toEqual(['created', 'created']);
    expect(seen.map((e) => e.type)).toEqual(['submitted', 'submitted']);
  });
});
