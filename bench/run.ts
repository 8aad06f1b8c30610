/**
 * Runs every benchmark in sequence and prints one summary at the end:
 *
 *   npx tsx bench/run.ts [--quick] [--full]      (reruns itself with --expose-gc)
 *   node --expose-gc --import tsx bench/run.ts
 *
 * Benchmarks print ratios against DESIGN.md's goals; nothing here asserts on timings.
 * The summary ends with issue 13's goals in one table (goal, measured, target, ratio,
 * met?). `--quick` measures fewer jobs per section; `--full` (or `FLEET_BENCH_FULL=1`)
 * adds the queues of 1,000,000 jobs to the depth goal (filling one takes minutes). The
 * SQLite sections of issue 13 share one queue file per depth (filled once, copied per
 * section).
 */

import { bullmqGoals, bullmqOptionsFromArgs, runBullmqBench } from './bullmq.bench.js';
import { claimOptionsFromArgs, claimTable, ratioLines, runClaimBench } from './claim.bench.js';
import { claimersGoals, claimersOptionsFromArgs, runClaimersBench } from './claimers.bench.js';
import {
  cosmosOptionsFromArgs,
  cosmosSummary,
  cosmosTable,
  runCosmosBench,
} from './cosmos.bench.js';
import {
  cosmosRequestsGoals,
  cosmosRequestsJobsFromArgs,
  runCosmosRequestsBench,
} from './cosmos-requests.bench.js';
import { BULLMQ_RATE, E2E_GOAL, runE2eBench } from './e2e.bench.js';
import { runEtagBench } from './etag.bench.js';
import { httpOptionsFromArgs, httpSummary, runHttpBench } from './http.bench.js';
import {
  httpLifecycleGoals,
  httpLifecycleOptionsFromArgs,
  runHttpLifecycleBench,
} from './http-lifecycle.bench.js';
import {
  DEFAULT_LIFECYCLE,
  LIFECYCLE_WARMUP,
  lifecycleGoals,
  lifecycleOptionsFromArgs,
  runLifecycleBench,
  wantsFull,
} from './lifecycle.bench.js';
import { runSqliteBench, sqliteOptionsFromArgs, sqliteSummary } from './sqlite.bench.js';
import {
  BULK_SUBMIT_GOAL,
  ONE_AT_A_TIME_GOAL,
  runSubmitBench,
  SUBMIT_GOAL,
} from './submit.bench.js';
import { atLeast, type GoalRow, goalTable } from './support/goals.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { count, int, say } from './support/report.js';
import { QueueTemplates } from './support/sqlite-queue.js';
import { runSweepBench, sweepOptionsFromArgs, sweepSummary } from './sweep.bench.js';

