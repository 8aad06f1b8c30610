/**
 * Start-up of the `fleet` binary (compiled JavaScript, `bin/fleet.mjs` → `dist/`): the
 * wall time of `fleet help` and of `fleet jobs --help` (a client command), beside a bare
 * `node -e 0` on the same machine, as medians of N runs and as a ratio. The goal is that
 * `fleet help` starts "well under a second"; this prints, it asserts nothing.
 *
 *   npm run build && npx tsx bench/cli.bench.ts [--runs=20]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isMain } from './support/main.js';
import { say } from './support/report.js';

const BIN = fileURLToPath(new URL('../bin/fleet.mjs', import.meta.url));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Median wall time of running `args` with node, `runs` times, in ms. */
function timeRuns(args: string[], runs: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args, { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}`);
    times.push(performance.now() - t0);
  }
  return median(times);
}

export function runCliBench(runs = 20): { nodeMs: number; helpMs: number; jobsHelpMs: number } {
  const nodeMs = timeRuns(['-e', '0'], runs);
  const helpMs = timeRuns([BIN, 'help'], runs);
  const jobsHelpMs = timeRuns([BIN, 'jobs', '--help'], runs);
  say(`== fleet CLI start-up (median of ${runs}) ==`);
  say(`node -e 0            ${nodeMs.toFixed(0)} ms`);
  say(
    `fleet help           ${helpMs.toFixed(0)} ms  (${(helpMs / nodeMs).toFixed(2)}× bare node; goal: well under 1000 ms)`,
  );
  say(
    `fleet jobs --help    ${jobsHelpMs.toFixed(0)} ms  (${(jobsHelpMs / nodeMs).toFixed(2)}× bare node)`,
  );
  return { nodeMs, helpMs, jobsHelpMs };
}

if (isMain(import.meta.url)) {
  const arg = process.argv.find((a) => a.startsWith('--runs='));
  runCliBench(arg ? Number(arg.slice('--runs='.length)) : 20);
}
