/**
 * The supervisor under blocked jobs: how long requests wait while sweeps and dependency
 * cascades run, and how soon an expired lease is reaped under load.
 *
 *   npx tsx bench/sweep.bench.ts [--quick] [--fleet-bin=PATH]
 *
 * A Fleet server in its own child process (`fleet serve`, SQLite on a temp file, the
 * server's durable defaults, `FLEET_REAPER_INTERVAL_MS=1000`), driven over HTTP from
 * this process. `--fleet-bin` runs another build's `bin/fleet.mjs` (to measure a
 * version before a change on the same machine).
 *
 * 1. **Sweeps over 3,000 blocked jobs**: 3,000 jobs depend on one job no factory can
 *    claim. `/healthz` is asked every 5 ms for 8 s (about 8 sweeps): p50, p99, max.
 *    Goal: p99 < 50 ms.
 * 2. **A cascade of 3,000 dependents**: the gate job is cancelled (its dependents all go
 *    to `dead_letter`) while `/healthz` is asked: the cancel's own latency, and
 *    `/healthz`'s p99 and max meanwhile.
 * 3. **Big documents**: 20 jobs with 1 MB bodies no factory can claim, and 50 jobs that
 *    depend on all of them: `/healthz` over 8 s of sweeps.
 * 4. **Reaping under load**: a fresh server with 1,000 blocked jobs, 32 factories
 *    working through a queue (claim, building, review, testing, shipped), and one
 *    factory that claims 100 jobs and abandons them. Each abandoned job's delay from its
 *    lease's expiry to its requeue, from the server's own event times (`claimed.data.
 *    expiresAt` → the `lease_expired` event's `at`): p50, p99, max. Goal: p99 ≤ 2 × the
 *    reaper interval.
 *
 * Prints figures; asserts nothing. Children are killed on a deadline and on exit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type ChildServer, cleanEnv, killLive, startChild } from './support/child-server.js';
import { isMain } from './support/main.js';
import { int, quantile, say, table } from './support/report.js';

const PRODUCT = 'bench';
const TOKEN = 'fleet-sweep-bench-token';
const REAPER_MS = 1000;
const LEASE_MS = 3000;
/** Goal of scenario 1: `/healthz` p99 during sweeps, ms. */
export const HEALTHZ_GOAL_MS = 50;

export interface SweepBenchOptions {
  blocked: number;
  cascade: number;
  reapBlocked: number;
  factories: number;
  victims: number;
  workJobs: number;
  sampleMs: number;
  fleetBin: string;
  timeoutMs: number;
}

export interface Latencies {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export interface SweepBenchResult {
  sweeps: Latencies;
  cascade: { cancelMs: number; healthz: Latencies };
  bigDocs: Latencies;
  reap: Latencies & { reaped: number; abandoned: number; shipped: number; seconds: number };
}

const DEFAULTS: SweepBenchOptions = {
  blocked: 3000,
  cascade: 3000,
  reapBlocked: 1000,
  factories: 32,
  victims: 100,
  workJobs: 4000,
  sampleMs: 8000,
  fleetBin: fileURLToPath(new URL('../bin/fleet.mjs', import.meta.url)),
  timeoutMs: 600_000,
};

function stats(values: number[]): Latencies {
  return {
    n: values.length,
    p50: quantile(values, 0.5),
    p99: quantile(values, 0.99),
    max: values.length === 0 ? Number.NaN : Math.max(...values),
  };
}

class Client {
  constructor(readonly url: string) {}
  async call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text === '' ? null : JSON.parse(text)) as T };
  }
  async must<T = { id: string }>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.call<T>(method, path, body);
    if (r.status >= 300)
      throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }
}

async function startServer(o: SweepBenchOptions, dir: string, signal: AbortSignal) {
  return startChild(
    'the Fleet server',
    [o.fleetBin, 'serve'],
    {
      ...cleanEnv(),
      HOST: '127.0.0.1',
      PORT: '0',
      FLEET_LOG_LEVEL: 'warn',
      FLEET_STORE: 'sqlite',
      FLEET_DB: join(dir, 'fleet.db'),
      FLEET_LEASE_MS: String(LEASE_MS),
      FLEET_REAPER_INTERVAL_MS: String(REAPER_MS),
      FLEET_TOKENS: JSON.stringify([
        { token: TOKEN, productId: PRODUCT, roles: ['admin'], subject: 'sweep-bench' },
      ]),
    },
    /^fleet listening on (http:\/\/\S+)$/,
    signal,
  );
}

/** `n` submissions, `concurrency` at a time; `make(i)` builds submission `i`. */
async function submitMany(
  c: Client,
  n: number,
  concurrency: number,
  make: (i: number) => Record<string, unknown>,
): Promise<string[]> {
  const ids: string[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        ids[i] = (await c.must('POST', '/fleet/jobs', make(i))).id;
      }
    }),
  );
  return ids;
}

