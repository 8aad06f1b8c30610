/**
 * The simulator under vitest: 200 seeds (170 on the memory store, 30 on SQLite), each a
 * fast-check run of a 100-step schedule with faults, every invariant checked after
 * every step and liveness at the end. Then the simulator's own sensitivity: planted
 * bugs (a machine that does not fence, one whose epochs do not move, a store that
 * reports events twice, a retry that never comes) must each be caught and shrunk.
 */

import { describe, expect, it } from 'vitest';
import { assign } from 'xstate';
import { jobMachine, jobMachineSetup } from '../../machines/index.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { formatSchedule, runSeed, type SeedOptions, traceSchedule } from './property.js';
import { cmd } from './schedule.js';
import { simulate } from './simulator.js';

const STEPS = 100;

async function expectClean(seeds: number[], options: SeedOptions): Promise<void> {
  for (const seed of seeds) {
    const outcome = await runSeed(seed, options);
    if (outcome.violations.length > 0) {
      const shrunk = outcome.failure ? `\n${formatSchedule(outcome.failure.schedule)}` : '';
      const minimal = outcome.failure?.result.violations.join('\n') ?? '';
      throw new Error(
        `seed ${seed} (npm run sim -- --seed ${seed} --store ${options.store} --steps ${options.steps}):\n${outcome.violations.join('\n')}${shrunk}\n${minimal}`,
      );
    }
    expect(outcome.stats.invariantChecks).toBeGreaterThan(0);
  }
}

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe('simulation: memory store', () => {
  for (let chunk = 0; chunk < 170; chunk += 34) {
    it(`seeds ${chunk + 1}..${chunk + 34} keep every invariant and end live`, async () => {
      await expectClean(range(chunk + 1, 34), { store: 'memory', steps: STEPS });
    }, 300_000);
  }
});

describe('simulation: sqlite store', () => {
  for (let chunk = 0; chunk < 30; chunk += 15) {
    it(`seeds ${chunk + 1001}..${chunk + 1015} keep every invariant and end live`, async () => {
      await expectClean(range(chunk + 1001, 15), { store: 'sqlite', steps: STEPS });
    }, 300_000);
  }
});

/**
 * The job machine before issue 10's item 3 was fixed: only the move back to building
 * notified a dep's dependents when it left `testing` (not FAIL, RELEASE or expiry).
 */
function machineWithoutTestingExit() {
  const config = jobMachine.config as unknown as {
    states: Record<string, { on?: Record<string, unknown>; exit?: unknown }>;
  };
  const testing = config.states.testing as { on: Record<string, unknown>; exit?: unknown };
  const { exit: _exit, ...rest } = testing;
  return jobMachineSetup.createMachine({
    ...(config as object),
    states: {
      ...config.states,
      testing: {
        ...rest,
        on: {
          ...testing.on,
          BUILD: { guard: 'isHolder', target: 'building', actions: ['touch', 'notifyDependents'] },
        },
      },
    },
  } as unknown as Parameters<typeof jobMachineSetup.createMachine>[0]);
}

/** Issue 10, item 3: a soft dep leaves testing by FAIL, by RELEASE, by lease expiry. */
const ITEM_3_SCHEDULES = [
  [
    cmd('submit', 103, 0, 0),
    cmd('claim', 0, 21, 0),
    cmd('work', 0, 0, 0),
    cmd('submit', 265, 0, 770),
    cmd('work', 0, 0, 0),
    cmd('work', 0, 0, 0),
    cmd('work', 0, 0, 793),
  ],
  [
    cmd('submit', 0, 0, 0),
    cmd('submit', 546, 0, 422),
    cmd('claim', 0, 0, 0),
    cmd('work', 0, 0, 0),
    cmd('work', 0, 0, 0),
    cmd('work', 0, 0, 0),
    cmd('work', 0, 0, 1003),
  ],
  [
    cmd('submit', 0, 0, 0),
    cmd('seatrace', 0, 0, 0),
    cmd('work', 0, 0, 0),
    cmd('submit', 940, 0, 266),
    cmd('work', 0, 0, 0),
    cmd('work', 0, 0, 0),
    cmd('jump', 10, 0, 0),
  ],
];

/** Runs seeds until one fails; returns its outcome (or throws when none did). */
async function firstFailure(options: SeedOptions, seeds = 40) {
  for (let seed = 1; seed <= seeds; seed++) {
    const outcome = await runSeed(seed, options);
    if (outcome.failure) return outcome.failure;
  }
  throw new Error(`no violation in ${seeds} seeds: the planted bug went unnoticed`);
}

