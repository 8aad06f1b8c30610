import { describe, expect, it } from 'vitest';
import { initialTransition, transition } from 'xstate';
import {
  JOB_MACHINE_EVENT_TYPES,
  JOB_STATES,
  type JobMachineEvent,
  jobMachine,
} from '../../machines/index.js';

type Snap = ReturnType<typeof jobMachine.resolveState>;

const start = (maxRetries = 3): Snap => initialTransition(jobMachine, { maxRetries })[0] as Snap;
const send = (s: Snap, e: JobMachineEvent) =>
  transition(jobMachine, s, e) as [Snap, { type: string; params?: unknown }[]];
const step = (s: Snap, e: JobMachineEvent): Snap => {
  const [next] = send(s, e);
  if (next === s) throw new Error(`${e.type} rejected in ${String(s.value)}`);
  return next;
};
const w = (
  type: 'BUILD' | 'REVIEW' | 'TEST' | 'SHIP' | 'RECORD',
  s: Snap,
  factoryId = 'f',
  now = 1,
) => ({ type, factoryId, leaseEpoch: s.context.leaseEpoch, now }) as JobMachineEvent;
const claimed = (maxRetries = 3): Snap =>
  step(start(maxRetries), { type: 'CLAIM', factoryId: 'f', now: 0, expiresAt: 1000 });