/** Asks `/healthz` back to back (5 ms apart) until `until()` resolves; the latencies. */
async function probeHealthz(url: string, until: Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  let done = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    const t0 = performance.now();
    const res = await fetch(`${url}/healthz`);
    await res.arrayBuffer();
    out.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 5));
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function scenarioSweeps(
  c: Client,
  o: SweepBenchOptions,
  runTag: string,
): Promise<{ gate: string; sweeps: Latencies }> {
  const gate = (
    await c.must('POST', '/fleet/jobs', {
      idempotencyKey: `${runTag}-gate`,
      bodyMd: 'no factory can take this',
      capabilities: ['never'],
    })
  ).id as string;
  await submitMany(c, o.blocked, 16, (i) => ({
    idempotencyKey: `${runTag}-blocked-${i}`,
    bodyMd: `blocked job ${i}`,
    deps: [gate],
  }));
  const sweeps = stats(await probeHealthz(c.url, sleep(o.sampleMs)));
  return { gate, sweeps };
}

async function scenarioCascade(c: Client, gate: string): Promise<SweepBenchResult['cascade']> {
  const t0 = performance.now();
  let cancelMs = 0;
  const cancel = c.must('POST', `/fleet/jobs/${gate}/cancel`).then(() => {
    cancelMs = performance.now() - t0;
  });
  const probes = await probeHealthz(
    c.url,
    cancel.then(() => sleep(200)),
  );
  return { cancelMs, healthz: stats(probes) };
}

async function scenarioBigDocs(c: Client, o: SweepBenchOptions): Promise<Latencies> {
  const body = `# big\n${'x'.repeat(1_000_000 - 8)}`;
  const big = await submitMany(c, 20, 4, (i) => ({
    idempotencyKey: `big-${i}`,
    bodyMd: body,
    capabilities: ['never'],
  }));
  await submitMany(c, 50, 8, (i) => ({
    idempotencyKey: `on-big-${i}`,
    bodyMd: `depends on every big job (${i})`,
    deps: big,
  }));
  return stats(await probeHealthz(c.url, sleep(o.sampleMs)));
}

async function scenarioReap(
  c: Client,
  o: SweepBenchOptions,
  signal: AbortSignal,
): Promise<SweepBenchResult['reap']> {
  const gate = (
    await c.must('POST', '/fleet/jobs', {
      idempotencyKey: 'reap-gate',
      bodyMd: 'no factory can take this',
      capabilities: ['never'],
    })
  ).id as string;
  await submitMany(c, o.reapBlocked, 16, (i) => ({
    idempotencyKey: `reap-blocked-${i}`,
    bodyMd: `blocked ${i}`,
    deps: [gate],
  }));
  await submitMany(c, o.workJobs, 16, (i) => ({
    idempotencyKey: `work-${i}`,
    bodyMd: `work ${i}`,
    capabilities: ['work'],
  }));
  const victims = await submitMany(c, o.victims, 8, (i) => ({
    idempotencyKey: `victim-${i}`,
    bodyMd: `abandoned ${i}`,
    capabilities: ['victim'],
    retry: { max: 5 },
  }));
  let stop = false;
  let shipped = 0;
  const started = performance.now();
  const workers = Array.from({ length: o.factories }, async (_, w) => {
    const factoryId = `worker-${w}`;
    while (!stop && !signal.aborted) {
      const r = await c.call<{ job: { id: string }; lease: { leaseEpoch: number } }>(
        'POST',
        '/fleet/claim',
        { factoryId, capabilities: ['work'], waitMs: 500 },
      );
      if (r.status !== 200) continue;
      const me = { factoryId, leaseEpoch: r.body.lease.leaseEpoch };
      for (const to of ['building', 'review', 'testing', 'shipped']) {
        const p = await c.call('PATCH', `/fleet/jobs/${r.body.job.id}`, { ...me, to });
        if (p.status !== 200) break;
        if (to === 'shipped') shipped++;
      }
    }
  });
  // The abandoning factory claims every victim once, then goes away.
  for (let i = 0; i < o.victims; i++) {
    const r = await c.call('POST', '/fleet/claim', {
      factoryId: 'abandoner',
      capabilities: ['victim'],
    });
    if (r.status !== 200) throw new Error(`the abandoning factory got ${r.status}`);
  }
  // Wait until every victim was reaped (bounded).
  const deadline = performance.now() + 120_000;
  let reaped = 0;
  while (performance.now() < deadline && !signal.aborted) {
    await sleep(500);
    reaped = 0;
    for (const id of victims) {
      const job = await c.must<{ stage: string }>('GET', `/fleet/jobs/${id}`);
      if (job.stage === 'queued') reaped++;
    }
    if (reaped === victims.length) break;
  }
  stop = true;
  await Promise.all(workers);
  const seconds = (performance.now() - started) / 1000;
  const delays: number[] = [];
  for (const id of victims) {
    const { items: events } = await c.must<{
      items: Array<{ type: string; at: string; data: { expiresAt?: string } }>;
    }>('GET', `/fleet/jobs/${id}/events?limit=50`);
    const claimed = events.find((e) => e.type === 'claimed');
    const expired = events.find((e) => e.type === 'lease_expired');
    if (claimed?.data.expiresAt && expired) {
      delays.push(Date.parse(expired.at) - Date.parse(claimed.data.expiresAt));
    }
  }
  return { ...stats(delays), reaped, abandoned: victims.length, shipped, seconds };
}

