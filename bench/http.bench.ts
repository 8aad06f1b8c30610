/**
 * Claims through the HTTP server, next to the same machine's bare Fastify.
 *
 *   npx tsx bench/http.bench.ts [--claims=N] [--quick]
 *
 * Three servers, each in its own child process (the load generator never shares the
 * server's event loop), each driven by 64 concurrent clients (an undici `Pool` of 64
 * keep-alive connections, one request in flight per connection): a warm-up, then three
 * measured rounds of which the fastest is reported (with every round's rate beside it):
 *
 * 1. **bare Fastify**: `bench/support/hello-server.ts`, `GET /` → `{ hello: 'world' }`,
 *    logger off. Its req/s is the reference of the ratios. It is often the client that
 *    saturates here (see the CPU line): then it is a lower bound of Fastify's.
 * 2. **Fleet, SQLite store**: `node bin/fleet.mjs serve` (`PORT=0`, `FLEET_STORE=sqlite`
 *    on a temp file with the server's defaults, so `synchronous=FULL`: every claim is
 *    durable before it is answered; `FLEET_LOG_LEVEL=warn`; `FLEET_LEASE_MS=600000` so no
 *    lease expires during the run), on a queue filled straight into the file before the
 *    server starts. The clients loop `POST /fleet/claim` with a bearer token, one
 *    factory id per client.
 * 3. **Fleet, memory store**: the same, with the queue submitted over HTTP
 *    (`POST /fleet/jobs`, 64 concurrent, timed but not the headline), which separates
 *    the store's cost from HTTP's.
 *
 * Reported: requests/s, p50/p99 latency (request sent → body read), the status counts
 * (a claim answered 204 found the queue empty: the bench is wrong if any), the CPU each
 * side used (share of one core, from `/proc`) and what other processes used (a noisy
 * neighbour shows there), and claims/s ÷ bare Fastify req/s. Goal: ≥ 0.30 of bare
 * Fastify. Prints figures; asserts nothing. Everything binds 127.0.0.1; counts are
 * bounded, and a deadline (110 s) stops the whole run and kills the children.
 */
import { setMaxListeners } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Dispatcher, Pool } from 'undici';
import { openSqliteStore } from '../adapters/store/sqlite/index.js';
import { type ChildServer, cleanEnv, killLive, startChild } from './support/child-server.js';
import { isMain } from './support/main.js';
import { coreShare, cpuSample, int, othersShare, say, settle } from './support/report.js';
import { JobFeed, ONE_SET } from './support/workload.js';

const PRODUCT = 'bench';
const TOKEN = 'fleet-http-bench-token';
const CAPABILITIES = [...new Set(ONE_SET.flat())].sort();
/** The goal: claims/s through the server ≥ 30% of bare Fastify's req/s. */
export const HTTP_GOAL = 0.3;

const FLEET_BIN = fileURLToPath(new URL('../bin/fleet.mjs', import.meta.url));
const HELLO_SERVER = fileURLToPath(new URL('./support/hello-server.ts', import.meta.url));

export interface HttpBenchOptions {
  /** Concurrent clients (keep-alive connections). */
  connections: number;
  /** Measured requests against bare Fastify. */
  helloRequests: number;
  /** Measured claims per Fleet store. */
  claims: number;
  /** Untimed requests before each measurement. */
  warmup: number;
  /** Measured rounds per server; the best one is reported (shared machines are noisy). */
  rounds: number;
  /** The whole bench gives up after this long. */
  timeoutMs: number;
}

/** One measured run of `drive`. */
export interface LoadResult {
  requests: number;
  seconds: number;
  perSec: number;
  p50Ms: number;
  p99Ms: number;
  /** HTTP status → count (of every round, see `rounds`). */
  statuses: Record<number, number>;
  /** The first answer with an unexpected status, for the report. */
  firstError: string | null;
  /** Share of one core used by this process (the clients) and by the server, or null. */
  clientCpu: number | null;
  serverCpu: number | null;
  /** Share of the whole machine used by every other process (noisy neighbours), or null. */
  othersCpu: number | null;
  /** Requests/s of every measured round (this result is the best one). */
  rounds: number[];
}

/** A section's figures, or why it has none. */
export type Section = LoadResult | { error: string };

export interface HttpBenchResult {
  hello: Section;
  sqlite: Section;
  memory: Section;
  /** Submissions over HTTP that filled the memory store's queue. */
  memoryPrefill: Section;
}

