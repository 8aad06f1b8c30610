/**
 * Many processes on one Cosmos DB database: one cosmosdb-server (in this process), three
 * `fleet serve` child processes with `FLEET_STORE=cosmos` on the same database, and 16
 * simulated factories spread over the three servers, working through 2,000 jobs with
 * deps (hard), priorities and a retry policy. A tenth of the jobs fail once with a
 * transient error; now and then a factory pauses past its lease and, once the lease was
 * reaped, keeps writing as a zombie.
 *
 * Afterwards every job must be `shipped`, shipped exactly once; no (job, epoch) was
 * granted to two factories; every job's event stream is 1..n without a gap, with one
 * ship; a dependent was first claimed only after each of its deps shipped; every zombie
 * write was refused with `409 FENCED`; and the store satisfies the invariants of
 * `test/support/invariants.ts`. The counts are printed.
 *
 * Two concessions to the emulator, neither of which touches Fleet: its query engine is
 * made linear (`linearEmulatorQueries` in `test/support/cosmos-server.ts`: the stock one
 * is O(n²) in the container size), and the 2,000 event streams are read in one bulk query of the events container (each
 * per-job query scans all ~14,000 events), with a sample of about 300 of them also read
 * over `GET /fleet/jobs/:id/events` and compared with the bulk read.
 *
 * `FLEET_TEST_SEED` replays a plan (deps, priorities, which jobs fail); the interleaving
 * of the processes is, of course, never the same twice.
 */
import { randomBytes } from 'node:crypto';
import { Agent as HttpsAgent } from 'node:https';
import { isDeepStrictEqual } from 'node:util';
import { CosmosClient } from '@azure/cosmos';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  COSMOS_CONTAINERS,
  type CosmosStore,
  openCosmosStore,
} from '../../adapters/store/cosmos/index.js';
import type { DocumentStore } from '../../runtime/document-store.port.js';
import type { Page } from '../../runtime/types.js';
import {
  type CosmosTestServer,
  startCosmosServer,
  TEST_COSMOS_KEY,
} from '../support/cosmos-server.js';
import {
  type AttemptPlan,
  FactoryLedger,
  FleetHttp,
  type Grant,
  SimulatedFactory,
  seededRandom,
  sleep,
} from '../support/factory-client.js';
import { killAll, type RunningFleet, startFleet } from '../support/fleet-process.js';
import { allJobs, jobViolations } from '../support/invariants.js';

const JOBS = 2000;
const SERVERS = 3;
const FACTORIES = 16;
const LEASE_MS = 1500;
const REAPER_INTERVAL_MS = 200;
/** Share of jobs that fail once (transient) on some attempt. */
const FAIL_SHARE = 0.1;
/** Chance that an attempt pauses past its lease (each job at most once). */
const PAUSE_CHANCE = 0.03;
/** Share of jobs with hard deps on earlier jobs. */
const DEPS_SHARE = 0.35;
/**
 * Retries: a job loses at most two attempts by plan (one transient failure, one pause);
 * on a loaded host a renewal can also come late and lose a 1.5 s lease (logged below as
 * "leases lost without a pause"). That is not a defect, so the budget of attempts is
 * the schema's maximum: only a job that keeps losing its lease would dead-letter.
 */
const RETRY = { max: 100, backoff: 'fixed', delayMs: 50 } as const;
/** Submissions in flight at once (over all servers). */
const SUBMIT_CONCURRENCY = 8;
/** Reads in flight at once while checking. */
const CHECK_CONCURRENCY = 8;
/**
 * The run ends when every job shipped, or fails when no job shipped for this long (a
 * stall, not a slow machine: under a saturated CPU the run just takes longer).
 */
const STALL_MS = 120_000;

