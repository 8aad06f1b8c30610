/**
 * A simulated factory for multi-process tests: it speaks the worker protocol of API.md
 * over keep-alive HTTP (undici) to one Fleet server, and writes down everything it was
 * told in a shared {@link FactoryLedger}, so a test can check what the servers granted
 * against what they stored.
 *
 * A factory heartbeats once, then loops: claim (long-poll `waitMs`), renew, and move the
 * job `building → review → testing → shipped`, renewing again whenever less than half of
 * its lease is left. Its {@link FactoryScript} may make an attempt
 *
 * - fail: `PATCH to: failed` with `error.class: 'transient'` before one of the moves
 *   (the job must come back through the retry policy), or
 * - pause: sleep past the lease before one of the moves, wait until the job's epoch has
 *   moved on (the supervisor reaped the lease), then keep writing as a zombie: a renew,
 *   the move it was about to make, a ship and a failure, each of which must be refused
 *   with `409 FENCED`.
 */
import { Pool } from 'undici';
import type { ClaimGrant, JobDoc } from '../../runtime/types.js';

/**
 * One answer of the Fleet API. `T` is the body of a success, as the caller expects it
 * (checked by the status first); any other status carries a problem document, or null.
 */
export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
}

/** What a renewal answers (API.md): the lease's epoch and its new expiry. */
interface RenewAnswer {
  leaseEpoch: number;
  expiresAt: string;
}

/** Keep-alive HTTP to one Fleet server, with one bearer token. */
export class FleetHttp {
  readonly #pool: Pool;

  constructor(
    readonly url: string,
    readonly token: string,
    connections = 16,
  ) {
    this.#pool = new Pool(url, {
      connections,
      keepAliveTimeout: 30_000,
      // a long-poll claim answers after its waitMs at the latest
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    });
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    const res = await this.#pool.request({
      method: method as 'GET',
      path,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? JSON.parse(text) : null };
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export { seededRandom } from './random.js';

/** The worker moves of one attempt, in order. */
export const MOVES = ['building', 'review', 'testing', 'shipped'] as const;
export type Move = (typeof MOVES)[number];

/** A lease handed out by `POST /fleet/claim`, as the factory saw it. */
export interface Grant {
  jobId: string;
  leaseEpoch: number;
  factoryId: string;
  attempt: number;
  server: string;
  /** Client clock when the grant arrived (ms). */
  at: number;
}

/** A write a paused factory made after its lease was reaped, and how it was answered. */
export interface ZombieWrite {
  jobId: string;
  leaseEpoch: number;
  factoryId: string;
  call: string;
  status: number;
  code: string | undefined;
}

/** A factory that slept past its lease. */
export interface Pause {
  jobId: string;
  leaseEpoch: number;
  factoryId: string;
  /** When its lease expired (ms), as the last grant or renewal said. */
  expiresAt: number;
  /** When it saw the job's epoch move on (ms), or null if it never did (within the deadline). */
  reapSeenAt: number | null;
}

/** What every factory of a run saw; shared by all of them. */
export class FactoryLedger {
  readonly grants: Grant[] = [];
  /** Successful `PATCH to: shipped`, per job. */
  readonly ships = new Map<string, Array<{ factoryId: string; leaseEpoch: number }>>();
  /** Jobs failed on purpose (transient), with the epoch of the failed attempt. */
  readonly transientFailures: Array<{ jobId: string; leaseEpoch: number }> = [];
  readonly pauses: Pause[] = [];
  readonly zombieWrites: ZombieWrite[] = [];
  /** Writes of a factory that did not pause which were fenced (its lease ran out anyway). */
  readonly unplannedFences: string[] = [];
  /** Anything the protocol does not allow (wrong status, bad body...). */
  readonly unexpected: string[] = [];
  claimCalls = 0;
  emptyClaims = 0;
  renewals = 0;
  moves = 0;
  /** Jobs that already failed on purpose / paused (each at most once). */
  readonly failedJobs = new Set<string>();
  readonly pausedJobs = new Set<string>();
}

