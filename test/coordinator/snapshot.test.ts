/**
 * The persisted XState snapshot on the job document: it survives a JSON round trip and
 * continuing from it with the pure `transition()` gives what the live path stored; a
 * document written by an unknown machine version is refused (SNAPSHOT_VERSION) and left
 * untouched; the document's indexed fields always mirror the snapshot.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { transition } from 'xstate';
import {
  JOB_MACHINE_VERSION,
  type JobContext,
  type JobMachineEvent,
  jobMachine,
} from '../../machines/job.machine.js';
import { iso } from '../../runtime/clock.js';
import type { Stored } from '../../runtime/document-store.port.js';
import { FleetError, isFleetError, type Result } from '../../runtime/errors.js';
import { persistSnapshot, restoreSnapshot } from '../../runtime/job-draft.js';
import { backoffDelay } from '../../runtime/retry-policy.js';
import type { ClaimGrant, JobDoc } from '../../runtime/types.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

const roundTrip = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('restoreSnapshot', () => {
  const live = persistSnapshot(
    jobMachine.resolveState({
      value: 'queued',
      context: {
        leaseEpoch: 0,
        holder: null,
        leaseExpiresAt: null,
        renewals: 0,
        attempt: 0,
        failures: 0,
        maxRetries: 3,
        notBefore: null,
        deadReason: null,
        firstClaimedAt: null,
        revision: 1,
        lastWriteAt: null,
      },
    }),
  );

  it('restores a snapshot of the current version after a JSON round trip', () => {
    const s = restoreSnapshot({
      id: 'j',
      machineVersion: JOB_MACHINE_VERSION,
      snapshot: roundTrip(live),
    });
    expect(s.value).toBe('queued');
    expect(s.context.maxRetries).toBe(3);
  });

  it('throws a FleetError with code SNAPSHOT_VERSION for an unknown machine version', () => {
    let caught: unknown;
    try {
      restoreSnapshot({ id: 'j-1', machineVersion: 999, snapshot: live });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(FleetError);
    expect(isFleetError(caught, 'SNAPSHOT_VERSION')).toBe(true);
    expect((caught as FleetError).detail).toContain('999');
    expect((caught as FleetError).detail).toContain('j-1');
  });

  it('throws SNAPSHOT_VERSION for a malformed snapshot', () => {
    for (const snapshot of [{}, { value: 'queued' }, { value: 7, context: {} }]) {
      expect(() =>
        restoreSnapshot({ id: 'j', machineVersion: JOB_MACHINE_VERSION, snapshot }),
      ).toThrow(expect.objectContaining({ code: 'SNAPSHOT_VERSION' }));
    }
  });
});

describe.each(STORES.map((s) => [s.name, s] as const))(
  'persisted snapshots (%s)',
  (_name, factory) => {
    let h: Harness;
    beforeEach(async () => {
      h = await makeHarness(factory);
    });
    afterEach(async () => {
      await h.close();
    });

    /** The document's mirrored fields equal the snapshot's state and context. */
    const expectMirrors = (doc: JobDoc) => {
      const snap = doc.snapshot as { value: unknown; context: JobContext };
      const c = snap.context;
      expect(doc.machineVersion).toBe(JOB_MACHINE_VERSION);
      expect(doc.stage).toBe(snap.value);
      expect(doc.leaseEpoch).toBe(c.leaseEpoch);
      expect(doc.holderFactoryId).toBe(c.holder);
      expect(doc.leaseExpiresAt).toBe(c.leaseExpiresAt === null ? null : iso(c.leaseExpiresAt));
      expect(doc.attempt).toBe(c.attempt);
      expect(doc.failures).toBe(c.failures);
      expect(doc.notBefore).toBe(c.notBefore === null ? null : iso(c.notBefore));
      expect(doc.deadReason).toBe(c.deadReason);
      expect(doc.firstClaimedAt).toBe(c.firstClaimedAt === null ? null : iso(c.firstClaimedAt));
      // A JSON round trip of the stored snapshot restores to the same state.
      const restored = restoreSnapshot(roundTrip(doc));
      expect(restored.value).toBe(doc.stage);
      expect(restored.context).toEqual(c);
    };

    describe('JSON round trip + pure transition = live path', () => {
      /**
       * Predicts the next snapshot from the stored one (after a JSON round trip) with the
       * pure `transition()`, performs the live step, and compares.
       */
      const step = async (
        id: string,
        event: (now: number) => JobMachineEvent,
        live: () => Promise<unknown>,
      ): Promise<Stored<JobDoc>> => {
        const before = await h.job(id);
        const restored = restoreSnapshot(
          roundTrip({ id, machineVersion: before.machineVersion, snapshot: before.snapshot }),
        );
        const [next] = transition(jobMachine, restored, event(h.clock.now()));
        expect(next).not.toBe(restored); // the predicted event is accepted
        await live();
        const after = await h.job(id);
        expect(after.snapshot).toEqual(roundTrip(persistSnapshot(next)));
        expect(after.stage).toBe(next.value);
        expectMirrors(after);
        return after;
      };

      const worker = (g: ClaimGrant, type: 'BUILD' | 'REVIEW' | 'TEST' | 'SHIP') => (now: number) =>
        ({ type, factoryId: 'f1', leaseEpoch: g.lease.leaseEpoch, now }) as JobMachineEvent;

      const patch = (g: ClaimGrant, to: 'building' | 'review' | 'testing' | 'shipped') => () =>
        h.coord
          .transition(h.product, g.job.id, { factoryId: 'f1', leaseEpoch: g.lease.leaseEpoch, to })
          .then(must);

      it('claim → building → review → building → review → testing → shipped', async () => {
        const job = await h.submit();
        expectMirrors(await h.job(job.id));
        let grant: ClaimGrant | null = null;
        await step(
          job.id,
          (now) => ({ type: 'CLAIM', factoryId: 'f1', now, expiresAt: now + h.coord.leaseMs }),
          async () => {
            grant = await h.claim('f1');
          },
        );
        const g = grant as unknown as ClaimGrant;
        h.clock.advance(1000);
        await step(job.id, worker(g, 'BUILD'), patch(g, 'building'));
        h.clock.advance(1000);
        await step(job.id, worker(g, 'REVIEW'), patch(g, 'review'));
        await step(job.id, worker(g, 'BUILD'), patch(g, 'building'));
        await step(job.id, worker(g, 'REVIEW'), patch(g, 'review'));
        h.clock.advance(1000);
        await step(job.id, worker(g, 'TEST'), patch(g, 'testing'));
        const shipped = await step(job.id, worker(g, 'SHIP'), patch(g, 'shipped'));
        expect(shipped.stage).toBe('shipped');
        expect(shipped.holderFactoryId).toBeNull();
      });

      it('fail → retry due → claim → renew → lease expired → cancel → requeue', async () => {
        const job = await h.submit();
        let g = await h.claim('f1');
        const retryAt = (now: number) => now + backoffDelay((job as JobDoc).retry, 1, () => 0.5);
        await step(
          job.id,
          (now) => ({
            type: 'FAIL',
            factoryId: 'f1',
            leaseEpoch: g.lease.leaseEpoch,
            now,
            retryable: true,
            retryAt: retryAt(now),
          }),
          () =>
            h.coord
              .transition(h.product, job.id, {
                factoryId: 'f1',
                leaseEpoch: g.lease.leaseEpoch,
                to: 'failed',
                error: { class: 'transient', message: 'x' },
              })
              .then(must),
        );
        h.clock.advance(10_000);
        await step(
          job.id,
          (now) => ({ type: 'RETRY_DUE', now, depsMet: true }),
          () => h.coord.sweep(),
        );
        g = await h.claim('f1');
        h.clock.advance(30_000);
        await step(
          job.id,
          (now) => ({
            type: 'RENEW',
            factoryId: 'f1',
            leaseEpoch: g.lease.leaseEpoch,
            now,
            expiresAt: now + 5000,
          }),
          () =>
            h.coord
              .renewLease(h.product, job.id, {
                factoryId: 'f1',
                leaseEpoch: g.lease.leaseEpoch,
                extendMs: 5000,
              })
              .then(must),
        );
        h.clock.advance(5000);
        await step(
          job.id,
          (now) => ({ type: 'LEASE_EXPIRED', now, depsMet: true }),
          () => h.coord.sweep(),
        );
        await step(
          job.id,
          () => ({ type: 'CANCEL' }),
          () => h.coord.cancel(h.product, job.id).then(must),
        );
        const requeued = await step(
          job.id,
          () => ({ type: 'REQUEUE', depsMet: true }),
          () => h.coord.requeue(h.product, job.id).then(must),
        );
        expect(requeued.stage).toBe('queued');
        expect(requeued.failures).toBe(0);
      });
    });

    it('the document mirrors the snapshot after every step of a long lifecycle', async () => {
      const dep = await h.submit({ priority: 'critical' });
      const job = await h.submit({ deps: [dep.id] });
      const check = async () => expectMirrors(await h.job(job.id));
      await check(); // blocked
      const gd = await h.claim('f0');
      await h.advance(gd, 'building', 'review', 'testing', 'shipped');
      await check(); // unblocked → queued
      let g = await h.claim('f1');
      expect(g.job.id).toBe(job.id);
      await check();
      for (const to of ['building', 'review', 'building', 'review', 'testing'] as const) {
        await h.advance(g, to);
        await check();
      }
      must(
        await h.coord.recordProgress(h.product, job.id, {
          factoryId: 'f1',
          leaseEpoch: g.lease.leaseEpoch,
          checkpoint: { wipBranch: 'w' },
          insights: { tokensIn: 5 },
        }),
      );
      await check();
      await h.advance(g, 'failed');
      await check();
      h.clock.advance(60_000);
      await h.coord.sweep();
      await check();
      g = await h.claim('f2');
      await check();
      must(
        await h.coord.renewLease(h.product, job.id, {
          factoryId: 'f2',
          leaseEpoch: g.lease.leaseEpoch,
        }),
      );
      await check();
      must(
        await h.coord.releaseLease(h.product, job.id, {
          factoryId: 'f2',
          leaseEpoch: g.lease.leaseEpoch,
        }),
      );
      await check();
      g = await h.claim('f3');
      h.clock.advance(h.coord.leaseMs + 1);
      await h.coord.sweep();
      await check();
      expect((await h.job(job.id)).stage).toBe('queued');
      must(await h.coord.cancel(h.product, job.id));
      await check();
      must(await h.coord.requeue(h.product, job.id));
      await check();
      g = await h.claim('f4');
      await h.advance(g, 'building', 'review', 'testing', 'shipped');
      const final = await h.job(job.id);
      expectMirrors(final);
      expect(final.stage).toBe('shipped');
    });

    describe('unknown machine version', () => {
      /** Rewrites the stored job as if a future build (machine version 999) had written it. */
      const poison = async (id: string): Promise<unknown> => {
        const cur = await h.job(id);
        const { _etag, ...doc } = cur;
        await h.store.jobs.replace({ ...doc, machineVersion: 999 }, _etag);
        return h.dump(id);
      };

      const expectRefused = (r: Result<unknown>) => {
        const err = failure(r);
        expect(err.code).toBe('SNAPSHOT_VERSION');
        expect(err.detail).toContain('999');
      };

      it('worker and admin calls on a held job return SNAPSHOT_VERSION and change nothing', async () => {
        const job = await h.submit();
        const g = await h.claim('f1');
        const w = { factoryId: 'f1', leaseEpoch: g.lease.leaseEpoch };
        const before = await poison(job.id);
        expectRefused(await h.coord.transition(h.product, job.id, { ...w, to: 'building' }));
        expectRefused(
          await h.coord.transition(h.product, job.id, {
            ...w,
            to: 'failed',
            error: { class: 'transient', message: '' },
          }),
        );
        expectRefused(
          await h.coord.recordProgress(h.product, job.id, { ...w, insights: { tokensIn: 1 } }),
        );
        expectRefused(await h.coord.renewLease(h.product, job.id, w));
        expectRefused(await h.coord.releaseLease(h.product, job.id, w));
        expectRefused(await h.coord.cancel(h.product, job.id));
        expectRefused(await h.coord.requeue(h.product, job.id));
        expect(await h.dump(job.id)).toEqual(before);
      });

      it('a supersede of a queued job returns SNAPSHOT_VERSION and changes nothing', async () => {
        const r = must(await h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'one' }));
        const before = await poison(r.job.id);
        expectRefused(await h.coord.submit(h.product, { idempotencyKey: 'k', bodyMd: 'two' }));
        expect(await h.dump(r.job.id)).toEqual(before);
      });

      it('the sweep leaves it alone (and does not throw) when its lease is due', async () => {
        const job = await h.submit();
        await h.claim('f1');
        const before = await poison(job.id);
        h.clock.advance(h.coord.leaseMs + 1);
        const report = await h.coord.sweep();
        expect(report.reaped).toBe(0);
        expect(await h.dump(job.id)).toEqual(before);
      });

      it('a claim does not throw on it and leaves it untouched', async () => {
        const job = await h.submit();
        const before = await poison(job.id);
        let r: Result<ClaimGrant | null> | undefined;
        let thrown: unknown;
        try {
          r = await h.coord.claimNextJob(h.product, { factoryId: 'f1' });
        } catch (e) {
          thrown = e;
        }
        expect(thrown, `claimNextJob threw ${String(thrown)}`).toBeUndefined();
        if (r && !r.ok) expect(r.error.code).toBe('SNAPSHOT_VERSION');
        else expect(r?.value ?? null).toBeNull();
        expect(await h.dump(job.id)).toEqual(before);
      });

      it('one unreadable job does not stop the rest of the queue from being claimed', async () => {
        const bad = await h.submit({ priority: 'critical' });
        const good = await h.submit({ priority: 'low' });
        await poison(bad.id);
        let grant: ClaimGrant | null = null;
        let thrown: unknown;
        try {
          grant = must(await h.coord.claimNextJob(h.product, { factoryId: 'f1' }));
        } catch (e) {
          thrown = e;
        }
        expect(thrown, `claimNextJob threw ${String(thrown)}`).toBeUndefined();
        expect(grant?.job.id).toBe(good.id);
      });
    });
  },
);
