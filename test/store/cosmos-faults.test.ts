/**
 * The Cosmos DB adapter's fault handling, through a fault-injecting HTTP proxy in front
 * of a plain-HTTP cosmosdb-server (`test/support/cosmos-fault-proxy.ts`): throttling
 * (429 with `x-ms-retry-after-ms`), writes whose answer is lost after the server applied
 * them, writes whose connection is lost before they reach the server, late writes, and
 * re-reads that fail. Each test gets a fresh database, a store that goes through the
 * proxy and a `direct` store on the same database that bypasses it (to check what is
 * really stored, and to play another writer).
 *
 * What reached the server is read from the proxy's record: a write "applied once" is
 * one request of that write that was forwarded and answered 2xx by the server.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type CosmosStore,
  type CosmosStoreOptions,
  openCosmosStore,
} from '../../adapters/store/cosmos/index.js';
import {
  Coordinator,
  type ErrorCode,
  type EventDoc,
  FleetError,
  type ProfileDoc,
  type Result,
  SimulatedClock,
  type Stored,
} from '../../runtime/index.js';
import {
  docsPath,
  documentReads,
  documentWrites,
  type FaultyCosmos,
  type ProxiedRequest,
  startFaultyCosmos,
} from '../support/cosmos-fault-proxy.js';
import { TEST_COSMOS_KEY } from '../support/cosmos-server.js';
import { makeEvent, makeProfile, uid } from '../support/docs.js';
import { must } from '../support/harness.js';
import { storeViolations } from '../support/invariants.js';

const PROFILES = 'fleet_profiles';
const EVENTS = 'fleet_events';

/**
 * Timers have millisecond granularity (and libuv may read a coarse clock), so a sleep of
 * N ms can end up to a couple of ms before N ms of `performance.now()` have passed.
 */
const TIMER_SLACK_MS = 5;

let cosmos: FaultyCosmos;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  cosmos = await startFaultyCosmos();
});

afterEach(async () => {
  cosmos.proxy.heal();
  await cosmos.proxy.idle();
  const failures: unknown[] = [];
  for (const cleanup of cleanups.splice(0).reverse()) {
    await cleanup().catch((e: unknown) => failures.push(e));
  }
  if (failures.length > 0) throw failures[0];
});

afterAll(async () => {
  await cosmos?.close();
});

interface Setup {
  db: string;
  /** Through the proxy. */
  store: CosmosStore;
  /** Straight to the server. */
  direct: CosmosStore;
  /** A product (partition) unique to the test. */
  product: string;
}

/** A fresh database (created directly), a store on it through the proxy, and a direct one. */
async function open(options: Partial<CosmosStoreOptions> = {}): Promise<Setup> {
  const db = `fleet_faults_${randomBytes(6).toString('hex')}`;
  const direct = await openCosmosStore({
    endpoint: cosmos.directEndpoint,
    key: TEST_COSMOS_KEY,
    database: db,
  });
  cleanups.push(() => direct.dropDatabase());
  const store = await openCosmosStore({
    endpoint: cosmos.endpoint,
    key: TEST_COSMOS_KEY,
    database: db,
    requestTimeoutMs: 5_000,
    ...options,
  });
  cleanups.push(() => store.close());
  return { db, store, direct, product: uid('p') };
}

/** The requests the proxy saw with `method` for collection `coll` of `db` (queries excluded). */
function sent(db: string, coll: string, method: string, id?: string): ProxiedRequest[] {
  const path = docsPath(db, coll);
  return cosmos.proxy.seen(
    (r) =>
      r.method === method &&
      !r.isQuery &&
      path.test(r.path) &&
      (id === undefined || r.path.endsWith(`/docs/${id}`)),
  );
}

/** Requests that reached the server and were applied there (2xx). */
const applied = (requests: ProxiedRequest[]) =>
  requests.filter((r) => r.upstreamStatus !== null && r.upstreamStatus < 300);

/** The FleetError `p` rejects with; fails the test if it resolves or throws something else. */
async function rejection(p: Promise<unknown>, code: ErrorCode): Promise<FleetError> {
  const outcome = await p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if ('value' in outcome) {
    throw new Error(`expected ${code}, got ${JSON.stringify(outcome.value)?.slice(0, 300)}`);
  }
  expect(outcome.error).toBeInstanceOf(FleetError);
  expect((outcome.error as FleetError).code).toBe(code);
  return outcome.error as FleetError;
}

