/**
 * Claims from several Fleet processes sharing one Cosmos DB database, against
 * `@vercel/cosmosdb-server`, beside the same server's raw conditional-replace rate.
 *
 *   npx tsx bench/cosmos.bench.ts [--quick] [--queued=3000] [--seconds=9]
 *       [--processes=1,3,6] [--spreads=1,2,4,8] [--claimers=8] [--server=child|parent]
 *
 * Layout: one cosmosdb-server in its own child process, and up to six client processes
 * (`support/cosmos-worker.ts`, forked with `--import tsx`), each a Fleet process with its
 * own `openCosmosStore` connection and its own `Coordinator`. This process only seeds
 * queues and coordinates over IPC; it is idle while a measurement runs. The server runs
 * in a child rather than here so that nothing else (seeding, IPC, and under
 * `bench/run.ts` the garbage collector of a heap the earlier benchmarks grew) ever runs
 * on its event loop; `--server=parent` hosts it here instead, for comparison (measured
 * on 2 cores beside a neighbour using half the machine: claims/s the same within the
 * noise, the server being saturated by the claim query either way; raw replaces at 6
 * processes 377/s against 543/s with the server in a child).
 *
 * 1. **Raw conditional replace**, at each process count: each process runs `claimers`
 *    loops of `jobs.read` → `jobs.replace` with `IfMatch` (through the adapter), each
 *    loop on a job document of its own (no contention: no 412). Replaces/s, each with
 *    the read before it (2 requests).
 * 2. **Claims**: a fresh database per configuration, seeded with `queued` jobs of one
 *    product (documents as `submit` stores them, mixed priorities, see
 *    `support/job-docs.ts`); each process registers `claimers` factories and runs that
 *    many concurrent `coordinator.claimNextJob(productId, { factoryId })` loops (a
 *    process's claims of one product wait in its mailbox: one in flight per process;
 *    across processes, etags decide). Measured at every process count with claim spread
 *    1 and the Cosmos default (`DEFAULTS.cosmosClaimSpread`, marked `*`), and at the
 *    most processes with every spread of `spreads`.
 *
 * Every process warms up first (a cold process runs the SDK at half speed), then all
 * start together; a measurement is split into `windows` consecutive windows, read in
 * every process and the server at the same instants, and the fastest window's rate is
 * reported (other processes on a shared machine only ever slow it down: the `others`
 * column is their share of the machine). Per-claim figures come from all windows:
 * conflicts (412 answers, the adapter's `stats().preconditionFailed`) per successful
 * claim, store requests per claim (adapter: reads + queries + writes; and as the server
 * counted them, which includes the query-plan request the SDK sends with every query),
 * the server's CPU per claim (and claims per server CPU-second, the figure least
 * disturbed by a noisy neighbour) and its event loop's busy share. Goals (issue):
 * claims/s ≥ 0.50 × the raw replace rate at the same process count, and fewer than one
 * conflict per claim at 6 processes. Prints figures; asserts nothing.
 *
 * On cosmosdb-server a query is a scan: it filters and sorts every document of the
 * container in JavaScript (no index), and it runs the SDK's query-plan request as a
 * second full query, so a claim's server cost grows with the jobs stored (measured on
 * 2 cores: ≈ 13 ms of server CPU per claim at 1,000 jobs, ≈ 50 ms at 3,000, against
 * 0.3–0.7 ms per read + replace). A Cosmos DB account serves the claim query from its
 * composite index; the ratio printed here is the emulator's, not the account's.
 *
 * Claim spread, measured at 6 processes (3,000 jobs, four runs): conflicts per claim
 * 0.8–1.2 with spread 1 (a lost race costs another claim query: 1.5–1.7 queries per
 * claim, 67–112 ms of server CPU), 0.4–0.6 with 2, 0.2–0.33 with 4, 0.06–0.15 with 8,
 * 0.05 with 16; from 2 up, claims/s and server CPU per claim (47–62 ms) are the same
 * within the noise. Hence the Cosmos default of 4: under the goal with margin at 6
 * processes, while a job is overtaken by at most 3 older ones of its priority.
 *
 * With `FLEET_BENCH_CPU_PROFILE=<dir>`, the server and every client write V8 CPU
 * profiles into `<dir>/cosmos-<name>/` when they exit (one per thread; the main
 * thread's is the `.0.001` one; see `bench/profile-summary.ts`).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../adapters/http/config.js';
import { type CosmosStoreStats, openCosmosStore } from '../adapters/store/cosmos/index.js';
import {
  BENCH_COSMOS_KEY,
  type ChildMessage,
  type ClaimTask,
  hostCosmosServer,
  type ParentMessage,
  type RawTask,
  type ServerCounters,
  wallNow,
} from './support/cosmos-worker.js';
import { checkAgainstSubmit } from './support/job-docs.js';
import { isMain } from './support/main.js';
import { profileDir } from './support/profile.js';
import { type CpuSample, cpuSample, int, othersShare, say, table } from './support/report.js';
import { JobFeed, ONE_SET } from './support/workload.js';

const PRODUCT = 'bench';
const WORKER = fileURLToPath(new URL('./support/cosmos-worker.ts', import.meta.url));
/** Goal: claims/s ≥ this share of the raw conditional-replace rate. */
export const COSMOS_RATIO_GOAL = 0.5;
/** Goal: fewer conflicts (412) than this per successful claim, at the most processes. */
export const COSMOS_CONFLICT_GOAL = 1;
/** The claim spread a Cosmos DB server uses unless `FLEET_CLAIM_SPREAD` says otherwise. */
export const COSMOS_DEFAULT_SPREAD: number = DEFAULTS.cosmosClaimSpread;

