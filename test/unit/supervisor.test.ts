import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { Coordinator, type SweepReport } from '../../runtime/coordinator.js';
import {
  type Supervisor,
  type SupervisorEvent,
  type SupervisorLogger,
  startSupervisor,
} from '../../runtime/supervisor.js';
import { must } from '../support/harness.js';

/** xstate's simulated clock drives both the coordinator's time and the supervisor's timers. */
function simulatedClock(): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(Date.parse('2026-01-01T00:00:00.000Z'));
  return clock;
}

const ZERO: SweepReport = {
  reaped: 0,
  retried: 0,
  budgetExceeded: 0,
  repaired: 0,
  unblocked: 0,
  failedJobs: 0,
  pruned: 0,
};

/** Resolves with the next report of the given phase. */
function nextReport<P extends SupervisorEvent['phase']>(
  listeners: Set<(e: SupervisorEvent) => void>,
  phase: P,
): Promise<Extract<SupervisorEvent, { phase: P }>> {
  return new Promise((resolve) => {
    const l = (e: SupervisorEvent) => {
      if (e.phase === phase) {
        listeners.delete(l);
        resolve(e as Extract<SupervisorEvent, { phase: P }>);
      }
    };
    listeners.add(l);
  });
}

function recorder() {
  const events: SupervisorEvent[] = [];
  const listeners = new Set<(e: SupervisorEvent) => void>();
  return {
    events,
    onReport: (e: SupervisorEvent) => {
      events.push(e);
      for (const l of [...listeners]) l(e);
    },
    next: <P extends SupervisorEvent['phase']>(phase: P) => nextReport(listeners, phase),
  };
}

function memoryLogger() {
  const lines: Array<{ level: string; msg: string; obj: object }> = [];
  const at =
    (level: string) =>
    (obj: object, msg: string): void => {
      lines.push({ level, msg, obj });
    };
  const logger: SupervisorLogger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
  return { lines, logger };
}

let supervisor: Supervisor | undefined;
afterEach(async () => {
  await supervisor?.stop();
  supervisor = undefined;
});

