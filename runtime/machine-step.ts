/**
 * xstate's pure `transition(machine, snapshot, event)` without its per-call setup.
 *
 * xstate's helper builds an inert actor scope on every call: it creates an actor (whose
 * constructor computes an initial snapshot, running the context factory) and two
 * actor systems, then runs `machine.transition(snapshot, event, scope)` and collects
 * the actions. On the lifecycle bench that setup was about as costly as the transition
 * itself. `stepper(machine)` builds the same inert scope once per machine and reuses
 * it: the transition is still xstate's own (`machine.transition`), with actions
 * collected, never executed. The scope holds nothing between calls for a machine that
 * spawns no actors (ours spawn none), and the model-based suite checks the result
 * equals xstate's `transition()` on every (state, event) pair of the adjacency map
 * (test/model/job-model.test.ts).
 */
import { type AnyStateMachine, createActor, transition as xstateTransition } from 'xstate';

/** One step: the next snapshot (the same object when the event was rejected) and the actions. */
export type Step = <S, E>(snapshot: S, event: E) => [S, Array<{ type: string; params?: unknown }>];

const steppers = new WeakMap<AnyStateMachine, Step>();

/** The pure step of `machine`, equal to xstate's `transition(machine, snapshot, event)`. */
export function stepper(machine: AnyStateMachine): Step {
  let step = steppers.get(machine);
  if (step !== undefined) return step;
  const self = createActor(machine);
  let collected: Array<{ type: string; params?: unknown }> = [];
  const scope = {
    self,
    defer: () => {},
    id: '',
    logger: () => {},
    sessionId: '',
    stopChild: () => {},
    system: self.system,
    emit: () => {},
    actionExecutor: (action: { type: string; params?: unknown }) => {
      collected.push(action);
    },
  };
  // The scope's shape is xstate's (5.x); if a release changes it, fall back to the helper.
  const fast = typeof (machine as { transition?: unknown }).transition === 'function';
  step = (<S, E>(snapshot: S, event: E): [S, Array<{ type: string; params?: unknown }>] => {
    if (!fast) {
      return xstateTransition(machine, snapshot as never, event as never) as unknown as [
        S,
        Array<{ type: string; params?: unknown }>,
      ];
    }
    collected = [];
    const next = (machine.transition as (s: S, e: E, scope: unknown) => S)(snapshot, event, scope);
    return [next, collected];
  }) as Step;
  steppers.set(machine, step);
  return step;
}