/** A copy of the document without its etag (what a caller sends back). */
function body<T>(doc: Stored<T>): T {
  const { _etag: _ignored, ...rest } = doc;
  return rest as T;
}

/** The next version of a profile: `version` is the counter the tests increment. */
const next = (doc: Stored<ProfileDoc>, snapshot: Record<string, unknown> = {}): ProfileDoc => ({
  ...body(doc),
  version: doc.version + 1,
  snapshot: { ...doc.snapshot, ...snapshot },
});

describe('Cosmos store faults: throttling', () => {
  it('a throttled write waits the retry-after the server asked for, is retried by the SDK, and lands once', async () => {
    const { db, store, direct, product } = await open({ throttle: { maxRetries: 3 } });
    const waits = [150, 300];
    for (const retryAfterMs of waits) {
      cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'throttle', retryAfterMs });
    }
    const doc = makeProfile({ productId: product });

    const created = await store.profiles.create(doc);

    expect(created).toEqual({ ...doc, _etag: expect.stringMatching(/^".+"$/) });
    const attempts = sent(db, PROFILES, 'POST');
    expect(attempts.map((r) => r.fault)).toEqual(['throttle', 'throttle', null]);
    expect(attempts.map((r) => r.forwarded)).toEqual([false, false, true]);
    expect(attempts[2]?.upstreamStatus).toBe(201);
    waits.forEach((retryAfterMs, i) => {
      const waited = (attempts[i + 1]?.at ?? 0) - (attempts[i]?.at ?? 0);
      expect(waited, `retry ${i + 1} came after ${waited} ms`).toBeGreaterThanOrEqual(
        retryAfterMs - TIMER_SLACK_MS,
      );
    });
    const stored = await direct.profiles.list(product, { limit: 10 });
    expect(stored.items).toEqual([created]);
    expect(store.stats().unknownOutcomes).toBe(0);
  });

  it('429s beyond throttle.maxRetries fail with RATE_LIMITED and change nothing', async () => {
    const { db, store, direct, product } = await open({ throttle: { maxRetries: 2 } });
    const v1 = await store.profiles.create(makeProfile({ productId: product }));
    const rule = cosmos.proxy.inject(
      documentWrites(db, PROFILES),
      { kind: 'throttle', retryAfterMs: 25 },
      Number.POSITIVE_INFINITY,
    );

    const replaceError = await rejection(
      store.profiles.replace(next(v1), v1._etag),
      'RATE_LIMITED',
    );
    expect(replaceError.extra).toMatchObject({ retryAfterMs: 25 });
    // The first attempt and maxRetries retries, none of them forwarded.
    expect(rule.hits).toHaveLength(3);
    expect(rule.hits.every((r) => !r.forwarded && r.method === 'PUT')).toBe(true);

    const other = makeProfile({ productId: product });
    await rejection(store.profiles.create(other), 'RATE_LIMITED');
    expect(rule.hits).toHaveLength(6);
    expect(rule.hits.every((r) => !r.forwarded)).toBe(true);

    cosmos.proxy.heal();
    expect(await direct.profiles.read(product, v1.id)).toEqual(v1);
    expect(await direct.profiles.read(product, other.id)).toBeNull();
    expect((await direct.profiles.list(product, { limit: 10 })).items).toEqual([v1]);
  });
});