describe('supervisor (simulated clock)', () => {
  it('reaps expired leases on its own schedule, and leaves fresh ones alone', async () => {
    const clock = simulatedClock();
    const store = createMemoryStore();
    const coordinator = new Coordinator({ store, clock, leaseMs: 10_000, random: () => 0.5 });
    const product = `p-${randomUUID().slice(0, 8)}`;
    const old = must(await coordinator.submit(product, { idempotencyKey: 'a', bodyMd: 'x' })).job;
    must(await coordinator.claimNextJob(product, { factoryId: 'f1' }));
    const rec = recorder();
    supervisor = startSupervisor({
      coordinator,
      timers: clock,
      intervalMs: 5000,
      jitter: 0.2,
      random: () => 0.5,
      onReport: rec.onReport,
    });

    clock.increment(5000); // first sweep: lease still has 5 s
    const first = await rec.next('succeeded');
    expect(first.report).toMatchObject({ reaped: 0 });
    expect((await coordinator.getJob(product, old.id)).ok).toBe(true);
    expect(must(await coordinator.getJob(product, old.id)).stage).toBe('assigned');

    const fresh = must(await coordinator.submit(product, { idempotencyKey: 'b', bodyMd: 'y' })).job;
    must(await coordinator.claimNextJob(product, { factoryId: 'f2' }));
    clock.increment(5000); // old lease expired (10 s), fresh one has 10 s left
    const second = await rec.next('succeeded');
    expect(second.report).toMatchObject({ reaped: 1 });
    const reaped = must(await coordinator.getJob(product, old.id));
    expect(reaped.stage).toBe('queued');
    expect(reaped.holderFactoryId).toBeNull();
    expect(must(await coordinator.getJob(product, fresh.id)).stage).toBe('assigned');

    clock.increment(10_000);
    expect((await rec.next('succeeded')).report).toMatchObject({ reaped: 1 });
    expect(must(await coordinator.getJob(product, fresh.id)).stage).toBe('queued');
    expect(rec.events.map((e) => e.phase)).toEqual([
      'started',
      'succeeded',
      'started',
      'succeeded',
      'started',
      'succeeded',
    ]);
    await store.close();
  });

  it('moves due retries back to queued', async () => {
    const clock = simulatedClock();
    const store = createMemoryStore();
    const coordinator = new Coordinator({ store, clock, random: () => 0.5 });
    const product = `p-${randomUUID().slice(0, 8)}`;
    const job = must(
      await coordinator.submit(product, {
        idempotencyKey: 'r',
        bodyMd: 'x',
        retry: { max: 2, backoff: 'fixed', delayMs: 2000 },
      }),
    ).job;
    const grant = must(await coordinator.claimNextJob(product, { factoryId: 'f1' }))!;
    must(
      await coordinator.transition(product, job.id, {
        factoryId: 'f1',
        leaseEpoch: grant.lease.leaseEpoch,
        to: 'failed',
        error: { class: 'transient', message: 'flaky' },
      }),
    );
    expect(must(await coordinator.getJob(product, job.id)).stage).toBe('failed');
    const rec = recorder();
    supervisor = startSupervisor({
      coordinator,
      timers: clock,
      intervalMs: 5000,
      jitter: 0,
      onReport: rec.onReport,
    });
    clock.increment(5000);
    expect((await rec.next('succeeded')).report).toMatchObject({ retried: 1 });
    expect(must(await coordinator.getJob(product, job.id)).stage).toBe('queued');
    await store.close();
  });

  it('reports a sweep that throws, logs it, and runs the next one', async () => {
    const clock = simulatedClock();
    let calls = 0;
    const coordinator = {
      clock,
      async sweep(): Promise<SweepReport> {
        calls++;
        if (calls === 1) throw new Error('store unavailable');
        return { ...ZERO, reaped: 3 };
      },
      listStaleFactories: async () => ({
        ok: true as const,
        value: { items: [], nextCursor: null },
      }),
    };
    const rec = recorder();
    const { lines, logger } = memoryLogger();
    supervisor = startSupervisor({
      coordinator,
      timers: clock,
      intervalMs: 1000,
      onReport: rec.onReport,
      logger,
    });
    clock.increment(1200); // ≥ the longest jittered wait
    const failed = await rec.next('failed');
    expect((failed.error as Error).message).toBe('store unavailable');
    expect(failed.durationMs).toBeGreaterThanOrEqual(0);
    expect(lines.find((l) => l.level === 'error')).toMatchObject({
      msg: 'sweep failed',
      obj: { err: { message: 'store unavailable' } },
    });
    clock.increment(1200);
    const ok = await rec.next('succeeded');
    expect(ok.report).toEqual({ ...ZERO, reaped: 3, staleFactories: 0 });
    expect(lines.find((l) => l.msg === 'sweep succeeded')?.level).toBe('info');
    expect(supervisor.stats).toEqual({ sweeps: 2, failures: 1, consecutiveFailures: 0 });
    expect(rec.events.map((e) => e.phase)).toEqual(['started', 'failed', 'started', 'succeeded']);
  });

  it('never runs two sweeps at once; sweepNow during a sweep gets the next one', async () => {
    const clock = simulatedClock();
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    const gates: Array<() => void> = [];
    const coordinator = {
      clock,
      async sweep(): Promise<SweepReport> {
        calls++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise<void>((r) => gates.push(r));
        running--;
        return { ...ZERO, reaped: calls };
      },
      listStaleFactories: async () => ({
        ok: true as const,
        value: { items: [], nextCursor: null },
      }),
    };
    supervisor = startSupervisor({ coordinator, timers: clock, intervalMs: 1000 });
    const a = supervisor.sweepNow();
    const b = supervisor.sweepNow();
    const c = supervisor.sweepNow();
    clock.increment(60_000);
    await new Promise((r) => setTimeout(r, 5));
    expect(calls).toBe(1);
    gates.shift()!();
    const first = await a;
    expect(first).toMatchObject({ phase: 'succeeded', report: { reaped: 1 } });
    await new Promise((r) => setTimeout(r, 5));
    expect(calls).toBe(2);
    gates.shift()!();
    // b and c asked during sweep 1: both get sweep 2, which started after they asked
    expect(await b).toMatchObject({ phase: 'succeeded', report: { reaped: 2 } });
    expect(await c).toMatchObject({ phase: 'succeeded', report: { reaped: 2 } });
    expect(maxRunning).toBe(1);
  });

  it('stop() waits for the running sweep, then no sweep runs again', async () => {
    const clock = simulatedClock();
    let calls = 0;
    let release!: () => void;
    const coordinator = {
      clock,
      async sweep(): Promise<SweepReport> {
        calls++;
        await new Promise<void>((r) => {
          release = r;
        });
        return ZERO;
      },
      listStaleFactories: async () => ({
        ok: true as const,
        value: { items: [], nextCursor: null },
      }),
    };
    const rec = recorder();
    const s = startSupervisor({
      coordinator,
      timers: clock,
      intervalMs: 1000,
      onReport: rec.onReport,
    });
    clock.increment(1200);
    expect(calls).toBe(1);
    let stopped = false;
    const stopping = s.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(rec.events.map((e) => e.phase)).toEqual(['started', 'succeeded']);
    clock.increment(10_000);
    expect(calls).toBe(1);
    await expect(s.sweepNow()).rejects.toThrow(/stopped/);
    await s.stop(); // idempotent
  });

  it('counts stale factories of every product, each by its own interval, and logs each once when it turns stale', async () => {
    const clock = simulatedClock();
    const store = createMemoryStore();
    const coordinator = new Coordinator({ store, clock, heartbeatIntervalMs: 1000 });
    const product = `p-${randomUUID().slice(0, 8)}`;
    const other = `q-${randomUUID().slice(0, 8)}`;
    const beat = (productId: string, factoryId: string, heartbeatIntervalMs?: number) =>
      coordinator.heartbeat(productId, {
        factoryId,
        capabilities: [],
        health: 'ok',
        ...(heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs }),
      });
    must(await beat(product, 'quiet'));
    must(await beat(product, 'lively'));
    must(await beat(other, 'elsewhere'));
    must(await beat(other, 'slow', 60_000)); // beats once a minute: not stale for 3 minutes
    const { lines, logger } = memoryLogger();
    supervisor = startSupervisor({
      coordinator,
      timers: clock,
      intervalMs: 2000,
      jitter: 0,
      logger,
    });
    expect(await supervisor.sweepNow()).toMatchObject({ report: { staleFactories: 0 } });
    clock.increment(2000);
    must(await beat(product, 'lively'));
    clock.increment(1500); // quiet, elsewhere: 3.5 s without a beat (> 3 × 1 s); lively: 1.5 s
    expect(await supervisor.sweepNow()).toMatchObject({ report: { staleFactories: 2 } });
    expect(await supervisor.sweepNow()).toMatchObject({ report: { staleFactories: 2 } });
    const warned = () => lines.filter((l) => l.level === 'warn').map((l) => l.obj);
    expect(warned()).toHaveLength(2);
    expect(warned()).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ productId: product, factoryId: 'quiet' }),
        expect.objectContaining({ productId: other, factoryId: 'elsewhere' }),
      ]),
    );
    const listed = must(await coordinator.listFactories(other)).items;
    expect(listed.find((f) => f.factoryId === 'elsewhere')?.stale).toBe(true);
    expect(listed.find((f) => f.factoryId === 'slow')?.stale).toBe(false);
    // A stale factory that beats again is no longer counted; turning stale again logs again.
    must(await beat(other, 'elsewhere'));
    expect(await supervisor.sweepNow()).toMatchObject({ report: { staleFactories: 1 } });
    clock.increment(3500);
    expect(await supervisor.sweepNow()).toMatchObject({ report: { staleFactories: 3 } });
    expect(warned()).toHaveLength(4);
    await store.close();
  });

  it('validates its options', () => {
    const coordinator = {
      sweep: async () => ZERO,
      listStaleFactories: async () => ({
        ok: true as const,
        value: { items: [], nextCursor: null },
      }),
    };
    expect(() => startSupervisor({ coordinator, intervalMs: 0 })).toThrow(RangeError);
    expect(() => startSupervisor({ coordinator, intervalMs: 1.5 })).toThrow(RangeError);
    expect(() => startSupervisor({ coordinator, intervalMs: 10, jitter: 2 })).toThrow(RangeError);
  });

  it('a throwing onReport listener is logged and does not stop the loop', async () => {
    const clock = simulatedClock();
    const coordinator = {
      clock,
      sweep: async () => ZERO,
      listStaleFactories: async () => ({
        ok: true as const,
        value: { items: [], nextCursor: null },
      }),
    };
    const { lines, logger } = memoryLogger();
    supervisor = startSupervisor({
      coordinator,
      timers: clock,
      intervalMs: 1000,
      logger,
      onReport: () => {
        throw new Error('metrics broke');
      },
    });
    expect(await supervisor.sweepNow()).toMatchObject({ phase: 'succeeded' });
    expect(await supervisor.sweepNow()).toMatchObject({ phase: 'succeeded' });
    expect(lines.filter((l) => l.msg.includes('onReport')).length).toBeGreaterThan(0);
    expect(supervisor.stats.sweeps).toBe(2);
  });
});