const SEED = Number(process.env.FLEET_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PRODUCT = 'acme';
const TOKENS = {
  submitter: 'mp-submitter-token',
  factory: 'mp-factory-token',
  admin: 'mp-admin-token',
};

type Priority = 'critical' | 'high' | 'medium' | 'low';

interface PlannedJob {
  index: number;
  key: string;
  priority: Priority;
  /** Indexes of earlier jobs. */
  deps: number[];
  failOnce: boolean;
}

interface FleetEvent {
  seq: number;
  type: string;
  at: string;
  actor: string | null;
  data: {
    from: string;
    to: string;
    leaseEpoch: number;
    factoryId?: string | null;
    errorClass?: string | null;
  };
  /** Set on stored events only: the appending process's stamp (not in the API's view). */
  writer?: string;
}

/** The jobs to submit: priorities, deps on earlier jobs (no cycle possible), who fails once. */
function makePlan(random: () => number): PlannedJob[] {
  const jobs: PlannedJob[] = [];
  for (let index = 0; index < JOBS; index++) {
    const p = random();
    const priority: Priority =
      p < 0.05 ? 'critical' : p < 0.25 ? 'high' : p < 0.75 ? 'medium' : 'low';
    const deps = new Set<number>();
    if (index >= 20 && random() < DEPS_SHARE) {
      const count = random() < 0.3 ? 2 : 1;
      const lo = Math.max(0, index - 150);
      const hi = index - 5;
      while (deps.size < count) deps.add(lo + Math.floor(random() * (hi - lo)));
    }
    jobs.push({
      index,
      key: `mp-${SEED}-${index}`,
      priority,
      deps: [...deps].sort((a, b) => a - b),
      failOnce: random() < FAIL_SHARE,
    });
  }
  return jobs;
}

/** Runs `task` over `items` with at most `limit` in flight; rejects on the first failure. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await task(items[i]!, i);
      }
    }),
  );
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
async function stopFleet(fleet: RunningFleet, graceMs = 10_000): Promise<void> {
  if (fleet.child.exitCode !== null || fleet.child.signalCode !== null) return;
  fleet.child.kill('SIGTERM');
  const timer = setTimeout(() => fleet.child.kill('SIGKILL'), graceMs);
  await fleet.exited;
  clearTimeout(timer);
}

/** A Prometheus sample, summed over its label sets (or the one `labels` names exactly). */
function metric(text: string, name: string, labels?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name || (labels !== undefined && m[2] !== labels)) continue;
    sum += Number(m[3]);
  }
  return sum;
}

type RawDoc = Record<string, unknown> & { id: string };

/** Every document of the events, runs and leases containers, system fields stripped. */
async function readContainers(
  endpoint: string,
  databaseId: string,
): Promise<{ events: RawDoc[]; runs: RawDoc[]; leases: RawDoc[] }> {
  const client = new CosmosClient({
    endpoint,
    key: TEST_COSMOS_KEY,
    agent: new HttpsAgent({ rejectUnauthorized: false, keepAlive: true }),
    connectionPolicy: { enableEndpointDiscovery: false },
  });
  try {
    const db = client.database(databaseId);
    const all = async (name: string): Promise<RawDoc[]> => {
      const rows = (
        await db
          .container(name)
          .items.query<RawDoc>('SELECT * FROM c', { maxItemCount: 1_000_000 })
          .fetchAll()
      ).resources;
      return rows.map(
        (r) => Object.fromEntries(Object.entries(r).filter(([k]) => !k.startsWith('_'))) as RawDoc,
      );
    };
    return {
      events: await all(COSMOS_CONTAINERS.events.name),
      runs: await all(COSMOS_CONTAINERS.runs.name),
      leases: await all(COSMOS_CONTAINERS.leases.name),
    };
  } finally {
    client.dispose();
  }
}

/** The part of a store `jobViolations` reads, served from a bulk read. */
function bulkView(bulk: { events: RawDoc[]; runs: RawDoc[]; leases: RawDoc[] }): DocumentStore {
  const byJob = (docs: RawDoc[]) => {
    const m = new Map<string, RawDoc[]>();
    for (const d of docs) m.set(String(d.jobId), [...(m.get(String(d.jobId)) ?? []), d]);
    return m;
  };
  const events = byJob(bulk.events);
  const runs = byJob(bulk.runs);
  const leases = new Map(bulk.leases.map((l) => [l.id, l]));
  return {
    events: { list: async (jobId: string) => events.get(jobId) ?? [] },
    runs: { list: async (jobId: string) => ({ items: runs.get(jobId) ?? [], nextCursor: null }) },
    leases: { read: async (_pk: string, id: string) => leases.get(id) ?? null },
  } as unknown as DocumentStore;
}

