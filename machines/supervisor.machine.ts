/**
 * The supervisor as an XState v5 machine: a loop of sweeps on a jittered interval.
 *
 * ```
 *   idle ──after(interval) | SWEEP_NOW──► sweeping ──done | error──► settled (transient)
 *   idle ──STOP──► stopped (final)
 *   settled ──► stopped    if a STOP came during the sweep
 *           ──► sweeping   else if a SWEEP_NOW came during the sweep
 *           ──► idle       otherwise (the next sweep after the interval)
 * ```
 *
 * Guarantees:
 * - never two sweeps at once: a sweep starts only on entry to `sweeping`, which is left
 *   only when the sweep settles; a `SWEEP_NOW` that arrives meanwhile is remembered and
 *   runs one more sweep right after (so its caller sees a sweep that started after it asked);
 * - a failed sweep is counted and reported like a successful one, then the loop goes on:
 *   back to `idle`, the next sweep after the interval;
 * - `STOP` never abandons a running sweep: the machine reaches `stopped` once it settled.
 *
 * Pure: the sweep itself is the `sweep` actor, the wait is the `interval` delay and the
 * reports are the named actions `reportStarted` / `reportSucceeded` / `reportFailed`,
 * all with stand-in bodies here; `runtime/supervisor.ts` binds the real ones with
 * `provide()`. The default `interval` is `intervalMs` exactly (no jitter: the machine
 * has no source of randomness); {@link jitteredDelay} is what the runtime plugs in.
 *
 * This module imports nothing from the project (layer rule).
 */
import { assign, fromPromise, setup } from 'xstate';

/** What one sweep produced, as the machine sees it: the runtime's report, opaque here. */
export interface SupervisorSweepOutput {
  /** The sweep's counts (the runtime's `SweepReport` and more). */
  report: unknown;
  /** How long the sweep took, in ms. */
  durationMs: number;
}

export interface SupervisorInput {
  /** Mean time between the end of one sweep and the start of the next, in ms (> 0). */
  intervalMs: number;
  /** Relative spread of that time, in [0, 1]: 0.2 means ±20 %. @defaultValue 0.2 */
  jitter?: number;
}

export interface SupervisorContext {
  intervalMs: number;
  jitter: number;
  /** Sweeps that settled (succeeded or failed). */
  sweeps: number;
  /** Sweeps that failed, in total. */
  failures: number;
  /** Failures since the last success (0 after a success). */
  consecutiveFailures: number;
  /** A `SWEEP_NOW` arrived during the running sweep: run another one right after. */
  requested: boolean;
  /** A `STOP` arrived during the running sweep: stop once it settles. */
  stopping: boolean;
}

export type SupervisorMachineEvent = { type: 'SWEEP_NOW' } | { type: 'STOP' };

/** The states a snapshot can show (`settled` is transient: always left at once). */
export const SUPERVISOR_STATES = ['idle', 'sweeping', 'stopped'] as const;

/**
 * The wait before the next sweep: uniform in `intervalMs × [1 − jitter, 1 + jitter]`,
 * rounded to whole ms, never below 1. `r` is a random number in [0, 1); 0.5 gives
 * exactly `intervalMs`. Jitter keeps the sweeps of many processes from lining up.
 */
export function jitteredDelay(intervalMs: number, jitter: number, r: number): number {
  const j = Math.min(Math.max(jitter, 0), 1);
  return Math.max(1, Math.round(intervalMs * (1 + j * (2 * r - 1))));
}

/** Machine setup: types, stand-in actor, delay, guards and named actions. */
export const supervisorMachineSetup = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorMachineEvent,
    input: {} as SupervisorInput,
  },
  actors: {
    /** Runs one sweep; bound by the runtime. Rejects when the sweep failed. */
    sweep: fromPromise<SupervisorSweepOutput>(async () => {
      throw new Error('supervisor: no sweep provided (bind one with machine.provide())');
    }),
  },
  delays: {
    interval: ({ context }) => jitteredDelay(context.intervalMs, context.jitter, 0.5),
  },
  guards: {
    stopping: ({ context }) => context.stopping,
    requested: ({ context }) => context.requested,
  },
  actions: {
    reportStarted: () => {},
    reportSucceeded: (_, _params: { output: SupervisorSweepOutput }) => {},
    reportFailed: (_, _params: { error: unknown }) => {},
    beginSweep: assign({ requested: false }),
    countSuccess: assign(({ context }) => ({
      sweeps: context.sweeps + 1,
      consecutiveFailures: 0,
    })),
    countFailure: assign(({ context }) => ({
      sweeps: context.sweeps + 1,
      failures: context.failures + 1,
      consecutiveFailures: context.consecutiveFailures + 1,
    })),
    requestSweep: assign({ requested: true }),
    requestStop: assign({ stopping: true }),
  },
});

/** The supervisor loop. Bind `sweep`, `interval` and the report actions with `provide()`. */
export const supervisorMachine = supervisorMachineSetup.createMachine({
  id: 'supervisor',
  initial: 'idle',
  context: ({ input }) => ({
    intervalMs: input?.intervalMs ?? 5000,
    jitter: input?.jitter ?? 0.2,
    sweeps: 0,
    failures: 0,
    consecutiveFailures: 0,
    requested: false,
    stopping: false,
  }),
  states: {
    idle: {
      after: { interval: { target: 'sweeping' } },
      on: {
        SWEEP_NOW: { target: 'sweeping' },
        STOP: { target: 'stopped' },
      },
    },
    sweeping: {
      entry: ['beginSweep', 'reportStarted'],
      invoke: {
        src: 'sweep',
        // Settled: stop if asked to, else sweep again if asked to, else wait.
        onDone: {
          target: 'settled',
          actions: [
            'countSuccess',
            { type: 'reportSucceeded', params: ({ event }) => ({ output: event.output }) },
          ],
        },
        onError: {
          target: 'settled',
          actions: [
            'countFailure',
            { type: 'reportFailed', params: ({ event }) => ({ error: event.error }) },
          ],
        },
      },
      on: {
        SWEEP_NOW: { actions: 'requestSweep' },
        STOP: { actions: 'requestStop' },
      },
    },
    /** Transient: where a settled sweep leads. */
    settled: {
      always: [
        { guard: 'stopping', target: 'stopped' },
        { guard: 'requested', target: 'sweeping' },
        { target: 'idle' },
      ],
    },
    stopped: { type: 'final' },
  },
});

export type SupervisorMachine = typeof supervisorMachine;