export async function runAll(args: string[]): Promise<void> {
  const started = performance.now();
  const quick = args.includes('--quick');
  const etags = runEtagBench(quick ? { count: 200_000 } : {});
  say();
  const claims = await runClaimBench(claimOptionsFromArgs(args));
  say();
  const submit = await runSubmitBench(quick ? { jobs: 5_000 } : {});
  say();
  const e2e = await runE2eBench(quick ? { jobs: 2_000 } : {});
  say();
  const sqliteOptions = sqliteOptionsFromArgs(args);
  const sqlite = await runSqliteBench(sqliteOptions);
  say();
  const http = await runHttpBench(httpOptionsFromArgs(args));
  say();
  const sweeps = await runSweepBench(sweepOptionsFromArgs(args));
  say();
  const cosmos = await runCosmosBench(cosmosOptionsFromArgs(args));
  say();

  // Issue 13: the write path (SQLite FULL sections share one queue file per depth).
  const lifecycleOptions = { ...DEFAULT_LIFECYCLE, ...lifecycleOptionsFromArgs(args) };
  const claimersOptions = claimersOptionsFromArgs(args);
  const httpLifecycleOptions = {
    ...httpLifecycleOptionsFromArgs(args),
    jobs: lifecycleOptions.jobs,
    factories: lifecycleOptions.factories,
  };
  const templates = new QueueTemplates(
    Math.max(
      lifecycleOptions.jobs + LIFECYCLE_WARMUP,
      (claimersOptions.claims ?? 20_000) + (claimersOptions.warmup ?? 1_000),
      lifecycleOptions.jobs + (httpLifecycleOptions.warmup ?? 500),
    ),
  );
  const goals: GoalRow[] = [];
  try {
    const lifecycle = await runLifecycleBench(lifecycleOptions, templates);
    say();
    const claimers = await runClaimersBench(
      { ...claimersOptions, depths: lifecycleOptions.depths },
      templates,
    );
    say();
    const shallow = lifecycle.rows.find((r) => r.factories === lifecycleOptions.factories);
    const httpLifecycle = await runHttpLifecycleBench(
      { ...httpLifecycleOptions, depth: lifecycleOptions.depths[0] ?? 1_000 },
      templates,
      shallow,
    );
    say();
    const requests = await runCosmosRequestsBench(cosmosRequestsJobsFromArgs(args));
    say();
    const bullmq = await runBullmqBench(bullmqOptionsFromArgs(args), shallow);
    say();
    for (const f of await templates.fills()) {
      say(
        `queue behind ${count(f.depth)}: ${int(f.jobs)} jobs filled in ${f.fillSec.toFixed(1)} s (once, copied per section)`,
      );
    }
    const lifecycleRows = lifecycleGoals(lifecycle);
    const claimersRows = claimersGoals(claimers);
    goals.push(
      ...lifecycleRows.filter((g) => g.goal.startsWith('1.')),
      ...httpLifecycleGoals(httpLifecycle),
      ...lifecycleRows.filter((g) => g.goal.startsWith('3.')),
      atLeast(
        '4. bulk submit (submitMany), SQLite FULL',
        `${int(submit.bulkPerSec)} jobs/s`,
        submit.bulkPerSec,
        BULK_SUBMIT_GOAL,
        `≥ ${int(BULK_SUBMIT_GOAL)}/s`,
      ),
      atLeast(
        '4. submit one at a time, SQLite FULL',
        `${int(submit.oneAtATimePerSec)} jobs/s`,
        submit.oneAtATimePerSec,
        ONE_AT_A_TIME_GOAL,
        `≥ ${int(ONE_AT_A_TIME_GOAL)}/s`,
      ),
      ...claimersRows.filter((g) => g.goal.startsWith('5.')),
      ...lifecycleRows.filter((g) => g.goal.startsWith('6.')),
      ...claimersRows.filter((g) => g.goal.startsWith('6.')),
      ...cosmosRequestsGoals(requests),
      ...bullmqGoals(bullmq),
    );
  } finally {
    templates.remove();
  }
  say('== summary ==');
  say(claimTable(claims));
  say();
  for (const line of ratioLines(claims)) say(`claim ${line}`);
  say(
    `submit: ${int(submit.perSec)} jobs/s  (${(submit.perSec / SUBMIT_GOAL).toFixed(2)}× the 10k/s durable goal)`,
  );
  say(
    `submit, SQLite FULL: bulk ${int(submit.bulkPerSec)} jobs/s (${(submit.bulkPerSec / BULK_SUBMIT_GOAL).toFixed(2)}× the 10k/s goal), ` +
      `one at a time ${int(submit.oneAtATimePerSec)} jobs/s (${(submit.oneAtATimePerSec / ONE_AT_A_TIME_GOAL).toFixed(2)}× the 1.6k/s goal)`,
  );
  say(
    `end-to-end: ${int(e2e.perSec)} jobs/s  (${(e2e.perSec / E2E_GOAL).toFixed(2)}× the 18k/s goal, ` +
      `${(e2e.perSec / BULLMQ_RATE).toFixed(2)}× BullMQ)`,
  );
  for (const line of sqliteSummary(sqlite, sqliteOptions.sizes ?? [1_000, 100_000, 1_000_000]))
    say(line);
  for (const line of httpSummary(http)) say(line);
  const [counter, , pooled] = etags;
  say(
    `etag: ${pooled!.nsPerEtag.toFixed(0)} ns per write (random, 96 bits) against ${counter!.nsPerEtag.toFixed(0)} ns for a counter`,
  );
  for (const line of sweepSummary(sweeps)) say(line);
  say();
  say(cosmosTable(cosmos));
  say();
  for (const line of cosmosSummary(cosmos)) say(line);
  say();
  say(
    `== issue 13 goals (depths ${lifecycleOptions.depths.map(count).join(', ')}` +
      `${wantsFull(args) ? '' : '; 1M with --full or FLEET_BENCH_FULL=1'}${args.includes('--quick') ? '; --quick' : ''}) ==`,
  );
  say(goalTable(goals));
  say(`total bench time ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runAll(process.argv.slice(2));
}
