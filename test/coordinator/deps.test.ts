/**
 * Dependencies between jobs: blocked until met (hard: shipped; soft: testing or later),
 * unknown deps and cycles rejected at submit and supersede, dead deps propagating
 * `dependency_failed` transitively, and the sweep repairing a lost notification.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { jobIdFor } from '../../runtime/canonical.js';
import { Coordinator } from '../../runtime/coordinator.js';
import type { DocumentStore, JobsContainer } from '../../runtime/document-store.port.js';
import type { ClaimGrant, SubmitInput } from '../../runtime/types.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

/**
 * A view of `store` whose `jobs.dependents()` finds nothing: a coordinator using it
 * writes every job document exactly as the real one does (same store, same etags, same
 * machine), but the "re-evaluate my dependents" follow-up reaches nobody — as if the
 * process crashed right after clearing its outbox, or the dependents index lagged.
 * This is a sound way to lose a notification: no document is forged, the dep's state
 * is reached through real coordinator transitions.
 */
function withLostNotifications(store: DocumentStore): DocumentStore {
  const jobs = new Proxy(store.jobs, {
    get(target, prop) {
      if (prop === 'dependents') return async () => [];
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as JobsContainer;
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'jobs') return jobs;
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

describe.each(STORES.map((s) => [s.name, s] as const))('dependencies (%s)', (_name, factory) => {
  let h: Harness;
  beforeEach(async () => {
    h = await makeHarness(factory);
  });
  afterEach(async () => {
    await h.close();
  });

  const stage = async (id: string) => (await h.job(id)).stage;
  const countJobs = async () =>
    must(await h.coord.listJobs(h.product, { limit: 500 })).items.length;
  const claimNone = async (factoryId = 'f-none') =>
    expect(must(await h.coord.claimNextJob(h.product, { factoryId }))).toBeNull();
  /** Claims the job `id` (it must be the one handed out). */
  const claimJob = async (id: string, factoryId = 'f1'): Promise<ClaimGrant> => {
    const g = await h.claim(factoryId);
    expect(g.job.id).toBe(id);
    return g;
  };

  describe('blocking', () => {
    it('a job with an unmet dep starts blocked and is not claimable', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id] });
      expect(b.stage).toBe('blocked');
      expect(await stage(b.id)).toBe('blocked');
      // The only claimable job is A; after it, nothing (B stays blocked).
      await claimJob(a.id);
      await claimNone();
      expect(await stage(b.id)).toBe('blocked');
    });

    it('hard mode: claimable only once the dep ships (not at testing)', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id] });
      const g = await claimJob(a.id);
      await h.advance(g, 'building', 'review', 'testing');
      expect(await stage(b.id)).toBe('blocked');
      await claimNone();
      await h.advance(g, 'shipped');
      expect(await stage(b.id)).toBe('queued');
      const gb = await claimJob(b.id, 'f2');
      expect(gb.job.stage).toBe('assigned');
      const types = (await h.events(b.id)).map((e) => e.type);
      expect(types).toEqual(['submitted', 'unblocked', 'claimed']);
    });

    it('a job whose deps are all shipped starts queued', async () => {
      const a = await h.submit();
      await h.advance(await claimJob(a.id), 'building', 'review', 'testing', 'shipped');
      const b = await h.submit({ deps: [a.id] });
      expect(b.stage).toBe('queued');
      await claimJob(b.id);
    });

    it('every dep must be met: one shipped and one pending stays blocked', async () => {
      const a = await h.submit({ priority: 'critical' });
      const c = await h.submit({ capabilities: ['never'] });
      const b = await h.submit({ deps: [a.id, c.id] });
      await h.advance(await claimJob(a.id), 'building', 'review', 'testing', 'shipped');
      expect(await stage(b.id)).toBe('blocked');
      await claimNone();
    });

    it('soft mode: satisfied when the dep reaches testing, not at review', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id], depsMode: 'soft' });
      expect(b.stage).toBe('blocked');
      const g = await claimJob(a.id);
      await h.advance(g, 'building', 'review');
      expect(await stage(b.id)).toBe('blocked');
      await claimNone();
      await h.advance(g, 'testing');
      expect(await stage(b.id)).toBe('queued');
      await claimJob(b.id, 'f2');
    });

    it('soft mode: a job submitted while its dep is in testing starts queued', async () => {
      const a = await h.submit();
      await h.advance(await claimJob(a.id), 'building', 'review', 'testing');
      const b = await h.submit({ deps: [a.id], depsMode: 'soft' });
      expect(b.stage).toBe('queued');
    });

    it('soft mode: an unclaimed dependent is blocked again when its dep goes back to building', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id], depsMode: 'soft' });
      const g = await claimJob(a.id);
      await h.advance(g, 'building', 'review', 'testing');
      expect(await stage(b.id)).toBe('queued');
      await h.advance(g, 'building');
      expect(await stage(b.id)).toBe('blocked');
      await claimNone();
    });

    it('a dependent is unblocked for each of several dependents of one dep', async () => {
      const a = await h.submit();
      const deps = [];
      for (let i = 0; i < 5; i++) deps.push(await h.submit({ deps: [a.id] }));
      await h.advance(await claimJob(a.id), 'building', 'review', 'testing', 'shipped');
      for (const d of deps) expect(await stage(d.id)).toBe('queued');
    });
  });

  describe('unknown deps', () => {
    it('UNKNOWN_DEPENDENCY lists the unknown ids; nothing written', async () => {
      const a = await h.submit();
      const err = failure(
        await h.coord.submit(h.product, {
          idempotencyKey: 'k',
          bodyMd: 'b',
          deps: [a.id, 'nope-2', 'nope-1'],
        }),
      );
      expect(err.code).toBe('UNKNOWN_DEPENDENCY');
      expect(err.status).toBe(422);
      expect([...(err.extra.unknown as string[])].sort()).toEqual(['nope-1', 'nope-2']);
      expect(err.detail).toContain('nope-1');
      expect(err.detail).toContain('nope-2');
      expect(err.detail).not.toContain(a.id);
      expect(await h.store.jobs.read(h.product, jobIdFor(h.product, 'k'))).toBeNull();
      expect(await countJobs()).toBe(1);
    });

    it('a job of another product is unknown', async () => {
      const foreign = must(
        await h.coord.submit(`${h.product}-other`, { idempotencyKey: 'x', bodyMd: 'b' }),
      ).job;
      const err = failure(
        await h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'b', deps: [foreign.id] }),
      );
      expect(err.code).toBe('UNKNOWN_DEPENDENCY');
      expect(err.extra.unknown).toEqual([foreign.id]);
      expect(await countJobs()).toBe(0);
    });

    it('UNKNOWN_DEPENDENCY at supersede leaves the job unchanged', async () => {
      const a = must(await h.coord.submit(h.product, { idempotencyKey: 'a', bodyMd: 'b' })).job;
      const before = await h.dump(a.id);
      const err = failure(
        await h.coord.submit(h.product, { idempotencyKey: 'a', bodyMd: 'b', deps: ['ghost'] }),
      );
      expect(err.code).toBe('UNKNOWN_DEPENDENCY');
      expect(err.extra.unknown).toEqual(['ghost']);
      expect(await h.dump(a.id)).toEqual(before);
    });
  });

  describe('cycles', () => {
    const submitKey = (key: string, extra: Partial<SubmitInput> = {}) =>
      h.coord.submit(h.product, { idempotencyKey: key, bodyMd: `job ${key}`, ...extra });

    it('A, B deps [A]; resubmitting A changed with deps [B] → DEPENDENCY_CYCLE, A unchanged', async () => {
      const a = must(await submitKey('A')).job;
      const b = must(await submitKey('B', { deps: [a.id] })).job;
      const beforeA = await h.dump(a.id);
      const beforeB = await h.dump(b.id);
      const err = failure(await submitKey('A', { bodyMd: 'changed', deps: [b.id] }));
      expect(err.code).toBe('DEPENDENCY_CYCLE');
      expect(err.status).toBe(422);
      expect(err.extra.cycle).toEqual([a.id, b.id, a.id]);
      expect(await h.dump(a.id)).toEqual(beforeA);
      expect(await h.dump(b.id)).toEqual(beforeB);
    });

    it('self-dependency at supersede → DEPENDENCY_CYCLE, A unchanged', async () => {
      const a = must(await submitKey('A')).job;
      const before = await h.dump(a.id);
      const err = failure(await submitKey('A', { deps: [a.id] }));
      expect(err.code).toBe('DEPENDENCY_CYCLE');
      expect(err.extra.cycle).toEqual([a.id, a.id]);
      expect(await h.dump(a.id)).toEqual(before);
    });

    it('self-dependency at first submission (the id is derived from the key) → DEPENDENCY_CYCLE, nothing written', async () => {
      const id = jobIdFor(h.product, 'S');
      const err = failure(await submitKey('S', { deps: [id] }));
      expect(err.code).toBe('DEPENDENCY_CYCLE');
      expect(await h.store.jobs.read(h.product, id)).toBeNull();
      expect(await countJobs()).toBe(0);
    });

    it('A → B → C → A via supersede → DEPENDENCY_CYCLE naming the whole path', async () => {
      const a = must(await submitKey('A')).job;
      const b = must(await submitKey('B', { deps: [a.id] })).job;
      const c = must(await submitKey('C', { deps: [b.id] })).job;
      const before = await h.dump(a.id);
      const err = failure(await submitKey('A', { deps: [c.id] }));
      expect(err.code).toBe('DEPENDENCY_CYCLE');
      // A depends on C, C on B, B on A.
      expect(err.extra.cycle).toEqual([a.id, c.id, b.id, a.id]);
      expect(await h.dump(a.id)).toEqual(before);
      // B can be superseded freely as long as it closes no cycle.
      const ok = must(await submitKey('B', { deps: [a.id], priority: 'high' }));
      expect(ok.outcome).toBe('superseded');
    });

    it('a diamond is not a cycle', async () => {
      const a = must(await submitKey('A')).job;
      const b = must(await submitKey('B', { deps: [a.id] })).job;
      const c = must(await submitKey('C', { deps: [a.id] })).job;
      const d = must(await submitKey('D', { deps: [b.id, c.id] }));
      expect(d.outcome).toBe('created');
      expect(d.job.stage).toBe('blocked');
    });

    it('two supersedes racing through two coordinators cannot close a cycle between them', async () => {
      const a = must(await submitKey('A')).job;
      const b = must(await submitKey('B')).job;
      const c2 = new Coordinator({ store: h.store, clock: h.clock });
      const [ra, rb] = await Promise.all([
        submitKey('A', { deps: [b.id] }),
        c2.submit(h.product, { idempotencyKey: 'B', bodyMd: 'job B', deps: [a.id] }),
      ]);
      await c2.drain();
      // At most one of them may win; the other must see the cycle.
      expect([ra.ok, rb.ok].filter(Boolean)).toHaveLength(1);
      const loser = ra.ok ? rb : ra;
      expect(failure(loser).code).toBe('DEPENDENCY_CYCLE');
      const ja = await h.job(a.id);
      const jb = await h.job(b.id);
      expect(ja.deps.includes(b.id) && jb.deps.includes(a.id)).toBe(false);
    });
  });

  describe('dead deps', () => {
    it('a dep cancelled by an admin sends its dependents to dead_letter, transitively', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id] });
      const c = await h.submit({ deps: [b.id] });
      const d = await h.submit({ deps: [c.id], depsMode: 'soft' });
      must(await h.coord.cancel(h.product, a.id));
      expect((await h.job(a.id)).deadReason).toBe('cancelled');
      for (const [dep, j] of [
        [a, b],
        [b, c],
        [c, d],
      ] as const) {
        const job = await h.job(j.id);
        expect(job.stage).toBe('dead_letter');
        expect(job.deadReason).toBe('dependency_failed');
        const ev = (await h.events(j.id)).at(-1);
        expect(ev?.type).toBe('dependency_failed');
        expect(ev?.data).toMatchObject({
          from: 'blocked',
          to: 'dead_letter',
          deadReason: 'dependency_failed',
          dependencyId: dep.id,
        });
      }
      await claimNone();
    });

    it('a FAIL with a non-retryable class sends dependents to dead_letter', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id] });
      const c = await h.submit({ deps: [b.id] });
      const g = await claimJob(a.id);
      must(
        await h.coord.transition(h.product, a.id, {
          factoryId: 'f1',
          leaseEpoch: g.lease.leaseEpoch,
          to: 'failed',
          error: { class: 'fatal', message: 'no' },
        }),
      );
      const ja = await h.job(a.id);
      expect(ja.stage).toBe('dead_letter');
      expect(ja.deadReason).toBe('non_retryable');
      for (const j of [b, c]) {
        const job = await h.job(j.id);
        expect(job.stage).toBe('dead_letter');
        expect(job.deadReason).toBe('dependency_failed');
      }
    });

    it('a retryable FAIL with retries left does not kill dependents', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id] });
      await h.advance(await claimJob(a.id), 'failed');
      expect(await stage(a.id)).toBe('failed');
      expect(await stage(b.id)).toBe('blocked');
    });

    it('a queued dependent (soft, dep in testing) also goes to dead_letter when the dep dies', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id], depsMode: 'soft' });
      const g = await claimJob(a.id);
      await h.advance(g, 'building', 'review', 'testing');
      expect(await stage(b.id)).toBe('queued');
      must(await h.coord.cancel(h.product, a.id));
      const jb = await h.job(b.id);
      expect(jb.stage).toBe('dead_letter');
      expect(jb.deadReason).toBe('dependency_failed');
    });

    it('a dependent already claimed (soft) is sent to dead_letter and its holder fenced', async () => {
      const a = await h.submit({ priority: 'critical' });
      const b = await h.submit({ deps: [a.id], depsMode: 'soft' });
      const ga = await claimJob(a.id);
      await h.advance(ga, 'building', 'review', 'testing');
      const gb = await claimJob(b.id, 'f2');
      must(await h.coord.cancel(h.product, a.id));
      const jb = await h.job(b.id);
      expect(jb.stage).toBe('dead_letter');
      expect(jb.deadReason).toBe('dependency_failed');
      const runs = must(await h.coord.listRuns(h.product, b.id)).items;
      expect(runs[0]?.exit).toBe('dependency_failed');
      const err = failure(
        await h.coord.transition(h.product, b.id, {
          factoryId: 'f2',
          leaseEpoch: gb.lease.leaseEpoch,
          to: 'building',
        }),
      );
      expect(err.code).toBe('FENCED');
    });

    it('a job submitted depending on an already-dead job goes straight to dead_letter', async () => {
      const a = await h.submit();
      must(await h.coord.cancel(h.product, a.id));
      const r = must(
        await h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'b', deps: [a.id] }),
      );
      expect(r.outcome).toBe('created');
      expect(r.job.stage).toBe('dead_letter');
      expect(r.job.deadReason).toBe('dependency_failed');
      expect((await h.events(r.job.id)).map((e) => e.type)).toEqual([
        'submitted',
        'dependency_failed',
      ]);
      await claimNone();
    });

    it('a dependent of a dead dep is not revived when another dep ships', async () => {
      const dead = await h.submit({ capabilities: ['never'] });
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id, dead.id] });
      must(await h.coord.cancel(h.product, dead.id));
      expect(await stage(b.id)).toBe('dead_letter');
      await h.advance(await claimJob(a.id), 'building', 'review', 'testing', 'shipped');
      expect(await stage(b.id)).toBe('dead_letter');
      await h.coord.sweep();
      expect(await stage(b.id)).toBe('dead_letter');
    });
  });

  describe('races and deps that change', () => {
    it('a dependent submitted while its dep ships in another coordinator ends queued', async () => {
      const a = await h.submit();
      const g = await claimJob(a.id);
      await h.advance(g, 'building', 'review', 'testing');
      const c2 = new Coordinator({ store: h.store, clock: h.clock });
      const [, rb] = await Promise.all([
        c2.transition(h.product, a.id, {
          factoryId: 'f1',
          leaseEpoch: g.lease.leaseEpoch,
          to: 'shipped',
        }),
        h.coord.submit(h.product, { idempotencyKey: 'b', bodyMd: 'b', deps: [a.id] }),
      ]);
      await c2.drain();
      const b = must(rb).job;
      expect(await stage(a.id)).toBe('shipped');
      expect(await stage(b.id)).toBe('queued');
    });

    it('a dependent submitted while its dep is cancelled in another coordinator ends dead', async () => {
      const a = await h.submit();
      const c2 = new Coordinator({ store: h.store, clock: h.clock });
      const [, rb] = await Promise.all([
        c2.cancel(h.product, a.id),
        h.coord.submit(h.product, { idempotencyKey: 'b', bodyMd: 'b', deps: [a.id] }),
      ]);
      await c2.drain();
      const b = await h.job(must(rb).job.id);
      expect(b.stage).toBe('dead_letter');
      expect(b.deadReason).toBe('dependency_failed');
    });

    it('a supersede that drops a dep detaches the job from it', async () => {
      const a = await h.submit({ capabilities: ['never'] });
      const b = must(
        await h.coord.submit(h.product, { idempotencyKey: 'b', bodyMd: 'b', deps: [a.id] }),
      ).job;
      expect(b.stage).toBe('blocked');
      must(await h.coord.submit(h.product, { idempotencyKey: 'b', bodyMd: 'b' }));
      must(await h.coord.cancel(h.product, a.id));
      const jb = await h.job(b.id);
      expect(jb.stage).toBe('queued');
      expect(jb.deadReason).toBeNull();
    });

    it('a supersede that adds a dead dep sends the job to dead_letter', async () => {
      const a = await h.submit({ capabilities: ['never'] });
      must(await h.coord.cancel(h.product, a.id));
      const b = must(await h.coord.submit(h.product, { idempotencyKey: 'b', bodyMd: 'b' })).job;
      const r = must(
        await h.coord.submit(h.product, { idempotencyKey: 'b', bodyMd: 'b', deps: [a.id] }),
      );
      expect(r.outcome).toBe('superseded');
      expect(r.job.stage).toBe('dead_letter');
      expect((await h.job(b.id)).deadReason).toBe('dependency_failed');
    });
  });

  describe('the sweep', () => {
    it('unblocks a blocked job whose dep shipped even though the notification was lost', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id] });
      // A is claimed and shipped by a coordinator whose dependents lookup finds nothing
      // (see withLostNotifications): A really ships, B is never told.
      const lossy = new Coordinator({
        store: withLostNotifications(h.store),
        clock: h.clock,
        random: () => 0.5,
      });
      const g = must(await lossy.claimNextJob(h.product, { factoryId: 'f1' }));
      expect(g?.job.id).toBe(a.id);
      for (const to of ['building', 'review', 'testing', 'shipped'] as const) {
        must(
          await lossy.transition(h.product, a.id, {
            factoryId: 'f1',
            leaseEpoch: g?.lease.leaseEpoch ?? -1,
            to,
          }),
        );
      }
      await lossy.drain();
      expect(await stage(a.id)).toBe('shipped');
      expect((await h.store.jobs.read(h.product, a.id))?.outbox).toEqual([]);
      // The notification was lost: B is still blocked and nothing can be claimed.
      expect(await stage(b.id)).toBe('blocked');
      await claimNone();

      const report = await h.coord.sweep();
      expect(report.unblocked).toBe(1);
      expect(await stage(b.id)).toBe('queued');
      await claimJob(b.id, 'f2');
      // A second sweep finds nothing more to do.
      const again = await h.coord.sweep();
      expect(again.unblocked).toBe(0);
    });

    it('sends a blocked job whose dep died (notification lost) to dead_letter', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id] });
      const lossy = new Coordinator({ store: withLostNotifications(h.store), clock: h.clock });
      must(await lossy.cancel(h.product, a.id));
      await lossy.drain();
      expect(await stage(b.id)).toBe('blocked');
      await h.coord.sweep();
      const jb = await h.job(b.id);
      expect(jb.stage).toBe('dead_letter');
      expect(jb.deadReason).toBe('dependency_failed');
    });

    it('leaves a blocked job with unmet deps blocked', async () => {
      const a = await h.submit();
      const b = await h.submit({ deps: [a.id] });
      const before = await h.dump(b.id);
      const report = await h.coord.sweep();
      expect(report.unblocked).toBe(0);
      expect(await h.dump(b.id)).toEqual(before);
    });
  });
});