/** What one attempt does: fail or pause before move `failAt` / `pauseAt` (0..3), or neither. */
export interface AttemptPlan {
  failAt?: number;
  pauseAt?: number;
}

export interface FactoryOptions {
  factoryId: string;
  http: FleetHttp;
  ledger: FactoryLedger;
  /** The servers' lease length (ms). */
  leaseMs: number;
  /** Long-poll of each claim (ms). */
  waitMs: number;
  /** How long a pause lasts (ms); past the lease. */
  pauseMs: number;
  /** Longest wait for a paused lease to be reaped (ms). */
  reapDeadlineMs: number;
  /** Decides what the attempt does (called once per grant). */
  script: (grant: Grant) => AttemptPlan;
  /** True once the run is over: the factory stops after its current claim. */
  done: () => boolean;
}

const problemCode = (r: ApiResponse): string | undefined => {
  const code: unknown =
    r.body && typeof r.body === 'object' ? Reflect.get(r.body, 'code') : undefined;
  return typeof code === 'string' ? code : undefined;
};

const describe = (r: ApiResponse): string => `${r.status} ${JSON.stringify(r.body)?.slice(0, 300)}`;

/** One simulated factory; `run()` resolves when `done()` says so. */
export class SimulatedFactory {
  readonly #o: FactoryOptions;

  constructor(options: FactoryOptions) {
    this.#o = options;
  }

  get id(): string {
    return this.#o.factoryId;
  }

  async run(): Promise<void> {
    const { http, factoryId, ledger } = this.#o;
    const beat = await http.call('POST', '/fleet/factories/heartbeat', {
      factoryId,
      capabilities: [],
      health: 'ok',
    });
    if (beat.status !== 200) ledger.unexpected.push(`${factoryId} heartbeat: ${describe(beat)}`);
    while (!this.#o.done()) {
      ledger.claimCalls++;
      let r: ApiResponse<ClaimGrant>;
      try {
        r = await http.call<ClaimGrant>('POST', '/fleet/claim', {
          factoryId,
          waitMs: this.#o.waitMs,
        });
      } catch (e) {
        ledger.unexpected.push(`${factoryId} claim: ${(e as Error).message}`);
        await sleep(100);
        continue;
      }
      if (r.status === 204) {
        ledger.emptyClaims++;
        continue;
      }
      if (r.status !== 200) {
        ledger.unexpected.push(`${factoryId} claim: ${describe(r)}`);
        await sleep(100);
        continue;
      }
      const grant: Grant = {
        jobId: r.body.job.id,
        leaseEpoch: r.body.lease.leaseEpoch,
        factoryId,
        attempt: r.body.run.attempt,
        server: http.url,
        at: Date.now(),
      };
      ledger.grants.push(grant);
      if (r.body.job.leaseEpoch !== grant.leaseEpoch || r.body.job.holderFactoryId !== factoryId) {
        ledger.unexpected.push(`${factoryId} claim: job and lease disagree: ${describe(r)}`);
      }
      try {
        await this.#work(grant, Date.parse(r.body.lease.expiresAt));
      } catch (e) {
        ledger.unexpected.push(`${factoryId} job ${grant.jobId}: ${(e as Error).message}`);
      }
    }
  }

