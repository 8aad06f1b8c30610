/**
 * The child processes of `bench/cosmos.bench.ts`, started with
 * `node --import tsx bench/support/cosmos-worker.ts <role>` (`child_process.fork`, IPC):
 *
 * - `server`: hosts one `@vercel/cosmosdb-server` on 127.0.0.1 (HTTPS, self-signed,
 *   keep-alive: as `test/support/cosmos-server.ts` starts it), so no benchmark
 *   bookkeeping shares its event loop. It counts the requests it serves by kind (the
 *   SDK's query-plan requests included, which the adapter's `stats()` cannot see) and
 *   reports them with its CPU time and event-loop utilisation when asked.
 * - `client`: one Fleet process. On `open` it opens its own `openCosmosStore`
 *   connection to the given database (answer `opened`). On `prepare` it either (claim
 *   task) builds a `Coordinator` with the given `claimSpread`, registers one factory per
 *   claimer (heartbeat) and claims for a warm-up period, or (raw task) writes one
 *   document of its own per loop and warms up read → conditional replace on them
 *   (answer `prepared`). On `go` it runs `windows` consecutive windows of `windowMs`,
 *   reading its counts, its store's `stats()` and its CPU time at the start and at each
 *   window's end, closes the store (ending whatever is still queued) and answers
 *   `result` with those marks. The parent holds every client at each step, so they
 *   start together, and so every process has opened the database before anything is
 *   written to it: on cosmosdb-server, `openCosmosStore` on an existing database
 *   replaces its containers (the adapter sees its composite indexes as missing: the
 *   server returns them with `order` before `path`), and a replaced container comes
 *   back empty there.
 *
 * Claims go through `coordinator.claimNextJob(productId, { factoryId })`, the real path.
 * Within one process a product's claims run one at a time (the coordinator's mailbox),
 * so a process's `claimers` queue behind each other: across processes, etags decide.
 */
import type { AddressInfo } from 'node:net';
import { createHttpsServer } from '@vercel/cosmosdb-server';
import {
  type CosmosStore,
  type CosmosStoreStats,
  openCosmosStore,
} from '../../adapters/store/cosmos/index.js';
import { Coordinator } from '../../runtime/index.js';
import { linearEmulatorQueries } from '../../test/support/cosmos-server.js';
import { isMain } from './main.js';
import { JobFeed, ONE_SET } from './workload.js';

/** Any key is accepted by the test server. */
export const BENCH_COSMOS_KEY = 'fleet-bench-key';
/** What every benchmark job needs, and what every benchmark factory has. */
export const BENCH_CAPABILITIES: readonly string[] = [...new Set(ONE_SET.flat())].sort();

/** Milliseconds since the epoch, sub-millisecond, comparable across processes. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

export interface ClaimTask {
  kind: 'claim';
  productId: string;
  claimSpread: number;
  /** Concurrent claimers in this process, each its own factory. */
  claimers: number;
  /** Factory ids are `<factoryPrefix>-<i>`: unique across processes. */
  factoryPrefix: string;
  leaseMs: number;
  warmupMs: number;
}

export interface RawTask {
  kind: 'raw';
  /** This process's own partition: its documents are nobody else's. */
  productId: string;
  /** Concurrent read → replace loops, each on its own document. */
  loops: number;
  warmupMs: number;
}

export type ParentMessage =
  | { type: 'open'; endpoint: string; database: string }
  | { type: 'prepare'; task: ClaimTask | RawTask }
  | { type: 'go'; windowMs: number; windows: number }
  | { type: 'counters' }
  | { type: 'exit' };

/** Counts since the measurement started, read at one instant. */
export interface Mark {
  /** `wallNow()` ms. */
  at: number;
  /** Successful operations (claims handed out, or conditional replaces applied). */
  ops: number;
  /** Claims answered null (queue empty, or 64 lost rounds): that claimer stopped. */
  nulls: number;
  /** Failed operations (that loop stopped). */
  errors: number;
  /** Adapter counters. */
  stats: CosmosStoreStats;
  /** This process's CPU time (every thread), ms. */
  cpuMs: number;
}

export interface ClientResult {
  /** At the start, then at the end of each window (`windows + 1` marks). */
  marks: Mark[];
  /** The first failure's message, if any. */
  firstError: string | null;
}

export interface ServerCounters {
  /** Every request served. */
  requests: number;
  /** Point reads of a document. */
  reads: number;
  /** Queries (`POST .../docs` with `x-ms-documentdb-isquery`). */
  queries: number;
  /** The SDK's query-plan requests (the test server runs them as queries). */
  queryPlans: number;
  /** Creates, replaces, upserts, deletes of documents. */
  writes: number;
  /** Answers with status 412. */
  preconditionFailed: number;
  /** Everything else (databases, containers, partition key ranges). */
  other: number;
  /** TLS connections accepted (each a handshake; keep-alive reuses them). */
  connections: number;
  /** The server process's CPU time, ms. */
  cpuMs: number;
  /** Its event loop's busy time, ms (`performance.eventLoopUtilization`). */
  busyMs: number;
}

