import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import {
  jitteredDelay,
  type SupervisorSweepOutput,
  supervisorMachine,
} from '../../machines/index.js';

/** A sweep the test settles by hand, counting how many run at once. */
function controlledSweeps() {
  const pending: Array<{ resolve(o: SupervisorSweepOutput): void; reject(e: unknown): void }> = [];
  let running = 0;
  let maxRunning = 0;
  let started = 0;
  const actor = fromPromise<SupervisorSweepOutput>(
    () =>
      new Promise<SupervisorSweepOutput>((resolve, reject) => {
        started++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        pending.push({
          resolve: (o) => {
            running--;
            resolve(o);
          },
          reject: (e) => {
            running--;
            reject(e);
          },
        });
      }),
  );
  return {
    actor,
    get started() {
      return started;
    },
    get maxRunning() {
      return maxRunning;
    },
    get pending() {
      return pending.length;
    },
    /** Settles the oldest running sweep, then lets the actor react. */
    async succeed(report: unknown = { reaped: 0 }) {
      pending.shift()!.resolve({ report, durationMs: 3 });
      await flush();
    },
    async fail(error: unknown = new Error('store down')) {
      pending.shift()!.reject(error);
      await flush();
    },
  };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

function start(
  sweeps: ReturnType<typeof controlledSweeps>,
  reports: Array<{ type: string; value?: unknown }> = [],
  intervalMs = 1000,
) {
  const clock = new SimulatedClock();
  const machine = supervisorMachine.provide({
    actors: { sweep: sweeps.actor },
    actions: {
      reportStarted: () => reports.push({ type: 'started' }),
      reportSucceeded: (_, { output }) => reports.push({ type: 'succeeded', value: output }),
      reportFailed: (_, { error }) => reports.push({ type: 'failed', value: error }),
    },
  });
  const actor = createActor(machine, { input: { intervalMs, jitter: 0.2 }, clock });
  actor.start();
  return { actor, clock, reports };
}

describe('supervisor machine', () => {
  it('waits the interval in idle, then sweeps, then waits again', async () => {
    const sweeps = controlledSweeps();
    const { actor, clock, reports } = start(sweeps);
    expect(actor.getSnapshot().value).toBe('idle');
    clock.increment(999);
    expect(actor.getSnapshot().value).toBe('idle');
    clock.increment(1);
    expect(actor.getSnapshot().value).toBe('sweeping');
    expect(sweeps.started).toBe(1);
    await sweeps.succeed({ reaped: 2 });
    expect(actor.getSnapshot().value).toBe('idle');
    expect(actor.getSnapshot().context).toMatchObject({ sweeps: 1, failures: 0 });
    expect(reports).toEqual([
      { type: 'started' },
      { type: 'succeeded', value: { report: { reaped: 2 }, durationMs: 3 } },
    ]);
    clock.increment(1000);
    expect(sweeps.started).toBe(2);
    actor.stop();
  });

  it('never starts a sweep while one runs: SWEEP_NOW and elapsed intervals queue one more', async () => {
    const sweeps = controlledSweeps();
    const { actor, clock } = start(sweeps);
    actor.send({ type: 'SWEEP_NOW' });
    expect(sweeps.started).toBe(1);
    actor.send({ type: 'SWEEP_NOW' });
    actor.send({ type: 'SWEEP_NOW' });
    clock.increment(10_000); // no timer runs while sweeping
    expect(sweeps.started).toBe(1);
    await sweeps.succeed();
    // the requests made during the sweep give exactly one more sweep, at once
    expect(actor.getSnapshot().value).toBe('sweeping');
    expect(sweeps.started).toBe(2);
    await sweeps.succeed();
    expect(actor.getSnapshot().value).toBe('idle');
    expect(sweeps.started).toBe(2);
    expect(sweeps.maxRunning).toBe(1);
    actor.stop();
  });

  it('survives a failing sweep: reports it, counts it, and sweeps again after the interval', async () => {
    const sweeps = controlledSweeps();
    const { actor, clock, reports } = start(sweeps);
    clock.increment(1000);
    const boom = new Error('store down');
    await sweeps.fail(boom);
    expect(actor.getSnapshot().value).toBe('idle');
    expect(actor.getSnapshot().status).toBe('active');
    expect(actor.getSnapshot().context).toMatchObject({
      sweeps: 1,
      failures: 1,
      consecutiveFailures: 1,
    });
    expect(reports.at(-1)).toEqual({ type: 'failed', value: boom });
    clock.increment(1000);
    expect(sweeps.started).toBe(2);
    await sweeps.succeed();
    expect(actor.getSnapshot().context).toMatchObject({
      sweeps: 2,
      failures: 1,
      consecutiveFailures: 0,
    });
    actor.stop();
  });

  it('STOP in idle stops at once; no sweep runs afterwards', () => {
    const sweeps = controlledSweeps();
    const { actor, clock } = start(sweeps);
    actor.send({ type: 'STOP' });
    expect(actor.getSnapshot().status).toBe('done');
    expect(actor.getSnapshot().value).toBe('stopped');
    clock.increment(10_000);
    expect(sweeps.started).toBe(0);
  });

  it('STOP during a sweep lets it finish and report, then stops (even if a sweep was requested)', async () => {
    const sweeps = controlledSweeps();
    const { actor, reports } = start(sweeps);
    actor.send({ type: 'SWEEP_NOW' });
    actor.send({ type: 'SWEEP_NOW' });
    actor.send({ type: 'STOP' });
    expect(actor.getSnapshot().value).toBe('sweeping');
    expect(actor.getSnapshot().status).toBe('active');
    await sweeps.succeed();
    expect(actor.getSnapshot().value).toBe('stopped');
    expect(actor.getSnapshot().status).toBe('done');
    expect(sweeps.started).toBe(1);
    expect(reports.map((r) => r.type)).toEqual(['started', 'succeeded']);
  });

  it('uses the provided interval delay (the runtime plugs in jitter)', () => {
    const sweeps = controlledSweeps();
    const clock = new SimulatedClock();
    const actor = createActor(
      supervisorMachine.provide({
        actors: { sweep: sweeps.actor },
        delays: {
          interval: ({ context }) => jitteredDelay(context.intervalMs, context.jitter, 0),
        },
      }),
      { input: { intervalMs: 1000, jitter: 0.2 }, clock },
    );
    actor.start();
    clock.increment(799);
    expect(sweeps.started).toBe(0);
    clock.increment(1);
    expect(sweeps.started).toBe(1);
    actor.stop();
  });

  it('without a bound sweep, each sweep fails (never silently succeeds)', async () => {
    const clock = new SimulatedClock();
    const actor = createActor(supervisorMachine, { input: { intervalMs: 10 }, clock });
    actor.start();
    actor.send({ type: 'SWEEP_NOW' });
    await flush();
    expect(actor.getSnapshot().context).toMatchObject({ sweeps: 1, failures: 1 });
    expect(actor.getSnapshot().value).toBe('idle');
    actor.stop();
  });
});

describe('jitteredDelay', () => {
  it('spreads uniformly over interval × [1 − jitter, 1 + jitter]', () => {
    expect(jitteredDelay(5000, 0.2, 0)).toBe(4000);
    expect(jitteredDelay(5000, 0.2, 0.5)).toBe(5000);
    expect(jitteredDelay(5000, 0.2, 0.999999)).toBe(6000);
    expect(jitteredDelay(5000, 0, 0.9)).toBe(5000);
  });

  it('clamps jitter to [0, 1] and never answers less than 1 ms', () => {
    expect(jitteredDelay(100, 5, 0)).toBe(1);
    expect(jitteredDelay(100, -1, 0)).toBe(100);
    expect(jitteredDelay(1, 1, 0)).toBe(1);
  });
});