export interface CosmosBenchOptions {
  /** Jobs seeded into each claim configuration's fresh database. @defaultValue 3_000 */
  queued: number;
  /** Process counts. @defaultValue [1, 3, 6] */
  processes: number[];
  /** Claim spreads measured at the largest process count. @defaultValue [1, 2, 4, 8] */
  spreads: number[];
  /** Concurrent claimers (and raw loops) per process. @defaultValue 8 */
  claimers: number;
  /** Measured seconds per claim configuration. @defaultValue 9 */
  seconds: number;
  /** Measured seconds per raw-replace configuration. @defaultValue 3 */
  rawSeconds: number;
  /**
   * Each measurement is split into this many consecutive windows; the fastest window's
   * rate is reported (other processes on the machine only ever slow it down).
   * @defaultValue 3
   */
  windows: number;
  /** Warm-up per configuration, ms. @defaultValue 1_000 */
  warmupMs: number;
  /**
   * Before anything is measured, every process (and the server) warms up for this long
   * on raw replaces and again on claims (a cold process runs the SDK at half speed).
   * @defaultValue 2
   */
  warmupSeconds: number;
  /** Where cosmosdb-server runs. @defaultValue 'child' */
  server: 'child' | 'parent';
  /** The whole bench gives up (and kills its children) after this long. @defaultValue 600_000 */
  timeoutMs: number;
}

export const DEFAULT_COSMOS_OPTIONS: CosmosBenchOptions = {
  queued: 3_000,
  processes: [1, 3, 6],
  spreads: [1, 2, 4, 8],
  claimers: 8,
  seconds: 9,
  rawSeconds: 3,
  windows: 3,
  warmupMs: 1_000,
  warmupSeconds: 2,
  server: 'child',
  timeoutMs: 600_000,
};

/** What the server did over one window (a counters delta). */
export interface ServerShare {
  /** Requests of each kind the server answered. */
  counters: Omit<ServerCounters, 'cpuMs' | 'busyMs'>;
  cpuMs: number;
  /** Its event loop's busy share of the wall time (0..1; includes waiting for a CPU). */
  busy: number;
}

/** One measured window, every process together. */
export interface Window {
  seconds: number;
  /** Claims handed out (or raw replaces applied). */
  ops: number;
  perSec: number;
  nulls: number;
  errors: number;
  /** The adapter's counters, summed over the processes. */
  stats: CosmosStoreStats;
  server: ServerShare;
  /** The client processes' CPU, ms. */
  clientCpuMs: number;
  /** Share of the machine other processes used meanwhile (a noisy neighbour), or null. */
  others: number | null;
}