export type ChildMessage =
  | { type: 'listening'; endpoint: string }
  | { type: 'ready' }
  | { type: 'opened' }
  | { type: 'prepared' }
  | { type: 'result'; result: ClientResult }
  | { type: 'counters'; counters: ServerCounters }
  | { type: 'failed'; message: string };

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

export interface HostedCosmosServer {
  endpoint: string;
  counters(): ServerCounters;
  close(): Promise<void>;
}

/** Starts cosmosdb-server on 127.0.0.1 with request counters. */
export async function hostCosmosServer(port = 0): Promise<HostedCosmosServer> {
  // The emulator's stock FROM is O(n²) in the container size; tests and benches run it linear.
  linearEmulatorQueries();
  const server = createHttpsServer({ keepAlive: true });
  const n = {
    requests: 0,
    reads: 0,
    queries: 0,
    queryPlans: 0,
    writes: 0,
    preconditionFailed: 0,
    other: 0,
    connections: 0,
  };
  server.on('secureConnection', () => {
    n.connections++;
  });
  server.prependListener('request', (req, res) => {
    n.requests++;
    const url = req.url ?? '';
    const doc = /\/docs\/[^/]+$/.test(url);
    if (req.headers['x-ms-cosmos-is-query-plan-request'] !== undefined) n.queryPlans++;
    else if (req.headers['x-ms-documentdb-isquery'] !== undefined) n.queries++;
    else if (doc && req.method === 'GET') n.reads++;
    else if (
      (doc && (req.method === 'PUT' || req.method === 'DELETE')) ||
      (req.method === 'POST' && url.endsWith('/docs'))
    ) {
      n.writes++;
    } else n.other++;
    res.once('finish', () => {
      if (res.statusCode === 412) n.preconditionFailed++;
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const { port: bound } = server.address() as AddressInfo;
  const elu0 = performance.eventLoopUtilization();
  return {
    endpoint: `https://127.0.0.1:${bound}`,
    counters: () => {
      const cpu = process.cpuUsage();
      const elu = performance.eventLoopUtilization(elu0);
      return { ...n, cpuMs: (cpu.user + cpu.system) / 1000, busyMs: elu.active };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------
// A client process
// ---------------------------------------------------------------------------

const message = (e: unknown): string =>
  e instanceof Error ? `${e.name}: ${e.message}`.slice(0, 500) : String(e).slice(0, 500);

const statsDelta = (a: CosmosStoreStats, b: CosmosStoreStats): CosmosStoreStats => ({
  reads: b.reads - a.reads,
  queries: b.queries - a.queries,
  writes: b.writes - a.writes,
  preconditionFailed: b.preconditionFailed - a.preconditionFailed,
  unknownOutcomes: b.unknownOutcomes - a.unknownOutcomes,
});

interface Tally {
  ops: number;
  nulls: number;
  errors: number;
  firstError: string | null;
}

/**
 * Runs `loops` concurrent loops of `op` until `deadline` (`wallNow()` ms), counting into
 * `t` as they go: no operation starts after the deadline. A loop stops at its first
 * error, or when `op` answers false (nothing to do).
 */
async function runLoops(
  loops: number,
  deadline: number,
  op: (loop: number) => Promise<boolean>,
  t: Tally = { ops: 0, nulls: 0, errors: 0, firstError: null },
): Promise<Tally> {
  await Promise.all(
    Array.from({ length: loops }, async (_, loop) => {
      while (wallNow() < deadline) {
        try {
          if (!(await op(loop))) {
            t.nulls++;
            return;
          }
          t.ops++;
        } catch (e) {
          t.errors++;
          t.firstError ??= message(e);
          return;
        }
      }
    }),
  );
  return t;
}

/** A prepared task: `run` measures it until the deadline; `close` releases the store. */
interface Prepared {
  /** Runs until `deadline`, counting into `tally` live. */
  run(deadline: number, tally: Tally): Promise<Tally>;
  stats(): CosmosStoreStats;
  close(): Promise<void>;
}

async function prepareClaims(store: CosmosStore, task: ClaimTask): Promise<Prepared> {
  const coord = new Coordinator({ store, claimSpread: task.claimSpread, leaseMs: task.leaseMs });
  const factories = Array.from({ length: task.claimers }, (_, i) => `${task.factoryPrefix}-${i}`);
  for (const factoryId of factories) {
    const beat = await coord.heartbeat(task.productId, {
      factoryId,
      capabilities: [...BENCH_CAPABILITIES],
      health: 'ok',
    });
    if (!beat.ok) throw beat.error;
  }
  const claim = async (loop: number): Promise<boolean> => {
    const r = await coord.claimNextJob(task.productId, { factoryId: factories[loop]! });
    if (!r.ok) throw r.error;
    if (r.value === null) return false;
    if (r.value.job.stage !== 'assigned') throw new Error(`claimed a ${r.value.job.stage} job`);
    return true;
  };
  const warm = await runLoops(task.claimers, wallNow() + task.warmupMs, claim);
  if (warm.errors > 0) throw new Error(`warm-up claim failed: ${warm.firstError}`);
  return {
    run: (deadline, tally) => runLoops(task.claimers, deadline, claim, tally),
    stats: () => store.stats(),
    close: () => store.close(),
  };
}

async function prepareRaw(store: CosmosStore, task: RawTask): Promise<Prepared> {
  // Job documents of the claim's size, one per loop, in this process's own partition.
  const feed = new JobFeed(task.productId, ONE_SET, 7);
  const ids: string[] = [];
  for (let i = 0; i < task.loops; i++) ids.push((await store.jobs.create(feed.next())).id);
  const replace = async (loop: number): Promise<boolean> => {
    const cur = await store.jobs.read(task.productId, ids[loop]!);
    if (cur === null) throw new Error(`raw document ${ids[loop]} is gone`);
    await store.jobs.replace({ ...cur, attempt: cur.attempt + 1 }, cur._etag);
    return true;
  };
  const warm = await runLoops(task.loops, wallNow() + task.warmupMs, replace);
  if (warm.errors > 0) throw new Error(`warm-up replace failed: ${warm.firstError}`);
  return {
    run: (deadline, tally) => runLoops(task.loops, deadline, replace, tally),
    stats: () => store.stats(),
    close: () => store.close(),
  };
}

function send(msg: ChildMessage): void {
  process.send?.(msg);
}

async function serveRole(): Promise<void> {
  const host = await hostCosmosServer();
  process.on('message', (msg: ParentMessage) => {
    if (msg.type === 'counters') send({ type: 'counters', counters: host.counters() });
    else if (msg.type === 'exit') void host.close().finally(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'listening', endpoint: host.endpoint });
}

function clientRole(): void {
  let store: CosmosStore | null = null;
  let prepared: Promise<Prepared> | null = null;
  process.on('message', (msg: ParentMessage) => {
    if (msg.type === 'open') {
      openCosmosStore({
        endpoint: msg.endpoint,
        key: BENCH_COSMOS_KEY,
        database: msg.database,
        allowSelfSignedCertificate: true,
      }).then(
        (s) => {
          store = s;
          send({ type: 'opened' });
        },
        (e: unknown) => send({ type: 'failed', message: message(e) }),
      );
    } else if (msg.type === 'prepare') {
      const opened = store;
      store = null;
      if (opened === null) {
        send({ type: 'failed', message: 'prepare before open' });
        return;
      }
      const p =
        msg.task.kind === 'claim' ? prepareClaims(opened, msg.task) : prepareRaw(opened, msg.task);
      prepared = p;
      p.then(
        () => send({ type: 'prepared' }),
        (e: unknown) => {
          void opened.close();
          send({ type: 'failed', message: message(e) });
        },
      );
    } else if (msg.type === 'go') {
      const task = prepared;
      prepared = null;
      if (task === null) {
        send({ type: 'failed', message: 'go before prepare' });
        return;
      }
      void (async () => {
        let p: Prepared | null = null;
        try {
          p = await task;
          const ready = p;
          const before = ready.stats();
          const cpu = process.cpuUsage();
          const start = wallNow();
          const live: Tally = { ops: 0, nulls: 0, errors: 0, firstError: null };
          const mark = (): Mark => {
            const used = process.cpuUsage(cpu);
            return {
              at: wallNow(),
              ops: live.ops,
              nulls: live.nulls,
              errors: live.errors,
              stats: statsDelta(before, ready.stats()),
              cpuMs: (used.user + used.system) / 1000,
            };
          };
          const marks = [mark()];
          const deadline = start + msg.windows * msg.windowMs;
          const running = ready.run(deadline, live);
          for (let w = 1; w <= msg.windows; w++) {
            const at = start + w * msg.windowMs;
            await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - wallNow())));
            marks.push(mark());
          }
          // Operations still queued at the deadline (a process's claims wait in its
          // mailbox) are not counted; closing the store ends them at once instead of
          // letting a tail with less contention run on.
          const firstError = live.firstError;
          await ready.close();
          await running;
          send({ type: 'result', result: { marks, firstError } });
        } catch (e) {
          send({ type: 'failed', message: message(e) });
        } finally {
          await p?.close();
        }
      })();
    } else if (msg.type === 'exit') {
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}

if (isMain(import.meta.url)) {
  const role = process.argv[2];
  if (role === 'server') await serveRole();
  else if (role === 'client') clientRole();
  else throw new Error(`cosmos-worker: unknown role ${String(role)} (server | client)`);
}