let cosmos: CosmosTestServer;
let database: string;
const fleets: RunningFleet[] = [];
const clients: FleetHttp[] = [];

beforeAll(async () => {
  cosmos = await startCosmosServer();
  database = `fleet_mp_${randomBytes(6).toString('hex')}`;
  const env = {
    FLEET_STORE: 'cosmos',
    COSMOS_ENDPOINT: cosmos.endpoint,
    COSMOS_KEY: TEST_COSMOS_KEY,
    COSMOS_DATABASE: database,
    COSMOS_ALLOW_SELF_SIGNED_CERT: 'true',
    FLEET_TOKENS: JSON.stringify([
      { token: TOKENS.submitter, productId: PRODUCT, roles: ['submitter'] },
      { token: TOKENS.factory, productId: PRODUCT, roles: ['factory'] },
      { token: TOKENS.admin, productId: PRODUCT, roles: ['admin'] },
    ]),
    FLEET_LEASE_MS: String(LEASE_MS),
    FLEET_REAPER_INTERVAL_MS: String(REAPER_INTERVAL_MS),
    FLEET_LOG_LEVEL: 'warn',
  };
  // The first one creates the database and its containers; the others find them.
  fleets.push(await startFleet(env, 60_000));
  fleets.push(...(await Promise.all([startFleet(env, 60_000), startFleet(env, 60_000)])));
}, 120_000);

afterAll(async () => {
  await Promise.all(fleets.map((f) => stopFleet(f)));
  await killAll();
  await Promise.all(clients.map((c) => c.close()));
  await cosmos?.close();
}, 60_000);

