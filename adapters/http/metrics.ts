/**
 * Fleet's Prometheus metrics, written in the text exposition format (0.0.4) by hand:
 * a handful of counters, gauges and histograms does not need a client library.
 *
 * | metric | type | labels | source |
 * |---|---|---|---|
 * | `fleet_jobs` | gauge | product, stage | `store.jobs.countByStage()` at scrape time (an index, not a scan of documents) |
 * | `fleet_store_up` | gauge | | 1 when that read answered |
 * | `fleet_claims_total` | counter | | `claimed` events of the observed coordinators |
 * | `fleet_fenced_total` | counter | | HTTP calls answered `409 FENCED` |
 * | `fleet_reaped_leases_total` | counter | | supervisor sweeps ({@link FleetMetrics.recordSweep}) |
 * | `fleet_sweeps_total` | counter | outcome | supervisor sweeps |
 * | `fleet_sweep_jobs_total` | counter | action | what sweeps did: reaped, retried, budget_exceeded, repaired, unblocked, failed (a job whose step failed: logged with its id and skipped) |
 * | `fleet_sweep_duration_seconds` | histogram | | supervisor sweeps |
 * | `fleet_stale_factories` | gauge | | factories of every product that missed three heartbeats, at the last successful sweep |
 * | `fleet_claim_waiting` | gauge | | long-poll claims parked now |
 * | `fleet_claim_waits_total` | counter | outcome | parked claims by how they ended: claimed, timeout, disconnected, closed |
 * | `fleet_http_request_duration_seconds` | histogram | route, method, status | every request the plugin answers (route = its pattern; `unmatched` for 404s) |
 * | `fleet_pruned_jobs_total` | counter | | finished jobs deleted by retention: supervisor sweeps and `POST /fleet/admin/prune` |
 */
import type { Coordinator, DocumentStore, Stage, SweepReport } from '../../runtime/index.js';
import { schemas } from '../../runtime/index.js';

/** How a parked long-poll claim ended. */
export type ClaimWaitOutcome = 'claimed' | 'timeout' | 'disconnected' | 'closed';

const STAGES: readonly Stage[] = schemas.Stage.options;

/** Request latency buckets, in seconds (long-poll claims reach 30 s). */
const HTTP_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
] as const;
const SWEEP_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60] as const;

const escapeLabel = (v: string): string =>
  v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');

const labels = (pairs: Record<string, string>): string => {
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
};

const num = (n: number): string =>
  n === Number.POSITIVE_INFINITY ? '+Inf' : Number.isFinite(n) ? String(n) : 'NaN';

/** One histogram series: per-bucket counts (not cumulative), sum, count. */
class Series {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(size: number) {
    this.counts = new Array<number>(size).fill(0);
  }
}

class Histogram {
  readonly #buckets: readonly number[];
  readonly #series = new Map<string, { labels: Record<string, string>; s: Series }>();

  constructor(buckets: readonly number[]) {
    this.#buckets = buckets;
  }

  observe(value: number, labelValues: Record<string, string> = {}): void {
    const key = Object.values(labelValues).join('\u0000');
    let entry = this.#series.get(key);
    if (entry === undefined) {
      entry = { labels: labelValues, s: new Series(this.#buckets.length) };
      this.#series.set(key, entry);
    }
    const i = this.#buckets.findIndex((b) => value <= b);
    if (i >= 0) entry.s.counts[i]! += 1;
    entry.s.sum += value;
    entry.s.count += 1;
  }

  render(name: string, out: string[]): void {
    for (const { labels: l, s } of this.#series.values()) {
      let cumulative = 0;
      this.#buckets.forEach((b, i) => {
        cumulative += s.counts[i]!;
        out.push(`${name}_bucket${labels({ ...l, le: num(b) })} ${cumulative}`);
      });
      out.push(`${name}_bucket${labels({ ...l, le: '+Inf' })} ${s.count}`);
      out.push(`${name}_sum${labels(l)} ${num(s.sum)}`);
      out.push(`${name}_count${labels(l)} ${s.count}`);
    }
  }
}