describe('the simulator catches planted bugs and shrinks them', () => {
  it('a machine that accepts writes from anyone: the stale writer is not FENCED', async () => {
    const machine = jobMachine.provide({ guards: { isHolder: () => true } });
    // Seeds 1..43 happen not to make a zombie write with this operation table (44 does).
    const failure = await firstFailure({ store: 'memory', steps: 60, machine }, 80);
    expect(failure.result.violations.join('\n')).toMatch(/was accepted|FENCED|two holders/);
    expect(failure.schedule.cmds.length).toBeLessThan(15);
  }, 300_000);

  it('a machine whose epochs never move: two holders of one (job, epoch)', async () => {
    const machine = jobMachine.provide({
      actions: {
        claim: assign(({ context, event }) =>
          event.type === 'CLAIM'
            ? {
                holder: event.factoryId,
                leaseExpiresAt: event.expiresAt,
                renewals: 0,
                attempt: context.attempt + 1,
                notBefore: null,
                firstClaimedAt: context.firstClaimedAt ?? event.now,
                lastWriteAt: event.now,
              }
            : {},
        ),
        endLease: assign({ holder: null, leaseExpiresAt: null, renewals: 0 }),
      },
    });
    const failure = await firstFailure({ store: 'memory', steps: 60, machine });
    expect(failure.result.violations.join('\n')).toMatch(/two holders|not above|accepted/);
    expect(failure.schedule.cmds.length).toBeLessThan(15);
  }, 120_000);

  it('a store whose append always says "stored": events reported twice', async () => {
    const wrapStore = (store: DocumentStore): DocumentStore => ({
      ...store,
      mark: () => store.mark(),
      sync: (from?: number) => store.sync(from),
      ping: () => store.ping(),
      close: () => store.close(),
      events: new Proxy(store.events, {
        get(target, prop, receiver) {
          if (prop === 'append')
            return async (...args: Parameters<typeof target.append>) => {
              await target.append(...args);
              return true;
            };
          const value = Reflect.get(target, prop, receiver) as unknown;
          return typeof value === 'function' ? value.bind(target) : value;
        },
      }),
    });
    const failure = await firstFailure({ store: 'memory', steps: 60, wrapStore });
    expect(failure.result.violations.join('\n')).toMatch(/reported twice/);
    expect(failure.schedule.cmds.length).toBeLessThan(15);
  }, 120_000);

  it('3: a machine whose testing state notifies soft dependents only on the move back to building: a soft dependent stays queued', async () => {
    // The three minimal schedules below (dep fails, is released, expires in testing),
    // run with the machine before the fix: each must be caught. (Searching seeds for
    // it takes minutes: the first failing seed of 100 steps was 67.)
    const machine = machineWithoutTestingExit();
    for (const cmds of ITEM_3_SCHEDULES) {
      const result = await simulate({ rngSeed: 0, cmds }, { store: 'memory', machine });
      expect(result.violations.join('\n')).toMatch(/soft dep .* left testing in this step/);
    }
  }, 120_000);

  it('a machine whose retries never come due: liveness fails', async () => {
    const machine = jobMachine.provide({ guards: { retryIsDue: () => false } });
    const failure = await firstFailure({ store: 'memory', steps: 60, machine });
    expect(failure.result.violations.join('\n')).toMatch(/liveness: .* is still failed/);
    expect(failure.schedule.cmds.length).toBeLessThan(15);
  }, 120_000);
});

describe('determinism', () => {
  it('a seed replays exactly, and the memory and SQLite stores see the same run', async () => {
    const a = await runSeed(7, { store: 'memory', steps: STEPS });
    const b = await runSeed(7, { store: 'memory', steps: STEPS });
    // Failing group commits exist on SQLite only: left out to compare the two stores.
    const c = await runSeed(7, { store: 'sqlite', steps: STEPS, commitFaults: false });
    const m = await runSeed(7, { store: 'memory', steps: STEPS, commitFaults: false });
    expect(b.stats).toEqual(a.stats);
    expect(c.stats).toEqual(m.stats);
    // With them, a SQLite seed still replays exactly.
    const d = await runSeed(1007, { store: 'sqlite', steps: STEPS });
    const e = await runSeed(1007, { store: 'sqlite', steps: STEPS });
    expect(e.stats).toEqual(d.stats);
    expect(d.stats.faultsFired['commit:sqlite.COMMIT'] ?? 0).toBeGreaterThan(0);
  }, 120_000);
});

