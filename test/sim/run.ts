/**
 * `npm run sim -- [--seeds N] [--seed S] [--from S] [--store memory|sqlite] [--steps K]
 *                 [--no-unknown-append-outcomes] [--max-failures F]`
 *
 * Runs seeds `from .. from+N-1` (or the one `--seed`) through the simulator and prints
 * steps, faults injected, invariant checks and violations. On a violation it prints the
 * seed, the schedule fast-check shrank it to and a step-by-step replay of that schedule,
 * and exits 1. Stops after `--max-failures` failing seeds (default 3). Unknown-outcome
 * faults on event appends are in by default; `--no-unknown-append-outcomes` turns them
 * into faults that never reach the store.
 */
import { parseArgs } from 'node:util';
import { addStats, formatSchedule, runSeed, traceSchedule } from './property.js';
import { newStats, type SimStats, type StoreKind } from './simulator.js';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string' },
    seed: { type: 'string' },
    from: { type: 'string', default: '1' },
    store: { type: 'string', default: 'memory' },
    steps: { type: 'string', default: '100' },
    'no-unknown-append-outcomes': { type: 'boolean', default: false },
    'max-failures': { type: 'string', default: '3' },
  },
  strict: true,
});

function int(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) {
    console.error(`--${name} must be an integer, got ${text}`);
    process.exit(2);
  }
  return n;
}

const store = values.store as StoreKind;
if (store !== 'memory' && store !== 'sqlite') {
  console.error(`--store must be memory or sqlite, got ${values.store}`);
  process.exit(2);
}
const steps = int('steps', values.steps);
const maxFailures = int('max-failures', values['max-failures']);
const seeds: number[] =
  values.seed !== undefined
    ? [int('seed', values.seed)]
    : Array.from(
        { length: int('seeds', values.seeds ?? '100') },
        (_, i) => int('from', values.from) + i,
      );
const options = {
  store,
  steps,
  unknownAppendOutcomes: !values['no-unknown-append-outcomes'],
};

const total: SimStats = newStats();

console.log(
  `fleet simulator: ${seeds.length} seed(s) from ${seeds[0]}, store ${store}, ${steps} steps per schedule${options.unknownAppendOutcomes ? '' : ', without unknown-outcome event appends'}`,
);
const started = performance.now();
let lastReport = started;
let failing = 0;
let violations = 0;
let ran = 0;
for (const seed of seeds) {
  const outcome = await runSeed(seed, options);
  ran++;
  addStats(total, outcome.stats);
  if (outcome.violations.length > 0) {
    failing++;
    violations += outcome.violations.length;
    console.log(
      `\nVIOLATION at seed ${seed} (replay: npm run sim -- --seed ${seed} --store ${store} --steps ${steps}${options.unknownAppendOutcomes ? '' : ' --no-unknown-append-outcomes'})`,
    );
    for (const v of outcome.violations) console.log(`  ${v}`);
    if (outcome.failure) {
      const { schedule, result, numShrinks } = outcome.failure;
      console.log(`\nshrunk ${numShrinks} time(s) to: ${formatSchedule(schedule)}`);
      console.log('\nreplay of the shrunk schedule:');
      for (const line of await traceSchedule(schedule, options)) console.log(`  ${line}`);
      console.log(`\nits violations:\n${result.violations.map((v) => `  ${v}`).join('\n')}`);
    }
    if (failing >= maxFailures) {
      console.log(`\nstopping after ${failing} failing seed(s)`);
      break;
    }
  }
  const now = performance.now();
  if (now - lastReport > 30_000) {
    lastReport = now;
    const secs = (now - started) / 1000;
    console.log(
      `  … ${ran}/${seeds.length} seeds, ${secs.toFixed(0)} s, ${(ran / secs).toFixed(1)} seeds/s, ${violations} violation(s)`,
    );
  }
}
const secs = (performance.now() - started) / 1000;
const fired = Object.values(total.faultsFired).reduce((a, b) => a + b, 0);
const byKind = Object.entries(total.faultsFired)
  .sort(([, a], [, b]) => b - a)
  .map(([k, n]) => `${k} ${n}`)
  .join(', ');
const ops = Object.entries(total.ops)
  .sort(([, a], [, b]) => (b ?? 0) - (a ?? 0))
  .map(([k, n]) => `${k} ${n}`)
  .join(', ');
const fmt = (m: Record<string, number | undefined>) =>
  Object.entries(m)
    .sort(([, a], [, b]) => (b ?? 0) - (a ?? 0))
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
console.log(`
seeds run:              ${ran} (${failing} failing)
steps:                  ${total.steps} (+ ${total.livenessRounds} liveness rounds)
operations:             ${ops}
faults armed / fired:   ${total.faultsArmed} / ${fired} (${byKind})
process crashes:        ${total.crashes} (restarts incl. clean: ${total.restarts}); late writes landed: ${total.lateLanded}
claims granted:         ${total.grants}; stale writes fenced: ${total.zombieWritesFenced} (by resumed zombies: ${total.resumedZombiesFenced}); rejected calls verified no-op: ${total.rejectedNoops}
invariant checks:       ${total.invariantChecks} full-store checks, ${total.assertions} assertions
answers:                ${fmt(total.results)}
jobs:                   ${total.jobs} (${total.shipped} shipped, ${total.deadLetter} dead_letter: ${fmt(total.deadReasons)})
violations:             ${violations}
time:                   ${secs.toFixed(1)} s (${(ran / secs).toFixed(1)} seeds/s)`);
process.exit(failing > 0 ? 1 : 0);
