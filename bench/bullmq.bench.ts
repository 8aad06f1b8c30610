/**
 * The peer on the same machine: BullMQ on Redis with every write fsynced, beside Fleet.
 *
 *   npx tsx bench/bullmq.bench.ts [--jobs=N] [--workers=32] [--quick]
 *
 * When `redis-server` is on PATH: one is started on 127.0.0.1 (a free port) in a temp
 * folder with `--appendonly yes --appendfsync always` (each write command is in the AOF
 * and fsynced before Redis answers it; no RDB snapshots), in its own process group,
 * killed with it at the end. Then BullMQ (a dev dependency): `jobs` jobs added with
 * `addBulk` in chunks of 1,000 (timed: bulk adds/s), then `workers` `Worker`s, each with
 * its own connections and concurrency 1 and a no-op processor, take and complete them
 * (claim + complete per job: 2 durable operations) until all are completed.
 *
 * Printed beside Fleet's durable transitions/s (in process, SQLite FULL, 32 factories:
 * the lifecycle section of the same run, or measured here when run alone). Without
 * `redis-server`, a one-line reason and nothing else. Asserts nothing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue, Worker } from 'bullmq';
import { type LifecycleRow, measureLifecycle } from './lifecycle.bench.js';
import { beside, type GoalRow, notMeasured } from './support/goals.js';
import { isMain, relaunchWithGc } from './support/main.js';
import { int, say } from './support/report.js';
import { QueueTemplates } from './support/sqlite-queue.js';

export interface BullmqOptions {
  jobs: number;
  workers: number;
  timeoutMs: number;
}

export const DEFAULT_BULLMQ: BullmqOptions = { jobs: 20_000, workers: 32, timeoutMs: 180_000 };

export interface BullmqResult {
  redisVersion: string;
  jobs: number;
  workers: number;
  bulkAddPerSec: number;
  jobsPerSec: number;
  /** claim + complete per job. */
  operationsPerSec: number;
  fleet: LifecycleRow;
}

export type BullmqSection = BullmqResult | { skipped: string } | { error: string };