describe('Cosmos store faults: unknown outcomes of writes', () => {
  it('a create whose answer is lost after the server applied it returns the stored document, stored once', async () => {
    const { db, store, direct, product } = await open();
    const before = store.stats().unknownOutcomes;
    cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'dropAfterApply' });
    const doc = makeProfile({ productId: product });

    const created = await store.profiles.create(doc);

    expect(created).toEqual({ ...doc, _etag: expect.stringMatching(/^".+"$/) });
    expect(await direct.profiles.read(product, doc.id)).toEqual(created);
    expect((await direct.profiles.list(product, { limit: 10 })).items).toEqual([created]);
    expect(store.stats().unknownOutcomes).toBe(before + 1);
    // Sent once: the re-read found our document, so it was not sent again.
    const creates = sent(db, PROFILES, 'POST');
    expect(creates.map((r) => [r.fault, r.upstreamStatus])).toEqual([['dropAfterApply', 201]]);
    expect(sent(db, PROFILES, 'GET', doc.id).length).toBeGreaterThanOrEqual(1);
  });

  it('a replace whose answer is lost after the server applied it returns the new etag; applied once', async () => {
    const { db, store, direct, product } = await open();
    const v1 = await store.profiles.create(makeProfile({ productId: product }));
    const before = store.stats().unknownOutcomes;
    cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'dropAfterApply' });

    const v2 = await store.profiles.replace(next(v1, { by: 'us' }), v1._etag);

    expect(v2._etag).not.toBe(v1._etag);
    expect(v2).toMatchObject({ version: 2, snapshot: { by: 'us' } });
    expect(await direct.profiles.read(product, v1.id)).toEqual(v2);
    expect(store.stats().unknownOutcomes).toBe(before + 1);
    const puts = sent(db, PROFILES, 'PUT', v1.id);
    expect(puts.map((r) => [r.fault, r.upstreamStatus])).toEqual([['dropAfterApply', 200]]);

    // The returned etag is the stored one: the next conditional write goes through.
    const v3 = await store.profiles.replace(next(v2), v2._etag);
    expect(await direct.profiles.read(product, v1.id)).toEqual(v3);
    expect(v3.version).toBe(3);
    expect(applied(sent(db, PROFILES, 'PUT', v1.id))).toHaveLength(2);
  });

  it('a create and a replace whose answers are cut off mid-body after apply are resolved by a re-read', async () => {
    const { db, store, direct, product } = await open();
    const before = store.stats().unknownOutcomes;
    const doc = makeProfile({ productId: product });
    cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'cutAfterApply' }, 2);

    const v1 = await store.profiles.create(doc);
    const v2 = await store.profiles.replace(next(v1), v1._etag);

    expect(v1).toEqual({ ...doc, _etag: expect.stringMatching(/^".+"$/) });
    expect(v2).toMatchObject({ version: 2 });
    expect(v2._etag).not.toBe(v1._etag);
    expect(await direct.profiles.read(product, doc.id)).toEqual(v2);
    expect(store.stats().unknownOutcomes).toBe(before + 2);
    expect(sent(db, PROFILES, 'POST').map((r) => [r.fault, r.upstreamStatus])).toEqual([
      ['cutAfterApply', 201],
    ]);
    expect(sent(db, PROFILES, 'PUT', doc.id).map((r) => [r.fault, r.upstreamStatus])).toEqual([
      ['cutAfterApply', 200],
    ]);
  });

  it('a replace whose connection is lost before it reached the server is re-read and sent again; applied once', async () => {
    const { db, store, direct, product } = await open();
    const v1 = await store.profiles.create(makeProfile({ productId: product }));
    const before = store.stats().unknownOutcomes;
    cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'drop' });

    const v2 = await store.profiles.replace(next(v1), v1._etag);

    expect(v2).toMatchObject({ version: 2 });
    expect(await direct.profiles.read(product, v1.id)).toEqual(v2);
    expect(store.stats().unknownOutcomes).toBe(before + 1);
    const puts = sent(db, PROFILES, 'PUT', v1.id);
    expect(puts.map((r) => [r.fault, r.forwarded, r.upstreamStatus])).toEqual([
      ['drop', false, null],
      [null, true, 200],
    ]);
    // It was sent again only after a re-read saw the old etag.
    const [lost, resent] = puts as [ProxiedRequest, ProxiedRequest];
    const reads = sent(db, PROFILES, 'GET', v1.id);
    expect(reads.some((r) => r.n > lost.n && r.n < resent.n && r.upstreamStatus === 200)).toBe(
      true,
    );
  });

  it('a replace lost after apply, then overwritten by another writer before the re-read, is PRECONDITION_FAILED', async () => {
    const { db, store, direct, product } = await open();
    const v1 = await store.profiles.create(makeProfile({ productId: product }));
    let seenByOther: Stored<ProfileDoc> | null = null;
    let theirs: Stored<ProfileDoc> | null = null;
    cosmos.proxy.inject(documentWrites(db, PROFILES), {
      kind: 'dropAfterApply',
      beforeDrop: async () => {
        // Another process (straight to the server) reads our write and replaces it.
        seenByOther = await direct.profiles.read(product, v1.id);
        if (seenByOther === null) throw new Error('the document vanished');
        theirs = await direct.profiles.replace(
          { ...body(seenByOther), version: 100, snapshot: { by: 'them' } },
          seenByOther._etag,
        );
      },
    });

    await rejection(
      store.profiles.replace(next(v1, { by: 'us' }), v1._etag),
      'PRECONDITION_FAILED',
    );

    expect(seenByOther).toMatchObject({ version: 2, snapshot: { by: 'us' } });
    expect(theirs).toMatchObject({ version: 100, snapshot: { by: 'them' } });
    expect(await direct.profiles.read(product, v1.id)).toEqual(theirs);
    // Ours reached the server once and was not sent again over theirs.
    const puts = sent(db, PROFILES, 'PUT', v1.id);
    expect(puts.map((r) => [r.fault, r.upstreamStatus])).toEqual([['dropAfterApply', 200]]);
  });

  it('a delete whose answer is lost after the server applied it resolves; the document is gone', async () => {
    const { db, store, direct, product } = await open();
    const a = await store.profiles.create(makeProfile({ productId: product }));
    const b = await store.profiles.create(makeProfile({ productId: product }));
    const before = store.stats().unknownOutcomes;
    cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'dropAfterApply' }, 2);

    await expect(store.profiles.delete(product, a.id)).resolves.toBeUndefined();
    await expect(store.profiles.delete(product, b.id, b._etag)).resolves.toBeUndefined();

    expect(await direct.profiles.read(product, a.id)).toBeNull();
    expect(await direct.profiles.read(product, b.id)).toBeNull();
    expect(store.stats().unknownOutcomes).toBe(before + 2);
    for (const id of [a.id, b.id]) {
      const deletes = sent(db, PROFILES, 'DELETE', id);
      expect(deletes.map((r) => [r.fault, r.upstreamStatus])).toEqual([['dropAfterApply', 204]]);
    }
  });

  it('events.append whose answer is lost (after apply, or before it was sent) stores the event once', async () => {
    const { db, store, direct, product } = await open();
    const jobId = uid('job');
    const e1 = makeEvent({ productId: product, jobId, seq: 1 });
    const e2 = makeEvent({ productId: product, jobId, seq: 2 });

    cosmos.proxy.inject(documentWrites(db, EVENTS), { kind: 'dropAfterApply' });
    await expect(store.events.append(e1)).resolves.toBe(true);
    cosmos.proxy.inject(documentWrites(db, EVENTS), { kind: 'drop' });
    await expect(store.events.append(e2)).resolves.toBe(true);

    const events: EventDoc[] = await direct.events.list(jobId, { limit: 10 });
    expect(events).toEqual([e1, e2]);
    const appends = sent(db, EVENTS, 'POST');
    expect(appends.map((r) => [r.fault, r.upstreamStatus])).toEqual([
      ['dropAfterApply', 201],
      ['drop', null],
      [null, 201],
    ]);
  });

  it('a write that times out and lands late is applied once; the caller gets the stored etag', async () => {
    const { db, store, direct, product } = await open({ requestTimeoutMs: 1_000 });
    const v1 = await direct.profiles.create(makeProfile({ productId: product }));
    const before = store.stats().unknownOutcomes;
    // Held past the client's timeout, then delivered anyway (a late first attempt).
    cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'delay', ms: 2_000 });

    const v2 = await store.profiles.replace(next(v1), v1._etag);
    await cosmos.proxy.idle();

    expect(store.stats().unknownOutcomes).toBe(before + 1);
    expect(await direct.profiles.read(product, v1.id)).toEqual(v2);
    expect(v2.version).toBe(2);
    // Both attempts carried the same etag condition: one applied, the other refused.
    const puts = sent(db, PROFILES, 'PUT', v1.id);
    expect(puts.map((r) => r.upstreamStatus).sort()).toEqual([200, 412]);
  });
});

