/**
 * The one contract suite of the store port (`runtime/document-store.port.ts`), run
 * against every adapter: each adapter's `*.contract.test.ts` calls
 * {@link describeStoreContract} with a way to open a store.
 *
 * The suite opens one store for all its tests and never assumes it is empty: every test
 * uses its own random product and job ids, and queries that span products (`due`,
 * `listBlocked`, `withOutbox`) are checked on the test's own documents only, so the same
 * suite can run against a shared, persistent store.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { z } from 'zod';
import type {
  Container,
  DocumentStore,
  PageRequest,
  Stored,
} from '../../runtime/document-store.port.js';
import { type ErrorCode, isFleetError } from '../../runtime/errors.js';
import * as S from '../../runtime/schemas.js';
import type {
  ArtifactDoc,
  EventDoc,
  FactoryDoc,
  JobDoc,
  LeaseDoc,
  Page,
  Priority,
  ProfileDoc,
  RunDoc,
  Stage,
} from '../../runtime/types.js';
import {
  at,
  makeArtifact,
  makeEvent,
  makeFactory,
  makeJob,
  makeLease,
  makeProfile,
  makeRun,
  T0,
  uid,
} from '../support/docs.js';

/** Expects `p` to reject with a `FleetError` of `code`. */
async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  const outcome = await p.then(
    () => 'resolved',
    (e: unknown) => e,
  );
  expect(
    isFleetError(outcome, code),
    `expected a FleetError ${code}, got ${outcome instanceof Error ? outcome.message : String(outcome)}`,
  ).toBe(true);
}

/** The document without its `_etag` (schemas are strict and do not know it). */
function strip<T>(doc: T): Omit<T, '_etag'> {
  const { _etag: _, ...rest } = doc as T & { _etag?: unknown };
  return rest;
}

/** Every item of a paged list, following cursors until `nextCursor` is null. */
async function allPages<T>(
  fetch: (q: PageRequest) => Promise<Page<T>>,
  limit: number,
): Promise<{ items: T[]; pages: number }> {
  const items: T[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: Page<T> = await fetch({ limit, cursor });
    expect(page.items.length).toBeLessThanOrEqual(limit);
    if (page.nextCursor !== null) expect(page.items.length).toBe(limit);
    items.push(...page.items);
    cursor = page.nextCursor;
    pages++;
    expect(pages, 'paging must end').toBeLessThan(100_000);
  } while (cursor !== null);
  return { items, pages };
}

const ids = (docs: readonly { id: string }[]): string[] => docs.map((d) => d.id);
const BIG = 10_000;

/** How the generic tests drive one container. */
interface CrudCase<T extends { id: string }> {
  readonly name: string;
  readonly schema: z.ZodType<T>;
  /** What the partition key names: a product or a job. */
  readonly partition: 'product' | 'job';
  container(store: DocumentStore): Container<T>;
  /** A new document in partition `pk` (id given or fresh). */
  make(pk: string, id?: string): T;
  partitionOf(doc: T): string;
  /** A different version of `doc` (same id and partition), marked by `n >= 1`. */
  change(doc: T, n: number): T;
  /** Mutates `doc` in place, nested members included where it has any. */
  mutate(doc: T): void;
}

const CASES = {
  jobs: {
    name: 'jobs',
    partition: 'product',
    schema: S.JobDoc,
    container: (s) => s.jobs,
    make: (pk, id) => makeJob({ productId: pk, ...(id ? { id } : {}) }),
    partitionOf: (d) => d.productId,
    change: (d, n) => ({ ...d, bodyMd: `changed ${n}`, version: d.version + n }),
    mutate: (d) => {
      d.bodyMd = 'mutated';
      d.capabilities.push('mutated');
      d.retry.on.push('mutated');
    },
  } satisfies CrudCase<JobDoc>,
  runs: {
    name: 'runs',
    partition: 'job',
    schema: S.RunDoc,
    container: (s) => s.runs,
    make: (pk, id) => makeRun({ jobId: pk, ...(id ? { id } : {}) }),
    partitionOf: (d) => d.jobId,
    change: (d, n) => ({ ...d, rev: d.rev + n, exit: 'shipped', endedAt: at(n) }),
    mutate: (d) => {
      d.rev = 999;
      d.insights.turns = 999;
    },
  } satisfies CrudCase<RunDoc>,
  leases: {
    name: 'leases',
    partition: 'job',
    schema: S.LeaseDoc,
    container: (s) => s.leases,
    make: (pk, id) => makeLease({ jobId: pk, ...(id ? { id } : {}) }),
    partitionOf: (d) => d.jobId,
    change: (d, n) => ({ ...d, renewals: d.renewals + n, expiresAt: at(60_000 + n) }),
    mutate: (d) => {
      d.status = 'released';
      d.renewals = 999;
    },
  } satisfies CrudCase<LeaseDoc>,
  factories: {
    name: 'factories',
    partition: 'product',
    schema: S.FactoryDoc,
    container: (s) => s.factories,
    make: (pk, id) => makeFactory({ productId: pk, ...(id ? { id, factoryId: id } : {}) }),
    partitionOf: (d) => d.productId,
    change: (d, n) => ({ ...d, load: d.load + n, lastHeartbeatAt: at(n) }),
    mutate: (d) => {
      d.health = 'down';
      d.capabilities.push('mutated');
      d.descriptor.mutated = true;
    },
  } satisfies CrudCase<FactoryDoc>,
  profiles: {
    name: 'profiles',
    partition: 'product',
    schema: S.ProfileDoc,
    container: (s) => s.profiles,
    make: (pk, id) => makeProfile({ productId: pk, ...(id ? { id } : {}) }),
    partitionOf: (d) => d.productId,
    change: (d, n) => ({ ...d, version: d.version + n, snapshot: { n } }),
    mutate: (d) => {
      d.name = 'mutated';
      d.snapshot.mutated = true;
    },
  } satisfies CrudCase<ProfileDoc>,
  events: {
    name: 'events',
    partition: 'job',
    schema: S.EventDoc,
    container: (s) => s.events,
    make: (pk, id) => makeEvent({ jobId: pk, ...(id ? { id } : {}) }),
    partitionOf: (d) => d.jobId,
    change: (d, n) => ({ ...d, actor: `actor-${n}`, data: { ...d.data, n } }),
    mutate: (d) => {
      d.type = 'cancelled';
      d.data.mutated = true;
    },
  } satisfies CrudCase<EventDoc>,
  artifacts: {
    name: 'artifacts',
    partition: 'job',
    schema: S.ArtifactDoc,
    container: (s) => s.artifacts,
    make: (pk, id) => makeArtifact({ jobId: pk, ...(id ? { id } : {}) }),
    partitionOf: (d) => d.jobId,
    change: (d, n) => ({ ...d, bytes: (d.bytes ?? 0) + n, uri: `blob://changed/${n}` }),
    mutate: (d) => {
      d.uri = 'blob://mutated';
      d.bytes = 999;
    },
  } satisfies CrudCase<ArtifactDoc>,
};