/** The `redis-server` version line, or null when it is not on PATH. */
function redisVersion(): string | null {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return null;
  return /v=(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.trim();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Starts redis-server (its own process group) and resolves once it accepts connections. */
function startRedis(dir: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--daemonize',
      'no',
    ],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      stopRedis(child);
      reject(new Error(`redis-server did not get ready within 20 s: ${out.slice(-500)}`));
    }, 20_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited (${code}): ${out.slice(-500)}`));
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve(child);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
  });
}

function stopRedis(child: ChildProcess): void {
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function bullmqLoad(
  port: number,
  o: BullmqOptions,
): Promise<Pick<BullmqResult, 'bulkAddPerSec' | 'jobsPerSec' | 'operationsPerSec'>> {
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  const name = 'fleet-bench';
  const queue = new Queue(name, { connection });
  const workers: Worker[] = [];
  try {
    await queue.waitUntilReady();
    let started = performance.now();
    for (let done = 0; done < o.jobs; done += 1_000) {
      const n = Math.min(1_000, o.jobs - done);
      await queue.addBulk(
        Array.from({ length: n }, (_, i) => ({ name: 'task', data: { n: done + i } })),
      );
    }
    const bulkAddPerSec = (o.jobs / (performance.now() - started)) * 1000;
    let completed = 0;
    let finish: () => void = () => {};
    const allDone = new Promise<void>((resolve) => {
      finish = resolve;
    });
    for (let w = 0; w < o.workers; w++) {
      const worker = new Worker(name, async () => null, {
        connection,
        concurrency: 1,
        autorun: false,
      });
      worker.on('completed', () => {
        if (++completed === o.jobs) finish();
      });
      worker.on('error', (e) => say(`bullmq worker: ${e.message}`));
      await worker.waitUntilReady();
      workers.push(worker);
    }
    started = performance.now();
    for (const worker of workers) void worker.run();
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`only ${completed} of ${o.jobs} completed in time`)),
        o.timeoutMs,
      ).unref(),
    );
    await Promise.race([allDone, timeout]);
    const seconds = (performance.now() - started) / 1000;
    return {
      bulkAddPerSec,
      jobsPerSec: o.jobs / seconds,
      operationsPerSec: (2 * o.jobs) / seconds,
    };
  } finally {
    await Promise.all(workers.map((w) => w.close(true).catch(() => {})));
    await queue.close().catch(() => {});
  }
}

export async function runBullmqBench(
  partial: Partial<BullmqOptions> = {},
  fleet?: LifecycleRow,
): Promise<BullmqSection> {
  const o = { ...DEFAULT_BULLMQ, ...partial };
  const version = redisVersion();
  if (version === null) {
    const why = 'redis-server is not on PATH: the BullMQ comparison is skipped';
    say(`== bullmq: ${why} ==`);
    return { skipped: why };
  }
  say(
    `== bullmq ${o.workers} workers, claim + complete per job, Redis ${version} with appendfsync always, beside Fleet ==`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-redis-'));
  let redis: ChildProcess | null = null;
  const kill = (): void => {
    if (redis) stopRedis(redis);
  };
  process.on('exit', kill);
  try {
    let reference = fleet;
    if (reference === undefined) {
      const templates = new QueueTemplates(o.jobs + 200);
      try {
        reference = await measureLifecycle(templates, 1_000, 32, o.jobs, 'bullmq-fleet');
      } finally {
        templates.remove();
      }
    }
    redis = await startRedis(dir, await freePort());
    const r = await bullmqLoad(Number(redis.spawnargs[2]), o);
    const result: BullmqResult = {
      redisVersion: version,
      jobs: o.jobs,
      workers: o.workers,
      ...r,
      fleet: reference,
    };
    say(
      `BullMQ: bulk add ${int(r.bulkAddPerSec)} jobs/s; ${o.workers} workers ${int(r.jobsPerSec)} jobs/s = ${int(r.operationsPerSec)} durable operations/s (${int(o.jobs)} jobs)`,
    );
    say(
      `Fleet (${fleet ? 'the lifecycle section of this run' : 'measured now'}): ${int(reference.jobsPerSec)} jobs/s = ${int(reference.transitionsPerSec)} durable transitions/s = ${(reference.transitionsPerSec / r.operationsPerSec).toFixed(2)}× BullMQ's durable operations/s`,
    );
    return result;
  } catch (e) {
    const why = (e as Error).message;
    say(`bullmq: ${why}`);
    return { error: why };
  } finally {
    kill();
    process.off('exit', kill);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Goal 8 as a summary row: Fleet's durable transitions/s ÷ BullMQ's durable operations/s. */
export function bullmqGoals(r: BullmqSection): GoalRow[] {
  const goal = '8. Fleet transitions/s beside BullMQ ops/s';
  if ('skipped' in r) return [notMeasured(goal, 'none (beside)', r.skipped)];
  if ('error' in r) return [notMeasured(goal, 'none (beside)', r.error)];
  return [
    beside(
      goal,
      `${int(r.fleet.transitionsPerSec)} vs ${int(r.operationsPerSec)}/s (jobs/s ${int(r.fleet.jobsPerSec)} vs ${int(r.jobsPerSec)})`,
      r.fleet.transitionsPerSec / r.operationsPerSec,
    ),
  ];
}

export function bullmqOptionsFromArgs(args: string[]): Partial<BullmqOptions> {
  const { values } = parseArgs({
    args,
    options: {
      jobs: { type: 'string' },
      workers: { type: 'string' },
      quick: { type: 'boolean' },
    },
    strict: false,
  });
  const out: Partial<BullmqOptions> = values.quick ? { jobs: 5_000 } : {};
  if (typeof values.jobs === 'string') out.jobs = Number(values.jobs);
  if (typeof values.workers === 'string') out.workers = Number(values.workers);
  return out;
}

if (isMain(import.meta.url)) {
  relaunchWithGc(import.meta.url);
  await runBullmqBench(bullmqOptionsFromArgs(process.argv.slice(2)));
}
