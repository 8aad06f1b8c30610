/**
 * A schedule: the seed of the run's PRNG and a list of scheduler choices. Each choice
 * is four small naturals `[op, a, b, c]`: `op` picks the operation (through a weight
 * table), `a`, `b`, `c` pick among what exists when it runs (a factory, a job, a
 * variant), always modulo the current number of choices, so any shrunk schedule still
 * means something. Every number shrinks towards 0: the first factory, the first job,
 * the plainest variant, and op 0 (`tick`).
 */
import fc from 'fast-check';

export const OPS = [
  'tick',
  'submit',
  'claim',
  'work',
  'renew',
  'sweep',
  'jump',
  'kill',
  'pause',
  'resume',
  'replay',
  'fault',
  'crash',
  'outage',
  'land',
  'admin',
  'read',
  'par',
  'heartbeat',
  'corrupt',
  'commit',
  'seatrace',
] as const;

export type Op = (typeof OPS)[number];

/** How often each operation is chosen (out of the table's total). */
const WEIGHTS: Readonly<Record<Op, number>> = {
  tick: 8,
  submit: 14,
  claim: 11,
  work: 27,
  renew: 5,
  sweep: 5,
  jump: 2,
  kill: 1,
  pause: 2,
  resume: 3,
  replay: 4,
  fault: 4,
  crash: 2,
  outage: 1,
  land: 2,
  admin: 2,
  read: 2,
  par: 3,
  heartbeat: 1,
  corrupt: 1,
  commit: 2,
  seatrace: 2,
};

/** `OP_TABLE[op]` is the operation of a choice (index 0 is `tick`, the harmless one). */
export const OP_TABLE: readonly Op[] = OPS.flatMap((op) =>
  Array.from({ length: WEIGHTS[op] }, () => op),
);

/** One scheduler choice: `[op index into OP_TABLE, a, b, c]`. */
export type Cmd = readonly [op: number, a: number, b: number, c: number];

export interface Schedule {
  /** Seed of the run's PRNG (coordinator and supervisor jitter). */
  rngSeed: number;
  cmds: readonly Cmd[];
}

export const opOf = (cmd: Cmd): Op => OP_TABLE[cmd[0] % OP_TABLE.length] ?? 'tick';

/** The choice `op(a, b, c)` (for hand-written schedules). */
export const cmd = (op: Op, a = 0, b = 0, c = 0): Cmd => [OP_TABLE.indexOf(op), a, b, c];

const MAX_ARG = 1023;

/** Unbiased: fast-check's usual bias towards small values would make most ops `tick`. */
export const cmdArb: fc.Arbitrary<Cmd> = fc.noBias(
  fc.tuple(fc.nat(OP_TABLE.length - 1), fc.nat(MAX_ARG), fc.nat(MAX_ARG), fc.nat(MAX_ARG)),
);

/**
 * Schedules of exactly `steps` choices when generated; shrinking may drop choices (and
 * simplify the rest), so a failure shrinks to a short schedule.
 */
class ScheduleCmds extends fc.Arbitrary<Cmd[]> {
  readonly #exact: fc.Arbitrary<Cmd[]>;
  readonly #shrinkable: fc.Arbitrary<Cmd[]>;
  constructor(steps: number) {
    super();
    this.#exact = fc.array(cmdArb, { minLength: steps, maxLength: steps });
    this.#shrinkable = fc.array(cmdArb, { maxLength: steps });
  }
  generate(mrng: fc.Random, biasFactor: number | undefined): fc.Value<Cmd[]> {
    // No context: the value is shrunk from scratch by the variable-length arbitrary.
    return new fc.Value(this.#exact.generate(mrng, biasFactor).value_, undefined);
  }
  canShrinkWithoutContext(value: unknown): value is Cmd[] {
    return this.#shrinkable.canShrinkWithoutContext(value);
  }
  shrink(value: Cmd[], context: unknown): fc.Stream<fc.Value<Cmd[]>> {
    return this.#shrinkable.shrink(value, context);
  }
}

export function scheduleArb(steps: number): fc.Arbitrary<Schedule> {
  return fc.record({
    rngSeed: fc.nat(),
    cmds: new ScheduleCmds(steps),
  });
}
