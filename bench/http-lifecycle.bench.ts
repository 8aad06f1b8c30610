/**
 * The whole job lifecycle over HTTP, beside the same lifecycle in process.
 *
 *   npx tsx bench/http-lifecycle.bench.ts [--jobs=N] [--factories=32] [--quick]
 *
 * `node bin/fleet.mjs serve` (the built `dist/`; `npm run bench` builds it first) in a
 * child process on a copy of a SQLite queue (`support/sqlite-queue.ts`; 1,000 jobs stay
 * queued behind the run), with the server's default durability (`synchronous=FULL`:
 * nothing is answered before its commit). `factories` HTTP factories (an undici `Pool`
 * of as many keep-alive connections, one request in flight each) each loop
 * `POST /fleet/claim` → `PATCH /fleet/jobs/:id` to building, review, testing, shipped
 * (5 fenced durable transitions per job, no-op work) until `jobs` jobs shipped. Reports
 * jobs/s, transitions/s, claim and PATCH p50/p99 latency (request sent → body read), and
 * the ratio to the in-process rate of the same workload (32 factories, same depth)
 * measured in the same run (goal 2: ≥ 0.60×). Asserts nothing.
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { AUTH, startFleet } from './http.bench.js';
import { type LifecycleRow, measureLifecycle } from './lifecycle.bench.js';
import { killLive } from './support/child-server.js';
import { atLeast, type GoalRow, notMeasured } from './support/goals.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { coreShare, cpuSample, int, othersShare, quantile, say } from './support/report.js';
import { QueueTemplates } from './support/sqlite-queue.js';
import { ALL_CAPABILITIES } from './support/workload.js';

/** Goal 2: HTTP lifecycle ≥ 0.60 × the in-process rate. */
export const HTTP_LIFECYCLE_GOAL = 0.6;
const STAGES = ['building', 'review', 'testing', 'shipped'] as const;

export interface HttpLifecycleOptions {
  factories: number;
  jobs: number;
  /** Jobs shipped untimed first. */
  warmup: number;
  /** Jobs left queued behind the run. */
  depth: number;
  timeoutMs: number;
}

export const DEFAULT_HTTP_LIFECYCLE: HttpLifecycleOptions = {
  factories: 32,
  jobs: 10_000,
  warmup: 500,
  depth: 1_000,
  // A backstop only: 20,000 jobs on a loaded 2-core machine took minutes.
  timeoutMs: 900_000,
};

export interface HttpLifecycleResult {
  jobs: number;
  jobsPerSec: number;
  transitionsPerSec: number;
  claimP50Ms: number;
  claimP99Ms: number;
  patchP50Ms: number;
  patchP99Ms: number;
  clientCpu: number | null;
  serverCpu: number | null;
  othersCpu: number | null;
  /** The in-process figure of the same run it is compared with. */
  inProcess: LifecycleRow;
}

export type HttpLifecycleSection = HttpLifecycleResult | { error: string };

const pct = (share: number | null): string =>
  share === null ? '?' : `${Math.round(share * 100)}%`;