/** The basic-operation tests of one container. */
function describeCrud<T extends { id: string }>(store: () => DocumentStore, c: CrudCase<T>): void {
  describe(`${c.name}: basic operations`, () => {
    const container = () => c.container(store());
    const fresh = () => c.make(uid(c.partition));
    const reread = (doc: T) => container().read(c.partitionOf(doc), doc.id);

    it('create returns the document with an _etag; read returns the same, schema-valid', async () => {
      const doc = fresh();
      const created = await container().create(doc);
      expect(typeof created._etag).toBe('string');
      expect(created._etag.length).toBeGreaterThan(0);
      expect(strip(created)).toEqual(doc);
      const read = await reread(doc);
      expect(read).toEqual(created);
      expect(c.schema.parse(strip(read))).toEqual(doc);
    });

    it('read of an absent id is null', async () => {
      const doc = fresh();
      expect(await container().read(c.partitionOf(doc), doc.id)).toBeNull();
    });

    it('create ignores an _etag carried by the document', async () => {
      const doc = fresh();
      const forged = { ...doc, _etag: 'forged' } as T;
      const created = await container().create(forged);
      expect(created._etag).not.toBe('forged');
      await expectCode(container().replace(c.change(doc, 1), 'forged'), 'PRECONDITION_FAILED');
      expect(c.schema.parse(strip(await reread(doc)))).toEqual(doc);
    });

    it('create of a taken id fails with ALREADY_EXISTS and changes nothing', async () => {
      const doc = fresh();
      const created = await container().create(doc);
      await expectCode(container().create(c.change(doc, 1)), 'ALREADY_EXISTS');
      expect(await reread(doc)).toEqual(created);
    });

    it('replace with the current etag writes and returns a new etag', async () => {
      const doc = fresh();
      const created = await container().create(doc);
      // Callers typically pass back a stored document, _etag included.
      const v1 = { ...created, ...c.change(doc, 1) };
      const replaced = await container().replace(v1, created._etag);
      expect(replaced._etag).not.toBe(created._etag);
      expect(strip(replaced)).toEqual(c.change(doc, 1));
      expect(await reread(doc)).toEqual(replaced);
      const again = await container().replace(c.change(doc, 2), replaced._etag);
      expect(new Set([created._etag, replaced._etag, again._etag]).size).toBe(3);
      expect(strip(await reread(doc))).toEqual(c.change(doc, 2));
    });

    it('replace with a stale etag fails with PRECONDITION_FAILED and changes nothing', async () => {
      const doc = fresh();
      const created = await container().create(doc);
      const current = await container().replace(c.change(doc, 1), created._etag);
      await expectCode(container().replace(c.change(doc, 2), created._etag), 'PRECONDITION_FAILED');
      expect(await reread(doc)).toEqual(current);
    });

    it('replace of an absent document fails with NOT_FOUND and creates nothing', async () => {
      const doc = fresh();
      const other = fresh();
      const { _etag } = await container().create(other);
      await expectCode(container().replace(doc, _etag), 'NOT_FOUND');
      expect(await reread(doc)).toBeNull();
    });

    it('delete without an etag removes; deleting again fails with NOT_FOUND', async () => {
      const doc = fresh();
      await container().create(doc);
      await container().delete(c.partitionOf(doc), doc.id);
      expect(await reread(doc)).toBeNull();
      await expectCode(container().delete(c.partitionOf(doc), doc.id), 'NOT_FOUND');
      // The id is free again.
      await container().create(doc);
      expect(strip(await reread(doc))).toEqual(doc);
    });

    it('delete with a stale etag fails with PRECONDITION_FAILED; with the current one it removes', async () => {
      const doc = fresh();
      const created = await container().create(doc);
      const current = await container().replace(c.change(doc, 1), created._etag);
      await expectCode(
        container().delete(c.partitionOf(doc), doc.id, created._etag),
        'PRECONDITION_FAILED',
      );
      expect(await reread(doc)).toEqual(current);
      await container().delete(c.partitionOf(doc), doc.id, current._etag);
      expect(await reread(doc)).toBeNull();
      await expectCode(container().delete(c.partitionOf(doc), doc.id, current._etag), 'NOT_FOUND');
    });

    it('documents given and returned are copies', async () => {
      const doc = fresh();
      const input = structuredClone(doc);
      const created = await container().create(input);
      c.mutate(input);
      c.mutate(created);
      const read = await reread(doc);
      expect(strip(read)).toEqual(doc);
      if (read === null) throw new Error('unreachable');
      c.mutate(read);
      const expected = structuredClone(c.change(doc, 1));
      const replacedInput = structuredClone(expected);
      const replaced = await container().replace(replacedInput, read._etag);
      c.mutate(replacedInput);
      c.mutate(replaced);
      expect(strip(await reread(doc))).toEqual(expected);
    });

    it('the same id in two partitions is two documents', async () => {
      const a = fresh();
      const b = c.make(uid('partition'), a.id);
      expect(b.id).toBe(a.id);
      const ca = await container().create(a);
      const cb = await container().create(b);
      expect(strip(await reread(a))).toEqual(a);
      expect(strip(await reread(b))).toEqual(b);
      await container().replace(c.change(a, 1), ca._etag);
      expect(await reread(b)).toEqual(cb);
      await container().delete(c.partitionOf(b), b.id);
      expect(strip(await reread(a))).toEqual(c.change(a, 1));
      expect(await reread(b)).toBeNull();
    });

    it('two replaces with the same etag: exactly one succeeds', async () => {
      const doc = fresh();
      const created = await container().create(doc);
      const results = await Promise.allSettled([
        container().replace(c.change(doc, 1), created._etag),
        container().replace(c.change(doc, 2), created._etag),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(isFleetError(lost[0]?.reason, 'PRECONDITION_FAILED')).toBe(true);
      const winner = won[0]?.value;
      expect(await reread(doc)).toEqual(winner);
    });

    it('two creates of the same id: exactly one succeeds', async () => {
      const doc = fresh();
      const results = await Promise.allSettled([
        container().create(c.change(doc, 1)),
        container().create(c.change(doc, 2)),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected');
      expect(isFleetError(lost?.reason, 'ALREADY_EXISTS')).toBe(true);
    });
  });
}

/**
 * Registers the store contract suite (vitest `describe`/`it`) for one adapter.
 *
 * @param name - adapter name shown in test titles.
 * @param open - opens a store; called once for the suite, and once more for the
 *   `close` test. The store may hold other data: the suite relies on unique ids only.
 * @param teardown - releases a store opened by `open` (it may already be closed);
 *   `store.close()` when omitted.
 */
export function describeStoreContract(
  name: string,
  open: () => Promise<DocumentStore>,
  teardown?: (store: DocumentStore) => Promise<void>,
): void {
  describe(`DocumentStore contract: ${name}`, () => {
    let opened: DocumentStore | undefined;
    const store = (): DocumentStore => {
      if (opened === undefined) throw new Error('store not opened');
      return opened;
    };
    beforeAll(async () => {
      opened = await open();
    });
    afterAll(async () => {
      if (opened === undefined) return;
      if (teardown) await teardown(opened);
      else await opened.close();
    });

    it('names its kind and answers ping', async () => {
      expect(typeof store().kind).toBe('string');
      expect(store().kind.length).toBeGreaterThan(0);
      await expect(store().ping()).resolves.toBeUndefined();
    });

    describeCrud(store, CASES.jobs);
    describeCrud(store, CASES.runs);
    describeCrud(store, CASES.leases);
    describeCrud(store, CASES.factories);
    describeCrud(store, CASES.profiles);
    describeCrud(store, CASES.events);
    describeCrud(store, CASES.artifacts);

    describeJobQueries(store);
    describeOtherLists(store);
    describeRetention(store);

    it('after close, calls fail with STORE_UNAVAILABLE', async () => {
      const other = await open();
      const job = makeJob({ productId: uid('product') });
      await other.jobs.create(job);
      await other.close();
      await expectCode(other.ping(), 'STORE_UNAVAILABLE');
      await expectCode(other.jobs.read(job.productId, job.id), 'STORE_UNAVAILABLE');
      await expectCode(other.jobs.create(makeJob()), 'STORE_UNAVAILABLE');
      await expectCode(
        other.jobs.claimCandidates({
          productId: job.productId,
          capabilities: [],
          now: T0,
          limit: 1,
        }),
        'STORE_UNAVAILABLE',
      );
      await expectCode(other.events.list(job.id, { limit: 1 }), 'STORE_UNAVAILABLE');
      if (teardown) await teardown(other);
    });
  });
}

// ---------------------------------------------------------------------------
// Job queries
// ---------------------------------------------------------------------------

function describeJobQueries(store: () => DocumentStore): void {
  /** A fresh product and a way to create its jobs. */
  const product = () => {
    const productId = uid('product');
    const put = (overrides: Partial<JobDoc>) =>
      store().jobs.create(makeJob({ productId, ...overrides }));
    const claim = async (capabilities: readonly string[], now = T0, limit = 100) =>
      ids(await store().jobs.claimCandidates({ productId, capabilities, now, limit }));
    return { productId, put, claim };
  };
  /** Replaces the stored job with `changes` applied. */
  const change = async (job: Stored<JobDoc>, changes: Partial<JobDoc>) =>
    store().jobs.replace({ ...job, ...changes }, job._etag);

  describe('jobs.claimCandidates', () => {
    it('orders by priority, then seq, then id; respects limit; returns schema-valid docs', async () => {
      const p = product();
      const specs: [string, Priority, number][] = [
        ['a', 'low', 1],
        ['b', 'high', 5],
        ['e2', 'medium', 2],
        ['c', 'critical', 9],
        ['d', 'high', 2],
        ['e1', 'medium', 2],
      ];
      for (const [id, priority, seq] of specs) await p.put({ id, priority, seq });
      expect(await p.claim([])).toEqual(['c', 'd', 'b', 'e1', 'e2', 'a']);
      expect(await p.claim([], T0, 2)).toEqual(['c', 'd']);
      expect(await p.claim([], T0, 0)).toEqual([]);
      const docs = await store().jobs.claimCandidates({
        productId: p.productId,
        capabilities: [],
        now: T0,
        limit: 10,
      });
      for (const d of docs) S.JobDoc.parse(strip(d));
    });

    it('a job qualifies when its capabilities are a subset of the factory’s', async () => {
      const p = product();
      await p.put({ id: 'none', capabilities: [], seq: 4 });
      await p.put({ id: 'gpu', capabilities: ['gpu'], seq: 1 });
      await p.put({ id: 'both', capabilities: ['node', 'gpu'], seq: 2 });
      await p.put({ id: 'node', capabilities: ['node'], seq: 3 });
      await p.put({ id: 'zed', capabilities: ['zed'], seq: 0 });
      expect(await p.claim([])).toEqual(['none']);
      expect(await p.claim(['node'])).toEqual(['node', 'none']);
      expect(await p.claim(['gpu'])).toEqual(['gpu', 'none']);
      // Merged across capability sets, best first; order of capabilities is irrelevant.
      expect(await p.claim(['x', 'node', 'gpu'])).toEqual(['gpu', 'both', 'node', 'none']);
      expect(await p.claim(['gpu', 'node', 'zed'])).toEqual(['zed', 'gpu', 'both', 'node', 'none']);
    });

    it('skips jobs whose notBefore is later than now (equal is eligible)', async () => {
      const p = product();
      await p.put({ id: 'future', seq: 1, notBefore: at(1000) });
      await p.put({ id: 'now', seq: 2, notBefore: at(0) });
      await p.put({ id: 'past', seq: 3, notBefore: at(-1000) });
      await p.put({ id: 'never', seq: 4, notBefore: null });
      expect(await p.claim([], at(0))).toEqual(['now', 'past', 'never']);
      expect(await p.claim([], at(0), 2)).toEqual(['now', 'past']);
      expect(await p.claim([], at(999))).toEqual(['now', 'past', 'never']);
      expect(await p.claim([], at(1000))).toEqual(['future', 'now', 'past', 'never']);
    });

    it('returns queued jobs only', async () => {
      const p = product();
      const stages = S.Stage.options;
      for (const [i, stage] of stages.entries()) await p.put({ id: `j-${stage}`, stage, seq: i });
      expect(await p.claim([])).toEqual(['j-queued']);
    });

    it('never returns another product’s jobs', async () => {
      const a = product();
      const b = product();
      await a.put({ id: 'same', seq: 2 });
      await a.put({ id: 'a-only', seq: 1 });
      await b.put({ id: 'same', seq: 0, priority: 'critical' });
      expect(await a.claim([])).toEqual(['a-only', 'same']);
      expect(await b.claim([])).toEqual(['same']);
      expect(
        await store().jobs.claimCandidates({
          productId: uid('product'),
          capabilities: [],
          now: T0,
          limit: 10,
        }),
      ).toEqual([]);
    });

    it('follows changes of stage, priority, capabilities, notBefore and deletion', async () => {
      const p = product();
      let j1 = await p.put({ id: 'j1', seq: 1 });
      let j2 = await p.put({ id: 'j2', seq: 2 });
      let j3 = await p.put({ id: 'j3', seq: 3 });
      expect(await p.claim([])).toEqual(['j1', 'j2', 'j3']);

      j1 = await change(j1, { stage: 'assigned', holderFactoryId: 'f1', leaseEpoch: 1 });
      expect(await p.claim([])).toEqual(['j2', 'j3']);
      j1 = await change(j1, { stage: 'queued', holderFactoryId: null });
      expect(await p.claim([])).toEqual(['j1', 'j2', 'j3']);

      j3 = await change(j3, { priority: 'critical' });
      expect(await p.claim([])).toEqual(['j3', 'j1', 'j2']);

      j2 = await change(j2, { capabilities: ['gpu'] });
      expect(await p.claim([])).toEqual(['j3', 'j1']);
      expect(await p.claim(['gpu'])).toEqual(['j3', 'j1', 'j2']);
      j2 = await change(j2, { capabilities: [] });
      expect(await p.claim([])).toEqual(['j3', 'j1', 'j2']);

      j3 = await change(j3, { notBefore: at(5000) });
      expect(await p.claim([])).toEqual(['j1', 'j2']);
      expect(await p.claim([], at(5000))).toEqual(['j3', 'j1', 'j2']);

      j1 = await change(j1, { seq: 10 });
      expect(await p.claim([], at(5000))).toEqual(['j3', 'j2', 'j1']);

      await store().jobs.delete(p.productId, 'j1', j1._etag);
      expect(await p.claim([], at(5000))).toEqual(['j3', 'j2']);
      await change(j2, { stage: 'shipped' });
      await change(j3, { stage: 'dead_letter' });
      expect(await p.claim([], at(5000))).toEqual([]);
    });
  });

  describe('jobs.due', () => {
    const mine = async (productId: string, now: string) =>
      (await store().jobs.due({ now, limit: BIG })).filter((j) => j.productId === productId);

    it('returns jobs with dueAt <= now, earliest first', async () => {
      const p = product();
      await p.put({ id: 'j30', dueAt: at(30) });
      await p.put({ id: 'j10', dueAt: at(10) });
      await p.put({ id: 'j20', dueAt: at(20) });
      await p.put({ id: 'j10b', dueAt: at(10) });
      await p.put({ id: 'j31', dueAt: at(31) });
      await p.put({ id: 'none', dueAt: null });
      const due = await mine(p.productId, at(30));
      expect(due.map((j) => j.dueAt)).toEqual([at(10), at(10), at(20), at(30)]);
      expect(ids(due).sort()).toEqual(['j10', 'j10b', 'j20', 'j30']);
      expect(ids(await mine(p.productId, at(9)))).toEqual([]);
      for (const j of due) S.JobDoc.parse(strip(j));
    });

    it('respects limit, earliest first across products', async () => {
      const a = product();
      const b = product();
      await a.put({ id: 'a', dueAt: at(-2) });
      await b.put({ id: 'b', dueAt: at(-1) });
      const due = await store().jobs.due({ now: at(0), limit: 2 });
      expect(due).toHaveLength(2);
      expect(due[0]!.dueAt! <= due[1]!.dueAt!).toBe(true);
      const all = await store().jobs.due({ now: at(0), limit: BIG });
      const times = all.map((j) => j.dueAt ?? '');
      expect(times).toEqual([...times].sort());
      expect(all.some((j) => j.productId === a.productId)).toBe(true);
      expect(all.some((j) => j.productId === b.productId)).toBe(true);
      expect(await store().jobs.due({ now: at(0), limit: 0 })).toEqual([]);
    });

    it('pages past a position with `after`, never repeating or skipping', async () => {
      const p = product();
      for (const [id, t] of [
        ['a', 1],
        ['b', 2],
        ['c', 2],
        ['d', 3],
        ['e', 9],
      ] as const) {
        await p.put({ id, dueAt: at(t) });
      }
      const seen: string[] = [];
      let after: { dueAt: string; productId: string; id: string } | undefined;
      for (;;) {
        const batch = await store().jobs.due({ now: at(3), limit: 1, ...(after ? { after } : {}) });
        const next = batch[0];
        if (!next) break;
        after = { dueAt: next.dueAt ?? '', productId: next.productId, id: next.id };
        if (next.productId === p.productId) seen.push(next.id);
      }
      expect(seen.sort()).toEqual(['a', 'b', 'c', 'd']);
    });

    it('follows changes of dueAt and deletion', async () => {
      const p = product();
      let j = await p.put({ id: 'j', dueAt: at(10) });
      const k = await p.put({ id: 'k', dueAt: at(5) });
      expect(ids(await mine(p.productId, at(10)))).toEqual(['k', 'j']);
      j = await change(j, { dueAt: null });
      expect(ids(await mine(p.productId, at(10)))).toEqual(['k']);
      j = await change(j, { dueAt: at(11) });
      expect(ids(await mine(p.productId, at(10)))).toEqual(['k']);
      j = await change(j, { dueAt: at(1) });
      expect(ids(await mine(p.productId, at(10)))).toEqual(['j', 'k']);
      await store().jobs.delete(p.productId, k.id);
      expect(ids(await mine(p.productId, at(10)))).toEqual(['j']);
    });
  });

  describe('jobs.dependents', () => {
    it('returns the product’s jobs whose deps include the job, following changes', async () => {
      const p = product();
      const other = product();
      await p.put({ id: 'base', seq: 1 });
      const j2 = await p.put({ id: 'j2', seq: 2, deps: ['base'], stage: 'blocked' });
      let j3 = await p.put({ id: 'j3', seq: 3, deps: ['base', 'x'], stage: 'blocked' });
      await p.put({ id: 'j4', seq: 4, deps: [] });
      await other.put({ id: 'o1', deps: ['base'] });
      const dependents = async (productId: string, jobId: string) =>
        ids(await store().jobs.dependents(productId, jobId)).sort();
      expect(await dependents(p.productId, 'base')).toEqual(['j2', 'j3']);
      expect(await dependents(p.productId, 'x')).toEqual(['j3']);
      expect(await dependents(p.productId, 'j4')).toEqual([]);
      expect(await dependents(other.productId, 'base')).toEqual(['o1']);
      // Links, from index columns, in submission order.
      expect(await store().jobs.dependents(p.productId, 'base')).toEqual([
        {
          productId: p.productId,
          id: 'j2',
          stage: 'blocked',
          seq: 2,
          deps: ['base'],
          depsMode: 'hard',
        },
        {
          productId: p.productId,
          id: 'j3',
          stage: 'blocked',
          seq: 3,
          deps: ['base', 'x'],
          depsMode: 'hard',
        },
      ]);

      j3 = await change(j3, { deps: ['x'] });
      expect(await dependents(p.productId, 'base')).toEqual(['j2']);
      expect(await dependents(p.productId, 'x')).toEqual(['j3']);
      await change(j3, { deps: ['base', 'j2'] });
      expect(await dependents(p.productId, 'base')).toEqual(['j2', 'j3']);
      expect(await dependents(p.productId, 'x')).toEqual([]);
      expect(await dependents(p.productId, 'j2')).toEqual(['j3']);
      await store().jobs.delete(p.productId, 'j2', j2._etag);
      expect(await dependents(p.productId, 'base')).toEqual(['j3']);
    });
  });

  describe('jobs.links', () => {
    it('answers stage, deps and mode of the product’s jobs among the ids, following changes', async () => {
      const p = product();
      const other = product();
      await p.put({ id: 'a', seq: 1 });
      let b = await p.put({
        id: 'b',
        seq: 2,
        deps: ['a', 'a'],
        depsMode: 'soft',
        stage: 'blocked',
      });
      await other.put({ id: 'c', seq: 3 });
      const links = async (productId: string, ask: string[]) =>
        (await store().jobs.links(productId, ask)).sort((x, y) => (x.id < y.id ? -1 : 1));
      expect(await links(p.productId, ['b', 'a', 'c', 'nope', 'a'])).toEqual([
        { productId: p.productId, id: 'a', stage: 'queued', seq: 1, deps: [], depsMode: 'hard' },
        {
          productId: p.productId,
          id: 'b',
          stage: 'blocked',
          seq: 2,
          deps: ['a'],
          depsMode: 'soft',
        },
      ]);
      expect(await links(p.productId, [])).toEqual([]);
      expect(await links(other.productId, ['a', 'c'])).toEqual([
        {
          productId: other.productId,
          id: 'c',
          stage: 'queued',
          seq: 3,
          deps: [],
          depsMode: 'hard',
        },
      ]);
      b = await change(b, { stage: 'queued', depsMode: 'hard', deps: [] });
      expect(await links(p.productId, ['b'])).toEqual([
        { productId: p.productId, id: 'b', stage: 'queued', seq: 2, deps: [], depsMode: 'hard' },
      ]);
      await store().jobs.delete(p.productId, 'b', b._etag);
      expect(await links(p.productId, ['b'])).toEqual([]);
    });
  });

  describe('jobs.heldBy', () => {
    it('lists the factory’s held jobs of the product, oldest submission first, up to a limit', async () => {
      const p = product();
      const held = { holderFactoryId: 'f1', stage: 'building' as const };
      await p.put({ id: 'late', seq: 9, ...held });
      await p.put({ id: 'early', seq: 2, ...held });
      await p.put({ id: 'tie-b', seq: 5, ...held });
      await p.put({ id: 'tie-a', seq: 5, ...held });
      await p.put({ id: 'done', seq: 1, holderFactoryId: 'f1', stage: 'shipped' });
      await p.put({ id: 'other', seq: 1, holderFactoryId: 'f2', stage: 'assigned' });
      const heldBy = (limit: number) => store().jobs.heldBy(p.productId, 'f1', limit);
      expect(await heldBy(10)).toEqual([
        { id: 'early', seq: 2 },
        { id: 'tie-a', seq: 5 },
        { id: 'tie-b', seq: 5 },
        { id: 'late', seq: 9 },
      ]);
      expect(await heldBy(2)).toEqual([
        { id: 'early', seq: 2 },
        { id: 'tie-a', seq: 5 },
      ]);
      expect(await store().jobs.heldBy(product().productId, 'f1', 10)).toEqual([]);
    });
  });

  describe('jobs.countHeld', () => {
    it('counts the product’s jobs held by the factory in active stages, following changes', async () => {
      const p = product();
      const other = product();
      const held = (stage: Stage, holderFactoryId: string | null, id: string) =>
        p.put({ id, stage, holderFactoryId, leaseEpoch: 1 });
      await held('assigned', 'f1', 'a');
      let building = await held('building', 'f1', 'b');
      await held('review', 'f1', 'r');
      let testing = await held('testing', 'f2', 't');
      await held('queued', 'f1', 'q');
      await held('shipped', 'f1', 's');
      await held('failed', 'f1', 'x');
      await other.put({ id: 'o', stage: 'building', holderFactoryId: 'f1' });
      const count = (factoryId: string, productId = p.productId) =>
        store().jobs.countHeld(productId, factoryId);
      expect(await count('f1')).toBe(3);
      expect(await count('f2')).toBe(1);
      expect(await count('f3')).toBe(0);
      expect(await count('f1', other.productId)).toBe(1);

      building = await change(building, { stage: 'shipped' });
      expect(await count('f1')).toBe(2);
      testing = await change(testing, { holderFactoryId: 'f1', leaseEpoch: 2 });
      expect(await count('f1')).toBe(3);
      expect(await count('f2')).toBe(0);
      await store().jobs.delete(p.productId, 'a');
      expect(await count('f1')).toBe(2);
      await change(testing, { stage: 'queued', holderFactoryId: null });
      expect(await count('f1')).toBe(1);
      await change(building, { stage: 'building' });
      expect(await count('f1')).toBe(2);
    });
  });

  describe('jobs.countByStage', () => {
    /** The counts of the given products only (the store may hold other tests' jobs). */
    const counts = async (...productIds: string[]) =>
      (await store().jobs.countByStage()).filter((c) => productIds.includes(c.productId));

    it('counts each product’s jobs per stage, in (productId, stage) order, following changes', async () => {
      const a = product();
      const b = product();
      await a.put({ id: 'q1', stage: 'queued' });
      let q2 = await a.put({ id: 'q2', stage: 'queued' });
      await a.put({ id: 'b1', stage: 'building', holderFactoryId: 'f1', leaseEpoch: 1 });
      const d1 = await a.put({ id: 'd1', stage: 'dead_letter' });
      await b.put({ id: 'q1', stage: 'queued' });
      const expected = (x: typeof a, entries: [Stage, number][]) =>
        entries.map(([stage, count]) => ({ productId: x.productId, stage, count }));
      const all = await counts(a.productId, b.productId);
      const ofA = expected(a, [
        ['building', 1],
        ['dead_letter', 1],
        ['queued', 2],
      ]);
      const ofB = expected(b, [['queued', 1]]);
      expect(all).toEqual(a.productId < b.productId ? [...ofA, ...ofB] : [...ofB, ...ofA]);

      // A stage change moves one count; a change of anything else moves none.
      q2 = await change(q2, { stage: 'assigned', holderFactoryId: 'f2', leaseEpoch: 1 });
      await change(q2, { bodyMd: 'edited' });
      // Deleting the last job of a stage drops the pair (no zero counts).
      await store().jobs.delete(a.productId, 'd1', d1._etag);
      expect(await counts(a.productId)).toEqual(
        expected(a, [
          ['assigned', 1],
          ['building', 1],
          ['queued', 1],
        ]),
      );
      const whole = await store().jobs.countByStage();
      const keys = whole.map((c) => `${c.productId}\u0000${c.stage}`);
      expect(keys).toEqual([...keys].sort());
      expect(whole.every((c) => Number.isInteger(c.count) && c.count > 0)).toBe(true);
    });

    it('a product with no jobs has no counts', async () => {
      const p = product();
      const only = await p.put({ id: 'only' });
      expect(await counts(p.productId)).toEqual([
        { productId: p.productId, stage: 'queued', count: 1 },
      ]);
      await store().jobs.delete(p.productId, 'only', only._etag);
      expect(await counts(p.productId)).toEqual([]);
    });
  });

  describe('jobs.withOutbox', () => {
    it('returns jobs whose outbox is not empty, following changes', async () => {
      const p = product();
      const mine = async () =>
        ids(
          (await store().jobs.withOutbox({ limit: BIG })).filter(
            (j) => j.productId === p.productId,
          ),
        ).sort();
      const effect = { kind: 'notifyDependents', jobId: 'j1' } as const;
      let j1 = await p.put({ id: 'j1', outbox: [effect] });
      let j2 = await p.put({ id: 'j2', outbox: [] });
      expect(await mine()).toEqual(['j1']);
      j1 = await change(j1, { outbox: [] });
      expect(await mine()).toEqual([]);
      j2 = await change(j2, { outbox: [effect, effect] });
      j1 = await change(j1, { outbox: [effect] });
      expect(await mine()).toEqual(['j1', 'j2']);
      const one = await store().jobs.withOutbox({ limit: 1 });
      expect(one).toHaveLength(1);
      for (const j of one) S.JobDoc.parse(strip(j));
      expect(await store().jobs.withOutbox({ limit: 0 })).toEqual([]);
      await store().jobs.delete(p.productId, 'j2', j2._etag);
      expect(await mine()).toEqual(['j1']);
    });
  });

  describe('jobs.list', () => {
    const seqs = [1, 2, 3, 3, 4, 5, 6, 7, 8, 9];
    const stageOf = (i: number): Stage => (i % 3 === 0 ? 'blocked' : 'queued');
    const seed = async () => {
      const p = product();
      for (const [i, seq] of seqs.entries()) {
        await p.put({ id: `j${String(i).padStart(2, '0')}`, seq, stage: stageOf(i) });
      }
      return p;
    };
    /** Expected order: newest (highest seq) first; equal seq in a stable order. */
    const expectNewestFirst = (docs: readonly JobDoc[]) => {
      for (let i = 1; i < docs.length; i++) {
        expect(docs[i - 1]!.seq).toBeGreaterThanOrEqual(docs[i]!.seq);
      }
    };

    it('lists the product’s jobs newest first, optionally of one stage', async () => {
      const p = await seed();
      const all = await store().jobs.list({ productId: p.productId, limit: 100 });
      expect(all.nextCursor).toBeNull();
      expect(all.items).toHaveLength(seqs.length);
      expectNewestFirst(all.items);
      expect(all.items[0]!.seq).toBe(9);
      for (const j of all.items) S.JobDoc.parse(strip(j));

      const blocked = await store().jobs.list({
        productId: p.productId,
        stage: 'blocked',
        limit: 100,
      });
      expect(ids(blocked.items)).toEqual(['j09', 'j06', 'j03', 'j00']);
      const shipped = await store().jobs.list({
        productId: p.productId,
        stage: 'shipped',
        limit: 5,
      });
      expect(shipped).toEqual({ items: [], nextCursor: null });
      const none = await store().jobs.list({ productId: uid('product'), limit: 5 });
      expect(none).toEqual({ items: [], nextCursor: null });
    });

    it('pages through every job once, in order, for every page size', async () => {
      const p = await seed();
      const whole = (await store().jobs.list({ productId: p.productId, limit: 100 })).items;
      for (const limit of [1, 2, 3, 4, 9, 10, 11]) {
        const { items, pages } = await allPages(
          (q) => store().jobs.list({ productId: p.productId, ...q }),
          limit,
        );
        expect(ids(items)).toEqual(ids(whole));
        expect(pages).toBe(Math.max(1, Math.ceil(seqs.length / limit)));
      }
      const queued = await allPages(
        (q) => store().jobs.list({ productId: p.productId, stage: 'queued', ...q }),
        2,
      );
      expect(ids(queued.items)).toEqual(ids(whole.filter((j) => j.stage === 'queued')));
    });

    it('follows stage changes and deletion', async () => {
      const p = await seed();
      const j00 = await store().jobs.read(p.productId, 'j00');
      if (j00 === null) throw new Error('seeded job missing');
      await change(j00, { stage: 'shipped' });
      const list = async (stage?: Stage) =>
        ids(
          (
            await store().jobs.list({
              productId: p.productId,
              limit: 100,
              ...(stage ? { stage } : {}),
            })
          ).items,
        );
      expect(await list('shipped')).toEqual(['j00']);
      expect(await list('blocked')).toEqual(['j09', 'j06', 'j03']);
      await store().jobs.delete(p.productId, 'j09');
      expect(await list('blocked')).toEqual(['j06', 'j03']);
      expect(await list()).toHaveLength(seqs.length - 1);
    });
  });

  describe('jobs.list views and byte budget (issue 10, item 6)', () => {
    const BODY = 10_000;
    /** Six jobs of about 11 KB each (a 10,000-byte body and a manifest), newest first. */
    const seed = async () => {
      const p = product();
      for (let i = 0; i < 6; i++) {
        await p.put({
          id: `big${i}`,
          seq: i,
          bodyMd: `${i}`.repeat(BODY),
          manifestSnapshot: { repo: `r${i}`, nested: { files: [i, i + 1] } },
        });
      }
      return p;
    };
    const SummarySchema = S.JobDoc.omit({ bodyMd: true, manifestSnapshot: true });
    const bytes = (doc: unknown) => Buffer.byteLength(JSON.stringify(doc), 'utf8');

    it('6: list pages are summaries when asked: no body, no manifest, same order, pages and cursors', async () => {
      const p = await seed();
      const full = await store().jobs.list({ productId: p.productId, limit: 100 });
      const summary = await store().jobs.list({
        productId: p.productId,
        limit: 100,
        view: 'summary',
      });
      expect(ids(summary.items)).toEqual(ids(full.items));
      expect(summary.nextCursor).toBeNull();
      for (const [i, job] of summary.items.entries()) {
        expect(job).not.toHaveProperty('bodyMd');
        expect(job).not.toHaveProperty('manifestSnapshot');
        SummarySchema.parse(strip(job));
        const { bodyMd: _b, manifestSnapshot: _m, ...rest } = full.items[i]!;
        expect(job).toEqual(rest); // every other member, the etag included
      }
      // Paged: every job once, in order; the cursors of both views are interchangeable.
      const paged = await allPages(
        (q) => store().jobs.list({ productId: p.productId, view: 'summary', ...q }),
        4,
      );
      expect(ids(paged.items)).toEqual(ids(full.items));
      const first = await store().jobs.list({ productId: p.productId, limit: 2, view: 'summary' });
      const rest = await store().jobs.list({
        productId: p.productId,
        limit: 100,
        cursor: first.nextCursor,
      });
      expect([...ids(first.items), ...ids(rest.items)]).toEqual(ids(full.items));
      expect(rest.items[0]!.bodyMd).toBe('3'.repeat(BODY));
      const queued = await store().jobs.list({
        productId: p.productId,
        stage: 'queued',
        limit: 3,
        cursor: first.nextCursor,
        view: 'summary',
      });
      expect(ids(queued.items)).toEqual(['big3', 'big2', 'big1']);
    });

    it('6: a summary page never reads a job body into JavaScript', async () => {
      const p = product();
      const body = 'B'.repeat(300_000);
      await p.put({
        id: 'huge',
        seq: 1,
        bodyMd: body,
        manifestSnapshot: { blob: 'M'.repeat(300_000) },
      });
      const parsed: number[] = [];
      const parse = JSON.parse;
      const spy = vi
        .spyOn(JSON, 'parse')
        .mockImplementation((text: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
          parsed.push(typeof text === 'string' ? text.length : 0);
          return parse(text, reviver);
        });
      try {
        const summary = await store().jobs.list({
          productId: p.productId,
          limit: 5,
          view: 'summary',
        });
        expect(ids(summary.items)).toEqual(['huge']);
        expect(Math.max(0, ...parsed), 'no JSON text holding the body was parsed').toBeLessThan(
          100_000,
        );
        // The control: the spy does see this store parse a whole job.
        parsed.length = 0;
        const full = await store().jobs.list({ productId: p.productId, limit: 5 });
        expect(full.items[0]!.bodyMd).toBe(body);
        expect(Math.max(0, ...parsed)).toBeGreaterThan(300_000);
      } finally {
        spy.mockRestore();
      }
    });

    it('6: a page ends before the job that would pass maxBytes; a job over it alone comes alone', async () => {
      const p = await seed();
      const budget = 25_000; // two of these jobs fit, three do not
      const pages: string[][] = [];
      let cursor: string | null = null;
      do {
        const page: Page<Stored<JobDoc>> = await store().jobs.list({
          productId: p.productId,
          limit: 10,
          cursor,
          maxBytes: budget,
        });
        expect(page.items.length).toBeGreaterThan(0);
        expect(page.items.reduce((n, j) => n + bytes(j), 0)).toBeLessThanOrEqual(budget);
        for (const j of page.items) S.JobDoc.parse(strip(j));
        pages.push(ids(page.items));
        cursor = page.nextCursor;
      } while (cursor !== null);
      expect(pages).toEqual([
        ['big5', 'big4'],
        ['big3', 'big2'],
        ['big1', 'big0'],
      ]);
      // limit still applies within the budget; summaries are small: all fit.
      const one = await store().jobs.list({ productId: p.productId, limit: 1, maxBytes: budget });
      expect(ids(one.items)).toEqual(['big5']);
      expect(one.nextCursor).not.toBeNull();
      const summaries = await store().jobs.list({
        productId: p.productId,
        limit: 10,
        maxBytes: budget,
        view: 'summary',
      });
      expect(ids(summaries.items)).toEqual(['big5', 'big4', 'big3', 'big2', 'big1', 'big0']);
      expect(summaries.nextCursor).toBeNull();
      // A job bigger than the whole budget comes alone on its page, never skipped.
      await p.put({ id: 'giant', seq: 9, bodyMd: 'g'.repeat(3 * budget) });
      const giant = await store().jobs.list({
        productId: p.productId,
        limit: 10,
        maxBytes: budget,
      });
      expect(ids(giant.items)).toEqual(['giant']);
      const after = await store().jobs.list({
        productId: p.productId,
        limit: 10,
        maxBytes: budget,
        cursor: giant.nextCursor,
      });
      expect(ids(after.items)).toEqual(['big5', 'big4']);
    });

    it('6: a bad view or maxBytes is VALIDATION', async () => {
      const productId = uid('product');
      for (const bad of [
        { view: 'bodies' },
        { maxBytes: 0 },
        { maxBytes: -5 },
        { maxBytes: 1.5 },
      ]) {
        await expectCode(
          store().jobs.list({ productId, limit: 5, ...(bad as object) }),
          'VALIDATION',
        );
      }
    });
  });

  describe('jobs.listBlocked', () => {
    it('lists the blocked jobs of every product, oldest first, through every page, as links', async () => {
      const a = product();
      const b = product();
      await a.put({ id: 'a1', seq: 1, stage: 'blocked', deps: ['x'] });
      await b.put({ id: 'b2', seq: 2, stage: 'blocked', deps: ['y'], depsMode: 'soft' });
      let a3 = await a.put({ id: 'a3', seq: 3, stage: 'blocked' });
      await b.put({ id: 'b4', seq: 4, stage: 'blocked' });
      await a.put({ id: 'a5', seq: 5, stage: 'blocked' });
      await a.put({ id: 'a6', seq: 6, stage: 'queued' });
      const ours = new Set([a.productId, b.productId]);
      const walk = async (limit: number) => {
        const { items } = await allPages((q) => store().jobs.listBlocked(q), limit);
        for (const j of items) expect(j.stage).toBe('blocked');
        for (let i = 1; i < items.length; i++) {
          expect(items[i - 1]!.seq).toBeLessThanOrEqual(items[i]!.seq);
        }
        const keys = items.map((j) => `${j.productId}/${j.id}`);
        expect(new Set(keys).size).toBe(keys.length);
        return ids(items.filter((j) => ours.has(j.productId)));
      };
      expect(await walk(2)).toEqual(['a1', 'b2', 'a3', 'b4', 'a5']);
      expect(await walk(1)).toEqual(['a1', 'b2', 'a3', 'b4', 'a5']);
      a3 = await change(a3, { stage: 'queued' });
      expect(await walk(3)).toEqual(['a1', 'b2', 'b4', 'a5']);
      await change(a3, { stage: 'blocked' });
      expect(await walk(3)).toEqual(['a1', 'b2', 'a3', 'b4', 'a5']);
      // Links only: what the sweep needs, from index columns.
      const { items } = await allPages((q) => store().jobs.listBlocked(q), 500);
      const b2 = items.find((j) => j.productId === b.productId && j.id === 'b2');
      expect(b2).toEqual({
        productId: b.productId,
        id: 'b2',
        stage: 'blocked',
        seq: 2,
        deps: ['y'],
        depsMode: 'soft',
      });
    });
  });

  describe('bad cursors', () => {
    it('fail with VALIDATION in every paged list', async () => {
      const bad = 'not a cursor!';
      const s = store();
      await expectCode(
        s.jobs.list({ productId: uid('product'), limit: 1, cursor: bad }),
        'VALIDATION',
      );
      await expectCode(
        s.jobs.list({ productId: uid('product'), stage: 'queued', limit: 1, cursor: bad }),
        'VALIDATION',
      );
      await expectCode(s.jobs.listBlocked({ limit: 1, cursor: bad }), 'VALIDATION');
      await expectCode(s.runs.list(uid('job'), { limit: 1, cursor: bad }), 'VALIDATION');
      await expectCode(s.artifacts.list(uid('job'), { limit: 1, cursor: bad }), 'VALIDATION');
      await expectCode(s.factories.list(uid('product'), { limit: 1, cursor: bad }), 'VALIDATION');
      await expectCode(s.profiles.list(uid('product'), { limit: 1, cursor: bad }), 'VALIDATION');
      await expectCode(s.factories.heartbeatBefore(T0, { limit: 1, cursor: bad }), 'VALIDATION');
      await expectCode(
        s.factories.heartbeatBefore(T0, {
          limit: 1,
          cursor: Buffer.from(JSON.stringify(['factories.list', 'x'])).toString('base64url'),
        }),
        'VALIDATION',
      );
    });
  });
}

// ---------------------------------------------------------------------------
// Events, runs, artifacts, factories, profiles
// ---------------------------------------------------------------------------

function describeOtherLists(store: () => DocumentStore): void {
  describe('events', () => {
    it('append is idempotent: an existing id is left as it is', async () => {
      const jobId = uid('job');
      const e1 = makeEvent({ jobId, seq: 1 });
      expect(await store().events.append(e1)).toBe(true);
      const first = await store().events.read(jobId, e1.id);
      expect(await store().events.append(e1)).toBe(false);
      expect(await store().events.append({ ...e1, type: 'claimed', actor: 'someone-else' })).toBe(
        false,
      );
      expect(await store().events.read(jobId, e1.id)).toEqual(first);
      const listed = await store().events.list(jobId, { limit: 10 });
      expect(listed.map(strip)).toEqual([e1]);
      const e2 = makeEvent({ jobId, seq: 2 });
      // Two racing appends of one event: exactly one stores it.
      expect(
        (await Promise.all([store().events.append(e2), store().events.append(e2)])).sort(),
      ).toEqual([false, true]);
      expect(await store().events.list(jobId, { limit: 10 })).toHaveLength(2);
    });

    it('list returns the job’s events after afterSeq, in seq order, up to limit', async () => {
      const jobId = uid('job');
      const otherJob = uid('job');
      for (const seq of [3, 1, 5, 2, 4]) await store().events.append(makeEvent({ jobId, seq }));
      await store().events.append(makeEvent({ jobId: otherJob, seq: 1 }));
      const seqs = async (q: { afterSeq?: number; limit: number }) =>
        (await store().events.list(jobId, q)).map((e) => e.seq);
      expect(await seqs({ limit: 100 })).toEqual([1, 2, 3, 4, 5]);
      expect(await seqs({ afterSeq: 0, limit: 100 })).toEqual([1, 2, 3, 4, 5]);
      expect(await seqs({ afterSeq: 2, limit: 100 })).toEqual([3, 4, 5]);
      expect(await seqs({ afterSeq: 2, limit: 2 })).toEqual([3, 4]);
      expect(await seqs({ afterSeq: 5, limit: 100 })).toEqual([]);
      expect(await seqs({ limit: 0 })).toEqual([]);
      expect((await store().events.list(otherJob, { limit: 100 })).map((e) => e.seq)).toEqual([1]);
      expect(await store().events.list(uid('job'), { limit: 100 })).toEqual([]);
      for (const e of await store().events.list(jobId, { limit: 100 })) S.EventDoc.parse(strip(e));
    });

    it('list follows replace and delete', async () => {
      const jobId = uid('job');
      const e1 = await store().events.create(makeEvent({ jobId, seq: 1 }));
      await store().events.create(makeEvent({ jobId, seq: 2 }));
      await store().events.replace({ ...e1, actor: 'admin' }, e1._etag);
      const listed = await store().events.list(jobId, { limit: 10 });
      expect(listed.map((e) => e.actor)).toEqual(['admin', null]);
      await store().events.delete(jobId, e1.id);
      expect((await store().events.list(jobId, { limit: 10 })).map((e) => e.seq)).toEqual([2]);
    });
  });

  /** Creates `docs` in order, then checks list order and paging of the partition. */
  async function checkList<T extends { id: string }>(
    create: (doc: T) => Promise<Stored<T>>,
    list: (q: PageRequest) => Promise<Page<Stored<T>>>,
    docs: readonly T[],
    expected: readonly string[],
    schema: z.ZodType<T>,
  ): Promise<void> {
    expect(await list({ limit: 5 })).toEqual({ items: [], nextCursor: null });
    for (const d of docs) await create(d);
    const whole = await list({ limit: 100 });
    expect(whole.nextCursor).toBeNull();
    expect(ids(whole.items)).toEqual(expected);
    for (const d of whole.items) expect(schema.parse(strip(d))).toBeTruthy();
    for (const limit of [1, 2, expected.length, expected.length + 1]) {
      const { items, pages } = await allPages(list, limit);
      expect(ids(items)).toEqual(expected);
      expect(pages).toBe(Math.max(1, Math.ceil(expected.length / limit)));
    }
  }

  describe('runs.list', () => {
    it('lists the job’s runs in attempt order, with paging', async () => {
      const jobId = uid('job');
      const docs = [3, 1, 4, 2].map((attempt) => makeRun({ jobId, attempt }));
      await store().runs.create(makeRun({ jobId: uid('job') }));
      await checkList(
        (d) => store().runs.create(d),
        (q) => store().runs.list(jobId, q),
        docs,
        [1, 2, 3, 4].map((n) => `${jobId}.r${n}`),
        S.RunDoc,
      );
    });
  });

  describe('artifacts.list', () => {
    it('lists the job’s artifacts by createdAt then id, with paging', async () => {
      const jobId = uid('job');
      const docs = [
        makeArtifact({ jobId, id: 'b', createdAt: at(20) }),
        makeArtifact({ jobId, id: 'z', createdAt: at(10) }),
        makeArtifact({ jobId, id: 'a', createdAt: at(20) }),
        makeArtifact({ jobId, id: 'c', createdAt: at(30) }),
      ];
      await checkList(
        (d) => store().artifacts.create(d),
        (q) => store().artifacts.list(jobId, q),
        docs,
        ['z', 'a', 'b', 'c'],
        S.ArtifactDoc,
      );
    });
  });

  describe('factories.list', () => {
    it('lists the product’s factories by id, with paging', async () => {
      const productId = uid('product');
      const docs = ['f-c', 'f-a', 'f-d', 'f-b'].map((id) =>
        makeFactory({ productId, id, factoryId: id }),
      );
      await store().factories.create(makeFactory({ productId: uid('product'), id: 'f-a' }));
      await checkList(
        (d) => store().factories.create(d),
        (q) => store().factories.list(productId, q),
        docs,
        ['f-a', 'f-b', 'f-c', 'f-d'],
        S.FactoryDoc,
      );
    });
  });

  // -- Stale factories across products (factories.heartbeatBefore) ------------------------
  describe('factories.heartbeatBefore', () => {
    /** Far before T0, so other tests' factories (beating at T0 or later) stay out of the way. */
    const past = (offsetMs: number): string =>
      new Date(Date.UTC(2001, 0, 1) + offsetMs).toISOString();

    it('lists every product’s factories that beat before the cutoff, oldest beat first, through every page', async () => {
      const a = uid('product');
      const b = uid('product');
      const put = (productId: string, id: string, beat: string) =>
        store().factories.create(makeFactory({ productId, id, lastHeartbeatAt: beat }));
      await put(a, 'f-late', past(3000));
      await put(b, 'f-mid', past(2000));
      const early = await put(a, 'f-early', past(1000));
      await put(b, 'f-tie', past(2000));
      await put(a, 'f-at-cutoff', past(4000));
      await put(b, 'f-fresh', past(5000));
      const ours = new Set([a, b]);
      const walk = async (cutoff: string, limit: number) => {
        const { items } = await allPages(
          (q) => store().factories.heartbeatBefore(cutoff, q),
          limit,
        );
        for (const f of items) expect(f.lastHeartbeatAt < cutoff).toBe(true);
        for (let i = 1; i < items.length; i++) {
          expect(items[i - 1]!.lastHeartbeatAt <= items[i]!.lastHeartbeatAt).toBe(true);
        }
        const keys = items.map((f) => `${f.productId}/${f.id}`);
        expect(new Set(keys).size).toBe(keys.length);
        return items.filter((f) => ours.has(f.productId));
      };
      const expected = ['f-early', 'f-mid', 'f-tie', 'f-late'];
      for (const limit of [1, 2, 500]) {
        const got = await walk(past(4000), limit);
        expect(got.map((f) => f.id)).toEqual(expected);
        // Whole documents, as written.
        const mid = got.find((f) => f.id === 'f-mid')!;
        expect(S.FactoryDoc.parse(strip(mid))).toEqual(
          makeFactory({ productId: b, id: 'f-mid', lastHeartbeatAt: past(2000) }),
        );
      }
      expect((await walk(past(2000), 1)).map((f) => f.id)).toEqual(['f-early']);
      // A beat moves a factory out of the past; an older beat brings it back in order.
      const beaten = await store().factories.replace(
        { ...strip(early), lastHeartbeatAt: past(6000) },
        early._etag,
      );
      expect((await walk(past(4000), 2)).map((f) => f.id)).toEqual(['f-mid', 'f-tie', 'f-late']);
      await store().factories.replace(
        { ...strip(beaten), lastHeartbeatAt: past(2500) },
        beaten._etag,
      );
      expect((await walk(past(4000), 2)).map((f) => f.id)).toEqual([
        'f-mid',
        'f-tie',
        'f-early',
        'f-late',
      ]);
      await store().factories.delete(b, 'f-tie');
      expect((await walk(past(4000), 3)).map((f) => f.id)).toEqual(['f-mid', 'f-early', 'f-late']);
    });
  });

  describe('profiles.list', () => {
    it('lists the product’s profiles by id, with paging', async () => {
      const productId = uid('product');
      const docs = ['p3', 'p1', 'p2'].map((id) => makeProfile({ productId, id, name: id }));
      await checkList(
        (d) => store().profiles.create(d),
        (q) => store().profiles.list(productId, q),
        docs,
        ['p1', 'p2', 'p3'],
        S.ProfileDoc,
      );
    });
  });
}

// ---------------------------------------------------------------------------
// Retention (issue 14): finishedBefore and purgeJob
// ---------------------------------------------------------------------------

const DAY = 86_400_000;

function describeRetention(store: () => DocumentStore): void {
  /**
   * Times far before every other test's documents (which sit around T0), so a cutoff
   * among them sees this test's jobs only, even in a shared store.
   */
  const old = (offsetMs: number): string => at(-1000 * DAY + offsetMs);
  /** This product's jobs among every job finished before `before`, following pages of `limit`. */
  const finished = async (productId: string, before: string, limit: number) => {
    const out: Array<{ id: string; stage: Stage; finishedAt: string }> = [];
    const all: string[] = [];
    let after: { finishedAt: string; id: string; productId: string } | undefined;
    for (let pages = 0; ; pages++) {
      expect(pages, 'paging must end').toBeLessThan(100_000);
      const page = await store().jobs.finishedBefore({
        before,
        limit,
        ...(after ? { after } : {}),
      });
      expect(page.length).toBeLessThanOrEqual(limit);
      for (const j of page) {
        all.push(`${j.finishedAt}\u0000${j.id}\u0000${j.productId}`);
        if (j.productId === productId) {
          out.push({ id: j.id, stage: j.stage, finishedAt: j.finishedAt });
        }
      }
      const last = page.at(-1);
      if (page.length < limit || last === undefined) break;
      after = { finishedAt: last.finishedAt, id: last.id, productId: last.productId };
    }
    // Earliest finished first, never a repeat, across every product.
    expect(all).toEqual([...new Set(all)].sort());
    return out;
  };

  describe('jobs.finishedBefore (retention)', () => {
    it('lists terminal jobs finished before the cutoff, earliest first, through every page size', async () => {
      const productId = uid('product');
      const put = (id: string, stage: Stage, t: number) =>
        store().jobs.create(makeJob({ productId, id, stage, updatedAt: old(t) }));
      await put('s20', 'shipped', 20);
      await put('d10', 'dead_letter', 10);
      await put('s10', 'shipped', 10);
      await put('q5', 'queued', 5);
      await put('f1', 'failed', 1);
      await put('b2', 'blocked', 2);
      await put('t3', 'testing', 3);
      await put('s30', 'shipped', 30); // at the cutoff: not before it
      for (const limit of [1, 2, 3, 100]) {
        expect(await finished(productId, old(30), limit)).toEqual([
          { id: 'd10', stage: 'dead_letter', finishedAt: old(10) },
          { id: 's10', stage: 'shipped', finishedAt: old(10) },
          { id: 's20', stage: 'shipped', finishedAt: old(20) },
        ]);
      }
      expect(await store().jobs.finishedBefore({ before: old(30), limit: 0 })).toEqual([]);
    });

    it('follows stage changes, new finish times and deletion', async () => {
      const productId = uid('product');
      let j = await store().jobs.create(
        makeJob({ productId, id: 'j', stage: 'dead_letter', updatedAt: old(10) }),
      );
      const k = await store().jobs.create(
        makeJob({ productId, id: 'k', stage: 'shipped', updatedAt: old(20) }),
      );
      expect(ids(await finished(productId, old(100), 50))).toEqual(['j', 'k']);
      j = await store().jobs.replace({ ...j, stage: 'queued', updatedAt: old(30) }, j._etag);
      expect(ids(await finished(productId, old(100), 50))).toEqual(['k']);
      j = await store().jobs.replace({ ...j, stage: 'shipped', updatedAt: old(40) }, j._etag);
      expect(await finished(productId, old(100), 50)).toEqual([
        { id: 'k', stage: 'shipped', finishedAt: old(20) },
        { id: 'j', stage: 'shipped', finishedAt: old(40) },
      ]);
      expect(ids(await finished(productId, old(40), 50))).toEqual(['k']);
      await store().jobs.delete(productId, k.id);
      expect(ids(await finished(productId, old(100), 50))).toEqual(['j']);
    });

    it('a bad query is VALIDATION', async () => {
      await expectCode(store().jobs.finishedBefore({ before: old(1), limit: -1 }), 'VALIDATION');
      await expectCode(
        store().jobs.finishedBefore({ before: 42 as unknown as string, limit: 1 }),
        'VALIDATION',
      );
    });
  });

  describe('purgeJob (retention)', () => {
    /** A shipped job with 2 runs, a lease, 3 events and an artifact pointer. */
    const seed = async (productId: string, overrides: Partial<JobDoc> = {}) => {
      const job = await store().jobs.create(
        makeJob({ productId, stage: 'shipped', updatedAt: old(10), ...overrides }),
      );
      const jobId = job.id;
      await store().runs.create(makeRun({ productId, jobId, attempt: 1 }));
      await store().runs.create(makeRun({ productId, jobId, attempt: 2 }));
      await store().leases.create(makeLease({ productId, jobId }));
      for (const seq of [1, 2, 3])
        await store().events.append(makeEvent({ productId, jobId, seq }));
      await store().artifacts.create(makeArtifact({ productId, jobId }));
      return job;
    };
    const holdings = async (productId: string, jobId: string) => ({
      job: (await store().jobs.read(productId, jobId)) !== null,
      runs: (await store().runs.list(jobId, { limit: 100 })).items.length,
      lease: (await store().leases.read(jobId, jobId)) !== null,
      events: (await store().events.list(jobId, { limit: 100 })).length,
      artifacts: (await store().artifacts.list(jobId, { limit: 100 })).items.length,
    });
    const whole = { job: true, runs: 2, lease: true, events: 3, artifacts: 1 };
    const gone = { job: false, runs: 0, lease: false, events: 0, artifacts: 0 };

    it('deletes the job with its runs, lease, events and artifacts, and nothing of another job', async () => {
      const s = store();
      if (s.purgeJob === undefined) throw new Error(`${s.kind} has no purgeJob`);
      const productId = uid('product');
      const j = await seed(productId);
      const k = await seed(productId);
      expect(await holdings(productId, j.id)).toEqual(whole);
      expect(await s.purgeJob(productId, j.id, j._etag)).toEqual({
        runs: 2,
        leases: 1,
        events: 3,
        artifacts: 1,
      });
      expect(await holdings(productId, j.id)).toEqual(gone);
      expect(await holdings(productId, k.id)).toEqual(whole);
      expect(ids(await finished(productId, old(100), 100))).toEqual([k.id]);
      expect(await s.jobs.links(productId, [j.id, k.id])).toHaveLength(1);
      // Again: nothing there.
      expect(await s.purgeJob(productId, j.id, j._etag)).toBeNull();
      // The id may be used again (a resubmission after its retention).
      await s.jobs.create(makeJob({ productId, id: j.id }));
      expect(await s.events.list(j.id, { limit: 10 })).toEqual([]);
    });

    it('with a stale etag: PRECONDITION_FAILED, and nothing is deleted', async () => {
      const s = store();
      if (s.purgeJob === undefined) throw new Error(`${s.kind} has no purgeJob`);
      const productId = uid('product');
      const j = await seed(productId);
      const moved = await s.jobs.replace({ ...j, stage: 'queued' }, j._etag);
      await expectCode(s.purgeJob(productId, j.id, j._etag), 'PRECONDITION_FAILED');
      expect(await holdings(productId, j.id)).toEqual(whole);
      expect((await s.jobs.read(productId, j.id))?._etag).toBe(moved._etag);
      // Another product's job of that id is not there: null, and this one stays.
      expect(await s.purgeJob(uid('product'), j.id, moved._etag)).toBeNull();
      expect(await holdings(productId, j.id)).toEqual(whole);
    });

    it('takes the job out of its deps’ dependents', async () => {
      const s = store();
      if (s.purgeJob === undefined) throw new Error(`${s.kind} has no purgeJob`);
      const productId = uid('product');
      const dep = await s.jobs.create(makeJob({ productId, stage: 'shipped' }));
      const j = await seed(productId, { deps: [dep.id] });
      const other = await s.jobs.create(makeJob({ productId, deps: [dep.id] }));
      expect(ids(await s.jobs.dependents(productId, dep.id)).sort()).toEqual(
        [j.id, other.id].sort(),
      );
      await s.purgeJob(productId, j.id, j._etag);
      expect(ids(await s.jobs.dependents(productId, dep.id))).toEqual([other.id]);
    });

    it('a purged queued job leaves the claim queue', async () => {
      const s = store();
      if (s.purgeJob === undefined) throw new Error(`${s.kind} has no purgeJob`);
      const productId = uid('product');
      const j = await s.jobs.create(makeJob({ productId, stage: 'queued' }));
      await s.purgeJob(productId, j.id, j._etag);
      expect(
        await s.jobs.claimCandidates({ productId, capabilities: [], now: T0, limit: 10 }),
      ).toEqual([]);
      expect(await s.jobs.countByStage()).not.toContainEqual(
        expect.objectContaining({ productId }),
      );
    });
  });
}
