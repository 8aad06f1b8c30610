/**
 * Retention (issue 14, runtime/retention.ts): the sweep deletes jobs that finished
 * (`shipped`, `dead_letter`) longer than `retentionMs` ago, with their runs, lease,
 * events and artifact pointers; a job that another job names in its deps is kept until
 * that one is gone, so deps are evaluated as before (a pruned dead-lettered dep never
 * passes for a met one); one job that cannot be pruned is logged and skipped.
 * Time is a simulated clock: retention passes by advancing it, never by waiting.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../runtime/coordinator.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { FleetError } from '../../runtime/errors.js';
import { PRUNE_IDLE_MS } from '../../runtime/retention.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

const DAY = 86_400_000;

describe.each(STORES.map((s) => [s.name, s] as const))('retention (%s)', (_name, factory) => {
  let h: Harness;
  beforeEach(async () => {
    h = await makeHarness(factory, { retentionMs: DAY });
  });
  afterEach(async () => {
    await h.close();
  });

  /** A new harness with `options` on a fresh store (the current one is closed). */
  const reopen = async (options: Parameters<typeof makeHarness>[1]) => {
    await h.close();
    return makeHarness(factory, options);
  };

  /** Submits, claims and ships a job; returns its id. */
  const ship = async (input: Parameters<Harness['submit']>[0] = {}): Promise<string> => {
    const job = await h.submit(input);
    const g = await h.claim('f1');
    expect(g.job.id).toBe(job.id);
    await h.advance(g, 'building', 'review', 'testing', 'shipped');
    return job.id;
  };
  const exists = async (id: string) => (await h.coord.getJob(h.product, id)).ok;
  const documentsOf = async (id: string) => ({
    runs: (await h.store.runs.list(id, { limit: 100 })).items.length,
    lease: (await h.store.leases.read(id, id)) !== null,
    events: (await h.store.events.list(id, { limit: 1000 })).length,
  });
  const sweep = async () => h.coord.sweep();

  it('prunes shipped and dead-lettered jobs with their documents once the retention has passed, nothing earlier', async () => {
    const shipped = await ship();
    const cancelled = must(await h.coord.cancel(h.product, (await h.submit()).id)).id;
    const queued = (await h.submit()).id;
    const before = await documentsOf(shipped);
    expect(before.runs).toBe(1);
    expect(before.events).toBeGreaterThanOrEqual(5);

    h.clock.advance(DAY - PRUNE_IDLE_MS);
    expect((await sweep()).pruned).toBe(0);
    expect(await exists(shipped)).toBe(true);
    // That pass found nothing: the next sweeps within PRUNE_IDLE_MS skip pruning...
    h.clock.advance(PRUNE_IDLE_MS - 1);
    expect((await sweep()).pruned).toBe(0);
    expect(await exists(shipped)).toBe(true);
    // ...and the first one after it prunes what is past the retention by then.
    h.clock.advance(2);
    expect((await sweep()).pruned).toBe(2);
    expect(await exists(shipped)).toBe(false);
    expect(await exists(cancelled)).toBe(false);
    expect(await exists(queued)).toBe(true);
    expect(await documentsOf(shipped)).toEqual({ runs: 0, lease: false, events: 0 });
    expect(await documentsOf(cancelled)).toEqual({ runs: 0, lease: false, events: 0 });
    expect(failure(await h.coord.listEvents(h.product, shipped)).code).toBe('NOT_FOUND');
    // The queued job is untouched and still works.
    expect((await h.claim('f1')).job.id).toBe(queued);
    expect((await sweep()).pruned).toBe(0);
  });

  it('retentionMs 0 keeps every job forever', async () => {
    const forever = new Coordinator({ store: h.store, clock: h.clock, retentionMs: 0 });
    const id = await ship();
    h.clock.advance(10_000 * DAY);
    expect((await forever.sweep()).pruned).toBe(0);
    expect(await exists(id)).toBe(true);
    expect(() => new Coordinator({ store: h.store, retentionMs: -1 })).toThrow(RangeError);
    expect(() => new Coordinator({ store: h.store, prunePerSweep: 0 })).toThrow(RangeError);
  });

  it('a requeued dead-lettered job is live again and is not pruned', async () => {
    const id = must(await h.coord.cancel(h.product, (await h.submit()).id)).id;
    h.clock.advance(DAY / 2);
    must(await h.coord.requeue(h.product, id));
    h.clock.advance(DAY);
    expect((await sweep()).pruned).toBe(0);
    expect((await h.job(id)).stage).toBe('queued');
  });

  it('resubmitting a pruned job’s idempotency key creates a new job', async () => {
    const job = await h.submit({ idempotencyKey: 'again' });
    const g = await h.claim('f1');
    await h.advance(g, 'building', 'review', 'testing', 'shipped');
    h.clock.advance(DAY + 1);
    expect((await sweep()).pruned).toBe(1);
    const r = must(await h.coord.submit(h.product, { idempotencyKey: 'again', bodyMd: 'x' }));
    expect(r.outcome).toBe('created');
    expect(r.job.id).toBe(job.id);
    expect((await h.events(job.id)).map((e) => e.seq)).toEqual([1]);
  });

  describe('dependencies on pruned jobs', () => {
    it('a shipped dep named by a job still waiting is kept, and the dependent goes on; the chain is pruned from its end', async () => {
      const x = await ship();
      const y = await h.submit();
      const d = await h.submit({ deps: [x, y.id] });
      expect(d.stage).toBe('blocked');
      h.clock.advance(DAY + 1);
      const r = await sweep();
      expect(r.pruned).toBe(0);
      expect(await exists(x)).toBe(true);
      // Y ships: D's deps are met (X is still there, shipped).
      const gy = await h.claim('f1');
      expect(gy.job.id).toBe(y.id);
      await h.advance(gy, 'building', 'review', 'testing', 'shipped');
      h.clock.advance(1);
      expect((await h.job(d.id)).stage).toBe('queued');
      const gd = await h.claim('f1');
      expect(gd.job.id).toBe(d.id);
      await h.advance(gd, 'building', 'review', 'testing', 'shipped');
      // Everything finished now. D goes first; X and Y, which D named, on the next pass.
      h.clock.advance(DAY + 1);
      const first = await sweep();
      expect(first.pruned).toBe(1);
      expect(await exists(d.id)).toBe(false);
      expect(await exists(x)).toBe(true);
      expect(await exists(y.id)).toBe(true);
      expect((await sweep()).pruned).toBe(2);
      expect(await exists(x)).toBe(false);
      expect(await exists(y.id)).toBe(false);
    });

    it('a dead-lettered dep is kept while its dependent exists: a requeued dependent fails again, never runs', async () => {
      const x = must(await h.coord.cancel(h.product, (await h.submit()).id)).id;
      h.clock.advance(1);
      const d = await h.submit({ deps: [x] });
      expect(d.stage).toBe('dead_letter');
      expect(d.deadReason).toBe('dependency_failed');
      h.clock.advance(DAY + 1);
      // X (finished first) is kept: D names it. D, named by nobody, goes.
      const first = await sweep();
      expect(first.pruned).toBe(1);
      expect(await exists(d.id)).toBe(false);
      expect(await exists(x)).toBe(true);
      // A dependent of the dead dep, requeued by an admin: it fails again, never runs.
      const e = await h.submit({ deps: [x] });
      expect(e.stage).toBe('dead_letter');
      must(await h.coord.requeue(h.product, e.id));
      // Its dep is still there, dead: E waits (blocked), is never handed out, and the
      // sweep's re-check sends it back to dead_letter.
      expect(['blocked', 'dead_letter']).toContain((await h.job(e.id)).stage);
      expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'f1' }))).toBeNull();
      // Still kept while E exists (E itself finished just now: within its retention).
      expect((await sweep()).pruned).toBe(0);
      const again = await h.job(e.id);
      expect(again.stage).toBe('dead_letter');
      expect(again.deadReason).toBe('dependency_failed');
      expect(await exists(x)).toBe(true);
    });

    it('a new submission naming a pruned job is refused UNKNOWN_DEPENDENCY', async () => {
      const x = await ship();
      h.clock.advance(DAY + 1);
      expect((await sweep()).pruned).toBe(1);
      const r = await h.coord.submit(h.product, {
        idempotencyKey: 'late-dependent',
        bodyMd: 'x',
        deps: [x],
      });
      expect(failure(r).code).toBe('UNKNOWN_DEPENDENCY');
    });
  });

  it('a sweep looks at a bounded slice and resumes where it stopped', async () => {
    const PER_SWEEP = 16;
    h = await reopen({ retentionMs: DAY, prunePerSweep: PER_SWEEP });
    const n = PER_SWEEP + 10;
    const kept = await ship();
    // Never claimed (no factory here has its capability): keeps `holder` blocked.
    const waiting = await h.submit({ capabilities: ['nobody-has-this'] });
    h.clock.advance(1);
    for (let i = 0; i < n; i++) {
      must(await h.coord.cancel(h.product, (await h.submit()).id));
    }
    h.clock.advance(1);
    const late = await ship();
    const holder = await h.submit({ deps: [kept, waiting.id] });
    expect(holder.stage).toBe('blocked');
    h.clock.advance(DAY + 1);
    const first = await sweep();
    // The first slice: the kept job, then as many of the cancelled ones as fit.
    expect(first.pruned).toBe(PER_SWEEP - 1);
    expect(await exists(late)).toBe(true);
    const second = await sweep();
    expect(second.pruned).toBe(n - (PER_SWEEP - 1) + 1);
    expect(await exists(late)).toBe(false);
    expect(await exists(kept)).toBe(true);
    expect((await sweep()).pruned).toBe(0);
  });

  it('dry run counts and deletes nothing; a pass pages with limit and next', async () => {
    const ids = [await ship(), await ship(), await ship()];
    h.clock.advance(DAY + 1);
    const before = h.clock.now() - DAY;
    const dry = must(await h.coord.prune({ before, limit: 100, dryRun: true }));
    expect(dry).toMatchObject({ examined: 3, pruned: 3, kept: 0, next: null });
    expect(dry.documents).toEqual({ runs: 0, leases: 0, events: 0, artifacts: 0 });
    for (const id of ids) expect(await exists(id)).toBe(true);
    const one = must(await h.coord.prune({ before, limit: 1 }));
    expect(one).toMatchObject({ examined: 1, pruned: 1, prunedByStage: { shipped: 1 } });
    expect(one.documents.runs).toBe(1);
    expect(one.documents.events).toBeGreaterThanOrEqual(5);
    expect(one.next).not.toBeNull();
    const rest = must(await h.coord.prune({ before, limit: 100, after: one.next }));
    expect(rest).toMatchObject({ examined: 2, pruned: 2, next: null });
    for (const id of ids) expect(await exists(id)).toBe(false);
    expect(failure(await h.coord.prune({ before, limit: 0 })).code).toBe('VALIDATION');
  });

  it('one job that cannot be pruned is logged with its id and skipped; the others go, the sweep succeeds', async () => {
    const bad = await ship();
    const good = await ship();
    const errors: Array<{ obj: object; msg: string }> = [];
    const store = h.store;
    const purge = store.purgeJob?.bind(store);
    expect(purge).toBeDefined();
    const broken: DocumentStore = new Proxy(store, {
      get(target, prop) {
        if (prop === 'purgeJob') {
          return async (productId: string, id: string, etag: string) => {
            if (id === bad) throw new FleetError('INTERNAL', 'a corrupt document');
            return purge!(productId, id, etag);
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const coord = new Coordinator({
      store: broken,
      clock: h.clock,
      retentionMs: DAY,
      logger: { warn: () => {}, error: (obj, msg) => errors.push({ obj, msg }) },
    });
    h.clock.advance(DAY + 1);
    const r = await coord.sweep();
    expect(r.pruned).toBe(1);
    expect(r.failedJobs).toBe(1);
    expect(await exists(good)).toBe(false);
    expect(await exists(bad)).toBe(true);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.obj).toMatchObject({ jobId: bad, productId: h.product });
    expect(errors[0]!.msg).toContain(bad);
    // Healed: the next sweep prunes it.
    expect((await h.coord.sweep()).pruned).toBe(1);
    expect(await exists(bad)).toBe(false);
  });
});