describe('job machine', () => {
  it('has exactly the API stages as states', () => {
    expect([...JOB_STATES].sort()).toEqual(
      [
        'assigned',
        'blocked',
        'building',
        'dead_letter',
        'failed',
        'queued',
        'review',
        'shipped',
        'testing',
      ].sort(),
    );
  });

  it('walks the happy path in order, bumping the epoch at claim and at the end of the lease', () => {
    let s = claimed();
    expect(s.value).toBe('assigned');
    expect(s.context).toMatchObject({
      leaseEpoch: 1,
      holder: 'f',
      leaseExpiresAt: 1000,
      attempt: 1,
      firstClaimedAt: 0,
    });
    for (const [t, stage] of [
      ['BUILD', 'building'],
      ['REVIEW', 'review'],
      ['TEST', 'testing'],
    ] as const) {
      s = step(s, w(t, s));
      expect(s.value).toBe(stage);
    }
    const [shipped, actions] = send(s, w('SHIP', s));
    expect(shipped.value).toBe('shipped');
    expect(shipped.status).toBe('done');
    expect(shipped.context).toMatchObject({ leaseEpoch: 2, holder: null, leaseExpiresAt: null });
    // Leaving testing notifies (soft dependents), entering shipped too (the draft keeps one).
    expect(actions.map((a) => a.type)).toEqual([
      'notifyDependents',
      'closeRun',
      'notifyDependents',
    ]);
    expect(actions[1]?.params).toEqual({ exit: 'shipped' });
  });

  it('returns the same snapshot object for every rejected event', () => {
    const s = claimed();
    for (const e of [
      w('REVIEW', s), // skips building
      { type: 'BUILD', factoryId: 'f', leaseEpoch: 0, now: 1 }, // stale epoch
      { type: 'BUILD', factoryId: 'intruder', leaseEpoch: 1, now: 1 }, // not the holder
      { type: 'DEPS_MET' } as const,
      { type: 'RETRY_DUE', now: 5, depsMet: true } as const,
      { type: 'LEASE_EXPIRED', now: 999, depsMet: true } as const, // not expired yet
    ] satisfies JobMachineEvent[]) {
      expect(send(s, e)[0]).toBe(s);
    }
  });

  it('lets review and testing send work back to building', () => {
    let s = claimed();
    s = step(s, w('BUILD', s));
    s = step(s, w('REVIEW', s));
    s = step(s, w('BUILD', s));
    expect(s.value).toBe('building');
    s = step(step(s, w('REVIEW', s)), w('TEST', step(s, w('REVIEW', s))));
    const [back, actions] = send(s, w('BUILD', s));
    expect(back.value).toBe('building');
    expect(actions.map((a) => a.type)).toContain('notifyDependents');
  });

  it('FAIL: retry while retries are left and the class is retryable, else dead_letter', () => {
    const s = claimed(1);
    const fail = (retryable: boolean) =>
      ({ type: 'FAIL', factoryId: 'f', leaseEpoch: 1, now: 10, retryable, retryAt: 500 }) as const;
    const failed = step(s, fail(true));
    expect(failed.value).toBe('failed');
    expect(failed.context).toMatchObject({
      failures: 1,
      notBefore: 500,
      holder: null,
      leaseEpoch: 2,
    });
    expect(send(failed, { type: 'RETRY_DUE', now: 499, depsMet: true })[0]).toBe(failed);
    const requeued = step(failed, { type: 'RETRY_DUE', now: 500, depsMet: true });
    expect(requeued.value).toBe('queued');
    const again = step(requeued, { type: 'CLAIM', factoryId: 'g', now: 600, expiresAt: 2000 });
    const dead = step(again, {
      ...fail(true),
      factoryId: 'g',
      leaseEpoch: again.context.leaseEpoch,
    });
    expect(dead.value).toBe('dead_letter');
    expect(dead.context.deadReason).toBe('retries_exhausted');
    const nonRetryable = step(claimed(5), fail(false));
    expect(nonRetryable.context.deadReason).toBe('non_retryable');
  });

  it('LEASE_EXPIRED requeues (or blocks) until the last allowed attempt, then dead_letter', () => {
    const s = claimed(1);
    expect(step(s, { type: 'LEASE_EXPIRED', now: 1000, depsMet: false }).value).toBe('blocked');
    const q = step(s, { type: 'LEASE_EXPIRED', now: 1000, depsMet: true });
    expect(q.value).toBe('queued');
    expect(q.context).toMatchObject({ leaseEpoch: 2, holder: null, failures: 1 });
    const c2 = step(q, { type: 'CLAIM', factoryId: 'g', now: 2000, expiresAt: 3000 });
    const dead = step(c2, { type: 'LEASE_EXPIRED', now: 3000, depsMet: true });
    expect(dead.value).toBe('dead_letter');
    expect(dead.context.deadReason).toBe('lease_expired');
  });

  it('RELEASE gives the job back without spending a retry', () => {
    const s = claimed(0);
    const r = step(s, { type: 'RELEASE', factoryId: 'f', leaseEpoch: 1, now: 5, depsMet: true });
    expect(r.value).toBe('queued');
    expect(r.context).toMatchObject({ failures: 0, leaseEpoch: 2, holder: null });
  });

  it('RENEW and RECORD keep the stage and change the snapshot', () => {
    const s = claimed();
    const renewed = step(s, {
      type: 'RENEW',
      factoryId: 'f',
      leaseEpoch: 1,
      now: 5,
      expiresAt: 9000,
    });
    expect(renewed.value).toBe('assigned');
    expect(renewed.context).toMatchObject({ leaseExpiresAt: 9000, renewals: 1 });
    expect(step(s, w('RECORD', s, 'f', 7)).context.lastWriteAt).toBe(7);
  });

  it('CANCEL, DEPENDENCY_FAILED and BUDGET_EXCEEDED end any non-terminal stage and fence the holder', () => {
    for (const type of ['CANCEL', 'DEPENDENCY_FAILED', 'BUDGET_EXCEEDED'] as const) {
      for (const s of [start(), claimed()]) {
        const dead = step(s, { type });
        expect(dead.value).toBe('dead_letter');
        expect(dead.context.leaseEpoch).toBe(s.context.leaseEpoch + 1);
        expect(dead.context.holder).toBeNull();
      }
    }
    const shipped = (() => {
      let s = claimed();
      for (const t of ['BUILD', 'REVIEW', 'TEST', 'SHIP'] as const) s = step(s, w(t, s));
      return s;
    })();
    expect(send(shipped, { type: 'CANCEL' })[0]).toBe(shipped);
  });

  it('REQUEUE resets the retry count and the wall budget clock', () => {
    const dead = step(claimed(0), {
      type: 'FAIL',
      factoryId: 'f',
      leaseEpoch: 1,
      now: 1,
      retryable: true,
      retryAt: 2,
    });
    expect(dead.value).toBe('dead_letter');
    const back = step(dead, { type: 'REQUEUE', depsMet: true });
    expect(back.value).toBe('queued');
    expect(back.context).toMatchObject({
      failures: 0,
      deadReason: null,
      firstClaimedAt: null,
      attempt: 1,
    });
    expect(step(dead, { type: 'REQUEUE', depsMet: false }).value).toBe('blocked');
  });

  it('SUPERSEDE keeps a waiting job waiting and bumps its revision', () => {
    const s = start();
    const sup = step(s, { type: 'SUPERSEDE', depsMet: false, maxRetries: 7 });
    expect(sup.value).toBe('blocked');
    expect(sup.context).toMatchObject({ revision: 2, maxRetries: 7 });
    expect(send(claimed(), { type: 'SUPERSEDE', depsMet: true, maxRetries: 1 })[0].value).toBe(
      'assigned',
    );
  });

  it('accepts every event type it declares in some state', () => {
    const seen = new Set<string>();
    for (const state of JOB_STATES) {
      const config = jobMachine.config.states?.[state] as
        | { on?: Record<string, unknown> }
        | undefined;
      const on = config?.on ?? {};
      for (const e of Object.keys(on)) seen.add(e);
    }
    expect([...seen].sort()).toEqual([...JOB_MACHINE_EVENT_TYPES].sort());
  });

  it('a persisted snapshot survives a JSON round trip and continues identically', () => {
    const s = step(claimed(), w('BUILD', claimed()));
    const json = JSON.parse(JSON.stringify(jobMachine.getPersistedSnapshot(s)));
    const restored = jobMachine.resolveState(json);
    expect(restored.value).toBe('building');
    expect(restored.context).toEqual(s.context);
    const a = step(s, w('REVIEW', s));
    const b = step(restored, w('REVIEW', restored));
    expect(b.value).toBe(a.value);
    expect(b.context).toEqual(a.context);
  });
});