describe('Cosmos store: etags from another process', () => {
  it("a fresh store sends an etag it never read itself in the server's own form", async () => {
    // Another process wrote the document and hands its etag over; this store has not
    // read or written a document yet.
    const { db, store, direct, product } = await open();
    const v1 = await direct.profiles.create(makeProfile({ productId: product }));

    const v2 = await store.profiles.replace(next(v1), v1._etag);
    await store.profiles.delete(product, v2.id, v2._etag);

    expect(await direct.profiles.read(product, v1.id)).toBeNull();
    expect(sent(db, PROFILES, 'PUT', v1.id).map((r) => r.upstreamStatus)).toEqual([200]);
    expect(sent(db, PROFILES, 'DELETE', v1.id).map((r) => r.upstreamStatus)).toEqual([204]);
  });
});

describe('Cosmos store faults: re-reads that fail', () => {
  it('when the re-read cannot answer either, the call fails STORE_UNAVAILABLE saying the outcome is unknown', async () => {
    const { db, store, direct, product } = await open({ requestTimeoutMs: 1_000 });
    const v1 = await direct.profiles.create(makeProfile({ productId: product }));
    cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'dropAfterApply' });
    // Every later read goes unanswered: the SDK's timeout fires and it does not retry a
    // timeout. (A read whose connection is dropped is retried by the SDK, up to 10 times
    // 1 s apart, hard-coded: see the next test.)
    const reads = cosmos.proxy.inject(
      documentReads(db),
      { kind: 'hang' },
      Number.POSITIVE_INFINITY,
    );

    const error = await rejection(store.profiles.replace(next(v1), v1._etag), 'STORE_UNAVAILABLE');

    expect(error.detail).toMatch(/outcome is unknown/);
    expect(reads.hits.length).toBeGreaterThanOrEqual(1);
    cosmos.proxy.heal();
    // It had been applied: "unknown" was the honest answer.
    expect(await direct.profiles.read(product, v1.id)).toMatchObject({ version: 2 });
    expect(applied(sent(db, PROFILES, 'PUT', v1.id))).toHaveLength(1);
  });

  it('a re-read whose connection is lost is retried by the SDK (reads only), and then decides', async () => {
    const { db, store, direct, product } = await open();
    const v1 = await store.profiles.create(makeProfile({ productId: product }));
    cosmos.proxy.inject(documentWrites(db, PROFILES), { kind: 'drop' });
    const reads = cosmos.proxy.inject(documentReads(db), { kind: 'drop' });

    const v2 = await store.profiles.replace(next(v1), v1._etag);

    expect(reads.hits).toHaveLength(1);
    expect(await direct.profiles.read(product, v1.id)).toEqual(v2);
    const puts = sent(db, PROFILES, 'PUT', v1.id);
    expect(puts.map((r) => [r.fault, r.upstreamStatus])).toEqual([
      ['drop', null],
      [null, 200],
    ]);
  });
});

