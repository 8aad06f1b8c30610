/**
 * Runs every benchmark in sequence and prints one summary at the end:
 *
 *   npx tsx bench/run.ts [--quick]      (reruns itself with --expose-gc)
 *   node --expose-gc --import tsx bench/run.ts
 *
 * Benchmarks print ratios against DESIGN.md's goals; nothing here asserts on timings.
 */
import { claimOptionsFromArgs, claimTable, ratioLines, runClaimBench } from './claim.bench.js';
import {
  cosmosOptionsFromArgs,
  cosmosSummary,
  cosmosTable,
  runCosmosBench,
} from './cosmos.bench.js';
import { BULLMQ_RATE, E2E_GOAL, runE2eBench } from './e2e.bench.js';
import { runEtagBench } from './etag.bench.js';
import { httpOptionsFromArgs, httpSummary, runHttpBench } from './http.bench.js';
import { runSqliteBench, sqliteOptionsFromArgs, sqliteSummary } from './sqlite.bench.js';
import {
  BULK_SUBMIT_GOAL,
  ONE_AT_A_TIME_GOAL,
  runSubmitBench,
  SUBMIT_GOAL,
} from './submit.bench.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { int, say } from './support/report.js';
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
  say(`total bench time ${((performance.now() - started) / 1000).toFixed(0)} s`);
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runAll(process.argv.slice(2));
}
