/**
 * The model's paths on SQLite with failing group commits (issue 10, item 4: events of a
 * batch whose COMMIT failed were reported anyway, so listeners heard of writes that
 * never happened and live projections differed from the rebuild).
 *
 * Each step of a path is first performed with the group commit of its first write
 * failing (test/sim/commit-fault.ts plants a deferred foreign-key violation, so SQLite
 * itself refuses the COMMIT and the engine rolls the batch back). Then:
 * - the job's documents still equal the model state before the step (nothing of the
 *   rolled-back batch remains);
 * - every event the coordinator reported since the path began is stored, as reported;
 * - its live projections equal `rebuildAll` of everything stored.
 * Then the step is performed again, without the fault, and the path goes on as in
 * check.ts (the stored job must equal the model after it), with the same two checks on
 * events and projections.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { type AnyStateMachine, transition } from 'xstate';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import type { JobMachineEvent } from '../../machines/index.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import { publicEvent } from '../../runtime/event-reporter.js';
import { rebuildAll } from '../../runtime/projections.js';
import type { EventDoc } from '../../runtime/types.js';
import { type CommitFaults, commitFaults } from '../sim/commit-fault.js';
import { allJobs } from '../support/invariants.js';
import type { StoreFactory } from '../support/stores.js';
import { compareWithModel, type Violation } from './check.js';
import { perform, World } from './driver.js';
import { CASE_BY_LABEL, type Case, type Model, type ModelPath, type Snap } from './paths.js';

const faultsOf = new WeakMap<DocumentStore, { faults: CommitFaults; state: { fired: number } }>();

/** SQLite (a new file, `synchronous: NORMAL`) whose group commits can be made to fail. */
export const failingSqlite: StoreFactory = {
  name: 'sqlite (failing commits)',
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'fleet-model-commit-'));
    const inner = openSqliteStore({ path: join(dir, 'fleet.db'), synchronous: 'NORMAL' });
    const state = { fired: 0 };
    const faults = commitFaults(inner, () => ++state.fired);
    const close = inner.close.bind(inner);
    const store = new Proxy(faults.store, {
      get(target, prop, receiver) {
        if (prop === 'close')
          return async () => {
            try {
              await close();
            } finally {
              rmSync(dir, { recursive: true, force: true });
            }
          };
        return Reflect.get(target, prop, receiver);
      },
    });
    faultsOf.set(store, { faults, state });
    return store;
  },
};

/** Problems with what the coordinator reported: unstored events, projections off the rebuild. */
async function reportProblems(w: World, reported: readonly EventDoc[]): Promise<string[]> {
  const out: string[] = [];
  const stored: EventDoc[] = [];
  for (const job of await allJobs(w.h.store)) {
    for (const e of await w.h.store.events.list(job.id, { limit: 100_000 })) {
      const { _etag: _e, ...event } = e as EventDoc & { _etag?: string };
      stored.push(publicEvent(event));
    }
  }
  const byId = new Map(stored.map((e) => [e.id, e]));
  for (const e of reported) {
    const s = byId.get(e.id);
    if (!s || !isDeepStrictEqual(s, publicEvent(e)))
      out.push(
        `reported event ${e.id} (${e.type}) ${s ? 'differs from the stored one' : 'is not stored (a rolled-back write was reported)'}`,
      );
  }
  const live = w.h.coord.projections?.snapshot();
  if (!isDeepStrictEqual(live, rebuildAll(stored)))
    out.push('live projections differ from rebuildAll of the stored events');
  return out;
}

/**
 * Replays `path` on `failingSqlite`, every step first with a failing commit (see the
 * header). Returns its violations.
 */
export async function runPathWithFailingCommits(
  path: ModelPath,
  model: Model,
  machine?: AnyStateMachine,
): Promise<Violation[]> {
  const out: Violation[] = [];
  const store = failingSqlite.name;
  const w = await World.open(failingSqlite, machine);
  const reported: EventDoc[] = [];
  w.h.coord.subscribe((e) => reported.push(structuredClone(e)));
  const entry = faultsOf.get(w.h.store);
  if (!entry) throw new Error('not a failing-commit store');
  const { faults, state } = entry;
  const trail: string[] = [];
  const problem = (message: string, kind: Violation['kind'] = 'step') =>
    out.push({ store, path: [...trail], kind, message });
  try {
    let m = model.initial;
    for (const step of path.steps) {
      const c = CASE_BY_LABEL.get(step.label) as Case;
      const e = c.make(m.context, w.h.clock.now());
      trail.push(c.label);
      // 1. With its commit failing.
      const fired = state.fired;
      faults.arm();
      let threw: unknown = null;
      try {
        await perform(w, e, m);
      } catch (err) {
        threw = err;
      }
      faults.disarm();
      await w.h.store.sync().catch(() => {});
      if (state.fired > fired) {
        const { diffs } = await compareWithModel(w, model, m);
        if (diffs.length > 0)
          problem(`after a failed commit the job is not as before the step: ${diffs.join('; ')}`);
        if (threw === null) problem('a call whose commit failed answered as if it had succeeded');
        for (const p of await reportProblems(w, reported)) problem(`after a failed commit: ${p}`);
        if (out.length > 0) return out;
      } else if (threw !== null) {
        problem(`threw with no commit failing: ${String(threw)}`);
        return out;
      }
      // 2. For real.
      const performed = await perform(w, e, m);
      let next = m;
      for (const d of performed.delivered)
        next = transition(model.machine, next, d as JobMachineEvent)[0] as Snap;
      const { diffs } = await compareWithModel(w, model, next);
      if (diffs.length > 0) {
        problem(diffs.join('; '));
        return out;
      }
      for (const p of await reportProblems(w, reported)) problem(p);
      if (out.length > 0) return out;
      m = next;
    }
    return out;
  } catch (err) {
    problem(`threw: ${String(err)}`);
    return out;
  } finally {
    await w.close();
  }
}
