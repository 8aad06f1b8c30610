/**
 * Factories: heartbeat registration and updates, derived staleness, heartbeat
 * capabilities used by claims, and seat limits.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { iso } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import type { ClaimGrant, FactoryDoc, HeartbeatInput } from '../../runtime/types.js';
import { failure, type Harness, makeHarness, must } from '../support/harness.js';
import { STORES } from '../support/stores.js';

describe.each(STORES.map((s) => [s.name, s] as const))('factories (%s)', (_name, factory) => {
  let h: Harness;
  beforeEach(async () => {
    h = await makeHarness(factory);
  });
  afterEach(async () => {
    await h.close();
  });

  const beat = async (input: Partial<HeartbeatInput> & { factoryId: string }) =>
    must(await h.coord.heartbeat(h.product, { capabilities: [], health: 'ok', ...input }));
  const list = async (): Promise<Array<FactoryDoc & { stale: boolean }>> =>
    must(await h.coord.listFactories(h.product, { limit: 500 })).items;
  const listed = async (factoryId: string) => (await list()).find((f) => f.factoryId === factoryId);
  const claim = async (factoryId: string, capabilities?: string[]) =>
    must(
      await h.coord.claimNextJob(h.product, {
        factoryId,
        ...(capabilities ? { capabilities } : {}),
      }),
    );

  describe('heartbeat', () => {
    it('registers the factory on its first beat', async () => {
      const t0 = iso(h.clock.now());
      expect(await listed('f1')).toBeUndefined();
      const doc = await beat({
        factoryId: 'f1',
        capabilities: ['node'],
        descriptor: { host: 'a' },
      });
      expect(doc).toMatchObject({
        factoryId: 'f1',
        productId: h.product,
        capabilities: ['node'],
        health: 'ok',
        descriptor: { host: 'a' },
        registeredAt: t0,
        lastHeartbeatAt: t0,
        seatLimit: null,
        stale: false,
      });
      expect(await listed('f1')).toMatchObject({
        registeredAt: t0,
        lastHeartbeatAt: t0,
        stale: false,
      });
      expect(await list()).toHaveLength(1);
    });

    it('later beats update lastHeartbeatAt, health, load and capabilities, not registeredAt', async () => {
      const t0 = iso(h.clock.now());
      await beat({ factoryId: 'f1', capabilities: ['node'], load: 1, descriptor: { host: 'a' } });
      h.clock.advance(5000);
      const t1 = iso(h.clock.now());
      const doc = await beat({
        factoryId: 'f1',
        capabilities: ['node', 'gpu'],
        health: 'degraded',
        load: 3.5,
      });
      expect(doc.registeredAt).toBe(t0);
      expect(doc.lastHeartbeatAt).toBe(t1);
      expect(doc.health).toBe('degraded');
      expect(doc.load).toBe(3.5);
      expect([...doc.capabilities].sort()).toEqual(['gpu', 'node']);
      // A beat without a descriptor keeps the registered one.
      expect(doc.descriptor).toEqual({ host: 'a' });
      const l = await listed('f1');
      expect(l).toMatchObject({
        registeredAt: t0,
        lastHeartbeatAt: t1,
        health: 'degraded',
        load: 3.5,
      });
      expect([...(l?.capabilities ?? [])].sort()).toEqual(['gpu', 'node']);
      expect(await list()).toHaveLength(1);
    });

    it('concurrent first beats of one factory register it once', async () => {
      const t0 = iso(h.clock.now());
      const docs = await Promise.all(
        Array.from({ length: 10 }, (_, i) => beat({ factoryId: 'f1', load: i })),
      );
      expect(docs.every((d) => d.registeredAt === t0)).toBe(true);
      const all = await list();
      expect(all).toHaveLength(1);
      expect(docs.map((d) => d.load)).toContain(all[0]?.load);
    });

    it('capabilities can shrink to none', async () => {
      await beat({ factoryId: 'f1', capabilities: ['node', 'gpu'] });
      const doc = await beat({ factoryId: 'f1', capabilities: [] });
      expect(doc.capabilities).toEqual([]);
    });

    it('an invalid heartbeat is VALIDATION and registers nothing', async () => {
      const err = failure(
        await h.coord.heartbeat(h.product, {
          factoryId: 'f1',
          capabilities: [],
          health: 'sleepy',
        } as unknown as HeartbeatInput),
      );
      expect(err.code).toBe('VALIDATION');
      expect(await list()).toHaveLength(0);
    });

    it('factories of another product are not listed', async () => {
      await beat({ factoryId: 'f1' });
      must(
        await h.coord.heartbeat(`${h.product}-other`, {
          factoryId: 'f2',
          capabilities: [],
          health: 'ok',
        }),
      );
      expect((await list()).map((f) => f.factoryId)).toEqual(['f1']);
    });
  });

  describe('staleness', () => {
    it('stale after 3 × the default heartbeat interval without a beat, fresh before', async () => {
      const interval = h.coord.heartbeatIntervalMs;
      await beat({ factoryId: 'f1' });
      h.clock.advance(3 * interval - 1);
      expect((await listed('f1'))?.stale).toBe(false);
      h.clock.advance(2);
      expect((await listed('f1'))?.stale).toBe(true);
      // A new beat makes it fresh again.
      await beat({ factoryId: 'f1' });
      expect((await listed('f1'))?.stale).toBe(false);
    });

    it('uses the interval the factory names', async () => {
      await beat({ factoryId: 'fast', heartbeatIntervalMs: 1000 });
      await beat({ factoryId: 'slow', heartbeatIntervalMs: 60_000 });
      h.clock.advance(2999);
      expect((await listed('fast'))?.stale).toBe(false);
      h.clock.advance(2);
      expect((await listed('fast'))?.stale).toBe(true);
      h.clock.advance(100_000);
      expect((await listed('slow'))?.stale).toBe(false);
      h.clock.advance(80_000);
      expect((await listed('slow'))?.stale).toBe(true);
    });

    it('a coordinator configured with another interval derives staleness from it', async () => {
      const c2 = new Coordinator({ store: h.store, clock: h.clock, heartbeatIntervalMs: 2000 });
      must(await c2.heartbeat(h.product, { factoryId: 'f1', capabilities: [], health: 'ok' }));
      h.clock.advance(6001);
      expect(must(await c2.listFactories(h.product)).items[0]?.stale).toBe(true);
    });
  });

  describe('capabilities from the heartbeat', () => {
    it('a claim without capabilities uses the heartbeat capabilities', async () => {
      const gpu = await h.submit({ capabilities: ['gpu'] });
      await beat({ factoryId: 'plain', capabilities: ['node'] });
      await beat({ factoryId: 'big', capabilities: ['gpu', 'node'] });
      expect(await claim('plain')).toBeNull();
      expect(await claim('never-beat')).toBeNull();
      const g = await claim('big');
      expect(g?.job.id).toBe(gpu.id);
    });

    it('capabilities in the claim override the heartbeat ones', async () => {
      const gpu = await h.submit({ capabilities: ['gpu'] });
      await beat({ factoryId: 'big', capabilities: ['gpu'] });
      expect(await claim('big', [])).toBeNull();
      await beat({ factoryId: 'plain', capabilities: [] });
      const g = await claim('plain', ['gpu']);
      expect(g?.job.id).toBe(gpu.id);
    });

    it('the latest heartbeat wins', async () => {
      const gpu = await h.submit({ capabilities: ['gpu'] });
      await beat({ factoryId: 'f1', capabilities: ['gpu'] });
      await beat({ factoryId: 'f1', capabilities: [] });
      expect(await claim('f1')).toBeNull();
      await beat({ factoryId: 'f1', capabilities: ['gpu'] });
      expect((await claim('f1'))?.job.id).toBe(gpu.id);
    });
  });

  describe('seat limits', () => {
    const ship = (g: ClaimGrant) => h.advance(g, 'building', 'review', 'testing', 'shipped');

    it('a factory with seatLimit 2 holds at most 2 leases; shipping one frees a seat', async () => {
      for (let i = 0; i < 4; i++) await h.submit();
      await beat({ factoryId: 'f1', seatLimit: 2 });
      const g1 = await claim('f1');
      const g2 = await claim('f1');
      expect(g1).not.toBeNull();
      expect(g2).not.toBeNull();
      expect(await claim('f1')).toBeNull();
      // Jobs are still queued: another factory gets one.
      expect(await claim('f2')).not.toBeNull();
      expect(await claim('f1')).toBeNull();
      await ship(g1 as ClaimGrant);
      const g3 = await claim('f1');
      expect(g3).not.toBeNull();
      expect(g3?.job.id).not.toBe(g1?.job.id);
      expect(await claim('f1')).toBeNull();
    });

    it('the seat limit holds under concurrent claims', async () => {
      for (let i = 0; i < 10; i++) await h.submit();
      await beat({ factoryId: 'f1', seatLimit: 2 });
      const rs = await Promise.all(Array.from({ length: 8 }, () => claim('f1')));
      expect(rs.filter((g) => g !== null)).toHaveLength(2);
    });

    it('the seat limit holds under concurrent claims through two coordinators', async () => {
      for (let i = 0; i < 10; i++) await h.submit();
      await beat({ factoryId: 'f1', seatLimit: 1 });
      const c2 = new Coordinator({ store: h.store, clock: h.clock });
      const rs = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 === 0 ? h.coord : c2).claimNextJob(h.product, { factoryId: 'f1' }).then(must),
        ),
      );
      await c2.drain();
      expect(rs.filter((g) => g !== null).length).toBeLessThanOrEqual(1);
      const held = must(await h.coord.listJobs(h.product, { limit: 500 })).items.filter(
        (j) => j.holderFactoryId === 'f1',
      );
      expect(held.length).toBeLessThanOrEqual(1);
    });

    it('release and failure also free a seat', async () => {
      for (let i = 0; i < 4; i++) await h.submit();
      await beat({ factoryId: 'f1', seatLimit: 1 });
      const g1 = (await claim('f1')) as ClaimGrant;
      expect(await claim('f1')).toBeNull();
      must(
        await h.coord.releaseLease(h.product, g1.job.id, {
          factoryId: 'f1',
          leaseEpoch: g1.lease.leaseEpoch,
        }),
      );
      const g2 = (await claim('f1')) as ClaimGrant;
      expect(g2).not.toBeNull();
      expect(await claim('f1')).toBeNull();
      await h.advance(g2, 'failed');
      expect(await claim('f1')).not.toBeNull();
    });

    it('a later heartbeat without seatLimit keeps the previous limit; a new limit replaces it', async () => {
      for (let i = 0; i < 4; i++) await h.submit();
      await beat({ factoryId: 'f1', seatLimit: 1 });
      await beat({ factoryId: 'f1' });
      expect((await listed('f1'))?.seatLimit).toBe(1);
      expect(await claim('f1')).not.toBeNull();
      expect(await claim('f1')).toBeNull();
      await beat({ factoryId: 'f1', seatLimit: 2 });
      expect(await claim('f1')).not.toBeNull();
      expect(await claim('f1')).toBeNull();
    });

    it('seatLimit 0 gets nothing', async () => {
      await h.submit();
      await beat({ factoryId: 'f1', seatLimit: 0 });
      expect(await claim('f1')).toBeNull();
    });

    it('a factory that never sent a heartbeat is unlimited', async () => {
      for (let i = 0; i < 12; i++) await h.submit();
      const grants = [];
      for (let i = 0; i < 12; i++) grants.push(await claim('free'));
      expect(grants.every((g) => g !== null)).toBe(true);
      expect(new Set(grants.map((g) => g?.job.id)).size).toBe(12);
      expect(await claim('free')).toBeNull();
    });

    it('a heartbeat without seatLimit means unlimited', async () => {
      for (let i = 0; i < 5; i++) await h.submit();
      await beat({ factoryId: 'f1' });
      for (let i = 0; i < 5; i++) expect(await claim('f1')).not.toBeNull();
    });
  });
});
