/**
 * Store requests per claim and per transition on Cosmos DB, counted on the wire.
 *
 *   npx tsx bench/cosmos-requests.bench.ts [--jobs=N]
 *
 * A `@vercel/cosmosdb-server` in this process on 127.0.0.1 (as the tests start one),
 * whose HTTP server counts every request it serves by kind before the emulator sees it
 * (`support/cosmos-worker.ts`: point reads, queries, the query-plan request the SDK
 * sends before each query, writes, anything else). The store adapter is the real one
 * (`openCosmosStore`), unchanged: counting happens at the server, so every request the
 * SDK sends, retries and metadata included, is seen.
 *
 * One `Coordinator` (claim spread as the server sets it for Cosmos DB) and one
 * registered factory; after a warm-up, each job is claimed and moved building → review →
 * testing → shipped, one call at a time. Each call's requests are counted from before
 * the call until its follow-ups (the outbox: event, run, lease) are done
 * (`coordinator.drain()`), and separately up to its answer. Reported: mean requests per
 * claim and per transition, by kind, and the adapter's own counters beside them.
 *
 * Goal (issue 13, goal 7): a claim ≤ 4 store requests. Asserts nothing.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { DEFAULTS } from '../adapters/http/config.js';
import { type CosmosStoreStats, openCosmosStore } from '../adapters/store/cosmos/index.js';
import { Coordinator } from '../runtime/index.js';
import type { PatchTarget } from '../runtime/types.js';
import {
  BENCH_CAPABILITIES,
  BENCH_COSMOS_KEY,
  hostCosmosServer,
  type ServerCounters,
} from './support/cosmos-worker.js';
import { atMost, type GoalRow, notMeasured } from './support/goals.js';
import { isMain } from './support/main.js';
import { say, table } from './support/report.js';
import { JobFeed, ONE_SET } from './support/workload.js';

/** Goal 7: store requests per claim. */
export const CLAIM_REQUESTS_GOAL = 4;
const PRODUCT = 'bench-requests';
const FACTORY = 'requests-factory';
const STAGES: readonly PatchTarget[] = ['building', 'review', 'testing', 'shipped'];
const KINDS = ['reads', 'queries', 'queryPlans', 'writes', 'other'] as const;
type Kind = (typeof KINDS)[number];

export interface RequestCounts {
  /** Every request, up to the answer and with the follow-ups. */
  total: number;
  /** Requests made before the call answered. */
  beforeAnswer: number;
  byKind: Record<Kind, number>;
  /** The adapter's own counters (reads, queries, writes). */
  adapter: { reads: number; queries: number; writes: number };
}

export interface CosmosRequestsResult {
  jobs: number;
  claim: RequestCounts;
  transition: RequestCounts;
  /** Transitions by target, total requests each (mean). */
  perStage: Record<string, number>;
}

export type CosmosRequestsSection = CosmosRequestsResult | { error: string };

function zero(): RequestCounts {
  return {
    total: 0,
    beforeAnswer: 0,
    byKind: { reads: 0, queries: 0, queryPlans: 0, writes: 0, other: 0 },
    adapter: { reads: 0, queries: 0, writes: 0 },
  };
}

function add(
  into: RequestCounts,
  a: ServerCounters,
  answered: ServerCounters,
  b: ServerCounters,
  sa: CosmosStoreStats,
  sb: CosmosStoreStats,
): number {
  const total = b.requests - a.requests;
  into.total += total;
  into.beforeAnswer += answered.requests - a.requests;
  for (const k of KINDS) into.byKind[k] += b[k] - a[k];
  into.adapter.reads += sb.reads - sa.reads;
  into.adapter.queries += sb.queries - sa.queries;
  into.adapter.writes += sb.writes - sa.writes;
  return total;
}

function mean(c: RequestCounts, n: number): RequestCounts {
  const out = zero();
  out.total = c.total / n;
  out.beforeAnswer = c.beforeAnswer / n;
  for (const k of KINDS) out.byKind[k] = c.byKind[k] / n;
  out.adapter = {
    reads: c.adapter.reads / n,
    queries: c.adapter.queries / n,
    writes: c.adapter.writes / n,
  };
  return out;
}