const header = (out: string[], name: string, type: string, help: string): void => {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
};

/**
 * A registry of Fleet's metrics. One instance may be shared by the HTTP plugin and the
 * supervisor of the same process; {@link render} writes the Prometheus text.
 * Counters only grow; every method is cheap and synchronous except `render`.
 */
export class FleetMetrics {
  #claims = 0;
  #fenced = 0;
  #reaped = 0;
  readonly #sweeps = { succeeded: 0, failed: 0 };
  readonly #sweepJobs = {
    reaped: 0,
    retried: 0,
    budget_exceeded: 0,
    repaired: 0,
    unblocked: 0,
    failed: 0,
  };
  readonly #sweepDuration = new Histogram(SWEEP_BUCKETS);
  readonly #http = new Histogram(HTTP_BUCKETS);
  #claimWaiting = 0;
  #staleFactories = 0;
  readonly #claimWaits: Record<ClaimWaitOutcome, number> = {
    claimed: 0,
    timeout: 0,
    disconnected: 0,
    closed: 0,
  };
  /** Observed coordinators: how many observers each has, and how to stop. */
  readonly #observed = new Map<Coordinator, { refs: number; stop: () => void }>();

  /**
   * Counts the claims `coordinator` makes (from its events) and reports its store's
   * job counts. Observing the same coordinator twice counts once. Returns the undo.
   */
  observe(coordinator: Coordinator): () => void {
    const existing = this.#observed.get(coordinator);
    if (existing) existing.refs++;
    else {
      const stop = coordinator.subscribe((event) => {
        if (event.type === 'claimed') this.#claims++;
      });
      this.#observed.set(coordinator, { refs: 1, stop });
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const entry = this.#observed.get(coordinator);
      if (entry && --entry.refs === 0) {
        entry.stop();
        this.#observed.delete(coordinator);
      }
    };
  }

  /** One HTTP call answered `409 FENCED`. */
  recordFenced(): void {
    this.#fenced++;
  }

  /** One answered request: its route pattern, method, status and duration in seconds. */
  recordRequest(route: string, method: string, status: number, seconds: number): void {
    this.#http.observe(seconds, { route, method, status: String(status) });
  }

  /** A claim request parked (long-poll) because nothing was eligible. */
  claimWaitStarted(): void {
    this.#claimWaiting++;
  }

  /** A parked claim ended. */
  claimWaitEnded(outcome: ClaimWaitOutcome): void {
    this.#claimWaiting--;
    this.#claimWaits[outcome]++;
  }

  /** Called by the supervisor after each sweep. */
  recordSweep(
    outcome: 'succeeded' | 'failed',
    durationMs: number,
    report?: Pick<
      SweepReport,
      'reaped' | 'retried' | 'budgetExceeded' | 'repaired' | 'unblocked' | 'failedJobs'
    > & { staleFactories?: number } & Partial<Pick<SweepReport, 'pruned'>>,
  ): void {
    this.#sweeps[outcome]++;
    this.#sweepDuration.observe(Math.max(0, durationMs) / 1000);
    if (report) {
      this.#reaped += report.reaped;
      this.#sweepJobs.reaped += report.reaped;
      this.#sweepJobs.retried += report.retried;
      this.#sweepJobs.budget_exceeded += report.budgetExceeded;
      this.#sweepJobs.repaired += report.repaired;
      this.#sweepJobs.unblocked += report.unblocked;
      this.#sweepJobs.failed += report.failedJobs;
      if (report.staleFactories !== undefined) this.#staleFactories = report.staleFactories;
      this.#pruned += report.pruned ?? 0;
    }
  }

  // --- Retention (issue 14) -------------------------------------------------------
  #pruned = 0;

  /** Jobs deleted by retention outside a sweep (`POST /fleet/admin/prune`). */
  recordPruned(jobs: number): void {
    this.#pruned += jobs;
  }

  /** Job counts by (product, stage) over the observed coordinators' stores. */
  async #jobCounts(): Promise<{ up: boolean; rows: Map<string, Map<Stage, number>> }> {
    const rows = new Map<string, Map<Stage, number>>();
    const stores = new Set<DocumentStore>([...this.#observed.keys()].map((c) => c.store));
    let up = true;
    for (const store of stores) {
      try {
        for (const { productId, stage, count } of await store.jobs.countByStage()) {
          let stages = rows.get(productId);
          if (stages === undefined) {
            stages = new Map();
            rows.set(productId, stages);
          }
          stages.set(stage, (stages.get(stage) ?? 0) + count);
        }
      } catch {
        up = false;
      }
    }
    return { up, rows };
  }

  /** Prometheus text exposition (format 0.0.4). Never rejects: a failed store read shows as `fleet_store_up 0`. */
  async render(): Promise<string> {
    const out: string[] = [];
    const { up, rows } = await this.#jobCounts();
    header(out, 'fleet_jobs', 'gauge', 'Jobs by product and stage.');
    for (const product of [...rows.keys()].sort()) {
      const stages = rows.get(product)!;
      // Every stage of a product that has jobs, zeros included: series do not vanish.
      for (const stage of STAGES) {
        out.push(`fleet_jobs${labels({ product, stage })} ${stages.get(stage) ?? 0}`);
      }
    }
    header(out, 'fleet_store_up', 'gauge', '1 when the store answered the job count query.');
    out.push(`fleet_store_up ${up ? 1 : 0}`);
    header(out, 'fleet_claims_total', 'counter', 'Jobs handed to factories.');
    out.push(`fleet_claims_total ${this.#claims}`);
    header(
      out,
      'fleet_fenced_total',
      'counter',
      'Worker calls rejected as fenced (stale epoch or not the holder).',
    );
    out.push(`fleet_fenced_total ${this.#fenced}`);
    header(out, 'fleet_reaped_leases_total', 'counter', 'Expired leases reaped by the supervisor.');
    out.push(`fleet_reaped_leases_total ${this.#reaped}`);
    header(out, 'fleet_sweeps_total', 'counter', 'Supervisor sweeps by outcome.');
    for (const [outcome, n] of Object.entries(this.#sweeps)) {
      out.push(`fleet_sweeps_total${labels({ outcome })} ${n}`);
    }
    header(
      out,
      'fleet_sweep_jobs_total',
      'counter',
      'Jobs acted on by supervisor sweeps, by action.',
    );
    for (const [action, n] of Object.entries(this.#sweepJobs)) {
      out.push(`fleet_sweep_jobs_total${labels({ action })} ${n}`);
    }
    header(out, 'fleet_sweep_duration_seconds', 'histogram', 'Duration of supervisor sweeps.');
    this.#sweepDuration.render('fleet_sweep_duration_seconds', out);
    header(
      out,
      'fleet_stale_factories',
      'gauge',
      'Factories of every product that missed three heartbeats, at the last successful sweep.',
    );
    out.push(`fleet_stale_factories ${this.#staleFactories}`);
    header(out, 'fleet_claim_waiting', 'gauge', 'Long-poll claims waiting for a job now.');
    out.push(`fleet_claim_waiting ${this.#claimWaiting}`);
    header(
      out,
      'fleet_claim_waits_total',
      'counter',
      'Long-poll claims that waited, by how they ended.',
    );
    for (const [outcome, n] of Object.entries(this.#claimWaits)) {
      out.push(`fleet_claim_waits_total${labels({ outcome })} ${n}`);
    }
    header(
      out,
      'fleet_http_request_duration_seconds',
      'histogram',
      'HTTP requests answered by the Fleet plugin, by route pattern, method and status.',
    );
    this.#http.render('fleet_http_request_duration_seconds', out);
    header(
      out,
      'fleet_pruned_jobs_total',
      'counter',
      'Finished jobs deleted with their documents by retention (sweeps and admin prunes).',
    );
    out.push(`fleet_pruned_jobs_total ${this.#pruned}`);
    return `${out.join('\n')}\n`;
  }
}

/** The media type of {@link FleetMetrics.render}'s output. */
export const PROMETHEUS_MEDIA_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