// ---------------------------------------------------------------------------------------
// CPU readings (Linux /proc; null elsewhere)

// ---------------------------------------------------------------------------------------
// Child servers

function startHello(signal: AbortSignal): Promise<ChildServer> {
  return startChild(
    'the hello-world server',
    ['--import', import.meta.resolve('tsx'), HELLO_SERVER],
    { ...cleanEnv(), HOST: '127.0.0.1', PORT: '0' },
    /^hello listening on (http:\/\/\S+)$/,
    signal,
  );
}

export function startFleet(
  store: Record<string, string>,
  signal: AbortSignal,
): Promise<ChildServer> {
  return startChild(
    `the Fleet server (FLEET_STORE=${store.FLEET_STORE})`,
    [FLEET_BIN, 'serve'],
    {
      ...cleanEnv(),
      HOST: '127.0.0.1',
      PORT: '0',
      FLEET_LOG_LEVEL: 'warn',
      FLEET_LEASE_MS: '600000',
      FLEET_TOKENS: JSON.stringify([
        {
          token: TOKEN,
          productId: PRODUCT,
          roles: ['factory', 'submitter', 'admin'],
          subject: 'http-bench',
        },
      ]),
      ...store,
    },
    /^fleet listening on (http:\/\/\S+)$/,
    signal,
  );
}

// ---------------------------------------------------------------------------------------
// Load

/**
 * `total` requests from `pool.connections` concurrent clients, each sending its next
 * request as soon as its previous answer's body is read. `request(i, client)` builds
 * request number `i`. Latency: request sent → body read.
 */