  /** Renews; returns the new expiry, or null (recorded) when refused. */
  async #renew(grant: Grant): Promise<number | null> {
    const { http, factoryId, ledger } = this.#o;
    const r = await http.call<RenewAnswer>('POST', `/fleet/jobs/${grant.jobId}/lease/renew`, {
      factoryId,
      leaseEpoch: grant.leaseEpoch,
    });
    ledger.renewals++;
    if (r.status === 200 && r.body.leaseEpoch === grant.leaseEpoch) {
      return Date.parse(r.body.expiresAt);
    }
    this.#refused(grant, 'renew', r);
    return null;
  }

  #refused(grant: Grant, call: string, r: ApiResponse): void {
    const what = `${this.#o.factoryId} ${call} ${grant.jobId}@${grant.leaseEpoch}: ${describe(r)}`;
    if (r.status === 409 && problemCode(r) === 'FENCED') this.#o.ledger.unplannedFences.push(what);
    else this.#o.ledger.unexpected.push(what);
  }

  async #work(grant: Grant, claimedUntil: number): Promise<void> {
    const { http, factoryId, ledger, leaseMs } = this.#o;
    const plan = this.#o.script(grant);
    const renewed = await this.#renew(grant);
    if (renewed === null) return;
    let expiresAt = Math.max(renewed, claimedUntil);
    for (const [i, to] of MOVES.entries()) {
      if (plan.pauseAt === i) return this.#zombie(grant, expiresAt, i);
      if (expiresAt - Date.now() < leaseMs / 2) {
        const again = await this.#renew(grant);
        if (again === null) return;
        expiresAt = again;
      }
      if (plan.failAt === i) {
        const r = await http.call<JobDoc>('PATCH', `/fleet/jobs/${grant.jobId}`, {
          factoryId,
          leaseEpoch: grant.leaseEpoch,
          to: 'failed',
          error: { class: 'transient', message: `simulated failure before ${to}` },
        });
        if (r.status === 200 && r.body.stage === 'failed') {
          ledger.transientFailures.push({ jobId: grant.jobId, leaseEpoch: grant.leaseEpoch });
        } else this.#refused(grant, 'fail', r);
        return;
      }
      const r = await http.call<JobDoc>('PATCH', `/fleet/jobs/${grant.jobId}`, {
        factoryId,
        leaseEpoch: grant.leaseEpoch,
        to,
      });
      if (r.status !== 200 || r.body.stage !== to) return this.#refused(grant, to, r);
      ledger.moves++;
      if (to === 'shipped') {
        const list = ledger.ships.get(grant.jobId) ?? [];
        list.push({ factoryId, leaseEpoch: grant.leaseEpoch });
        ledger.ships.set(grant.jobId, list);
      }
    }
  }

  /**
   * Sleeps past the lease, waits until the job's epoch moved on (its lease was reaped),
   * then writes as the old holder: every write must be fenced.
   */
  async #zombie(grant: Grant, expiresAt: number, next: number): Promise<void> {
    const { http, factoryId, ledger } = this.#o;
    const pause: Pause = {
      jobId: grant.jobId,
      leaseEpoch: grant.leaseEpoch,
      factoryId,
      expiresAt,
      reapSeenAt: null,
    };
    ledger.pauses.push(pause);
    await sleep(this.#o.pauseMs);
    const deadline = Date.now() + this.#o.reapDeadlineMs;
    for (;;) {
      const r = await http.call<JobDoc>('GET', `/fleet/jobs/${grant.jobId}`);
      if (r.status === 200 && r.body.leaseEpoch > grant.leaseEpoch) break;
      // never reaped within the deadline: `pause.reapSeenAt` stays null (the test says so)
      if (Date.now() > deadline || this.#o.done()) return;
      await sleep(100);
    }
    pause.reapSeenAt = Date.now();
    const base = { factoryId, leaseEpoch: grant.leaseEpoch };
    const writes: Array<[string, string, string, object]> = [
      ['renew', 'POST', `/fleet/jobs/${grant.jobId}/lease/renew`, base],
      [MOVES[next]!, 'PATCH', `/fleet/jobs/${grant.jobId}`, { ...base, to: MOVES[next] }],
      ['shipped', 'PATCH', `/fleet/jobs/${grant.jobId}`, { ...base, to: 'shipped' }],
      [
        'failed',
        'PATCH',
        `/fleet/jobs/${grant.jobId}`,
        { ...base, to: 'failed', error: { class: 'transient', message: 'zombie' } },
      ],
    ];
    for (const [call, method, path, body] of writes) {
      const r = await http.call(method, path, body);
      ledger.zombieWrites.push({
        ...base,
        jobId: grant.jobId,
        call,
        status: r.status,
        code: problemCode(r),
      });
    }
  }
}