// ---------------------------------------------------------------------------
// The coordinator on the Cosmos store, through the proxy
// ---------------------------------------------------------------------------

/** Either a rejection with `code` or a failed Result with `code`. */
async function failsWith(p: Promise<Result<unknown>>, code: ErrorCode): Promise<void> {
  const outcome = await p.then(
    (r) => (r.ok ? { value: r.value } : { error: r.error }),
    (error: unknown) => ({ error }),
  );
  if ('value' in outcome) {
    throw new Error(`expected ${code}, got ${JSON.stringify(outcome.value)?.slice(0, 300)}`);
  }
  expect(outcome.error).toBeInstanceOf(FleetError);
  expect((outcome.error as FleetError).code).toBe(code);
}

describe('Cosmos store faults: the coordinator outbox', () => {
  async function coordinator(setup: Setup): Promise<Coordinator> {
    const coord = new Coordinator({
      store: setup.store,
      clock: new SimulatedClock(),
      random: () => 0.5,
      leaseMs: 60_000,
    });
    cleanups.push(() => coord.drain());
    return coord;
  }

  const submit = async (coord: Coordinator, product: string) =>
    must(await coord.submit(product, { idempotencyKey: randomUUID(), bodyMd: 'do the work' })).job;

  const seqs = (events: EventDoc[]) => events.map((e) => e.seq);

  it('a claim whose run write keeps failing keeps it in the job outbox; the sweep carries it out once healed', async () => {
    const setup = await open();
    const { db, direct, product } = setup;
    const coord = await coordinator(setup);
    const job = await submit(coord, product);
    const runWrites = cosmos.proxy.inject(
      documentWrites(db, 'fleet_runs'),
      { kind: 'drop' },
      Number.POSITIVE_INFINITY,
    );

    await failsWith(coord.claimNextJob(product, { factoryId: 'A' }), 'STORE_UNAVAILABLE');

    expect(runWrites.hits.length).toBeGreaterThan(0);
    expect(runWrites.hits.every((r) => !r.forwarded)).toBe(true);
    const stuck = await direct.jobs.read(product, job.id);
    expect(stuck).toMatchObject({ stage: 'assigned', holderFactoryId: 'A', attempt: 1 });
    expect(stuck?.outbox.map((e) => e.kind)).toContain('run');
    expect(await direct.runs.read(job.id, `${job.id}.r1`)).toBeNull();
    expect(await storeViolations(direct)).toEqual([]); // stored + pending is consistent

    cosmos.proxy.heal();
    const report = await coord.sweep();

    expect(report.repaired).toBe(1);
    expect(await direct.runs.read(job.id, `${job.id}.r1`)).toMatchObject({
      attempt: 1,
      factoryId: 'A',
      endedAt: null,
    });
    expect(await direct.leases.read(job.id, job.id)).toMatchObject({
      holderFactoryId: 'A',
      status: 'held',
    });
    const after = await direct.jobs.read(product, job.id);
    expect(after?.outbox).toEqual([]);
    const events = await direct.events.list(job.id, { limit: 100 });
    expect(seqs(events)).toEqual([1, 2]);
    expect(events.map((e) => e.type)).toEqual(['submitted', 'claimed']);
    expect(await storeViolations(direct)).toEqual([]);
    expect(await coord.sweep()).toMatchObject({ repaired: 0 });
  });

  it('a transition whose event write keeps failing is completed by the next touch of the job, gap-free', async () => {
    const setup = await open();
    const { db, direct, product } = setup;
    const coord = await coordinator(setup);
    const job = await submit(coord, product);
    const grant = must(await coord.claimNextJob(product, { factoryId: 'A' }));
    if (grant === null) throw new Error('nothing claimed');
    const who = { factoryId: 'A', leaseEpoch: grant.lease.leaseEpoch };
    const eventWrites = cosmos.proxy.inject(
      documentWrites(db, EVENTS),
      { kind: 'drop' },
      Number.POSITIVE_INFINITY,
    );

    await failsWith(
      coord.transition(product, job.id, { ...who, to: 'building' }),
      'STORE_UNAVAILABLE',
    );

    expect(eventWrites.hits.length).toBeGreaterThan(0);
    const stuck = await direct.jobs.read(product, job.id);
    expect(stuck?.stage).toBe('building');
    expect(stuck?.outbox.map((e) => e.kind)).toContain('event');
    expect(seqs(await direct.events.list(job.id, { limit: 100 }))).toEqual([1, 2]);
    expect(await storeViolations(direct)).toEqual([]);

    cosmos.proxy.heal();
    must(await coord.transition(product, job.id, { ...who, to: 'review' }));

    const events = await direct.events.list(job.id, { limit: 100 });
    expect(seqs(events)).toEqual([1, 2, 3, 4]);
    expect(events.map((e) => [e.type, e.data.to])).toEqual([
      ['submitted', 'queued'],
      ['claimed', 'assigned'],
      ['stage_changed', 'building'],
      ['stage_changed', 'review'],
    ]);
    expect((await direct.jobs.read(product, job.id))?.outbox).toEqual([]);
    expect(await storeViolations(direct)).toEqual([]);
  });

  it('a claim whose job write is lost after the server applied it is granted once', async () => {
    const setup = await open();
    const { db, direct, product } = setup;
    const coord = await coordinator(setup);
    const job = await submit(coord, product);
    const jobWrite = cosmos.proxy.inject(documentWrites(db, 'fleet_jobs'), {
      kind: 'dropAfterApply',
    });

    const grant = must(await coord.claimNextJob(product, { factoryId: 'A' }));

    expect(jobWrite.hits.map((r) => [r.method, r.upstreamStatus])).toEqual([['PUT', 200]]);
    expect(grant?.job).toMatchObject({ id: job.id, stage: 'assigned', holderFactoryId: 'A' });
    expect(grant?.lease.leaseEpoch).toBe(1);
    expect(must(await coord.claimNextJob(product, { factoryId: 'B' }))).toBeNull();
    const events = await direct.events.list(job.id, { limit: 100 });
    expect(events.map((e) => e.type)).toEqual(['submitted', 'claimed']);
    expect((await direct.jobs.read(product, job.id))?.outbox).toEqual([]);
    expect(await storeViolations(direct)).toEqual([]);
  });
});
