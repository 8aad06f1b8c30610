/**
 * The review's defects (issue 10) that live in the coordinator, one `describe` per item,
 * each named after it, on every store. Each test failed on the code before its fix.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../runtime/canonical.js';
import { iso, SimulatedClock } from '../../runtime/clock.js';
import { Coordinator, type Logger } from '../../runtime/coordinator.js';
import type { DocumentStore, JobsContainer, Stored } from '../../runtime/document-store.port.js';
import { eventId } from '../../runtime/events.js';
import { INITIAL_TIMELINE, reduceTimeline } from '../../runtime/projections.js';
import type { ClaimGrant, EventDoc, JobDoc } from '../../runtime/types.js';
import { faulty } from '../support/faulty-store.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

const MINUTE = 60_000;

/** A view of `store` whose `jobs` methods are replaced by `override` where it has them. */
function withJobs(store: DocumentStore, override: Partial<JobsContainer>): DocumentStore {
  const jobs = new Proxy(store.jobs, {
    get(target, prop) {
      if (Object.hasOwn(override, prop)) return override[prop as keyof JobsContainer];
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

/** A logger that keeps what it is told. */
function recordingLogger(): Logger & { lines: Array<{ level: string; obj: object; msg: string }> } {
  const lines: Array<{ level: string; obj: object; msg: string }> = [];
  return {
    lines,
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
  };
}

function nested(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = { leaf: true };
  for (let i = 0; i < depth; i++) v = { a: v };
  return v;
}

describe.each(STORES.map((s) => [s.name, s] as const))('review defects (%s)', (_name, factory) => {
  let h: Harness;
  beforeEach(async () => {
    h = await makeHarness(factory);
  });
  afterEach(async () => {
    await h.close();
  });

  const me = (g: ClaimGrant, factoryId = g.job.holderFactoryId ?? '') => ({
    factoryId,
    leaseEpoch: g.lease.leaseEpoch,
  });

  /** Rewrites a stored job as a bad writer (an older build, a hand edit) might have left it. */
  const corrupt = async (id: string, change: (doc: JobDoc) => void): Promise<void> => {
    const cur = (await h.store.jobs.read(h.product, id)) as Stored<JobDoc>;
    const { _etag, ...doc } = cur;
    change(doc);
    await h.store.jobs.replace(doc, _etag);
    await h.store.sync();
  };

  describe('1: a job with a huge wall budget stops the supervisor for every product', () => {
    it('1: durations and numbers past their bounds are refused at submit', async () => {
      const submit = (budget: unknown) =>
        h.coord.submit(h.product, {
          idempotencyKey: randomUUID(),
          bodyMd: 'x',
          budget: budget as never,
        });
      for (const budget of [
        { wall: 'P100000000D' },
        { wall: 'P366D' },
        { wall: 'PT100000000H' },
        { wall: 'PT1e9S' },
        { usd: 1e308 },
        { usd: Number.POSITIVE_INFINITY },
        { tokens: 2 ** 60 },
      ]) {
        const e = failure(await submit(budget));
        expect(e.code, JSON.stringify(budget)).toBe('VALIDATION');
        expect(e.detail).toMatch(/budget/);
      }
      must(await submit({ wall: 'P365D', usd: 1_000_000, tokens: 1e12 }));
    });

    it('1: release and the sweep work on a stored job whose wall budget is out of range, and other products are still reaped', async () => {
      const job = await h.submit({ budget: { wall: 'PT1H' } });
      await corrupt(job.id, (d) => {
        d.budget = { wall: 'P100000000D' };
      });
      const g = await h.claim('f1');
      expect(g.job.id).toBe(job.id);
      const released = must(await h.coord.releaseLease(h.product, job.id, me(g)));
      expect(released.stage).toBe('queued');
      // Claim it again and let it expire, beside another product's expiring lease.
      const g2 = await h.claim('f1');
      const other = `${h.product}-other`;
      must(await h.coord.submit(other, { idempotencyKey: 'o', bodyMd: 'x' }));
      const og = must(await h.coord.claimNextJob(other, { factoryId: 'f9' }));
      expect(og).not.toBeNull();
      h.clock.advance(2 * h.coord.leaseMs);
      const report = await h.coord.sweep();
      expect(report.reaped).toBe(2);
      expect((await h.job(g2.job.id)).stage).toBe('queued');
      expect(must(await h.coord.getJob(other, og!.job.id)).stage).toBe('queued');
    });

    it('1: a job whose processing throws is logged with its id, counted, and the sweep goes on', async () => {
      const bad = await h.submit();
      const good = await h.submit();
      const gBad = await h.claim('f1');
      const gGood = await h.claim('f2');
      expect([gBad.job.id, gGood.job.id]).toEqual([bad.id, good.id]);
      const log = recordingLogger();
      const jobs = h.store.jobs;
      const broken = new Coordinator({
        store: withJobs(h.store, {
          read: async (pk: string, id: string) => {
            if (id === bad.id) throw new TypeError('a document this build cannot read');
            return jobs.read(pk, id);
          },
        }),
        clock: h.clock,
        logger: log,
      });
      h.clock.advance(2 * h.coord.leaseMs);
      const report = await broken.sweep();
      expect(report.reaped).toBe(1);
      expect(report.failedJobs).toBe(1);
      expect((await h.job(good.id)).stage).toBe('queued');
      const line = log.lines.find((l) => (l.obj as { jobId?: string }).jobId === bad.id);
      expect(line?.level).toBe('error');
      // The next sweep still reaps what comes due after the bad job.
      const g3 = await h.claim('f3');
      expect(g3.job.id).toBe(good.id);
      h.clock.advance(2 * h.coord.leaseMs);
      const again = await broken.sweep();
      expect(again).toMatchObject({ reaped: 1, failedJobs: 1 });
      expect((await h.job(good.id)).stage).toBe('queued');
      expect(broken.isolatedFailures).toBe(2);
    });

    it('1: a dependents cascade goes on past a dependent that cannot be processed', async () => {
      const dep = await h.submit();
      const a = await h.submit({ deps: [dep.id] });
      const b = await h.submit({ deps: [dep.id] });
      const jobs = h.store.jobs;
      const log = recordingLogger();
      const broken = new Coordinator({
        store: withJobs(h.store, {
          read: async (pk: string, id: string) => {
            if (id === a.id) throw new TypeError('unreadable');
            return jobs.read(pk, id);
          },
        }),
        clock: h.clock,
        logger: log,
      });
      must(await broken.cancel(h.product, dep.id));
      expect((await h.job(b.id)).stage).toBe('dead_letter');
      expect(log.lines.some((l) => (l.obj as { jobId?: string }).jobId === a.id)).toBe(true);
      // Repaired by a healthy coordinator's sweep.
      await h.coord.sweep();
      expect((await h.job(a.id)).stage).toBe('dead_letter');
    });
  });

  describe('2: the sweep and dependency cascades block the event loop', () => {
    it('2: a sweep reads no blocked job whose deps did not change, and never a dep document', async () => {
      const dep = await h.submit({ capabilities: ['never'] });
      const blocked: string[] = [];
      for (let i = 0; i < 40; i++) blocked.push((await h.submit({ deps: [dep.id] })).id);
      const reads: string[] = [];
      const jobs = h.store.jobs;
      const watched = new Coordinator({
        store: withJobs(h.store, {
          read: async (pk: string, id: string) => {
            reads.push(id);
            return jobs.read(pk, id);
          },
        }),
        clock: h.clock,
      });
      for (let i = 0; i < 3; i++) await watched.sweep();
      expect(reads.filter((id) => id === dep.id)).toEqual([]);
      expect(reads.filter((id) => blocked.includes(id))).toEqual([]);
    });

    it('2: a cascade re-evaluates dependents without reading the dep documents', async () => {
      const dep = await h.submit();
      const others = [await h.submit(), await h.submit()];
      const dependents: string[] = [];
      for (let i = 0; i < 20; i++) {
        dependents.push((await h.submit({ deps: [dep.id, ...others.map((o) => o.id)] })).id);
      }
      const reads: string[] = [];
      const jobs = h.store.jobs;
      const watched = new Coordinator({
        store: withJobs(h.store, {
          read: async (pk: string, id: string) => {
            reads.push(id);
            return jobs.read(pk, id);
          },
        }),
        clock: h.clock,
      });
      must(await watched.cancel(h.product, dep.id));
      for (const id of dependents) expect((await h.job(id)).stage).toBe('dead_letter');
      expect(reads.filter((id) => others.some((o) => o.id === id))).toEqual([]);
    });

    it('2: long sweeps and cascades yield to the event loop between jobs', async () => {
      const dep = await h.submit();
      for (let i = 0; i < 150; i++) await h.submit({ deps: [dep.id] });
      let ticks = 0;
      let stop = false;
      const spin = (): void => {
        if (stop) return;
        ticks++;
        setImmediate(spin);
      };
      setImmediate(spin);
      const before = ticks;
      must(await h.coord.cancel(h.product, dep.id));
      const duringCascade = ticks - before;
      stop = true;
      expect(duringCascade).toBeGreaterThan(1);
    });
  });

  describe('3: soft dependents are blocked again when their dep leaves testing', () => {
    const setup = async () => {
      const a = await h.submit({ priority: 'critical' });
      const b = await h.submit({ deps: [a.id], depsMode: 'soft' });
      const g = await h.claim('f1');
      expect(g.job.id).toBe(a.id);
      await h.advance(g, 'building', 'review', 'testing');
      expect((await h.job(b.id)).stage).toBe('queued');
      return { a, b, g };
    };

    it('3: by FAIL', async () => {
      const { b, g } = await setup();
      await h.advance(g, 'failed');
      expect((await h.job(b.id)).stage).toBe('blocked');
      expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'f2' }))).toBeNull();
    });

    it('3: by RELEASE', async () => {
      const { a, b, g } = await setup();
      must(await h.coord.releaseLease(h.product, a.id, me(g)));
      expect((await h.job(b.id)).stage).toBe('blocked');
      const next = must(await h.coord.claimNextJob(h.product, { factoryId: 'f2' }));
      expect(next?.job.id).toBe(a.id);
    });

    it('3: by lease expiry', async () => {
      const { a, b } = await setup();
      h.clock.advance(2 * h.coord.leaseMs);
      expect((await h.coord.sweep()).reaped).toBe(1);
      expect((await h.job(b.id)).stage).toBe('blocked');
      const next = must(await h.coord.claimNextJob(h.product, { factoryId: 'f2' }));
      expect(next?.job.id).toBe(a.id);
    });

    it('3: a queued job with unmet deps is never claimed, even when its notification was lost', async () => {
      const a = await h.submit({ priority: 'critical' });
      const b = await h.submit({ deps: [a.id], depsMode: 'soft' });
      const g = await h.claim('f1');
      await h.advance(g, 'building', 'review', 'testing');
      // The move back to building reaches nobody (its notification is lost).
      const deaf = new Coordinator({
        store: withJobs(h.store, { dependents: async () => [] }),
        clock: h.clock,
      });
      must(await deaf.transition(h.product, a.id, { ...me(g), to: 'building' }));
      expect((await h.job(b.id)).stage).toBe('queued');
      expect(must(await h.coord.claimNextJob(h.product, { factoryId: 'f2' }))).toBeNull();
      expect((await h.job(b.id)).stage).toBe('blocked');
    });
  });

  describe('5: live projections grow without bound and cost O(n) per event', () => {
    it('5: a coordinator keeps no live projections unless asked', async () => {
      const c = new Coordinator({ store: h.store, clock: h.clock });
      expect(c.projections).toBeNull();
      const withThem = new Coordinator({ store: h.store, clock: h.clock, liveProjections: true });
      expect(withThem.projections).not.toBeNull();
    });

    it('5: appending to a timeline shares the previous one instead of copying it', () => {
      let state = INITIAL_TIMELINE;
      const event = (seq: number): EventDoc => ({
        id: `j.e${seq}`,
        productId: 'p',
        jobId: 'j',
        seq,
        type: 'checkpoint_saved',
        at: iso(0),
        actor: null,
        data: { from: 'building', to: 'building', leaseEpoch: 1, factoryId: 'f' },
      });
      for (let seq = 1; seq <= 1000; seq++) {
        const next = reduceTimeline(state, event(seq) as never);
        expect(next.previous).toBe(state);
        state = next;
      }
      expect(state.length).toBe(1000);
    });
  });

  describe('9: seat-limit race between processes', () => {
    it('9: two coordinators claiming for one factory at seatLimit 1 leave one grant standing, and a give-back costs no attempt and starts no wall clock', async () => {
      must(
        await h.coord.heartbeat(h.product, {
          factoryId: 'solo',
          capabilities: [],
          health: 'ok',
          seatLimit: 1,
        }),
      );
      const jobs = [
        await h.submit({ budget: { wall: 'PT1M' } }),
        await h.submit({ budget: { wall: 'PT1M' } }),
      ];
      // Both processes count the factory's leases before either claims.
      let arrived = 0;
      let release!: () => void;
      const bothCounted = new Promise<void>((r) => {
        release = r;
      });
      const first = new Set<Coordinator>();
      const make = (): Coordinator => {
        const c: Coordinator = new Coordinator({
          store: withJobs(h.store, {
            countHeld: async (pk: string, factoryId: string) => {
              const n = await h.store.jobs.countHeld(pk, factoryId);
              if (!first.has(c)) {
                first.add(c);
                if (++arrived === 2) release();
                await bothCounted;
              }
              return n;
            },
          }),
          clock: h.clock,
        });
        return c;
      };
      const [c1, c2] = [make(), make()];
      const grants = await Promise.all([
        c1.claimNextJob(h.product, { factoryId: 'solo' }),
        c2.claimNextJob(h.product, { factoryId: 'solo' }),
      ]);
      const won = grants.map(must).filter((g): g is ClaimGrant => g !== null);
      expect(won).toHaveLength(1);
      const held = await h.store.jobs.countHeld(h.product, 'solo');
      expect(held).toBe(1);
      const loser = jobs.find((j) => j.id !== won[0]!.job.id)!;
      const bounced = await h.job(loser.id);
      expect(bounced.stage).toBe('queued');
      expect(bounced.firstClaimedAt).toBeNull();
      // Its wall clock never started: long past the minute, it is still claimable.
      must(await h.coord.transition(h.product, won[0]!.job.id, { ...me(won[0]!), to: 'building' }));
      h.clock.advance(5 * MINUTE);
      await h.coord.sweep();
      expect((await h.job(loser.id)).stage).toBe('queued');
      const next = must(await h.coord.claimNextJob(h.product, { factoryId: 'other' }));
      expect(next?.job.id).toBe(loser.id);
      expect(next?.run.attempt).toBe(1);
    });
  });

  describe('10: an event is reported once across processes after a lost append answer', () => {
    it('10: the process whose append landed reports it; another that finds it stored does not', async () => {
      const f = faulty(h.store);
      const reported: Array<{ proc: string; id: string }> = [];
      const a = new Coordinator({ store: f, clock: h.clock });
      const b = new Coordinator({ store: h.store, clock: h.clock });
      a.subscribe((e) => reported.push({ proc: 'a', id: e.id }));
      b.subscribe((e) => reported.push({ proc: 'b', id: e.id }));
      f.failNext('events', 'append', { when: 'after' });
      // The append landed, but A hears a failure (a lost answer): an unknown outcome.
      await expect(a.submit(h.product, { idempotencyKey: 'k', bodyMd: 'x' })).rejects.toThrow(
        /injected fault after apply/,
      );
      // B carries out the outbox (reads the job's events): finds the event stored.
      const job = must(await b.findByIdempotencyKey(h.product, 'k'));
      must(await b.listEvents(h.product, job.id));
      // A settles what it could not confirm (at its next operation or sweep).
      await a.sweep();
      const submitted = reported.filter((x) => x.id === eventId(job.id, 1));
      expect(submitted).toEqual([{ proc: 'a', id: eventId(job.id, 1) }]);
    });
  });

  describe('11: an artifact reported twice under one name in one epoch', () => {
    it('11: newest wins, like its events', async () => {
      await h.submit();
      const g = await h.claim('f1');
      for (const uri of ['s3://b/one', 's3://b/two']) {
        must(
          await h.coord.recordProgress(h.product, g.job.id, {
            ...me(g),
            artifacts: [{ name: 'log', uri }],
          }),
        );
      }
      const items = must(await h.coord.listArtifacts(h.product, g.job.id)).items;
      expect(items.map((a) => a.uri)).toEqual(['s3://b/two']);
      const ev = (await h.events(g.job.id)).filter((e) => e.type === 'artifact_recorded');
      expect(ev.at(-1)?.data.uri).toBe('s3://b/two');
    });
  });

  describe('12: claim order across processes uses each process clock', () => {
    // The decision (README, "Claim order"): FIFO within one process exactly, whatever
    // its clock does; across processes as good as their clocks agree.
    it('12: within one process, submission order wins over a clock that goes back', async () => {
      const first = await h.submit();
      h.clock.set(h.clock.now() - 10 * MINUTE);
      const second = await h.submit();
      h.clock.set(h.clock.now() - MINUTE);
      const third = await h.submit();
      expect(first.seq).toBeLessThan(second.seq);
      expect(second.seq).toBeLessThan(third.seq);
      const order = [];
      for (let i = 0; i < 3; i++) order.push((await h.claim(`f${i}`)).job.id);
      expect(order).toEqual([first.id, second.id, third.id]);
    });

    it('12: across processes, a job is ordered by its submitter clock, as documented', async () => {
      const behindClock = new SimulatedClock(h.clock.now() - 5_000);
      const behind = new Coordinator({ store: h.store, clock: behindClock });
      const early = await h.submit();
      h.clock.advance(1_000);
      behindClock.advance(1_000);
      // Submitted one second later through a process whose clock is 5 s behind: ordered
      // as if submitted 4 s before `early`.
      const late = must(
        await behind.submit(h.product, { idempotencyKey: randomUUID(), bodyMd: 'late' }),
      ).job;
      expect(late.seq).toBeLessThan(early.seq);
      expect(late.seq - early.seq).toBe(-4_000 * 1000);
      expect((await h.claim('a')).job.id).toBe(late.id);
      expect((await h.claim('b')).job.id).toBe(early.id);
    });
  });

  describe('13: retry.on is not canonicalised', () => {
    it('13: the same job with its error classes in another order is the same job', async () => {
      const base = { idempotencyKey: 'k13', bodyMd: 'x' };
      const first = must(
        await h.coord.submit(h.product, { ...base, retry: { on: ['transient', 'timeout'] } }),
      );
      const again = must(
        await h.coord.submit(h.product, {
          ...base,
          retry: { on: ['timeout', 'transient', 'timeout'] },
        }),
      );
      expect(again.outcome).toBe('existing');
      expect(again.job.id).toBe(first.job.id);
    });
  });

  describe('14: the sweep misses an expired wall budget when another limit is also exceeded', () => {
    it('14: dead-letters on any exceeded limit', async () => {
      const job = await h.submit({ budget: { wall: 'PT1M', tokens: 10 } });
      await h.claim('f1');
      await corrupt(job.id, (d) => {
        d.usage = { ...d.usage, tokensIn: 100 };
      });
      h.clock.advance(2 * MINUTE);
      const report = await h.coord.sweep();
      expect(report.budgetExceeded).toBe(1);
      const after = await h.job(job.id);
      expect(after.stage).toBe('dead_letter');
      expect(after.deadReason).toBe('budget_exceeded');
    });
  });

  describe('15: usage counters overflow', () => {
    it('15: increments are bounded and a total that would stop being finite is refused', async () => {
      await h.submit();
      const g = await h.claim('f1');
      expect(
        failure(
          await h.coord.recordProgress(h.product, g.job.id, {
            ...me(g),
            insights: { costUsd: 1e308 },
          }),
        ).code,
      ).toBe('VALIDATION');
      for (let i = 0; i < 3; i++) {
        const r = await h.coord.recordProgress(h.product, g.job.id, {
          ...me(g),
          insights: { tokensIn: 4e15 },
        });
        if (i < 2) must(r);
        else expect(failure(r).code).toBe('VALIDATION');
      }
      const job = await h.job(g.job.id);
      expect(job.usage.tokensIn).toBe(8e15);
      expect(Number.isFinite(job.usage.costUsd)).toBe(true);
    });
  });

  describe('20: parentId accepts any string', () => {
    it('20: parentId must name a job of this product', async () => {
      const parent = await h.submit();
      must(
        await h.coord.submit(h.product, {
          idempotencyKey: 'child',
          bodyMd: 'x',
          parentId: parent.id,
        }),
      );
      const foreign = must(
        await h.coord.submit(`${h.product}-x`, { idempotencyKey: 'p', bodyMd: 'x' }),
      ).job;
      for (const parentId of [foreign.id, 'job_nope']) {
        const e = failure(
          await h.coord.submit(h.product, {
            idempotencyKey: `c-${parentId}`,
            bodyMd: 'x',
            parentId,
          }),
        );
        expect(e.code).toBe('UNKNOWN_DEPENDENCY');
        expect(e.detail).toMatch(/parentId/);
      }
    });
  });

  describe('21: a supersede that adds deps rewrites every job reachable through deps', () => {
    it('21: jobs the cycle check reads keep their etags unless they could be superseded', async () => {
      // A chain of shipped jobs ending in one being built: none of them can change deps.
      const chain: Stored<JobDoc>[] = [];
      for (let i = 0; i < 10; i++) {
        chain.push(await h.submit(i === 0 ? {} : { deps: [chain[i - 1]!.id] }));
        const g = await h.claim('f1');
        expect(g.job.id).toBe(chain[i]!.id);
        if (i < 9) await h.advance(g, 'building', 'review', 'testing', 'shipped');
        else await h.advance(g, 'building');
      }
      const x = await h.submit({ idempotencyKey: 'x', capabilities: ['later'] });
      const before = await Promise.all(chain.map((j) => h.job(j.id)));
      const r = must(
        await h.coord.submit(h.product, {
          idempotencyKey: 'x',
          bodyMd: 'do the work',
          capabilities: ['later'],
          deps: [chain.at(-1)!.id],
        }),
      );
      expect(r.outcome).toBe('superseded');
      expect(r.job.id).toBe(x.id);
      const after = await Promise.all(chain.map((j) => h.job(j.id)));
      expect(after.map((j) => j._etag)).toEqual(before.map((j) => j._etag));
      // The cycle check still works: closing a loop through a queued job is refused.
      const q = await h.submit({ idempotencyKey: 'q', deps: [x.id], capabilities: ['later'] });
      const e = failure(
        await h.coord.submit(h.product, {
          idempotencyKey: 'x',
          bodyMd: 'do the work',
          capabilities: ['later'],
          deps: [chain.at(-1)!.id, q.id],
        }),
      );
      expect(e.code).toBe('DEPENDENCY_CYCLE');
    });
  });

  describe('7 and 22: input the schemas must refuse with a clear message', () => {
    it('7: deeply nested JSON is a clear VALIDATION, never a crash', async () => {
      const deep = nested(3000);
      const e = failure(
        await h.coord.submit(h.product, {
          idempotencyKey: 'deep',
          bodyMd: 'x',
          manifestSnapshot: deep,
        }),
      );
      expect(e.code).toBe('VALIDATION');
      expect(e.detail).toMatch(/nested deeper than 64/);
      const hb = failure(
        await h.coord.heartbeat(h.product, {
          factoryId: 'f',
          capabilities: [],
          health: 'ok',
          descriptor: deep,
        }),
      );
      expect(hb.code).toBe('VALIDATION');
      expect(hb.detail).toMatch(/nested deeper than 64/);
      must(
        await h.coord.submit(h.product, {
          idempotencyKey: 'ok',
          bodyMd: 'x',
          manifestSnapshot: nested(60),
        }),
      );
      expect(() => canonicalJson(nested(100_000))).not.toThrow(RangeError);
    });

    it('22: control and bidirectional characters in keys and factory ids are refused', async () => {
      for (const key of ['a\u0000b', 'tab\there', 'x\u0085', 'rtl\u202Eevil', 'iso\u2066x']) {
        const e = failure(await h.coord.submit(h.product, { idempotencyKey: key, bodyMd: 'x' }));
        expect(e.code, JSON.stringify(key)).toBe('VALIDATION');
      }
      await h.submit();
      const e = failure(await h.coord.claimNextJob(h.product, { factoryId: 'f\u202E1' }));
      expect(e.code).toBe('VALIDATION');
      // Plain Unicode stays fine.
      must(await h.coord.submit(h.product, { idempotencyKey: 'café-ünïcode-键', bodyMd: 'x' }));
    });

    it('22: the events cursor accepts only a decimal sequence number', async () => {
      const job = await h.submit();
      for (const cursor of ['1e0', '0x1', ' 1', '1.0', '-1', '01']) {
        const e = failure(await h.coord.listEvents(h.product, job.id, { cursor }));
        expect(e.code, cursor).toBe('VALIDATION');
      }
      expect(must(await h.coord.listEvents(h.product, job.id, { cursor: '0' })).items).toHaveLength(
        1,
      );
    });

    it('22: result and verifyResult with a move that ends no attempt are refused, not dropped', async () => {
      await h.submit();
      const g = await h.claim('f1');
      for (const extra of [{ result: { pr: 1 } }, { verifyResult: { ok: true } }]) {
        const e = failure(
          await h.coord.transition(h.product, g.job.id, { ...me(g), to: 'building', ...extra }),
        );
        expect(e.code).toBe('VALIDATION');
        expect(e.detail).toMatch(/shipped or failed/);
      }
      expect((await h.job(g.job.id)).stage).toBe('assigned');
    });
  });
});