export async function runSweepBench(
  options: Partial<SweepBenchOptions> = {},
): Promise<SweepBenchResult> {
  const o = { ...DEFAULTS, ...options };
  const abort = new AbortController();
  const deadline = setTimeout(() => {
    abort.abort();
    killLive();
  }, o.timeoutMs);
  process.on('exit', killLive);
  const dirs: string[] = [];
  const servers: ChildServer[] = [];
  try {
    say(
      `== sweeps: /healthz during sweeps over ${int(o.blocked)} blocked jobs, a cascade of ${int(o.cascade)}, big documents; reaping under load (SQLite FULL, reaper every ${REAPER_MS} ms) ==`,
    );
    const dir1 = mkdtempSync(join(tmpdir(), 'fleet-sweep-bench-'));
    dirs.push(dir1);
    const s1 = await startServer(o, dir1, abort.signal);
    servers.push(s1);
    const c1 = new Client(s1.url);
    const { gate, sweeps } = await scenarioSweeps(c1, o, 'sweep');
    const cascade = await scenarioCascade(c1, gate);
    const bigDocs = await scenarioBigDocs(c1, o);
    await s1.stop();

    const dir2 = mkdtempSync(join(tmpdir(), 'fleet-sweep-bench-'));
    dirs.push(dir2);
    const s2 = await startServer(o, dir2, abort.signal);
    servers.push(s2);
    const reap = await scenarioReap(new Client(s2.url), o, abort.signal);
    await s2.stop();

    const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
    say(
      table(
        ['/healthz while …', 'samples', 'p50 ms', 'p99 ms', 'max ms'],
        [
          [
            `sweeps over ${int(o.blocked)} blocked`,
            int(sweeps.n),
            ms(sweeps.p50),
            ms(sweeps.p99),
            ms(sweeps.max),
          ],
          [
            `a cancel cascading to ${int(o.cascade)}`,
            int(cascade.healthz.n),
            ms(cascade.healthz.p50),
            ms(cascade.healthz.p99),
            ms(cascade.healthz.max),
          ],
          [
            'sweeps with 20 × 1 MB blocked deps',
            int(bigDocs.n),
            ms(bigDocs.p50),
            ms(bigDocs.p99),
            ms(bigDocs.max),
          ],
        ],
      ),
    );
    say(
      `the cancel itself (${int(o.cascade)} dependents to dead_letter): ${ms(cascade.cancelMs)} ms`,
    );
    say(
      `reaping: ${reap.reaped}/${reap.abandoned} abandoned leases requeued while ${o.factories} factories shipped ${int(reap.shipped)} jobs in ${reap.seconds.toFixed(0)} s beside ${int(o.reapBlocked)} blocked; expiry → requeue p50 ${int(reap.p50)} ms, p99 ${int(reap.p99)} ms, max ${int(reap.max)} ms`,
    );
    for (const line of sweepSummary({ sweeps, cascade, bigDocs, reap })) say(line);
    return { sweeps, cascade, bigDocs, reap };
  } finally {
    clearTimeout(deadline);
    for (const s of servers) await s.stop();
    killLive();
    process.off('exit', killLive);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** The goals as ratios (lower is better for both). */
export function sweepSummary(r: SweepBenchResult): string[] {
  return [
    `sweeps: /healthz p99 ${r.sweeps.p99.toFixed(1)} ms during sweeps over blocked jobs (${(r.sweeps.p99 / HEALTHZ_GOAL_MS).toFixed(2)}× the 50 ms ceiling), ${r.cascade.healthz.p99.toFixed(1)} ms during a 3k cascade`,
    `sweeps: lease expiry → requeue p99 ${int(r.reap.p99)} ms (${(r.reap.p99 / (2 * REAPER_MS)).toFixed(2)}× the ceiling of 2 reaper intervals)`,
  ];
}

export function sweepOptionsFromArgs(args: string[]): Partial<SweepBenchOptions> {
  const { values } = parseArgs({
    args,
    options: { quick: { type: 'boolean' }, 'fleet-bin': { type: 'string' } },
    strict: false,
  });
  return {
    ...(values.quick
      ? {
          blocked: 1000,
          cascade: 1000,
          reapBlocked: 300,
          workJobs: 1500,
          victims: 40,
          sampleMs: 4000,
        }
      : {}),
    ...(typeof values['fleet-bin'] === 'string' ? { fleetBin: values['fleet-bin'] } : {}),
  };
}

if (isMain(import.meta.url)) {
  await runSweepBench(sweepOptionsFromArgs(process.argv.slice(2)));
}
