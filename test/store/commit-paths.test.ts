/**
 * A store that commits a job with its derived documents in one transaction
 * (`DocumentStore.commit`) and the same store with `commit` hidden (the runtime then
 * writes through the outbox: job first, follow-ups after, a second job write to clear
 * it) must leave the same documents and events for the same calls. Each store runs one
 * deterministic workload (simulated clock, fixed jitter, fixed keys) both ways; the
 * dumps are compared after dropping what legitimately differs (etags and the store's
 * own bookkeeping members).
 *
 * Cosmos DB has no `commit` (its documents live in separately committed partitions):
 * it only has the outbox path, so there is nothing to compare there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { SimulatedClock } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import type { ClaimGrant, PatchTarget, SubmitInput } from '../../runtime/types.js';
import { must } from '../support/harness.js';

const PRODUCT = 'p-commit-paths';
const MINUTE = 60_000;

interface Opened {
  store: DocumentStore;
  /** Closes the store and removes what it left on disk. */
  dispose(): Promise<void>;
}

const STORE_KINDS: Array<{ name: string; open(): Opened }> = [
  {
    name: 'memory',
    open: () => {
      const store = createMemoryStore();
      return { store, dispose: () => store.close() };
    },
  },
  {
    name: 'sqlite',
    open: () => {
      const dir = mkdtempSync(join(tmpdir(), 'fleet-commit-paths-'));
      const store = openSqliteStore({ path: join(dir, 'fleet.db') });
      return {
        store,
        dispose: async () => {
          try {
            await store.close();
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        },
      };
    },
  },
];

/**
 * The same store without `commit`: every member is the store's own, bound to it, so
 * the runtime sees the store exactly as it is except that it cannot commit atomically.
 */
function withoutCommit(store: DocumentStore): DocumentStore {
  return new Proxy(store, {
    get(target, key) {
      if (key === 'commit') return undefined;
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
    has(target, key) {
      return key !== 'commit' && Reflect.has(target, key);
    },
  });
}

/**
 * Every kind of durable change the runtime makes: submissions (with a dependency, a
 * budget and a retry policy), heartbeats, claims, every worker move, progress with
 * insights and artifacts, renew, release, a failure that waits for its retry, the
 * supervisor's retry and lease reaping, cancel and requeue. Returns the job ids.
 */
async function workload(coord: Coordinator, clock: SimulatedClock): Promise<string[]> {
  const submit = async (key: string, extra: Partial<SubmitInput> = {}): Promise<string> =>
    must(
      await coord.submit(
        PRODUCT,
        { idempotencyKey: key, bodyMd: `# ${key}\n`, ...extra } as SubmitInput,
        'submitter',
      ),
    ).job.id;
  const claim = async (factoryId: string): Promise<ClaimGrant> => {
    const grant = must(await coord.claimNextJob(PRODUCT, { factoryId }));
    if (grant === null) throw new Error(`nothing to claim for ${factoryId}`);
    return grant;
  };
  const move = async (g: ClaimGrant, to: PatchTarget, extra: object = {}) => {
    clock.advance(1_000);
    return must(
      await coord.transition(PRODUCT, g.job.id, {
        factoryId: g.job.holderFactoryId ?? '',
        leaseEpoch: g.lease.leaseEpoch,
        to,
        ...extra,
      }),
    );
  };

  must(await coord.heartbeat(PRODUCT, { factoryId: 'f1', capabilities: ['git'], health: 'ok' }));
  must(await coord.heartbeat(PRODUCT, { factoryId: 'f2', capabilities: ['git'], health: 'ok' }));
  const a = await submit('a', { priority: 'high', capabilities: ['git'] });
  clock.advance(10);
  const b = await submit('b', { deps: [a], budget: { tokens: 1_000_000 } });
  clock.advance(10);
  const c = await submit('c', { retry: { max: 3, on: ['transient'] } });
  clock.advance(10);
  const d = await submit('d', { priority: 'low' });
  clock.advance(10);
  const e = await submit('e', { priority: 'low' });
  // Submitting the same key again changes nothing.
  await submit('a', { priority: 'high', capabilities: ['git'] });

  // a: the whole lifecycle, with progress, insights, artifacts and a renewal.
  const ga = await claim('f1');
  expect(ga.job.id).toBe(a);
  await move(ga, 'building', { checkpoint: { wipBranch: 'wip/a', wipCommit: 'abc123' } });
  clock.advance(500);
  must(
    await coord.recordProgress(PRODUCT, a, {
      factoryId: 'f1',
      leaseEpoch: ga.lease.leaseEpoch,
      seq: 1,
      insights: { tokensIn: 120, tokensOut: 80, costUsd: 0.01, turns: 2 },
      artifacts: [{ name: 'log', uri: 'file:///tmp/a.log', bytes: 12 }],
    }),
  );
  clock.advance(500);
  must(await coord.renewLease(PRODUCT, a, { factoryId: 'f1', leaseEpoch: ga.lease.leaseEpoch }));
  await move(ga, 'review');
  await move(ga, 'building'); // sent back
  await move(ga, 'review');
  await move(ga, 'testing', { insights: { tokensIn: 10, toolCalls: 3 } });
  await move(ga, 'shipped', { result: { pr: 1 }, verifyResult: { ok: true } });

  // b: unblocked by a's shipping; claimed, then released.
  const gb = await claim('f2');
  expect(gb.job.id).toBe(b);
  clock.advance(1_000);
  must(
    await coord.releaseLease(PRODUCT, b, {
      factoryId: 'f2',
      leaseEpoch: gb.lease.leaseEpoch,
      reason: 'going away',
    }),
  );

  // b again, then c fails transiently and waits for its retry.
  const gb2 = await claim('f1');
  expect(gb2.job.id).toBe(b);
  await move(gb2, 'building');
  const gc = await claim('f2');
  expect(gc.job.id).toBe(c);
  await move(gc, 'building');
  await move(gc, 'failed', { error: { class: 'transient', message: 'flaky' } });

  // d: claimed and abandoned: its lease expires and the sweep reaps it.
  const gd = await claim('f2');
  expect(gd.job.id).toBe(d);
  clock.advance(10 * MINUTE);
  await coord.sweep();
  await coord.drain();

  // e: cancelled while queued, then requeued.
  must(await coord.cancel(PRODUCT, e, 'not now', 'admin'));
  clock.advance(1_000);
  must(await coord.requeue(PRODUCT, e, 'admin'));
  await coord.drain();
  return [a, b, c, d, e];
}

/** Members a store or a write path may set differently without meaning anything else. */
const VOLATILE = new Set(['_etag', '_ts', '_rid', '_self', '_attachments']);

/**
 * Drops {@link VOLATILE} members and sorts keys. An event's `writer` is
 * `<random id of the writing process>.<counter>`: the random part differs from one
 * coordinator to the next by design, so only the counter is kept.
 */
function normalise(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => !VOLATILE.has(k))
        .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
        .map(([k, v]) => [
          k,
          k === 'writer' && typeof v === 'string' ? v.slice(v.lastIndexOf('.') + 1) : normalise(v),
        ]),
    );
  }
  return value;
}

