/**
 * Idempotent submission on (productId, idempotencyKey): created / existing / superseded,
 * canonical content comparison, IDEMPOTENCY_CONFLICT once the job has moved on,
 * supersede moving a job between queued and blocked, concurrent submits of one key
 * (in one coordinator and across two sharing a store), and validation.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { jobIdFor } from '../../runtime/canonical.js';
import { Coordinator } from '../../runtime/coordinator.js';
import type { SubmitInput, SubmitOutcome } from '../../runtime/types.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

describe.each(STORES.map((s) => [s.name, s] as const))(
  'idempotent submission (%s)',
  (_name, factory) => {
    let h: Harness;
    beforeEach(async () => {
      h = await makeHarness(factory);
    });
    afterEach(async () => {
      await h.close();
    });

    const submit = async (input: SubmitInput) => must(await h.coord.submit(h.product, input));
    const countJobs = async () =>
      must(await h.coord.listJobs(h.product, { limit: 500 })).items.length;
    const eventTypes = async (id: string) => (await h.events(id)).map((e) => e.type);

    describe('the three outcomes', () => {
      it('a new key creates the job (created, version 1, one submitted event)', async () => {
        const { job, outcome } = await submit({ idempotencyKey: 'k1', bodyMd: 'one' });
        expect(outcome).toBe('created');
        expect(job.id).toBe(jobIdFor(h.product, 'k1'));
        expect(job.stage).toBe('queued');
        expect(job.version).toBe(1);
        expect(job.bodyMd).toBe('one');
        expect(job.idempotencyKey).toBe('k1');
        expect(await eventTypes(job.id)).toEqual(['submitted']);
        expect(await countJobs()).toBe(1);
      });

      it('the same key with identical content returns the existing job: no new job, no event, no write', async () => {
        const first = await submit({ idempotencyKey: 'k1', bodyMd: 'one', priority: 'high' });
        const before = await h.dump(first.job.id);
        const again = await submit({ idempotencyKey: 'k1', bodyMd: 'one', priority: 'high' });
        expect(again.outcome).toBe('existing');
        expect(again.job.id).toBe(first.job.id);
        expect(again.job.version).toBe(1);
        expect(again.job._etag).toBe(first.job._etag);
        expect(await h.dump(first.job.id)).toEqual(before);
        expect(await countJobs()).toBe(1);
      });

      it('different content while queued supersedes: version + 1, new content, a superseded event', async () => {
        const first = await submit({ idempotencyKey: 'k1', bodyMd: 'one' });
        const second = await submit({
          idempotencyKey: 'k1',
          bodyMd: 'two',
          priority: 'critical',
          capabilities: ['node'],
          manifestSnapshot: { repo: 'x' },
        });
        expect(second.outcome).toBe('superseded');
        expect(second.job.id).toBe(first.job.id);
        expect(second.job.version).toBe(2);
        expect(second.job.stage).toBe('queued');
        expect(second.job.bodyMd).toBe('two');
        expect(second.job.priority).toBe('critical');
        expect(second.job.capabilities).toEqual(['node']);
        expect(second.job.manifestSnapshot).toEqual({ repo: 'x' });
        const events = await h.events(first.job.id);
        expect(events.map((e) => e.type)).toEqual(['submitted', 'superseded']);
        expect(events[1]?.data).toMatchObject({ version: 2, from: 'queued', to: 'queued' });
        expect(await countJobs()).toBe(1);

        // The stored job is the new one, and a third, different content goes to version 3.
        expect((await h.job(first.job.id)).bodyMd).toBe('two');
        const third = await submit({ idempotencyKey: 'k1', bodyMd: 'three' });
        expect(third.outcome).toBe('superseded');
        expect(third.job.version).toBe(3);
        // Resubmitting the latest content is now `existing`.
        const same = await submit({ idempotencyKey: 'k1', bodyMd: 'three' });
        expect(same.outcome).toBe('existing');
        expect(same.job.version).toBe(3);
      });

      it('a superseded job is claimed with its new content and priority', async () => {
        await submit({ idempotencyKey: 'other', bodyMd: 'other', priority: 'high' });
        const { job } = await submit({ idempotencyKey: 'k1', bodyMd: 'one', priority: 'low' });
        await submit({ idempotencyKey: 'k1', bodyMd: 'two', priority: 'critical' });
        const grant = await h.claim('f1');
        expect(grant.job.id).toBe(job.id);
        expect(grant.job.bodyMd).toBe('two');
        expect(grant.job.version).toBe(2);
      });

      it('different content while blocked supersedes and the job stays blocked', async () => {
        const dep = await h.submit();
        const first = await submit({ idempotencyKey: 'k1', bodyMd: 'one', deps: [dep.id] });
        expect(first.job.stage).toBe('blocked');
        const second = await submit({ idempotencyKey: 'k1', bodyMd: 'two', deps: [dep.id] });
        expect(second.outcome).toBe('superseded');
        expect(second.job.version).toBe(2);
        expect(second.job.stage).toBe('blocked');
        expect(second.job.bodyMd).toBe('two');
        const events = await h.events(first.job.id);
        expect(events.map((e) => e.type)).toEqual(['submitted', 'superseded']);
        expect(events[1]?.data).toMatchObject({ version: 2, from: 'blocked', to: 'blocked' });
      });

      it('supersede replaces the retry policy (the new max bounds the attempts)', async () => {
        const { job } = await submit({ idempotencyKey: 'k1', bodyMd: 'one', retry: { max: 5 } });
        const r = await submit({ idempotencyKey: 'k1', bodyMd: 'one', retry: { max: 0 } });
        expect(r.outcome).toBe('superseded');
        expect(r.job.retry.max).toBe(0);
        // With max 0 a transient failure is final.
        const grant = await h.claim('f1');
        await h.advance(grant, 'failed');
        const after = await h.job(job.id);
        expect(after.stage).toBe('dead_letter');
        expect(after.deadReason).toBe('retries_exhausted');
      });
    });

    describe('canonical content comparison', () => {
      it('manifestSnapshot key order does not matter, at any depth', async () => {
        const a = await submit({
          idempotencyKey: 'k',
          bodyMd: 'b',
          manifestSnapshot: { a: 1, b: { c: 2, d: [{ x: 1, y: 2 }] } },
        });
        const b = await submit({
          idempotencyKey: 'k',
          bodyMd: 'b',
          manifestSnapshot: { b: { d: [{ y: 2, x: 1 }], c: 2 }, a: 1 },
        });
        expect(b.outcome).toBe('existing');
        expect(b.job.version).toBe(a.job.version);
      });

      it('array order inside manifestSnapshot does matter (arrays are ordered data)', async () => {
        await submit({ idempotencyKey: 'k', bodyMd: 'b', manifestSnapshot: { files: ['a', 'b'] } });
        const b = await submit({
          idempotencyKey: 'k',
          bodyMd: 'b',
          manifestSnapshot: { files: ['b', 'a'] },
        });
        expect(b.outcome).toBe('superseded');
      });

      it('capabilities order (and duplicates) do not matter', async () => {
        await submit({ idempotencyKey: 'k', bodyMd: 'b', capabilities: ['node', 'gpu'] });
        const b = await submit({ idempotencyKey: 'k', bodyMd: 'b', capabilities: ['gpu', 'node'] });
        expect(b.outcome).toBe('existing');
        const c = await submit({
          idempotencyKey: 'k',
          bodyMd: 'b',
          capabilities: ['gpu', 'node', 'gpu'],
        });
        expect(c.outcome).toBe('existing');
        const d = await submit({ idempotencyKey: 'k', bodyMd: 'b', capabilities: ['gpu'] });
        expect(d.outcome).toBe('superseded');
      });

      it('deps order does not matter', async () => {
        const d1 = await h.submit();
        const d2 = await h.submit();
        await submit({ idempotencyKey: 'k', bodyMd: 'b', deps: [d1.id, d2.id] });
        const b = await submit({ idempotencyKey: 'k', bodyMd: 'b', deps: [d2.id, d1.id] });
        expect(b.outcome).toBe('existing');
        expect(b.job.version).toBe(1);
      });

      it('explicit default values equal omitted ones', async () => {
        const a = await submit({ idempotencyKey: 'k', bodyMd: 'b' });
        const full = await submit({
          idempotencyKey: 'k',
          bodyMd: 'b',
          manifestSnapshot: {},
          priority: 'medium',
          capabilities: [],
          deps: [],
          depsMode: 'hard',
          kind: 'leaf',
          parentId: null,
          retry: {
            max: 3,
            backoff: 'exponential',
            delayMs: 1000,
            maxDelayMs: 300_000,
            on: ['transient'],
          },
        });
        expect(full.outcome).toBe('existing');
        const emptyRetry = await submit({ idempotencyKey: 'k', bodyMd: 'b', retry: {} });
        expect(emptyRetry.outcome).toBe('existing');
        const partialRetry = await submit({ idempotencyKey: 'k', bodyMd: 'b', retry: { max: 3 } });
        expect(partialRetry.outcome).toBe('existing');
        expect(partialRetry.job.version).toBe(a.job.version);
        expect(await h.events(a.job.id)).toHaveLength(1);
      });

      it('a change in any single content field is detected', async () => {
        const dep = await h.submit();
        const base: SubmitInput = { idempotencyKey: 'k', bodyMd: 'b' };
        const variants: Partial<SubmitInput>[] = [
          { bodyMd: 'c' },
          { manifestSnapshot: { a: 1 } },
          { priority: 'low' },
          { capabilities: ['x'] },
          { deps: [dep.id] },
          { depsMode: 'soft' },
          { budget: { tokens: 10 } },
          { retry: { delayMs: 5 } },
          { kind: 'composite' },
          { parentId: dep.id },
          { trackerItemId: 'T-1' },
          { engineClass: 'claude' },
          { profile: 'p1' },
        ];
        await submit(base);
        let version = 1;
        for (const v of variants) {
          // Each variant differs from the current content, then returning to base differs again.
          const r = await submit({ ...base, ...v });
          expect(r.outcome, JSON.stringify(v)).toBe('superseded');
          expect(r.job.version).toBe(++version);
          const back = await submit(base);
          expect(back.outcome, `back from ${JSON.stringify(v)}`).toBe('superseded');
          expect(back.job.version).toBe(++version);
        }
      });
    });

    describe('after the job has moved on', () => {
      it('different content after claim → IDEMPOTENCY_CONFLICT, nothing changed', async () => {
        const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
        await h.claim('f1');
        const before = await h.dump(job.id);
        const err = failure(
          await h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'two' }),
        );
        expect(err.code).toBe('IDEMPOTENCY_CONFLICT');
        expect(err.status).toBe(409);
        expect(await h.dump(job.id)).toEqual(before);
        expect(await countJobs()).toBe(1);
      });

      it('identical content after claim is still `existing`', async () => {
        const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
        await h.claim('f1');
        const before = await h.dump(job.id);
        const r = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
        expect(r.outcome).toBe('existing');
        expect(r.job.stage).toBe('assigned');
        expect(await h.dump(job.id)).toEqual(before);
      });

      it.each([
        ['building', ['building']],
        ['shipped', ['building', 'review', 'testing', 'shipped']],
        ['failed', ['failed']],
      ] as const)(
        'different content when the job is %s → IDEMPOTENCY_CONFLICT',
        async (stage, path) => {
          const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
          const grant = await h.claim('f1');
          await h.advance(grant, ...path);
          expect((await h.job(job.id)).stage).toBe(stage);
          const before = await h.dump(job.id);
          const err = failure(
            await h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'two' }),
          );
          expect(err.code).toBe('IDEMPOTENCY_CONFLICT');
          expect(await h.dump(job.id)).toEqual(before);
        },
      );

      it('different content in dead_letter → IDEMPOTENCY_CONFLICT', async () => {
        const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
        must(await h.coord.cancel(h.product, job.id));
        const before = await h.dump(job.id);
        const err = failure(
          await h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'two' }),
        );
        expect(err.code).toBe('IDEMPOTENCY_CONFLICT');
        expect(await h.dump(job.id)).toEqual(before);
      });

      it('a job released back to queued can be superseded again', async () => {
        const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
        const grant = await h.claim('f1');
        must(
          await h.coord.releaseLease(h.product, job.id, {
            factoryId: 'f1',
            leaseEpoch: grant.lease.leaseEpoch,
          }),
        );
        const r = await submit({ idempotencyKey: 'k', bodyMd: 'two' });
        expect(r.outcome).toBe('superseded');
        expect(r.job.stage).toBe('queued');
        expect(r.job.version).toBe(2);
      });
    });

    describe('supersede that changes deps', () => {
      it('queued → blocked when new deps are unmet, blocked → queued when they are dropped', async () => {
        const dep = await h.submit({ capabilities: ['never'] });
        const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
        expect(job.stage).toBe('queued');

        const blocked = await submit({ idempotencyKey: 'k', bodyMd: 'one', deps: [dep.id] });
        expect(blocked.outcome).toBe('superseded');
        expect(blocked.job.stage).toBe('blocked');
        expect((await h.job(job.id)).stage).toBe('blocked');
        // Not claimable while blocked (the dep itself needs a capability f1 lacks).
        expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'f1' }))).toBeNull();

        const queued = await submit({ idempotencyKey: 'k', bodyMd: 'one', deps: [] });
        expect(queued.outcome).toBe('superseded');
        expect(queued.job.stage).toBe('queued');
        expect(queued.job.version).toBe(3);
        const grant = await h.claim('f1');
        expect(grant.job.id).toBe(job.id);

        const events = await h.events(job.id);
        const sup = events.filter((e) => e.type === 'superseded').map((e) => e.data);
        expect(sup).toEqual([
          expect.objectContaining({ from: 'queued', to: 'blocked', version: 2 }),
          expect.objectContaining({ from: 'blocked', to: 'queued', version: 3 }),
        ]);
      });

      it('blocked → queued when the superseding deps are already met', async () => {
        const pending = await h.submit();
        const done = await h.submit({ priority: 'critical' });
        const g = await h.claim('f1');
        expect(g.job.id).toBe(done.id);
        await h.advance(g, 'building', 'review', 'testing', 'shipped');

        const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one', deps: [pending.id] });
        expect(job.stage).toBe('blocked');
        const r = await submit({ idempotencyKey: 'k', bodyMd: 'one', deps: [done.id] });
        expect(r.outcome).toBe('superseded');
        expect(r.job.stage).toBe('queued');
        expect(r.job.deps).toEqual([done.id]);
      });

      it('queued → blocked when a soft dep is swapped for a hard one', async () => {
        const dep = await h.submit({ priority: 'critical' });
        const g = await h.claim('f1');
        expect(g.job.id).toBe(dep.id);
        await h.advance(g, 'building', 'review', 'testing');
        const { job } = await submit({
          idempotencyKey: 'k',
          bodyMd: 'one',
          deps: [dep.id],
          depsMode: 'soft',
        });
        expect(job.stage).toBe('queued');
        const r = await submit({
          idempotencyKey: 'k',
          bodyMd: 'one',
          deps: [dep.id],
          depsMode: 'hard',
        });
        expect(r.outcome).toBe('superseded');
        expect(r.job.stage).toBe('blocked');
      });
    });

    describe('concurrent submits of one key', () => {
      const expectSingleJob = async (outcomes: SubmitOutcome[], ids: string[]) => {
        expect(outcomes.filter((o) => o === 'created')).toHaveLength(1);
        expect(new Set(ids).size).toBe(1);
        expect(await countJobs()).toBe(1);
      };

      it('20 identical submits in one coordinator → one job, one created, the rest existing', async () => {
        const rs = await Promise.all(
          Array.from({ length: 20 }, () =>
            h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'x' }),
          ),
        );
        const values = rs.map(must);
        await expectSingleJob(
          values.map((v) => v.outcome),
          values.map((v) => v.job.id),
        );
        expect(values.filter((v) => v.outcome === 'existing')).toHaveLength(19);
        const id = values[0]?.job.id ?? '';
        expect(await eventTypes(id)).toEqual(['submitted']);
        expect((await h.job(id)).version).toBe(1);
      });

      it('20 identical submits from two coordinators sharing one store → one job, one created', async () => {
        const c2 = new Coordinator({ store: h.store, clock: h.clock });
        const rs = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 === 0 ? h.coord : c2).submit(h.product, { idempotencyKey: 'k', bodyMd: 'x' }),
          ),
        );
        await c2.drain();
        const values = rs.map(must);
        await expectSingleJob(
          values.map((v) => v.outcome),
          values.map((v) => v.job.id),
        );
        expect(values.filter((v) => v.outcome === 'existing')).toHaveLength(19);
        const id = values[0]?.job.id ?? '';
        expect(await eventTypes(id)).toEqual(['submitted']);
        expect((await h.job(id)).version).toBe(1);
      });

      it('20 different contents of one key from two coordinators → one job, versions 1..20, gap-free events', async () => {
        const c2 = new Coordinator({ store: h.store, clock: h.clock });
        const rs = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 === 0 ? h.coord : c2).submit(h.product, {
              idempotencyKey: 'k',
              bodyMd: `body ${i}`,
            }),
          ),
        );
        await c2.drain();
        const values = rs.map(must);
        await expectSingleJob(
          values.map((v) => v.outcome),
          values.map((v) => v.job.id),
        );
        // Every submission had distinct content, so every one after the first superseded.
        expect(values.filter((v) => v.outcome === 'superseded')).toHaveLength(19);
        const id = values[0]?.job.id ?? '';
        const job = await h.job(id);
        expect(job.version).toBe(20);
        const events = await h.events(id);
        expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        expect(events.filter((e) => e.type === 'superseded').map((e) => e.data.version)).toEqual(
          Array.from({ length: 19 }, (_, i) => i + 2),
        );
        // The stored body is the content of the submission that got version 20.
        const last = values.find((v) => v.job.version === 20);
        expect(last).toBeDefined();
        expect(job.bodyMd).toBe(last?.job.bodyMd);
      });
    });

    describe('supersede racing a claim', () => {
      it('either the claim gets the new content or the supersede is a conflict, never both', async () => {
        const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
        const c2 = new Coordinator({ store: h.store, clock: h.clock });
        const [claimed, sub] = await Promise.all([
          c2.claimNextJob(h.product, { factoryId: 'f1' }),
          h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'two' }),
        ]);
        await c2.drain();
        const grant = must(claimed);
        expect(grant?.job.id).toBe(job.id);
        if (sub.ok) {
          expect(sub.value.outcome).toBe('superseded');
          expect(grant?.job.bodyMd).toBe('two');
          expect(grant?.job.version).toBe(2);
        } else {
          expect(sub.error.code).toBe('IDEMPOTENCY_CONFLICT');
          expect(grant?.job.bodyMd).toBe('one');
          expect(grant?.job.version).toBe(1);
        }
        const types = (await h.events(job.id)).map((e) => e.type);
        const claimedAt = types.indexOf('claimed');
        expect(types.slice(claimedAt)).not.toContain('superseded');
        expect((await h.job(job.id)).bodyMd).toBe(grant?.job.bodyMd);
      });
    });

    describe('validation', () => {
      const bad: Array<[string, unknown, string]> = [
        ['missing bodyMd', { idempotencyKey: 'k' }, 'k'],
        ['unknown field', { idempotencyKey: 'k', bodyMd: 'b', productId: 'other' }, 'k'],
        ['unknown nested field', { idempotencyKey: 'k', bodyMd: 'b', retry: { tries: 2 } }, 'k'],
        ['bad priority', { idempotencyKey: 'k', bodyMd: 'b', priority: 'urgent' }, 'k'],
        ['key over 200 chars', { idempotencyKey: 'k'.repeat(201), bodyMd: 'b' }, 'k'.repeat(201)],
        ['empty key', { idempotencyKey: '', bodyMd: 'b' }, ''],
        ['bad depsMode', { idempotencyKey: 'k', bodyMd: 'b', depsMode: 'maybe' }, 'k'],
        ['bad wall budget', { idempotencyKey: 'k', bodyMd: 'b', budget: { wall: '2h' } }, 'k'],
      ];

      it.each(bad)('%s → VALIDATION, nothing written', async (_what, body, key) => {
        const err = failure(await h.coord.submit(h.product, body as SubmitInput));
        expect(err.code).toBe('VALIDATION');
        expect(err.status).toBe(400);
        expect(await countJobs()).toBe(0);
        expect(await h.store.jobs.read(h.product, jobIdFor(h.product, key))).toBeNull();
      });

      it('a key of exactly 200 chars is accepted', async () => {
        const r = await submit({ idempotencyKey: 'k'.repeat(200), bodyMd: 'b' });
        expect(r.outcome).toBe('created');
      });

      it('an invalid resubmission of an existing key changes nothing', async () => {
        const { job } = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
        const before = await h.dump(job.id);
        const err = failure(
          await h.coord.submit(h.product, {
            idempotencyKey: 'k',
            bodyMd: 'two',
            priority: 'urgent',
          } as unknown as SubmitInput),
        );
        expect(err.code).toBe('VALIDATION');
        expect(await h.dump(job.id)).toEqual(before);
      });

      it('the error detail names the offending field', async () => {
        const err = failure(
          await h.coord.submit(h.product, {
            idempotencyKey: 'k',
            bodyMd: 'b',
            priority: 'urgent',
          } as unknown as SubmitInput),
        );
        expect(err.detail).toContain('priority');
      });
    });

    it('the same key in two products makes two independent jobs', async () => {
      const a = await submit({ idempotencyKey: 'k', bodyMd: 'one' });
      const other = must(
        await h.coord.submit(`${h.product}-other`, { idempotencyKey: 'k', bodyMd: 'two' }),
      );
      expect(other.outcome).toBe('created');
      expect(other.job.id).not.toBe(a.job.id);
      expect((await h.job(a.job.id)).bodyMd).toBe('one');
    });
  },
);