export interface Measured {
  windows: Window[];
  /** The fastest window: its rate is the one reported. */
  best: Window;
  /** Every window together: the per-operation figures (412s, requests, CPU) come from it. */
  total: Window;
  firstError: string | null;
}

export interface CosmosRawRow extends Measured {
  processes: number;
  /** Read + conditional replace pairs per second (the fastest window). */
  perSec: number;
}

export interface CosmosClaimRow extends Measured {
  processes: number;
  spread: number;
  /** Claims per second (the fastest window). */
  perSec: number;
  /** Seconds it took to seed the queue. */
  fillSec: number;
}

export interface CosmosBenchResult {
  queued: number;
  claimers: number;
  serverPlace: 'child' | 'parent';
  raw: CosmosRawRow[];
  claims: CosmosClaimRow[];
}

// ---------------------------------------------------------------------------------------
// Child processes

/** Children alive right now: killed on the deadline and when this process exits. */
const live = new Set<ChildProcess>();
const killLive = (): void => {
  for (const c of live) c.kill('SIGKILL');
};

/** A forked `cosmos-worker.ts` and a strict request/answer protocol over IPC. */
class Worker {
  readonly #proc: ChildProcess;
  readonly #inbox: ChildMessage[] = [];
  #waiter: ((m: ChildMessage | Error) => void) | null = null;
  #exited: Error | null = null;