/** Every document the workload left, read straight from the store. */
async function dump(store: DocumentStore, ids: readonly string[]): Promise<unknown> {
  const jobs: Record<string, unknown> = {};
  for (const id of ids) {
    jobs[id] = {
      job: await store.jobs.read(PRODUCT, id),
      events: await store.events.list(id, { limit: 10_000 }),
      runs: (await store.runs.list(id, { limit: 500 })).items,
      lease: await store.leases.read(id, id),
      artifacts: (await store.artifacts.list(id, { limit: 500 })).items,
    };
  }
  const factories = (await store.factories.list(PRODUCT, { limit: 500 })).items;
  return normalise({ jobs, factories });
}

async function run(
  kind: (typeof STORE_KINDS)[number],
  path: 'commit' | 'outbox',
): Promise<{ dump: unknown; ids: string[]; usedCommit: number }> {
  const opened = kind.open();
  try {
    const real = opened.store;
    let usedCommit = 0;
    // Count the one-transaction commits, so the test proves which path it exercised.
    const counted: DocumentStore =
      path === 'commit'
        ? new Proxy(real, {
            get(target, key) {
              if (key === 'commit' && target.commit !== undefined) {
                const commit = target.commit.bind(target);
                return (c: Parameters<typeof commit>[0]) => {
                  usedCommit++;
                  return commit(c);
                };
              }
              const value = Reflect.get(target, key, target) as unknown;
              return typeof value === 'function' ? value.bind(target) : value;
            },
          })
        : withoutCommit(real);
    const clock = new SimulatedClock();
    const coord = new Coordinator({ store: counted, clock, random: () => 0.5, leaseMs: MINUTE });
    const ids = await workload(coord, clock);
    await coord.drain();
    await real.sync();
    return { dump: await dump(real, ids), ids, usedCommit };
  } finally {
    await opened.dispose();
  }
}

describe.each(STORE_KINDS.map((k) => [k.name, k] as const))(
  'one-transaction commit vs outbox (%s)',
  (_name, kind) => {
    it('the store offers commit (else there would be one path only)', async () => {
      const opened = kind.open();
      try {
        expect(typeof opened.store.commit).toBe('function');
        expect(withoutCommit(opened.store).commit).toBeUndefined();
        expect('commit' in withoutCommit(opened.store)).toBe(false);
      } finally {
        await opened.dispose();
      }
    });

    it('both paths leave identical documents and events for the same workload', async () => {
      const viaCommit = await run(kind, 'commit');
      const viaOutbox = await run(kind, 'outbox');
      // Each run took the path it names.
      expect(viaCommit.usedCommit).toBeGreaterThan(10);
      expect(viaOutbox.usedCommit).toBe(0);
      expect(viaOutbox.ids).toEqual(viaCommit.ids);
      // The workload did something worth comparing: every job has events, some runs.
      const jobs = (viaCommit.dump as { jobs: Record<string, { events: unknown[] }> }).jobs;
      for (const id of viaCommit.ids) expect(jobs[id]?.events.length).toBeGreaterThan(1);
      expect(viaOutbox.dump).toEqual(viaCommit.dump);
    });
  },
);