export async function runCosmosRequestsBench(jobs = 40): Promise<CosmosRequestsSection> {
  say(
    '== cosmos requests: store requests per claim and per transition, counted by the cosmosdb-server in this process ==',
  );
  let host: Awaited<ReturnType<typeof hostCosmosServer>> | null = null;
  try {
    host = await hostCosmosServer();
    const store = await openCosmosStore({
      endpoint: host.endpoint,
      key: BENCH_COSMOS_KEY,
      database: `requests-${randomBytes(4).toString('hex')}`,
      allowSelfSignedCertificate: true,
    });
    try {
      const coord = new Coordinator({
        store,
        leaseMs: 600_000,
        claimSpread: DEFAULTS.cosmosClaimSpread,
      });
      const beat = await coord.heartbeat(PRODUCT, {
        factoryId: FACTORY,
        capabilities: [...BENCH_CAPABILITIES],
        health: 'ok',
      });
      if (!beat.ok) throw beat.error;
      const warmup = 5;
      await new JobFeed(PRODUCT, ONE_SET, 3).fill(store, warmup + jobs);
      const claim = zero();
      const transition = zero();
      const perStage: Record<string, number> = {};
      const counters = host.counters;
      for (let i = 0; i < warmup + jobs; i++) {
        const measured = i >= warmup;
        let a = counters();
        let sa = store.stats();
        const r = await coord.claimNextJob(PRODUCT, { factoryId: FACTORY });
        let answered = counters();
        await coord.drain();
        if (!r.ok) throw r.error;
        if (r.value === null) throw new Error('the queue ran dry: the bench is wrong');
        if (measured) add(claim, a, answered, counters(), sa, store.stats());
        const { job, lease } = r.value;
        for (const to of STAGES) {
          a = counters();
          sa = store.stats();
          const t = await coord.transition(PRODUCT, job.id, {
            factoryId: FACTORY,
            leaseEpoch: lease.leaseEpoch,
            to,
          });
          answered = counters();
          await coord.drain();
          if (!t.ok) throw t.error;
          if (measured) {
            const n = add(transition, a, answered, counters(), sa, store.stats());
            perStage[to] = (perStage[to] ?? 0) + n / jobs;
          }
        }
      }
      const result: CosmosRequestsResult = {
        jobs,
        claim: mean(claim, jobs),
        transition: mean(transition, jobs * STAGES.length),
        perStage,
      };
      say(
        table(
          [
            'per call',
            'requests',
            'before answer',
            'reads',
            'queries',
            'query plans',
            'writes',
            'other',
            'adapter r/q/w',
          ],
          (
            [
              ['claim', result.claim],
              ['transition', result.transition],
            ] as const
          ).map(([name, c]) => [
            name,
            c.total.toFixed(2),
            c.beforeAnswer.toFixed(2),
            ...KINDS.map((k) => c.byKind[k].toFixed(2)),
            `${c.adapter.reads.toFixed(2)}/${c.adapter.queries.toFixed(2)}/${c.adapter.writes.toFixed(2)}`,
          ]),
        ),
      );
      say(
        `per transition by target: ${STAGES.map((s) => `${s} ${(perStage[s] ?? 0).toFixed(2)}`).join(', ')} ` +
          `(${jobs} jobs after ${warmup} warm-up)`,
      );
      for (const g of cosmosRequestsGoals(result))
        say(`${g.goal}: ${g.measured} (goal ${g.target})`);
      return result;
    } finally {
      await store.dropDatabase().catch(() => store.close());
    }
  } catch (e) {
    const why = (e as Error).message;
    say(`cosmos requests: ${why}`);
    return { error: why };
  } finally {
    await host?.close();
  }
}

/** Goal 7 as a summary row (the transition figure rides along in the text). */
export function cosmosRequestsGoals(r: CosmosRequestsSection): GoalRow[] {
  const goal = '7. Cosmos DB store requests per claim';
  const target = `≤ ${CLAIM_REQUESTS_GOAL}`;
  if ('error' in r) return [notMeasured(goal, target, r.error)];
  return [
    atMost(
      goal,
      `${r.claim.total.toFixed(1)} (${r.claim.beforeAnswer.toFixed(1)} before the answer; a transition ${r.transition.total.toFixed(1)})`,
      r.claim.total,
      CLAIM_REQUESTS_GOAL,
      target,
    ),
  ];
}

export function cosmosRequestsJobsFromArgs(args: string[]): number | undefined {
  const { values } = parseArgs({
    args,
    options: { jobs: { type: 'string' }, quick: { type: 'boolean' } },
    strict: false,
  });
  if (typeof values.jobs === 'string') return Number(values.jobs);
  return values.quick ? 20 : undefined;
}

if (isMain(import.meta.url)) {
  await runCosmosRequestsBench(cosmosRequestsJobsFromArgs(process.argv.slice(2)));
}