  constructor(role: 'server' | 'client', name: string) {
    const dir = profileDir();
    this.#proc = fork(WORKER, [role], {
      execArgv: [
        '--import',
        import.meta.resolve('tsx'),
        // One directory per child: node names each thread's profile (the main thread's
        // and the tsx loader's) itself.
        ...(dir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(dir, `cosmos-${name}`)}`]),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    live.add(this.#proc);
    this.#proc.on('message', (m: ChildMessage) => this.#deliver(m));
    // A failed spawn or send (the child is gone): whoever waits for an answer hears it.
    this.#proc.on('error', (e) => this.#deliver(e));
    this.#proc.once('exit', (code, signal) => {
      live.delete(this.#proc);
      this.#exited = new Error(`cosmos ${name} exited (${signal ?? code})`);
      this.#deliver(this.#exited);
    });
  }

  #deliver(m: ChildMessage | Error): void {
    const w = this.#waiter;
    if (w) {
      this.#waiter = null;
      w(m);
    } else if (!(m instanceof Error)) this.#inbox.push(m);
  }

  /** The next message, which must be of `type` (a `failed` one rejects with its message). */
  next<T extends ChildMessage['type']>(type: T): Promise<Extract<ChildMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const take = (m: ChildMessage | Error): void => {
        if (m instanceof Error) reject(m);
        else if (m.type === type) resolve(m as Extract<ChildMessage, { type: T }>);
        else if (m.type === 'failed') reject(new Error(m.message));
        else reject(new Error(`expected ${type} from a cosmos worker, got ${m.type}`));
      };
      const queued = this.#inbox.shift();
      if (queued) take(queued);
      else if (this.#exited) take(this.#exited);
      else this.#waiter = take;
    });
  }

  get pid(): number {
    return this.#proc.pid ?? 0;
  }

  send(msg: ParentMessage): void {
    this.#proc.send(msg);
  }

  ask<T extends ChildMessage['type']>(
    msg: ParentMessage,
    answer: T,
  ): Promise<Extract<ChildMessage, { type: T }>> {
    const reply = this.next(answer);
    this.send(msg);
    return reply;
  }

  /** Asks it to exit (so a CPU profile is written); kills it after 5 s. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise<void>((resolve) => this.#proc.once('exit', () => resolve()));
    try {
      this.send({ type: 'exit' });
    } catch {
      // Already disconnected.
    }
    const killer = setTimeout(() => this.#proc.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(killer);
  }
}

/** The server, wherever it runs: its endpoint, its counters, and a way to stop it. */
interface ServerHandle {
  endpoint: string;
  /** The server's process, or null when it runs in this one. */
  pid: number | null;
  counters(): Promise<ServerCounters>;
  stop(): Promise<void>;
}

async function startServer(place: 'child' | 'parent'): Promise<ServerHandle> {
  if (place === 'parent') {
    const host = await hostCosmosServer();
    return {
      endpoint: host.endpoint,
      pid: null,
      counters: async () => host.counters(),
      stop: () => host.close(),
    };
  }
  const w = new Worker('server', 'server');
  const { endpoint } = await w.next('listening');
  return {
    endpoint,
    pid: w.pid,
    counters: async () => (await w.ask({ type: 'counters' }, 'counters')).counters,
    stop: () => w.stop(),
  };
}

// ---------------------------------------------------------------------------------------
// CPU readings (Linux /proc; null elsewhere)

// ---------------------------------------------------------------------------------------
// Measurements

const ZERO_STATS: CosmosStoreStats = {
  reads: 0,
  queries: 0,
  writes: 0,
  preconditionFailed: 0,
  unknownOutcomes: 0,
};

const addStats = (a: CosmosStoreStats, b: CosmosStoreStats, sign = 1): CosmosStoreStats => ({
  reads: a.reads + sign * b.reads,
  queries: a.queries + sign * b.queries,
  writes: a.writes + sign * b.writes,
  preconditionFailed: a.preconditionFailed + sign * b.preconditionFailed,
  unknownOutcomes: a.unknownOutcomes + sign * b.unknownOutcomes,
});

/** The adapter's requests (reads + queries + writes). */
const requestsOf = (s: CosmosStoreStats): number => s.reads + s.queries + s.writes;

const counterDelta = (a: ServerCounters, b: ServerCounters): ServerShare['counters'] => ({
  requests: b.requests - a.requests,
  reads: b.reads - a.reads,
  queries: b.queries - a.queries,
  queryPlans: b.queryPlans - a.queryPlans,
  writes: b.writes - a.writes,
  preconditionFailed: b.preconditionFailed - a.preconditionFailed,
  other: b.other - a.other,
  connections: b.connections - a.connections,
});

/** Sums windows into one (rates over the summed time). */
function combine(windows: readonly Window[]): Window {
  const sum = (f: (w: Window) => number) => windows.reduce((n, w) => n + f(w), 0);
  const seconds = sum((w) => w.seconds);
  const keys = Object.keys(windows[0]?.server.counters ?? {}) as (keyof ServerShare['counters'])[];
  const counters = Object.fromEntries(
    keys.map((k) => [k, sum((w) => w.server.counters[k])]),
  ) as ServerShare['counters'];
  const others = windows.every((w) => w.others !== null)
    ? sum((w) => (w.others ?? 0) * w.seconds) / seconds
    : null;
  return {
    seconds,
    ops: sum((w) => w.ops),
    perSec: sum((w) => w.ops) / seconds,
    nulls: sum((w) => w.nulls),
    errors: sum((w) => w.errors),
    stats: windows.reduce((a, w) => addStats(a, w.stats), ZERO_STATS),
    server: {
      counters,
      cpuMs: sum((w) => w.server.cpuMs),
      busy: sum((w) => w.server.busy * w.seconds) / seconds,
    },
    clientCpuMs: sum((w) => w.clientCpuMs),
    others,
  };
}

/**
 * Opens the database in every client, seeds it, prepares `tasks` (one per client), then
 * starts them together for `windows` consecutive windows of `windowMs`, reading every
 * process's counters and the server's at each window's end.
 */
async function measure(
  server: ServerHandle,
  clients: readonly Worker[],
  database: string,
  seed: () => Promise<void>,
  tasks: readonly (ClaimTask | RawTask)[],
  windowMs: number,
  windows: number,
): Promise<Measured> {
  const used = clients.slice(0, tasks.length);
  // Every process opens the database before anything is written to it (see
  // support/cosmos-worker.ts: a later open empties the containers on cosmosdb-server).
  await Promise.all(
    used.map((c) => c.ask({ type: 'open', endpoint: server.endpoint, database }, 'opened')),
  );
  await seed();
  await Promise.all(used.map((c, i) => c.ask({ type: 'prepare', task: tasks[i]! }, 'prepared')));
  const pids = [...clients.map((c) => c.pid), ...(server.pid === null ? [] : [server.pid])];
  const serverMarks: Array<{ at: number; counters: ServerCounters; ticks: CpuSample | null }> = [];
  const markServer = async () => {
    const ticks = cpuSample(['self', ...pids]);
    const counters = await server.counters();
    serverMarks.push({ at: wallNow(), counters, ticks });
  };
  await markServer();
  const start = wallNow();
  const answers = used.map((c) => c.next('result'));
  for (const c of used) c.send({ type: 'go', windowMs, windows });
  for (let w = 1; w <= windows; w++) {
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, start + w * windowMs - wallNow())),
    );
    await markServer();
  }
  const results = (await Promise.all(answers)).map((a) => a.result);
  const out: Window[] = [];
  for (let w = 0; w < windows; w++) {
    const a = serverMarks[w]!;
    const b = serverMarks[w + 1]!;
    const per = results.map((r) => ({ a: r.marks[w]!, b: r.marks[w + 1]! }));
    const seconds = per.reduce((n, m) => n + (m.b.at - m.a.at), 0) / per.length / 1000;
    const ops = per.reduce((n, m) => n + m.b.ops - m.a.ops, 0);
    out.push({
      seconds,
      ops,
      perSec: ops / seconds,
      nulls: per.reduce((n, m) => n + m.b.nulls - m.a.nulls, 0),
      errors: per.reduce((n, m) => n + m.b.errors - m.a.errors, 0),
      stats: per.reduce((s, m) => addStats(addStats(s, m.b.stats), m.a.stats, -1), ZERO_STATS),
      server: {
        counters: counterDelta(a.counters, b.counters),
        cpuMs: b.counters.cpuMs - a.counters.cpuMs,
        busy: (b.counters.busyMs - a.counters.busyMs) / (b.at - a.at),
      },
      clientCpuMs: per.reduce((n, m) => n + m.b.cpuMs - m.a.cpuMs, 0),
      others: othersShare(a.ticks, b.ticks),
    });
  }
  return {
    windows: out,
    best: out.reduce((x, y) => (y.perSec > x.perSec ? y : x)),
    total: combine(out),
    firstError: results.find((r) => r.firstError !== null)?.firstError ?? null,
  };
}

const freshDatabase = (tag: string): string => `bench_${tag}_${randomBytes(4).toString('hex')}`;

async function adminStore(endpoint: string, database: string) {
  return openCosmosStore({
    endpoint,
    key: BENCH_COSMOS_KEY,
    database,
    allowSelfSignedCertificate: true,
  });
}

async function measureRaw(
  server: ServerHandle,
  clients: readonly Worker[],
  processes: number,
  options: CosmosBenchOptions,
): Promise<CosmosRawRow> {
  const database = freshDatabase(`raw_${processes}p`);
  const admin = await adminStore(server.endpoint, database);
  try {
    const tasks: RawTask[] = Array.from({ length: processes }, (_, i) => ({
      kind: 'raw',
      productId: `raw-${i}`,
      loops: options.claimers,
      warmupMs: options.warmupMs,
    }));
    const windowMs = (options.rawSeconds * 1000) / options.windows;
    const m = await measure(
      server,
      clients,
      database,
      async () => {},
      tasks,
      windowMs,
      options.windows,
    );
    return { processes, perSec: m.best.perSec, ...m };
  } finally {
    await admin.dropDatabase();
  }
}

async function measureClaims(
  server: ServerHandle,
  clients: readonly Worker[],
  processes: number,
  spread: number,
  options: CosmosBenchOptions,
): Promise<CosmosClaimRow> {
  const database = freshDatabase(`claims_${processes}p_s${spread}`);
  const admin = await adminStore(server.endpoint, database);
  try {
    let fillSec = 0;
    const seed = async (): Promise<void> => {
      const started = performance.now();
      await new JobFeed(PRODUCT, ONE_SET, 1).fill(admin, options.queued);
      fillSec = (performance.now() - started) / 1000;
    };
    const tasks: ClaimTask[] = Array.from({ length: processes }, (_, i) => ({
      kind: 'claim',
      productId: PRODUCT,
      claimSpread: spread,
      claimers: options.claimers,
      factoryPrefix: `p${i}`,
      leaseMs: 600_000,
      warmupMs: options.warmupMs,
    }));
    const windowMs = (options.seconds * 1000) / options.windows;
    const m = await measure(server, clients, database, seed, tasks, windowMs, options.windows);
    return { processes, spread, perSec: m.best.perSec, fillSec, ...m };
  } finally {
    await admin.dropDatabase();
  }
}

/** The claim configurations: spread 1 and the default at every count, every spread at the most. */
function plan(options: CosmosBenchOptions): Array<{ processes: number; spread: number }> {
  const most = Math.max(...options.processes);
  const out: Array<{ processes: number; spread: number }> = [];
  for (const processes of [...options.processes].sort((a, b) => a - b)) {
    const spreads = processes === most ? options.spreads : [1, COSMOS_DEFAULT_SPREAD];
    for (const spread of [...new Set(spreads)].sort((a, b) => a - b)) {
      out.push({ processes, spread });
    }
  }
  return out;
}

const perOp = (n: number, ops: number): string => (ops === 0 ? '-' : (n / ops).toFixed(2));
const pct = (share: number): string => `${(share * 100).toFixed(0)}%`;
const pctOrDash = (share: number | null): string => (share === null ? '-' : pct(share));
const windowList = (m: Measured): string =>
  m.windows
    .map((w) => `${w.perSec.toFixed(w.perSec < 100 ? 1 : 0)}@${pctOrDash(w.others)}`)
    .join(' ');
const trouble = (m: Measured): string =>
  (m.total.nulls > 0 ? `  ${m.total.nulls} claims answered null` : '') +
  (m.total.errors > 0 ? `  ${m.total.errors} errors, first: ${m.firstError}` : '') +
  (m.total.stats.unknownOutcomes > 0 ? `  ${m.total.stats.unknownOutcomes} unknown outcomes` : '');

export async function runCosmosBench(
  partial: Partial<CosmosBenchOptions> = {},
): Promise<CosmosBenchResult> {
  const options = { ...DEFAULT_COSMOS_OPTIONS, ...partial };
  const most = Math.max(...options.processes);
  say('== cosmos: claims from several processes on one cosmosdb-server ==');
  say(
    `${int(options.queued)} queued jobs per claim configuration (fresh database); ${options.claimers} claimers ` +
      `(raw: loops) per process; ${options.seconds} s measured per claim configuration, ${options.rawSeconds} s ` +
      `per raw one, each as ${options.windows} windows (the fastest is reported; windows listed as rate@other ` +
      `processes' share of the machine) after ${options.warmupMs} ms warm-up; server in the ` +
      `${options.server === 'child' ? 'child process' : 'bench process'}; ${cpus().length} CPUs`,
  );
  await checkAgainstSubmit();
  const deadline = setTimeout(() => {
    say(`cosmos: the bench took longer than ${options.timeoutMs / 1000} s; stopping it`);
    killLive();
  }, options.timeoutMs);
  deadline.unref();
  process.once('exit', killLive);
  const server = await startServer(options.server);
  const clients = Array.from({ length: most }, (_, i) => new Worker('client', `client${i}`));
  const result: CosmosBenchResult = {
    queued: options.queued,
    claimers: options.claimers,
    serverPlace: options.server,
    raw: [],
    claims: [],
  };
  try {
    await Promise.all(clients.map((c) => c.next('ready')));
    // Unmeasured: JIT-compile the SDK, the adapter, the claim path and the server's
    // query engine in every process before the first measurement.
    const warm = {
      ...options,
      rawSeconds: options.warmupSeconds,
      seconds: options.warmupSeconds,
      windows: 1,
      queued: Math.min(options.queued, 1_000),
    };
    await measureRaw(server, clients, most, warm);
    await measureClaims(server, clients, most, COSMOS_DEFAULT_SPREAD, warm);
    for (const processes of [...options.processes].sort((a, b) => a - b)) {
      const r = await measureRaw(server, clients, processes, options);
      result.raw.push(r);
      const t = r.total;
      say(
        `raw   ${String(processes).padStart(2)} process(es): ${int(r.perSec).padStart(6)} read+replace/s (${windowList(r)})` +
          `  server ${perOp(t.server.cpuMs, t.ops)} ms CPU/replace, busy ${pct(t.server.busy)}` +
          `  clients ${perOp(t.clientCpuMs, t.ops)} ms CPU/replace` +
          (t.stats.preconditionFailed > 0
            ? `  ${t.stats.preconditionFailed} × 412 (the bench is wrong)`
            : '') +
          trouble(r),
      );
    }
    for (const { processes, spread } of plan(options)) {
      const c = await measureClaims(server, clients, processes, spread, options);
      result.claims.push(c);
      const t = c.total;
      const s = t.server.counters;
      say(
        `claim ${String(processes).padStart(2)} process(es) spread ${String(spread).padStart(2)}: ` +
          `${c.perSec.toFixed(1).padStart(6)} claims/s (${windowList(c)})  ${perOp(t.stats.preconditionFailed, t.ops)} × 412/claim` +
          `  requests/claim ${perOp(requestsOf(t.stats), t.ops)} (server saw ${perOp(s.requests, t.ops)}: ` +
          `${perOp(s.queries, t.ops)} queries + ${perOp(s.queryPlans, t.ops)} query plans, ` +
          `${perOp(s.reads, t.ops)} reads, ${perOp(s.writes, t.ops)} writes)` +
          `  server ${perOp(t.server.cpuMs, t.ops)} ms CPU/claim, busy ${pct(t.server.busy)}` +
          `  clients ${perOp(t.clientCpuMs, t.ops)} ms CPU/claim  (${t.ops} claims in ${t.seconds.toFixed(1)} s; ` +
          `seeded in ${c.fillSec.toFixed(1)} s)` +
          trouble(c),
      );
    }
  } finally {
    clearTimeout(deadline);
    await Promise.all([...clients.map((c) => c.stop()), server.stop()]);
    process.removeListener('exit', killLive);
  }
  say();
  say(cosmosTable(result));
  say();
  for (const line of cosmosSummary(result)) say(line);
  return result;
}

/** processes × spread: claims/s, conflicts and requests per claim, raw replaces/s, ratio. */
export function cosmosTable(r: CosmosBenchResult): string {
  return table(
    [
      'processes',
      'spread',
      'claims/s',
      '412/claim',
      'req/claim',
      'server req/claim',
      'server ms/claim',
      'per server CPU-s',
      'server busy',
      'others',
      'raw replace/s',
      'ratio',
    ],
    r.claims.map((c) => {
      const raw = r.raw.find((x) => x.processes === c.processes);
      const t = c.total;
      return [
        String(c.processes),
        String(c.spread) + (c.spread === COSMOS_DEFAULT_SPREAD ? '*' : ''),
        c.perSec.toFixed(1),
        perOp(t.stats.preconditionFailed, t.ops),
        perOp(requestsOf(t.stats), t.ops),
        perOp(t.server.counters.requests, t.ops),
        perOp(t.server.cpuMs, t.ops),
        t.server.cpuMs > 0 ? ((t.ops / t.server.cpuMs) * 1000).toFixed(1) : '-',
        pct(t.server.busy),
        pctOrDash(t.others),
        raw ? int(raw.perSec) : '-',
        raw ? (c.perSec / raw.perSec).toFixed(3) : '-',
      ];
    }),
  );
}

/** The goal lines: ratio to the raw replace rate, conflicts per claim, the spreads. */
export function cosmosSummary(r: CosmosBenchResult): string[] {
  const out: string[] = [];
  if (r.claims.length === 0) return out;
  const most = Math.max(...r.claims.map((c) => c.processes));
  const at = (processes: number, spread: number) =>
    r.claims.find((c) => c.processes === processes && c.spread === spread);
  for (const raw of r.raw) {
    const c = at(raw.processes, COSMOS_DEFAULT_SPREAD) ?? at(raw.processes, 1);
    if (!c) continue;
    const t = c.total;
    const serverRequests = t.server.counters.requests / Math.max(1, t.ops);
    out.push(
      `cosmos ${raw.processes} process(es), spread ${c.spread}: ${c.perSec.toFixed(1)} claims/s = ` +
        `${(c.perSec / raw.perSec).toFixed(3)}× the raw conditional-replace rate (${int(raw.perSec)}/s; goal ≥ ${COSMOS_RATIO_GOAL.toFixed(2)}×)` +
        `; per request ${((c.perSec * serverRequests) / (raw.perSec * 2)).toFixed(2)}× ` +
        `(${serverRequests.toFixed(1)} server requests per claim, 2 per replace)` +
        (raw.processes === most
          ? `; ${perOp(t.stats.preconditionFailed, t.ops)} conflicts per claim (goal < ${COSMOS_CONFLICT_GOAL})`
          : ''),
    );
  }
  const spreads = r.claims.filter((c) => c.processes === most);
  if (spreads.length > 1) {
    const fastest = spreads.reduce((x, y) => (y.perSec > x.perSec ? y : x));
    out.push(
      `cosmos spread at ${most} processes: ` +
        spreads
          .map(
            (c) =>
              `${c.spread} → ${c.perSec.toFixed(1)}/s, ${perOp(c.total.stats.preconditionFailed, c.total.ops)} × 412/claim, ` +
              `${perOp(c.total.server.cpuMs, c.total.ops)} ms server CPU/claim`,
          )
          .join('; ') +
        `; fastest: ${fastest.spread} (default ${COSMOS_DEFAULT_SPREAD})`,
    );
  }
  // Where a claim's server time goes: everything but its queries, priced at the raw
  // run's server CPU per request; the rest is the queries.
  const one = r.claims[0]!;
  const raw = r.raw.find((x) => x.processes === one.processes);
  if (one.total.ops > 0 && raw && raw.total.ops > 0) {
    const t = one.total;
    const s = t.server.counters;
    const queries = (s.queries + s.queryPlans) / t.ops;
    const perRequest = raw.total.server.cpuMs / raw.total.ops / 2;
    const rest = (s.requests / t.ops - queries) * perRequest;
    const cpu = t.server.cpuMs / t.ops;
    out.push(
      `cosmos: server CPU per claim ${cpu.toFixed(1)} ms vs ${(2 * perRequest).toFixed(2)} ms per read+replace ` +
        `(${one.processes} process(es), ${int(r.queued)} jobs seeded): ≈ ${(cpu - rest).toFixed(1)} ms of it in ` +
        `${queries.toFixed(1)} queries (the claim query and the query-plan request the SDK sends with it, each a ` +
        `filter-and-sort of the whole container on cosmosdb-server), ≈ ${rest.toFixed(1)} ms in the other ` +
        `${(s.requests / t.ops - queries).toFixed(1)} requests`,
    );
  }
  return out;
}

/** Options from the command line. */
export function cosmosOptionsFromArgs(args: string[]): Partial<CosmosBenchOptions> {
  const { values } = parseArgs({
    args,
    options: {
      queued: { type: 'string' },
      seconds: { type: 'string' },
      processes: { type: 'string' },
      spreads: { type: 'string' },
      claimers: { type: 'string' },
      server: { type: 'string' },
      quick: { type: 'boolean' },
    },
    strict: false,
  });
  const out: Partial<CosmosBenchOptions> = {};
  if (values.quick === true) {
    out.queued = 1_000;
    out.seconds = 3;
    out.rawSeconds = 1.5;
    out.warmupMs = 500;
    out.warmupSeconds = 1;
  }
  const list = (v: string) => v.split(',').map(Number);
  if (typeof values.queued === 'string') out.queued = Number(values.queued);
  if (typeof values.seconds === 'string') out.seconds = Number(values.seconds);
  if (typeof values.processes === 'string') out.processes = list(values.processes);
  if (typeof values.spreads === 'string') out.spreads = list(values.spreads);
  if (typeof values.claimers === 'string') out.claimers = Number(values.claimers);
  if (values.server !== undefined) {
    if (values.server !== 'child' && values.server !== 'parent') {
      throw new RangeError(`--server is child or parent, got ${String(values.server)}`);
    }
    out.server = values.server;
  }
  for (const n of [out.queued ?? 1, out.claimers ?? 1, ...(out.processes ?? [])]) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`not a positive count: ${n}`);
  }
  for (const n of out.spreads ?? []) {
    if (!Number.isInteger(n) || n < 1 || n > 256) throw new RangeError(`not a spread: ${n}`);
  }
  if (out.seconds !== undefined && !(out.seconds > 0)) {
    throw new RangeError(`--seconds must be positive, got ${out.seconds}`);
  }
  return out;
}

if (isMain(import.meta.url)) {
  await runCosmosBench(cosmosOptionsFromArgs(process.argv.slice(2)));
}