describe('a coordinator bug the simulator found, fixed (see test/sim/README.md)', () => {
  // An event append whose outcome is unknown to the coordinator (stored, but the call
  // failed) was never reported: the next flush found it stored (`append` → false), so
  // the process's live projections and listeners never saw it. The minimal schedule
  // fast-check shrank it to: arm `after` on events.append (FAULT_POINTS[9], when 1 =
  // after), then submit. Fixed: each stored event names its writer, and the process
  // settles an append it could not confirm by reading the event back.
  it('an unknown-outcome event append is reported to the live projections', async () => {
    const result = await simulate(
      { rngSeed: 0, cmds: [cmd('fault', 9, 1, 0), cmd('submit', 0, 0, 0)] },
      { store: 'memory', unknownAppendOutcomes: true },
    );
    expect(result.violations).toEqual([]);
  });
});

/**
 * Issue 10's items the proof missed, as the schedules fast-check shrank them to when
 * each fix was reverted (README.md of test/sim, "Issue 10: what the proof missed").
 * Each failed with its fix reverted and passes with it.
 */
describe('issue 10: the minimal schedules that caught each reverted fix', () => {
  const clean = async (cmds: ReturnType<typeof cmd>[], store: 'memory' | 'sqlite' = 'memory') => {
    const result = await simulate({ rngSeed: 0, cmds }, { store });
    expect(result.violations).toEqual([]);
    return result.stats;
  };

  it('1: a wall budget past 365 days is refused with a VALIDATION naming the budget', async () => {
    const stats = await clean([cmd('submit', 112, 0, 512)]);
    expect(stats.results['extreme:invalid:refused']).toBe(1);
  });

  it('1: a job stored with a wall budget of 10^8 days does not stop the supervisor', async () => {
    const stats = await clean([
      cmd('submit', 0, 0, 0),
      cmd('corrupt', 0, 0, 0),
      cmd('claim', 0, 0, 0),
      cmd('tick', 151, 0, 0),
    ]);
    expect(stats.ops.corrupt).toBe(1);
    expect(stats.grants).toBeGreaterThan(0);
  });

  it('1: a held job whose stored budget is edited to 10^8 days (its due time now stale) still ends', async () => {
    // Found by `npm run sim -- --seeds 2000` (seed 1960): the liveness phase moved the
    // clock to each job's `dueAt`, which the edit left in the past, so its lease never
    // came to expire there. A simulator fix (the next due time ahead is used).
    await clean([
      cmd('submit', 343, 479, 0),
      cmd('claim', 0, 357, 0),
      cmd('submit', 0, 0, 0),
      cmd('submit', 19, 0, 0),
      cmd('submit', 225, 0, 0),
      cmd('renew', 0, 0, 775),
      cmd('submit', 703, 0, 0),
      cmd('kill', 0, 0, 0),
      cmd('submit', 278, 0, 0),
      cmd('corrupt', 98, 0, 0),
    ]);
  });

  it('3: a soft dependent is blocked again when its dep fails out of testing', async () => {
    await clean(ITEM_3_SCHEDULES[0] ?? []);
  });

  it('3: a soft dependent is blocked again when its dep is released out of testing', async () => {
    await clean(ITEM_3_SCHEDULES[1] ?? []);
  });

  it("3: a soft dependent is blocked again when its dep's lease expires in testing", async () => {
    await clean(ITEM_3_SCHEDULES[2] ?? []);
  });

  it('4: nothing of a SQLite group commit that failed is reported', async () => {
    const stats = await clean([cmd('commit', 0, 0, 0), cmd('submit', 0, 0, 0)], 'sqlite');
    expect(stats.faultsFired['commit:sqlite.COMMIT']).toBe(1);
  });

  it('9: two processes claiming one seat at once leave one grant standing; the give-back costs nothing', async () => {
    const cmds = [cmd('submit', 551, 0, 0), cmd('submit', 301, 0, 0), cmd('seatrace', 0, 465, 0)];
    await clean(cmds);
    const trace = (await traceSchedule({ rngSeed: 0, cmds }, { store: 'memory' })).join('\n');
    expect(trace).toMatch(
      /through two processes at once → (pb\/k\d@1, nothing|nothing, pb\/k\d@1)/,
    );
  });
});