describe('three fleet processes on one Cosmos DB database', () => {
  // The run is bounded by STALL_MS (no ship for that long fails it), not by the clock;
  // this ceiling only catches a hang outside the work loop. It was 20 min: in a full
  // `vitest --project fleet` with the machine's load average at 25 (2 cores) this test
  // took 19 min 12 s (1,152 s), still shipping ~1.8 jobs/s.
  it(`${JOBS} jobs with deps, retries and zombies: each shipped exactly once, every zombie fenced`, {
    timeout: 3_600_000,
  }, async () => {
    const started = performance.now();
    console.log(`[multiprocess] seed ${SEED} (set FLEET_TEST_SEED to replay the plan)`);
    const http = (token: string, connections: number) =>
      fleets.map((f) => {
        const c = new FleetHttp(f.url, token, connections);
        clients.push(c);
        return c;
      });
    const submitters = http(TOKENS.submitter, 4);
    const factoryHttp = http(TOKENS.factory, 8);
    const admins = http(TOKENS.admin, CHECK_CONCURRENCY);

    const random = seededRandom(SEED);
    const plan = makePlan(random);
    const ledger = new FactoryLedger();
    const unexpected = ledger.unexpected;
    const runtimeRandom = seededRandom(SEED ^ 0x5bd1e995);

    // ---------------------------------------------------------------- submission
    const ids: string[] = new Array(JOBS);
    const idOf = new Map<number, Promise<string>>();
    const settle = new Map<number, (id: string) => void>();
    for (const job of plan) {
      idOf.set(job.index, new Promise<string>((resolve) => settle.set(job.index, resolve)));
    }
    const failOnce = new Set<string>();
    let blockedAtSubmit = 0;
    let submitDone = 0;
    const submission = (async () => {
      await eachLimited(plan, SUBMIT_CONCURRENCY, async (job) => {
        const deps = await Promise.all(job.deps.map((d) => idOf.get(d)!));
        const r = await submitters[job.index % SERVERS]!.call<{ id: string; stage: string }>(
          'POST',
          '/fleet/jobs',
          {
            idempotencyKey: job.key,
            bodyMd: `# Job ${job.index}\n\nPlanned by seed ${SEED}.`,
            priority: job.priority,
            ...(deps.length > 0 ? { deps, depsMode: 'hard' } : {}),
            retry: RETRY,
          },
        );
        if (r.status !== 201) {
          throw new Error(`submit ${job.index}: ${r.status} ${JSON.stringify(r.body)}`);
        }
        ids[job.index] = r.body.id;
        if (job.failOnce) failOnce.add(r.body.id);
        if (r.body.stage === 'blocked') blockedAtSubmit++;
        settle.get(job.index)!(r.body.id);
      });
      submitDone = performance.now();
    })();

    // ---------------------------------------------------------------- factories
    let stop = false;
    const script = (grant: Grant): AttemptPlan => {
      const plan: AttemptPlan = {};
      const id = grant.jobId;
      if (!ledger.pausedJobs.has(id) && runtimeRandom() < PAUSE_CHANCE) {
        ledger.pausedJobs.add(id);
        plan.pauseAt = Math.floor(runtimeRandom() * 4);
      } else if (failOnce.has(id) && !ledger.failedJobs.has(id)) {
        ledger.failedJobs.add(id);
        plan.failAt = Math.floor(runtimeRandom() * 4);
      }
      return plan;
    };
    const factories = Array.from(
      { length: FACTORIES },
      (_, f) =>
        new SimulatedFactory({
          factoryId: `factory-${String(f).padStart(2, '0')}`,
          http: factoryHttp[f % SERVERS]!,
          ledger,
          leaseMs: LEASE_MS,
          waitMs: 250,
          pauseMs: 2 * LEASE_MS,
          reapDeadlineMs: 60_000,
          script,
          done: () => stop,
        }),
    );
    const working = Promise.all(factories.map((f) => f.run()));

    let submitError: unknown;
    submission.catch((e) => {
      submitError = e;
    });
    let lastReport = started;
    let shipped = 0;
    let lastShip = started;
    while (ledger.ships.size < JOBS && submitError === undefined) {
      if (ledger.ships.size > shipped) {
        shipped = ledger.ships.size;
        lastShip = performance.now();
      }
      if (performance.now() - lastShip > STALL_MS) {
        console.log(`[multiprocess] stalled: nothing shipped for ${STALL_MS / 1000} s`);
        break;
      }
      if (performance.now() - lastReport > 20_000) {
        lastReport = performance.now();
        console.log(
          `[multiprocess] ${((lastReport - started) / 1000).toFixed(0)} s: ${ledger.ships.size} shipped, ${ledger.grants.length} claims`,
        );
      }
      await sleep(100);
    }
    stop = true;
    await working;
    // (after a failed submission, workers waiting for its id never finish: not awaited)
    if (submitError !== undefined) throw submitError;
    await submission;
    const workDone = performance.now();

    // ---------------------------------------------------------------- what the servers say
    const jobs = new Map<string, { id: string; stage: string; deps: string[] }>();
    let cursor: string | null = null;
    do {
      const q: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const page = await admins[0]!.call<Page<{ id: string; stage: string; deps: string[] }>>(
        'GET',
        `/fleet/jobs?limit=500${q}`,
      );
      expect(page.status).toBe(200);
      for (const j of page.body.items) jobs.set(j.id, j);
      cursor = page.body.nextCursor;
    } while (cursor !== null);
    const stages = new Map<string, number>();
    for (const j of jobs.values()) stages.set(j.stage, (stages.get(j.stage) ?? 0) + 1);

    // Every job's events, runs and lease, read in bulk straight from the database (the
    // emulator scans a whole container for each per-job query; see linearEmulatorQueries).
    const bulk = await readContainers(cosmos.endpoint, database);
    const events = new Map<string, FleetEvent[]>();
    for (const e of bulk.events as unknown as Array<FleetEvent & { jobId: string }>) {
      events.set(e.jobId, [...(events.get(e.jobId) ?? []), e]);
    }
    for (const list of events.values()) list.sort((a, b) => a.seq - b.seq);

    // The API serves the same streams: a sample of jobs, read over HTTP in small pages.
    const sample = [...jobs.keys()].filter(
      (id, i) => ledger.pausedJobs.has(id) || ledger.failedJobs.has(id) || i % 20 === 0,
    );
    const apiMismatches: string[] = [];
    await eachLimited(sample, CHECK_CONCURRENCY, async (id, i) => {
      const items: FleetEvent[] = [];
      let after: string | null = null;
      do {
        const q: string = after === null ? '' : `&cursor=${encodeURIComponent(after)}`;
        const page = await admins[i % SERVERS]!.call<Page<FleetEvent>>(
          'GET',
          `/fleet/jobs/${id}/events?limit=8${q}`,
        );
        if (page.status !== 200) {
          apiMismatches.push(`GET events of ${id}: ${page.status} ${JSON.stringify(page.body)}`);
          return;
        }
        items.push(...page.body.items);
        after = page.body.nextCursor;
      } while (after !== null);
      // Clients see each event without its writer stamp (who appended it).
      const stored = (events.get(id) ?? []).map(({ writer: _w, ...e }) => e);
      if (!isDeepStrictEqual(items, stored)) {
        apiMismatches.push(`job ${id}: GET events differs from the stored stream`);
      }
    });

    const metrics = await Promise.all(
      fleets.map(async (f) => (await fetch(`${f.url}/metrics`)).text()),
    );
    const sumMetric = (name: string, labels?: string) =>
      metrics.reduce((n, text) => n + metric(text, name, labels), 0);

    // The invariants of test/support/invariants.ts on every job, over the bulk read.
    const store: CosmosStore = await openCosmosStore({
      endpoint: cosmos.endpoint,
      key: TEST_COSMOS_KEY,
      database,
      allowSelfSignedCertificate: true,
    });
    const violations: string[] = [];
    try {
      const view = bulkView(bulk);
      for (const doc of await allJobs(store)) violations.push(...(await jobViolations(view, doc)));
    } finally {
      await store.close();
    }
    const checked = performance.now();

    // ---------------------------------------------------------------- tallies
    const problems: string[] = [];
    const grantOf = new Map<string, Grant[]>();
    for (const g of ledger.grants) {
      const k = `${g.jobId}@${g.leaseEpoch}`;
      grantOf.set(k, [...(grantOf.get(k) ?? []), g]);
    }
    const doubleGrants = [...grantOf.entries()].filter(([, gs]) => gs.length > 1);

    let eventCount = 0;
    let claimedEvents = 0;
    let leaseExpired = 0;
    let transientFailed = 0;
    let retriesDue = 0;
    let unblocked = 0;
    let released = 0;
    const shippedAt = new Map<string, number>();
    const firstClaimAt = new Map<string, number>();
    for (const id of jobs.keys()) if (!events.has(id)) problems.push(`job ${id}: no events`);
    for (const [id, list] of events) {
      eventCount += list.length;
      if (list.some((e, i) => e.seq !== i + 1)) {
        problems.push(`job ${id}: event seqs ${list.map((e) => e.seq).join(',')}`);
      }
      const ships = list.filter((e) => e.data.to === 'shipped' && e.data.from !== 'shipped');
      if (ships.length !== 1 || ships[0]!.type !== 'stage_changed') {
        problems.push(`job ${id}: ${ships.length} ship events`);
      } else shippedAt.set(id, Date.parse(ships[0]!.at));
      if (list.at(-1)?.data.to !== 'shipped') problems.push(`job ${id}: does not end shipped`);
      const epochs = new Set<number>();
      for (const e of list) {
        if (e.type === 'claimed') {
          claimedEvents++;
          if (!firstClaimAt.has(id)) firstClaimAt.set(id, Date.parse(e.at));
          if (epochs.has(e.data.leaseEpoch)) {
            problems.push(`job ${id}: epoch ${e.data.leaseEpoch} claimed twice`);
          }
          epochs.add(e.data.leaseEpoch);
          const gs = grantOf.get(`${id}@${e.data.leaseEpoch}`) ?? [];
          if (gs.length !== 1 || gs[0]!.factoryId !== e.data.factoryId) {
            problems.push(
              `job ${id}: claimed at epoch ${e.data.leaseEpoch} by ${e.data.factoryId}, but the factories were granted it ${gs.length} times (${gs.map((g) => g.factoryId).join(',')})`,
            );
          }
        } else if (e.type === 'lease_expired') leaseExpired++;
        else if (e.type === 'failed' && e.data.errorClass === 'transient') transientFailed++;
        else if (e.type === 'retry_due') retriesDue++;
        else if (e.type === 'unblocked') unblocked++;
        else if (e.type === 'released') released++;
      }
    }
    // Hard deps: a dependent is first claimed only once each of its deps has shipped.
    let depEdges = 0;
    for (const job of plan) {
      const id = ids[job.index]!;
      for (const d of job.deps) {
        depEdges++;
        const dep = ids[d]!;
        const claimed = firstClaimAt.get(id);
        const shipped = shippedAt.get(dep);
        if (claimed === undefined || shipped === undefined || claimed < shipped) {
          problems.push(
            `job ${id} (#${job.index}) first claimed at ${claimed} before its dep ${dep} (#${d}) shipped at ${shipped}`,
          );
        }
      }
    }
    const multiShips = [...ledger.ships.entries()].filter(([, s]) => s.length !== 1);
    // The one ship came from the holder of the job's last claim.
    for (const [id, [ship]] of ledger.ships) {
      const lastClaim = (events.get(id) ?? []).filter((e) => e.type === 'claimed').at(-1);
      if (
        ship !== undefined &&
        (lastClaim?.data.leaseEpoch !== ship.leaseEpoch ||
          lastClaim.data.factoryId !== ship.factoryId)
      ) {
        problems.push(
          `job ${id}: shipped by ${ship.factoryId}@${ship.leaseEpoch}, but last claimed by ${lastClaim?.data.factoryId}@${lastClaim?.data.leaseEpoch}`,
        );
      }
    }
    // Each planned failure is a transient `failed` event of its epoch, followed by a retry.
    for (const f of ledger.transientFailures) {
      const list = events.get(f.jobId) ?? [];
      const at = list.findIndex(
        (e) =>
          e.type === 'failed' &&
          e.data.errorClass === 'transient' &&
          e.data.to === 'failed' &&
          e.data.leaseEpoch === f.leaseEpoch + 1,
      );
      if (at < 0 || !list.slice(at + 1).some((e) => e.type === 'retry_due')) {
        problems.push(`job ${f.jobId}: failure at epoch ${f.leaseEpoch} not followed by a retry`);
      }
    }
    const zombieAccepted = ledger.zombieWrites.filter(
      (w) => w.status !== 409 || w.code !== 'FENCED',
    );
    // Each pause ended in a lease_expired event of that epoch and holder: the reaper's lag.
    const reapLags: number[] = [];
    const pausesUnreaped: string[] = [];
    for (const p of ledger.pauses) {
      const reaped = (events.get(p.jobId) ?? []).find(
        (e) =>
          e.type === 'lease_expired' &&
          e.data.leaseEpoch === p.leaseEpoch + 1 &&
          e.data.factoryId === p.factoryId,
      );
      if (reaped === undefined || p.reapSeenAt === null) {
        pausesUnreaped.push(
          `${p.factoryId} on ${p.jobId}@${p.leaseEpoch}: lease expired at ${new Date(p.expiresAt).toISOString()}, ${reaped ? `reaped at ${reaped.at} but the factory never saw it` : 'never reaped'}`,
        );
      } else reapLags.push(Date.parse(reaped.at) - p.expiresAt);
    }
    reapLags.sort((a, b) => a - b);
    const sec = (ms: number) => Number((ms / 1000).toFixed(1));

    const counts = {
      seed: SEED,
      jobs: jobs.size,
      stages: Object.fromEntries(stages),
      depEdges,
      blockedAtSubmit,
      claimCalls: ledger.claimCalls,
      emptyClaims: ledger.emptyClaims,
      grants: ledger.grants.length,
      claimedEvents,
      renewals: ledger.renewals,
      moves: ledger.moves,
      ships: [...ledger.ships.values()].reduce((n, s) => n + s.length, 0),
      transientFailures: ledger.transientFailures.length,
      transientFailedEvents: transientFailed,
      retriesDue,
      unblocked,
      released,
      pauses: ledger.pauses.length,
      leasesReaped: leaseExpired,
      reaperLagMs: {
        median: reapLags[Math.floor(reapLags.length / 2)] ?? null,
        max: reapLags.at(-1) ?? null,
      },
      eventStreamsReadOverHttp: sample.length,
      zombieWrites: ledger.zombieWrites.length,
      zombieWritesFenced: ledger.zombieWrites.length - zombieAccepted.length,
      unplannedFences: ledger.unplannedFences.length,
      events: eventCount,
      metrics: {
        claims: sumMetric('fleet_claims_total'),
        fenced: sumMetric('fleet_fenced_total'),
        reaped: sumMetric('fleet_reaped_leases_total'),
        sweepsSucceeded: sumMetric('fleet_sweeps_total', '{outcome="succeeded"}'),
        sweepsFailed: sumMetric('fleet_sweeps_total', '{outcome="failed"}'),
        sweepMeanMs: Math.round(
          (1000 * sumMetric('fleet_sweep_duration_seconds_sum')) /
            Math.max(1, sumMetric('fleet_sweep_duration_seconds_count')),
        ),
      },
      seconds: {
        submit: sec(submitDone - started),
        allShipped: sec(workDone - started),
        check: sec(checked - workDone),
        total: sec(checked - started),
      },
    };
    console.log(`[multiprocess] counts ${JSON.stringify(counts, null, 2)}`);
    if (ledger.unplannedFences.length > 0) {
      console.log(
        `[multiprocess] leases lost without a pause (slow host?):\n${ledger.unplannedFences.slice(0, 10).join('\n')}`,
      );
    }
    for (const [i, f] of fleets.entries()) {
      const err = f.stderr().trim();
      if (err) console.log(`[multiprocess] fleet ${i} stderr (tail):\n${err.slice(-3000)}`);
    }

    // ---------------------------------------------------------------- verdict
    expect(unexpected, 'protocol answers the factories did not expect').toEqual([]);
    expect(jobs.size).toBe(JOBS);
    expect(Object.fromEntries(stages)).toEqual({ shipped: JOBS });
    expect(multiShips, 'jobs shipped more (or less) than once').toEqual([]);
    expect(ledger.ships.size).toBe(JOBS);
    expect(doubleGrants, 'a (job, epoch) granted to two factories').toEqual([]);
    expect(problems.slice(0, 20), `${problems.length} problems in the event streams`).toEqual([]);
    expect(violations.slice(0, 20), `${violations.length} store invariant violations`).toEqual([]);
    expect(apiMismatches.slice(0, 20), 'GET events disagrees with the store').toEqual([]);
    expect(claimedEvents).toBe(ledger.grants.length);
    // every planned failure came back through the retry policy
    expect(ledger.transientFailures.length).toBeGreaterThan(0);
    expect(transientFailed).toBe(ledger.transientFailures.length);
    // every pause outlived its lease, was reaped, and each zombie write was fenced
    expect(ledger.pauses.length).toBeGreaterThan(0);
    expect(pausesUnreaped, 'paused leases not reaped').toEqual([]);
    expect(leaseExpired).toBeGreaterThanOrEqual(ledger.pauses.length);
    expect(ledger.zombieWrites.length).toBe(4 * ledger.pauses.length);
    expect(zombieAccepted, 'zombie writes that were not fenced').toEqual([]);
  });
});
