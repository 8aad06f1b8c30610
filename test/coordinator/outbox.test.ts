import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../../runtime/coordinator.js';
import { rebuildAll } from '../../runtime/projections.js';
import type { EventDoc } from '../../runtime/types.js';
import { type FaultyStore, faulty } from '../support/faulty-store.js';
import { type Harness, makeHarness, must } from '../support/harness.js';
import { storeViolations } from '../support/invariants.js';
import { STORES } from '../support/stores.js';

/** Events are 1, 2, 3... with no gap and no duplicate. */
function expectGapFree(events: EventDoc[]): void {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
}

describe.each(STORES.map((s) => [s.name, s] as const))(
  'outbox and projections (%s)',
  (_name, factory) => {
    let h: Harness;
    let store: FaultyStore;
    afterEach(async () => h?.close());

    const open = async () => {
      h = await makeHarness({
        name: 'faulty',
        open: async () => (store = faulty(await factory.open())),
      });
    };

    it('a crash between the job write and its events is repaired by the next write, gap-free', async () => {
      await open();
      const job = await h.submit();
      const g = await h.claim('A');
      store.failNext('events', 'append');
      await expect(
        h.coord.transition(h.product, job.id, {
          factoryId: 'A',
          leaseEpoch: g.lease.leaseEpoch,
          to: 'building',
        }),
      ).rejects.toThrow(/injected fault/);
      const stored = await h.store.jobs.read(h.product, job.id);
      expect(stored?.stage).toBe('building'); // the decision was committed...
      expect(stored?.outbox.length).toBeGreaterThan(0); // ...and its follow-up is recorded
      expect(await storeViolations(h.store)).toEqual([]); // stored + pending is consistent
      await h.advance(g, 'review');
      const events = await h.events(job.id);
      expectGapFree(events);
      expect(events.map((e) => e.type)).toEqual([
        'submitted',
        'claimed',
        'stage_changed',
        'stage_changed',
      ]);
      expect((await h.store.jobs.read(h.product, job.id))?.outbox).toEqual([]);
    });

    it('an event is reported once: not again by a process that carries out the same outbox', async () => {
      await open();
      const job = await h.submit();
      const other = new Coordinator({ store: h.store, clock: h.clock });
      const heardHere: string[] = [];
      const heardThere: string[] = [];
      h.coord.subscribe((e) => heardHere.push(`${e.seq}:${e.type}`));
      other.subscribe((e) => heardThere.push(`${e.seq}:${e.type}`));
      // The claim's job write and its event land; emptying the outbox fails, so the
      // event stays pending on the job for whoever reads it next.
      store.failNext('jobs', 'replace', { skip: 1 });
      await expect(h.coord.claimNextJob(h.product, { factoryId: 'A' })).rejects.toThrow(
        /injected fault/,
      );
      expect((await h.store.jobs.read(h.product, job.id))?.outbox.length).toBeGreaterThan(0);
      // The other process reads the stream: it flushes the pending outbox first.
      const events = must(await other.listEvents(h.product, job.id, { limit: 10 })).items;
      expect(events.map((e) => e.type)).toEqual(['submitted', 'claimed']);
      expect(heardHere).toEqual(['2:claimed']);
      expect(heardThere).toEqual([]);
      await other.drain();
    });

    it('a crash before the run and lease writes is repaired by the sweep', async () => {
      await open();
      const job = await h.submit();
      store.failNext('runs', 'create');
      await expect(h.coord.claimNextJob(h.product, { factoryId: 'A' })).rejects.toThrow(
        /injected fault/,
      );
      expect(must(await h.coord.getJob(h.product, job.id)).stage).toBe('assigned');
      expect(await h.store.runs.read(job.id, `${job.id}.r1`)).toBeNull();
      const report = await h.coord.sweep();
      expect(report.repaired).toBe(1);
      expect(await h.store.runs.read(job.id, `${job.id}.r1`)).toMatchObject({
        attempt: 1,
        factoryId: 'A',
      });
      expect(await h.store.leases.read(job.id, job.id)).toMatchObject({
        holderFactoryId: 'A',
        status: 'held',
      });
      expect(await h.coord.sweep()).toMatchObject({ repaired: 0 });
    });

    it('a write whose outcome was unknown is never applied twice', async () => {
      await open();
      const job = await h.submit();
      const g = await h.claim('A');
      // The event write lands but the caller hears an error; the repair re-appends by id.
      store.failNext('events', 'append', { when: 'after' });
      await expect(
        h.coord.transition(h.product, job.id, {
          factoryId: 'A',
          leaseEpoch: g.lease.leaseEpoch,
          to: 'building',
        }),
      ).rejects.toThrow(/injected fault/);
      const events = await h.events(job.id);
      expectGapFree(events);
      expect(events).toHaveLength(3);
    });

    it('a lost dependents notification is repaired: the dependent is unblocked', async () => {
      await open();
      const dep = await h.submit();
      const child = await h.submit({ deps: [dep.id] });
      const g = await h.claim('A');
      await h.advance(g, 'building', 'review', 'testing');
      store.failNext('jobs', 'dependents');
      await expect(
        h.coord.transition(h.product, dep.id, {
          factoryId: 'A',
          leaseEpoch: g.lease.leaseEpoch,
          to: 'shipped',
        }),
      ).rejects.toThrow(/injected fault/);
      expect((await h.job(child.id)).stage).toBe('blocked');
      await h.coord.sweep();
      expect((await h.job(child.id)).stage).toBe('queued');
    });

    it('live projections equal their rebuild from the stored streams, and stage counts match the jobs', async () => {
      await open();
      const ids: string[] = [];
      for (let i = 0; i < 12; i++)
        ids.push((await h.submit({ retry: { max: 1, backoff: 'fixed', delayMs: 100 } })).id);
      ids.push((await h.submit({ deps: [ids[0] as string] })).id);
      for (let i = 0; i < 10; i++) {
        const g = await h.claim(`f${i}`);
        const who = { factoryId: `f${i}`, leaseEpoch: g.lease.leaseEpoch };
        must(
          await h.coord.recordProgress(h.product, g.job.id, {
            ...who,
            insights: { tokensIn: 100 + i, costUsd: 0.1 * i, turns: 1 },
          }),
        );
        if (i % 3 === 0) await h.advance(g, 'building', 'review', 'testing', 'shipped');
        else if (i % 3 === 1) await h.advance(g, 'building', 'failed');
        else await h.advance(g, 'building');
      }
      h.clock.advance(61_000);
      await h.coord.sweep();
      const all: EventDoc[] = [];
      for (const id of ids) {
        const events = await h.events(id);
        expectGapFree(events);
        all.push(...events);
      }
      expect(await storeViolations(h.store)).toEqual([]);
      const rebuilt = rebuildAll(all);
      expect(h.coord.projections?.snapshot()).toEqual(rebuilt);
      const counts: Record<string, number> = {};
      for (const id of ids) {
        const stage = (await h.job(id)).stage;
        counts[stage] = (counts[stage] ?? 0) + 1;
      }
      const projected = Object.fromEntries(
        Object.entries(rebuilt.stageCounts[h.product] ?? {}).filter(([, n]) => n > 0),
      );
      expect(projected).toEqual(counts);
    });
  },
);