async function httpLoad(
  url: string,
  serverPid: number,
  o: HttpLifecycleOptions,
  signal: AbortSignal,
): Promise<Omit<HttpLifecycleResult, 'inProcess'>> {
  const pool = new Pool(url, { connections: o.factories });
  const capabilities = [...ALL_CAPABILITIES];
  const call = async (
    method: 'POST' | 'PATCH',
    path: string,
    body: unknown,
  ): Promise<{ status: number; json: unknown }> => {
    const res = await pool.request({
      method,
      path,
      headers: AUTH,
      body: JSON.stringify(body),
      signal,
    });
    const json = (await res.body.json()) as unknown;
    return { status: res.statusCode, json };
  };
  const shipOne = async (factoryId: string, claims?: number[], patches?: number[]) => {
    let t0 = performance.now();
    const c = await call('POST', '/fleet/claim', { factoryId, capabilities });
    claims?.push(performance.now() - t0);
    if (c.status !== 200) {
      throw new Error(`claim answered ${c.status} ${JSON.stringify(c.json).slice(0, 300)}`);
    }
    const grant = c.json as { job: { id: string }; lease: { leaseEpoch: number } };
    for (const to of STAGES) {
      t0 = performance.now();
      const p = await call('PATCH', `/fleet/jobs/${encodeURIComponent(grant.job.id)}`, {
        factoryId,
        leaseEpoch: grant.lease.leaseEpoch,
        to,
      });
      patches?.push(performance.now() - t0);
      if (p.status !== 200) {
        throw new Error(
          `PATCH to ${to} answered ${p.status} ${JSON.stringify(p.json).slice(0, 300)}`,
        );
      }
    }
  };
  try {
    let warm = 0;
    await Promise.all(
      Array.from({ length: o.factories }, async (_, f) => {
        while (warm++ < o.warmup) await shipOne(`warm${f}`);
      }),
    );
    const claims: number[] = [];
    const patches: number[] = [];
    let shipped = 0;
    const cpuBefore = cpuSample(['self', serverPid]);
    const started = performance.now();
    await Promise.all(
      Array.from({ length: o.factories }, async (_, f) => {
        while (shipped++ < o.jobs) await shipOne(`http-f${f}`, claims, patches);
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = cpuSample(['self', serverPid]);
    return {
      jobs: o.jobs,
      jobsPerSec: o.jobs / seconds,
      transitionsPerSec: (5 * o.jobs) / seconds,
      claimP50Ms: quantile(claims, 0.5),
      claimP99Ms: quantile(claims, 0.99),
      patchP50Ms: quantile(patches, 0.5),
      patchP99Ms: quantile(patches, 0.99),
      clientCpu: coreShare(cpuBefore, cpuAfter, 0),
      serverCpu: coreShare(cpuBefore, cpuAfter, 1),
      othersCpu: othersShare(cpuBefore, cpuAfter),
    };
  } finally {
    await pool.close();
  }
}

/**
 * Runs the HTTP lifecycle. `inProcess`: the in-process figure of this run to compare
 * with (same depth, same number of factories); measured here when not given.
 */
export async function runHttpLifecycleBench(
  partial: Partial<HttpLifecycleOptions> = {},
  shared?: QueueTemplates,
  inProcess?: LifecycleRow,
): Promise<HttpLifecycleSection> {
  const o = { ...DEFAULT_HTTP_LIFECYCLE, ...partial };
  const templates = shared ?? new QueueTemplates(o.jobs + o.warmup);
  say(
    `== http lifecycle: ${o.factories} HTTP factories, claim → building → review → testing → shipped through \`fleet serve\` (SQLite FULL), beside the same in process ==`,
  );
  const deadline = new AbortController();
  setMaxListeners(4 * o.factories + 20, deadline.signal);
  const timer = setTimeout(() => {
    say(`http lifecycle: the ${o.timeoutMs / 1000} s deadline passed; stopping`);
    deadline.abort();
    killLive();
  }, o.timeoutMs);
  process.on('exit', killLive);
  const dir = mkdtempSync(join(tmpdir(), 'fleet-http-lifecycle-'));
  try {
    const reference =
      inProcess ??
      (await measureLifecycle(templates, o.depth, o.factories, o.jobs, 'http-lifecycle-inprocess'));
    say(
      `in process (${inProcess ? 'the lifecycle section of this run' : 'measured now'}): ${int(reference.jobsPerSec)} jobs/s = ${int(reference.transitionsPerSec)} transitions/s (${reference.factories} factories, ${int(reference.jobs)} jobs)`,
    );
    const path = await templates.copy(o.depth, o.jobs + o.warmup, dir);
    const server = await startFleet({ FLEET_STORE: 'sqlite', FLEET_DB: path }, deadline.signal);
    try {
      const r = await httpLoad(server.url, server.pid, o, deadline.signal);
      const result: HttpLifecycleResult = { ...r, inProcess: reference };
      say(
        `over HTTP: ${int(r.jobsPerSec)} jobs/s = ${int(r.transitionsPerSec)} transitions/s ` +
          `(${(r.jobsPerSec / reference.jobsPerSec).toFixed(2)}× in process; goal ≥ ${HTTP_LIFECYCLE_GOAL.toFixed(2)})`,
      );
      say(
        `  claim p50 ${r.claimP50Ms.toFixed(2)} ms, p99 ${r.claimP99Ms.toFixed(2)} ms; ` +
          `PATCH p50 ${r.patchP50Ms.toFixed(2)} ms, p99 ${r.patchP99Ms.toFixed(2)} ms; ` +
          `CPU: clients ${pct(r.clientCpu)}, server ${pct(r.serverCpu)} of a core; other processes ${pct(r.othersCpu)} of the machine`,
      );
      return result;
    } finally {
      await server.stop();
    }
  } catch (e) {
    const why = deadline.signal.aborted ? 'stopped at the deadline' : (e as Error).message;
    say(`http lifecycle: ${why}`);
    return { error: why };
  } finally {
    clearTimeout(timer);
    killLive();
    process.off('exit', killLive);
    rmSync(dir, { recursive: true, force: true });
    if (shared === undefined) templates.remove();
  }
}

/** Goal 2 as summary rows (the ratio, and the claim p99 it asks to report). */
export function httpLifecycleGoals(r: HttpLifecycleSection): GoalRow[] {
  const goal = '2. HTTP lifecycle (32 factories) / in process';
  const target = `≥ ${HTTP_LIFECYCLE_GOAL.toFixed(2)}×`;
  if ('error' in r) return [notMeasured(goal, target, r.error)];
  const share = r.jobsPerSec / r.inProcess.jobsPerSec;
  return [
    atLeast(
      goal,
      `${share.toFixed(2)}× (${int(r.transitionsPerSec)} vs ${int(r.inProcess.transitionsPerSec)} transitions/s; claim p50 ${r.claimP50Ms.toFixed(1)} ms, p99 ${r.claimP99Ms.toFixed(1)} ms)`,
      share,
      HTTP_LIFECYCLE_GOAL,
      target,
    ),
  ];
}

export function httpLifecycleOptionsFromArgs(args: string[]): Partial<HttpLifecycleOptions> {
  const { values } = parseArgs({
    args,
    options: {
      jobs: { type: 'string' },
      factories: { type: 'string' },
      quick: { type: 'boolean' },
    },
    strict: false,
  });
  const out: Partial<HttpLifecycleOptions> = values.quick ? { jobs: 3_000, warmup: 300 } : {};
  if (typeof values.jobs === 'string') out.jobs = Number(values.jobs);
  if (typeof values.factories === 'string') out.factories = Number(values.factories);
  return out;
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runHttpLifecycleBench(httpLifecycleOptionsFromArgs(process.argv.slice(2)));
}