async function drive(
  pool: Pool,
  connections: number,
  total: number,
  request: (i: number, client: number) => Dispatcher.RequestOptions,
  expected: readonly number[],
  serverPid: number,
  signal: AbortSignal,
): Promise<LoadResult> {
  const latencies = new Float64Array(total);
  const statuses: Record<number, number> = {};
  let firstError: string | null = null;
  let issued = 0;
  const cpuBefore = cpuSample(['self', serverPid]);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async (_, client) => {
      while (issued < total) {
        signal.throwIfAborted();
        const i = issued++;
        const t0 = performance.now();
        const res = await pool.request({ ...request(i, client), signal });
        if (expected.includes(res.statusCode)) {
          await res.body.dump();
        } else {
          const text = await res.body.text();
          firstError ??= `${res.statusCode} ${text.slice(0, 300)}`;
        }
        latencies[i] = performance.now() - t0;
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpuAfter = cpuSample(['self', serverPid]);
  latencies.sort();
  const at = (q: number): number =>
    latencies[Math.min(total - 1, Math.max(0, Math.ceil(q * total) - 1))]!;
  return {
    requests: total,
    seconds,
    perSec: total / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    statuses,
    firstError,
    clientCpu: coreShare(cpuBefore, cpuAfter, 0),
    serverCpu: coreShare(cpuBefore, cpuAfter, 1),
    othersCpu: othersShare(cpuBefore, cpuAfter),
    rounds: [total / seconds],
  };
}

const pct = (share: number | null): string =>
  share === null ? '?' : `${Math.round(share * 100)}%`;

function describe(r: LoadResult, unit: string, note = ''): string {
  const statuses = Object.entries(r.statuses)
    .map(([code, n]) => `${code}×${int(n)}`)
    .join(' ');
  const rounds = r.rounds.length > 1 ? `rounds ${r.rounds.map(int).join(' / ')}; ` : '';
  return (
    `${int(r.perSec)} ${unit}/s  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ` +
    `(${rounds}statuses ${statuses})${note}\n    ${r.rounds.length > 1 ? 'best round: ' : ''}` +
    `${int(r.requests)} in ${r.seconds.toFixed(2)} s; CPU: clients ${pct(r.clientCpu)}, ` +
    `server ${pct(r.serverCpu)} of a core; other processes ${pct(r.othersCpu)} of the machine`
  );
}

/**
 * `rounds` measurements: the fastest one's figures, with every round's rate, and the
 * status counts and first error of all rounds together.
 */
async function bestOf(rounds: number, measure: () => Promise<LoadResult>): Promise<LoadResult> {
  const all: LoadResult[] = [];
  for (let i = 0; i < rounds; i++) all.push(await measure());
  const best = all.reduce((a, b) => (b.perSec > a.perSec ? b : a));
  const statuses: Record<number, number> = {};
  for (const r of all) {
    for (const [code, n] of Object.entries(r.statuses)) {
      statuses[Number(code)] = (statuses[Number(code)] ?? 0) + n;
    }
  }
  return {
    ...best,
    statuses,
    firstError: all.find((r) => r.firstError !== null)?.firstError ?? null,
    rounds: all.map((r) => r.perSec),
  };
}

export const AUTH = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

/** Claims as `connections` factories (one per client), warm-up first. */
async function claimLoad(
  server: ChildServer,
  options: HttpBenchOptions,
  signal: AbortSignal,
): Promise<LoadResult> {
  const bodies = Array.from({ length: options.connections }, (_, c) =>
    JSON.stringify({ factoryId: `http-bench-f${c}`, capabilities: CAPABILITIES }),
  );
  const pool = new Pool(server.url, { connections: options.connections });
  try {
    const claim = (_: number, client: number): Dispatcher.RequestOptions => ({
      path: '/fleet/claim',
      method: 'POST',
      headers: AUTH,
      body: bodies[client]!,
    });
    const warm = await drive(
      pool,
      options.connections,
      options.warmup,
      claim,
      [200],
      server.pid,
      signal,
    );
    if (warm.firstError !== null) throw new Error(`warm-up claim answered ${warm.firstError}`);
    return await bestOf(options.rounds, () =>
      drive(pool, options.connections, options.claims, claim, [200], server.pid, signal),
    );
  } finally {
    await pool.close();
  }
}

/** Runs `fn`, turning a failure into a section that says why. */
async function section(
  name: string,
  signal: AbortSignal,
  fn: () => Promise<LoadResult>,
): Promise<Section> {
  if (signal.aborted) return { error: 'skipped: the deadline had passed' };
  try {
    return await fn();
  } catch (e) {
    const why = signal.aborted ? 'stopped at the deadline' : (e as Error).message;
    say(`${name}: ${why}`);
    return { error: why };
  }
}

// ---------------------------------------------------------------------------------------

export async function runHttpBench(
  options: Partial<HttpBenchOptions> = {},
): Promise<HttpBenchResult> {
  const o: HttpBenchOptions = {
    connections: 64,
    helloRequests: 40_000,
    claims: 10_000,
    warmup: 2_000,
    rounds: 3,
    timeoutMs: 110_000,
    ...options,
  };
  say('== http: claims through the Fleet server vs bare Fastify (servers in child processes) ==');
  say(
    `${o.connections} concurrent clients (undici Pool, keep-alive); ${int(o.warmup)} warm-up requests, ` +
      `then ${o.rounds} round(s) of ${int(o.helloRequests)} hello-world requests / ` +
      `${int(o.claims)} claims per store (the best round is reported); ` +
      `${cpus().length} CPUs`,
  );
  await settle(100);
  const deadline = new AbortController();
  const { signal } = deadline;
  // Every in-flight request listens to it.
  setMaxListeners(4 * o.connections + 20, signal);
  const timer = setTimeout(() => {
    say(`http: the ${o.timeoutMs / 1000} s deadline passed; stopping`);
    deadline.abort();
    killLive();
  }, o.timeoutMs);
  // Backstop: if stopping at the deadline itself hangs, leave.
  const backstop = setTimeout(() => {
    killLive();
    process.stderr.write('http bench: still running 15 s after its deadline; exiting\n');
    process.exit(1);
  }, o.timeoutMs + 15_000);
  backstop.unref();
  process.on('exit', killLive);
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-http-'));
  try {
    const hello = await section('bare Fastify', signal, async () => {
      const server = await startHello(signal);
      const pool = new Pool(server.url, { connections: o.connections });
      try {
        const get = (): Dispatcher.RequestOptions => ({ path: '/', method: 'GET' });
        await drive(pool, o.connections, o.warmup, get, [200], server.pid, signal);
        const r = await bestOf(o.rounds, () =>
          drive(pool, o.connections, o.helloRequests, get, [200], server.pid, signal),
        );
        say(`bare Fastify hello-world: ${describe(r, 'req')}`);
        return r;
      } finally {
        await pool.close();
        await server.stop();
      }
    });
    const ratio = (r: LoadResult): string =>
      'perSec' in hello
        ? `  = ${(r.perSec / hello.perSec).toFixed(2)}× bare Fastify (goal ≥ ${HTTP_GOAL.toFixed(2)})`
        : '';

    const sqlite = await section('Fleet sqlite', signal, async () => {
      const path = join(dir, 'fleet.db');
      const filling = performance.now();
      const store = openSqliteStore({ path, synchronous: 'NORMAL' });
      try {
        await new JobFeed(PRODUCT, ONE_SET, 1).fill(store, o.warmup + o.rounds * o.claims + 1_000);
      } finally {
        await store.close();
      }
      say(
        `sqlite: filled ${int(o.warmup + o.rounds * o.claims + 1_000)} queued jobs into the file in ` +
          `${((performance.now() - filling) / 1000).toFixed(1)} s`,
      );
      const server = await startFleet({ FLEET_STORE: 'sqlite', FLEET_DB: path }, signal);
      try {
        const r = await claimLoad(server, o, signal);
        say(`Fleet claims, sqlite (FULL): ${describe(r, 'claims', ratio(r))}`);
        return r;
      } finally {
        await server.stop();
      }
    });

    let memoryPrefill: Section = { error: 'not run' };
    const memory = await section('Fleet memory', signal, async () => {
      const server = await startFleet({ FLEET_STORE: 'memory' }, signal);
      try {
        const pool = new Pool(server.url, { connections: o.connections });
        try {
          const feed = new JobFeed(PRODUCT, ONE_SET, 2);
          const jobs = o.warmup + o.rounds * o.claims + 1_000;
          const submit = (): Dispatcher.RequestOptions => ({
            path: '/fleet/jobs',
            method: 'POST',
            headers: AUTH,
            body: JSON.stringify(feed.nextInput()),
          });
          const p = await drive(pool, o.connections, jobs, submit, [201], server.pid, signal);
          memoryPrefill = p;
          say(`memory: submitted ${int(jobs)} jobs over HTTP: ${describe(p, 'jobs')}`);
          if (p.firstError !== null) throw new Error(`a submission answered ${p.firstError}`);
        } finally {
          await pool.close();
        }
        const r = await claimLoad(server, o, signal);
        say(`Fleet claims, memory:       ${describe(r, 'claims', ratio(r))}`);
        return r;
      } finally {
        await server.stop();
      }
    });
    const result = { hello, sqlite, memory, memoryPrefill };
    say();
    for (const line of httpSummary(result)) say(line);
    return result;
  } finally {
    clearTimeout(timer);
    clearTimeout(backstop);
    killLive();
    process.off('exit', killLive);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The summary lines: bare Fastify, then claims/s per store against it and the goal. */
export function httpSummary(r: HttpBenchResult): string[] {
  const figures = (s: LoadResult, unit: string): string =>
    `${int(s.perSec)} ${unit}/s, p50 ${s.p50Ms.toFixed(2)} ms, p99 ${s.p99Ms.toFixed(2)} ms`;
  const out: string[] = [];
  if ('error' in r.hello) out.push(`http bare Fastify: ${r.hello.error}`);
  else out.push(`http bare Fastify hello-world: ${figures(r.hello, 'req')}`);
  for (const [name, s] of [
    ['sqlite', r.sqlite],
    ['memory', r.memory],
  ] as const) {
    if ('error' in s) {
      out.push(`http claims ${name}: ${s.error}`);
      continue;
    }
    const empty = s.statuses[204] ?? 0;
    const answered = Object.values(s.statuses).reduce((a, b) => a + b, 0);
    const others = answered - (s.statuses[200] ?? 0) - empty;
    out.push(
      `http claims ${name}: ${figures(s, 'claims')}` +
        ('error' in r.hello
          ? ''
          : `; ${(s.perSec / r.hello.perSec).toFixed(2)}× bare Fastify (goal ≥ ${HTTP_GOAL.toFixed(2)})`) +
        (empty > 0 ? `; ${int(empty)} answered 204 (queue ran dry: the bench is wrong)` : '') +
        (others > 0 ? `; ${int(others)} failed (first: ${s.firstError})` : ''),
    );
  }
  return out;
}

export function httpOptionsFromArgs(args: string[]): Partial<HttpBenchOptions> {
  const { values } = parseArgs({
    args,
    options: { claims: { type: 'string' }, quick: { type: 'boolean' } },
    strict: false,
  });
  const out: Partial<HttpBenchOptions> = {};
  if (values.quick === true) {
    // Hello-world requests are cheap; fewer would mostly measure a cold server.
    out.helloRequests = 20_000;
    out.claims = 5_000;
    out.rounds = 1;
  }
  if (typeof values.claims === 'string') out.claims = Number(values.claims);
  return out;
}

if (isMain(import.meta.url)) {
  await runHttpBench(httpOptionsFromArgs(process.argv.slice(2)));
}
