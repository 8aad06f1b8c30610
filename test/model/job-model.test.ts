/**
 * Model-based tests of the job lifecycle: paths generated from the job machine with
 * `@xstate/graph` (paths.ts), driven through the coordinator (driver.ts, check.ts) on
 * every store (suite.ts; SQLite in job-model-sqlite.test.ts), and a mutant of the
 * machine that the generated checks must catch.
 */
import { describe, expect, it } from 'vitest';
import { transition } from 'xstate';
import {
  JOB_MACHINE_EVENT_TYPES,
  JOB_STATES,
  type JobMachineEvent,
  jobMachine,
} from '../../machines/index.js';
import { stepper } from '../../runtime/machine-step.js';
import { STORES } from '../support/stores.js';
import { formatViolation, runPaths } from './check.js';
import { MAPPING, noEntryPoint } from './driver.js';
import {
  abstractKey,
  accepts,
  CASE_BY_LABEL,
  CASES_BY_TYPE,
  type Case,
  coverage,
  graphTime,
  type ModelPath,
  makeModel,
  type Snap,
  T0,
} from './paths.js';
import { makePlan, sampleOf } from './plan.js';
import { defineStoreSuites, FULL_STORES, MODEL_STORES } from './suite.js';

describe('job model (machine level)', () => {
  it('generates shortest paths, simple paths and covering walks from the job machine', () => {
    const plan = makePlan();
    const accepted = plan.pairs.filter((p) => p.accepted).length;
    const sample = sampleOf(plan);
    console.log(
      [
        `[model] generated paths: ${plan.shortest.length} shortest, ${plan.simple.length} simple, ${plan.transition.length} covering walks (together they take every accepted pair of the adjacency map)`,
        `[model] driven on memory and sqlite: ${plan.driven.length} paths (${plan.driven.reduce((n, p) => n + p.steps.length, 0)} steps) after dropping paths that are a prefix of another; Cosmos sample: ${sample.paths.length} paths`,
        `[model] adjacency map: ${new Set(plan.pairs.map((p) => p.key)).size} abstract states, ${plan.pairs.length} (state, event) pairs (${accepted} accepted, ${plan.pairs.length - accepted} rejected)`,
        `[model] whole machine: ${plan.machineShortest.length} abstract states, ${plan.machinePairs.length} pairs`,
      ].join('\n'),
    );
    expect(plan.shortest.length).toBeGreaterThan(0);
    expect(plan.simple.length).toBeGreaterThan(0);
    expect(plan.transition.length).toBeGreaterThan(0);
  });

  it('the generated paths cover every state and every event type of the machine', () => {
    const plan = makePlan();
    const { states, events } = coverage(plan.model, plan.driven);
    expect(JOB_STATES.filter((s) => !states.has(s))).toEqual([]);
    // GIVE_BACK has no coordinator entry point (see noEntryPoint): the machine-level
    // test below requires its coverage instead.
    expect(JOB_MACHINE_EVENT_TYPES.filter((t) => !events.has(t) && t !== 'GIVE_BACK')).toEqual([]);
    // Every event type has cases and a coordinator mapping (a new one must get both).
    for (const type of JOB_MACHINE_EVENT_TYPES) {
      expect(CASES_BY_TYPE[type]?.length ?? 0, type).toBeGreaterThan(0);
      expect(MAPPING[type], type).toBeDefined();
    }
  });

  it('pairs with no coordinator entry point are covered at the machine level only', () => {
    const plan = makePlan();
    const machineKeys = new Set(plan.machinePairs.map((p) => p.key));
    const coordinatorPairs = new Set(plan.pairs.map((p) => `${p.key} ${p.case.label}`));
    const machineOnly = plan.machinePairs.filter((p) =>
      noEntryPoint(p.case.type, p.state.context, p.accepted),
    );
    console.log(
      `[model] machine-level only (no coordinator entry point): ${machineOnly.length} pairs, all ${[...new Set(machineOnly.map((p) => p.case.type))].join(', ')}`,
    );
    expect(machineOnly.length).toBeGreaterThan(0);
    for (const p of machineOnly) {
      expect(coordinatorPairs.has(`${p.key} ${p.case.label}`)).toBe(false);
      const e = p.case.make(p.state.context, graphTime(p.state.context));
      const [next] = transition(plan.machineModel.machine, p.state, e) as [Snap, unknown];
      if (e.type === 'GIVE_BACK') {
        if (!p.accepted) {
          expect(next).toBe(p.state);
          continue;
        }
        // A grant handed back: queued as before the claim, fenced, no attempt counted.
        expect(p.state.value).toBe('assigned');
        expect(next.value).toBe('queued');
        expect(next.context).toMatchObject({
          holder: null,
          leaseEpoch: p.state.context.leaseEpoch + 1,
          attempt: p.state.context.attempt - 1,
          firstClaimedAt: e.firstClaimedAt,
        });
        expect(machineKeys.has(abstractKey(next))).toBe(true);
        continue;
      }
      expect(next).not.toBe(p.state);
      // BUDGET_EXCEEDED of an idle job: dead_letter, lease epoch + 1, no holder.
      expect(next.value).toBe('dead_letter');
      expect(next.context).toMatchObject({
        deadReason: 'budget_exceeded',
        holder: null,
        leaseEpoch: p.state.context.leaseEpoch + 1,
      });
      expect(machineKeys.has(abstractKey(next))).toBe(true);
    }
    // The whole machine's paths cover every state and event type too.
    const { states, events } = coverage(plan.machineModel, plan.machineShortest);
    expect(JOB_STATES.filter((s) => !states.has(s))).toEqual([]);
    expect(events.has('BUDGET_EXCEEDED')).toBe(true);
    expect(events.has('GIVE_BACK')).toBe(true);
    expect(machineOnly.some((p) => p.case.type === 'GIVE_BACK' && p.accepted)).toBe(true);
  });

  it("the coordinator's step (runtime/machine-step.ts) equals xstate's transition() on every pair of the whole machine", () => {
    const plan = makePlan();
    const step = stepper(plan.machineModel.machine);
    // Twice over, so a scope reused between calls that kept anything would show.
    for (const round of [1, 2]) {
      for (const p of plan.machinePairs) {
        const e = p.case.make(p.state.context, graphTime(p.state.context));
        const [want, wantActions] = transition(plan.machineModel.machine, p.state, e) as [
          Snap,
          Array<{ type: string }>,
        ];
        const [got, gotActions] = step(p.state, e);
        const label = `${round} ${p.key} ${p.case.label}`;
        // Rejected: both hand back the snapshot itself (the coordinator relies on identity).
        expect(got === p.state, label).toBe(want === p.state);
        expect(got.value, label).toEqual(want.value);
        expect(got.status, label).toBe(want.status);
        expect(got.context, label).toEqual(want.context);
        expect(
          gotActions.map((a) => a.type),
          label,
        ).toEqual(wantActions.map((a) => a.type));
      }
    }
    expect(plan.machinePairs.filter((p) => p.accepted).length).toBeGreaterThan(0);
    expect(plan.machinePairs.filter((p) => !p.accepted).length).toBeGreaterThan(0);
  });

  it('a machine with the fencing guard disabled differs from the model (machine level)', () => {
    const mutant = jobMachine.provide({ guards: { isHolder: () => true } });
    const model = makeModel();
    const mutantModel = makeModel(undefined, undefined, mutant);
    const claim: JobMachineEvent = { type: 'CLAIM', factoryId: 'A', now: 0, expiresAt: 1 };
    // Guards are looked up on the snapshot's machine: each model claims on its own.
    const claimed = transition(jobMachine, model.initial, claim)[0] as Snap;
    const mutantClaimed = transition(mutant, mutantModel.initial, claim)[0] as Snap;
    const stale: JobMachineEvent = { type: 'BUILD', factoryId: 'A', leaseEpoch: 0, now: 0 };
    expect(accepts(model, claimed, stale)).toBe(false);
    expect(accepts(mutantModel, mutantClaimed, stale)).toBe(true);
  });
});

defineStoreSuites((name) => name !== 'sqlite');

describe('coordinator bugs the model found stay fixed', () => {
  it.each(MODEL_STORES.filter((s) => FULL_STORES.has(s.name)).map((s) => [s.name, s] as const))(
    'the lease mirror follows a renewal that keeps the expiry: CLAIM → RENEW → RENEW in one ms (%s)',
    async (_name, factory) => {
      const plan = makePlan();
      let m = plan.model.initial;
      const path: ModelPath = { kind: 'shortest', steps: [] };
      for (const label of ['CLAIM', 'RENEW:holder', 'RENEW:holder']) {
        const c = CASE_BY_LABEL.get(label) as Case;
        m = transition(jobMachine, m, c.make(m.context, T0))[0] as Snap;
        path.steps.push({ label, key: abstractKey(m) });
      }
      const violations = await runPaths([path], {
        factory,
        model: plan.model,
        rejectedByKey: new Map(),
        visited: new Set(),
        checked: new Set(),
      });
      // The second renewal keeps the expiry; the mirror's renewals must still follow
      // (it once lagged: the lease document was rewritten only on holder, expiry or
      // epoch changes).
      expect(violations.map(formatViolation)).toEqual([]);
    },
  );
});

describe('the generated checks bite', () => {
  it('a coordinator running a copy of the machine whose fencing guard (isHolder) always passes fails them', async () => {
    const memory = STORES.find((s) => s.name === 'memory');
    if (!memory) throw new Error('no memory store');
    const plan = makePlan();
    const mutant = jobMachine.provide({ guards: { isHolder: () => true } });
    // The shortest paths, with every rejected case of every state (they visit them all).
    const violations = await runPaths(
      plan.shortest,
      {
        factory: memory,
        model: plan.model,
        coordinatorMachine: mutant,
        rejectedByKey: plan.rejectedByKey,
        visited: new Set(),
        checked: new Set(),
      },
      Number.POSITIVE_INFINITY,
    );
    const fenced = violations.filter((v) => v.message.includes('expected FENCED'));
    console.log(
      `[model] mutant (isHolder always true): ${violations.length} violations, ${fenced.length} of them a worker event that should be FENCED; first: ${violations[0] ? formatViolation(violations[0]) : 'none'}`,
    );
    expect(violations.length).toBeGreaterThan(0);
    expect(fenced.length).toBeGreaterThan(0);
  }, 120_000);
});
