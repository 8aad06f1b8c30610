/**
 * The typed HTTP client of Fleet's REST API: one method per route of API.md (and our
 * additions), with request and response types taken from the zod schemas the server
 * validates with (`runtime/schemas.ts`, `adapters/http/http-schemas.ts`) — there is no
 * second copy of any shape. Only types are imported from them: the client's JavaScript
 * loads nothing of the server.
 *
 * Failures: an error answer is a `FleetApiError` (`status`, `code`, `detail` from the
 * problem document); no answer is a `FleetNetworkError` that says whether the request
 * may have been applied (`maybeSent`).
 *
 * Timeouts by default: 30 s a request; a claim waits `waitMs` + 10 s.
 *
 * Retries only where a second send cannot do harm:
 * - reads, submit and bulk submit (idempotent on their keys), heartbeat, lease renewal, and progress calls
 *   carrying a `seq` (the server applies each seq once) are retried on any network
 *   failure and on 429, 502, 503 and 504, with full-jitter backoff and `Retry-After`;
 * - claim, PATCH, release, progress without `seq`, requeue and cancel are retried only
 *   when the request never left the machine (connection refused, name not resolved).
 *   After an ambiguous failure the caller decides: re-read the job, then send again
 *   or not (the factory agent does).
 */
import type { z } from 'zod';
import type {
  ClaimInput,
  HeartbeatInput,
  PatchInput,
  ProgressInput,
  ReleaseInput,
  RenewInput,
  Stage,
  SubmitInput,
  SubmitManyItem,
  SubmitOutcome,
} from '../../runtime/index.js';
import type { BatchItemResult } from '../http/batch-routes.js';
import type {
  ArtifactView,
  ClaimView,
  EventView,
  FactoryView,
  JobView,
  LeaseView,
  RunView,
} from '../http/http-schemas.js';
import type { PruneBody, PruneView } from '../http/retention.js';
import { backoffMs, sleep } from './backoff.js';
import {
  FleetApiError,
  FleetNetworkError,
  networkErrorOf,
  type ProblemBody,
  parseRetryAfter,
} from './errors.js';
import { CLIENT_ROUTES, type ClientOperation } from './routes.js';

/** A job as the API returns it. */
export type Job = z.output<typeof JobView>;
/** One attempt (claim) of a job. */
export type Run = z.output<typeof RunView>;
/** One entry of a job's event stream. */
export type JobEvent = z.output<typeof EventView>;
/** A factory as of its last heartbeat, with `stale`. */
export type Factory = z.output<typeof FactoryView>;
/** An artifact pointer. */
export type Artifact = z.output<typeof ArtifactView>;
/** A lease: `leaseEpoch`, `expiresAt`, and `ttlMs` left when the server answered. */
export type Lease = z.output<typeof LeaseView>;
/** A successful claim: the job, its lease and the run it opened. */
export type Claim = z.output<typeof ClaimView>;

/**
 * The result of one item of a bulk submission: `status` is what a single submit of it
 * would have answered (201 created, 200 existing, 400, 409, 422), with `job` on success
 * and the item's `problem` document otherwise.
 */
export type SubmitManyItemResult = BatchItemResult;
/** What `prune` sends (`POST /fleet/admin/prune`). */
export type PruneInput = z.input<typeof PruneBody>;
/** What one pruning call did (or, dry, would do). */
export type PruneResult = z.output<typeof PruneView>;

/** Totals of two pruning passes; the later one's cutoff and cursor. */
function addPrune(a: PruneResult, b: PruneResult): PruneResult {
  return {
    ...b,
    examined: a.examined + b.examined,
    pruned: a.pruned + b.pruned,
    prunedByStage: {
      shipped: a.prunedByStage.shipped + b.prunedByStage.shipped,
      dead_letter: a.prunedByStage.dead_letter + b.prunedByStage.dead_letter,
    },
    kept: a.kept + b.kept,
    documents: {
      runs: a.documents.runs + b.documents.runs,
      leases: a.documents.leases + b.documents.leases,
      events: a.documents.events + b.documents.events,
      artifacts: a.documents.artifacts + b.documents.artifacts,
    },
    failedJobs: a.failedJobs + b.failedJobs,
  };
}

/** A page of a list; `nextCursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Paging of list calls. */
export interface PageQuery {
  /** 1–500. @defaultValue 50 (the server's) */
  limit?: number;
  cursor?: string | null;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborts the call (and its retries); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** This call's timeout per attempt, in ms. */
  timeoutMs?: number;
  /** Most retries of this call when retrying is safe. */
  retries?: number;
}

export interface FleetClientOptions {
  /** The server (or the host service that registered `fleetPlugin`), e.g. `http://127.0.0.1:8080`; a path prefix is kept. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Extra headers on every request (a host with its own auth scheme). */
  headers?: Record<string, string>;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
  /** Timeout of one attempt of a request, in ms (a claim adds its `waitMs`). @defaultValue 30000 */
  timeoutMs?: number;
  /** Retries of a call when retrying is safe. @defaultValue 2 */
  retries?: number;
  /** Backoff between retries: full jitter from `baseMs` doubling up to `capMs`. @defaultValue { baseMs: 250, capMs: 5000 } */
  backoff?: { baseMs: number; capMs: number };
  /** Jitter source. @defaultValue Math.random */
  random?: () => number;
}

/** Statuses worth another try of a safe call. */
const RETRY_STATUS = new Set([429, 502, 503, 504]);
const DEFAULT_TIMEOUT_MS = 30_000;
/** A claim's timeout beyond its `waitMs`. */
const CLAIM_SLACK_MS = 10_000;

/** `safe`: retried on any failure of the kinds above; `unsent`: only if it never left. */
type RetryPolicy = 'safe' | 'unsent';

interface RequestSpec {
  id?: string;
  query?: Record<string, string | number | null | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  retry: RetryPolicy;
  options?: CallOptions | undefined;
  /** Added to the timeout (a claim's waitMs). */
  extraTimeoutMs?: number;
}

/** An answer: status, headers and the parsed JSON body (null for 204/304). */
interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

/** Fleet's REST API as typed methods (see the module comment for timeouts and retries). */
export class FleetClient {
  readonly baseUrl: string;
  readonly #token: string | undefined;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoff: { baseMs: number; capMs: number };
  readonly #random: () => number;

  constructor(options: FleetClientOptions) {
    if (!URL.canParse(options.baseUrl)) {
      throw new TypeError(`baseUrl is not a URL: ${JSON.stringify(options.baseUrl)}`);
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#token = options.token;
    this.#headers = { ...options.headers };
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#retries = options.retries ?? 2;
    this.#backoff = options.backoff ?? { baseMs: 250, capMs: 5000 };
    this.#random = options.random ?? Math.random;
  }

  // -------------------------------------------------------------------------
  // Jobs
  // -------------------------------------------------------------------------

  /** Idempotent submit: `created`, `existing` (same key and content) or `superseded`. */
  async submit(
    input: SubmitInput,
    options?: CallOptions,
  ): Promise<{ job: Job; outcome: SubmitOutcome }> {
    const a = await this.#request('submit', { body: input, retry: 'safe', options });
    const header = a.headers.get('fleet-idempotency');
    const outcome: SubmitOutcome =
      header === 'existing' || header === 'superseded' ? header : 'created';
    return { job: a.body as Job, outcome };
  }

  /**
   * Bulk submit (`POST /fleet/jobs/batch`): up to 1,000 submissions, one result per item
   * in order (see {@link SubmitManyItemResult}); one bad item never refuses the others,
   * so a call only throws for a problem of the call itself (auth, more than 1,000 items,
   * body too large, the store unavailable). A batch never supersedes, so retrying it is
   * harmless: jobs it created answer `existing`.
   */
  async submitMany(
    jobs: readonly SubmitManyItem[],
    options?: CallOptions,
  ): Promise<SubmitManyItemResult[]> {
    const a = await this.#request('submitMany', { body: { jobs }, retry: 'safe', options });
    return (a.body as { items: SubmitManyItemResult[] }).items;
  }

  /** The product's jobs, newest first, optionally of one stage. */
  async listJobs(
    query: PageQuery & { stage?: Stage } = {},
    options?: CallOptions,
  ): Promise<Page<Job>> {
    return (await this.#request('listJobs', { query: { ...query }, retry: 'safe', options }))
      .body as Page<Job>;
  }

  /** One job. */
  async getJob(id: string, options?: CallOptions): Promise<Job> {
    return (await this.getJobWithETag(id, options)).job;
  }

  /** One job and its `ETag` (for `ifMatch`). */
  async getJobWithETag(id: string, options?: CallOptions): Promise<{ job: Job; etag: string }> {
    const a = await this.#request('getJob', { id, retry: 'safe', options });
    return { job: a.body as Job, etag: a.headers.get('etag') ?? '' };
  }

  /** A fenced stage move (`PATCH /fleet/jobs/:id`). */
  async transition(
    id: string,
    body: PatchInput,
    options?: CallOptions & { ifMatch?: string },
  ): Promise<Job> {
    const headers = options?.ifMatch ? { 'if-match': options.ifMatch } : undefined;
    return (
      await this.#request('transition', {
        id,
        body,
        retry: 'unsent',
        options,
        ...(headers ? { headers } : {}),
      })
    ).body as Job;
  }

  /** The job's runs, one per claim. */
  async listRuns(id: string, query: PageQuery = {}, options?: CallOptions): Promise<Page<Run>> {
    return (await this.#request('listRuns', { id, query: { ...query }, retry: 'safe', options }))
      .body as Page<Run>;
  }

  /** The job's event stream in `seq` order (`nextCursor` is the last seq seen). */
  async listEvents(
    id: string,
    query: PageQuery = {},
    options?: CallOptions,
  ): Promise<Page<JobEvent>> {
    return (await this.#request('listEvents', { id, query: { ...query }, retry: 'safe', options }))
      .body as Page<JobEvent>;
  }

  /** The job's artifact pointers. */
  async listArtifacts(
    id: string,
    query: PageQuery = {},
    options?: CallOptions,
  ): Promise<Page<Artifact>> {
    return (
      await this.#request('listArtifacts', { id, query: { ...query }, retry: 'safe', options })
    ).body as Page<Artifact>;
  }

  // -------------------------------------------------------------------------
  // Factories and leases
  // -------------------------------------------------------------------------

  /** Claims the best eligible job, long-polling up to `waitMs`; null when nothing came. */
  async claim(body: ClaimInput, options?: CallOptions): Promise<Claim | null> {
    const a = await this.#request('claim', {
      body,
      retry: 'unsent',
      options,
      extraTimeoutMs: (body.waitMs ?? 0) + CLAIM_SLACK_MS,
    });
    return a.status === 204 ? null : (a.body as Claim);
  }

  /** Extends the lease; the answer's `ttlMs` is what is left of it. */
  async renewLease(id: string, body: RenewInput, options?: CallOptions): Promise<Lease> {
    return (await this.#request('renewLease', { id, body, retry: 'safe', options })).body as Lease;
  }

  /** Gives the job back (`queued`, checkpoint kept; not counted as a failed attempt). */
  async releaseLease(id: string, body: ReleaseInput, options?: CallOptions): Promise<Job> {
    return (await this.#request('releaseLease', { id, body, retry: 'unsent', options }))
      .body as Job;
  }

  /** Checkpoint, insight increments, artifact pointers; with `seq`, safe to retry. */
  async recordProgress(id: string, body: ProgressInput, options?: CallOptions): Promise<Job> {
    const retry: RetryPolicy = body.seq === undefined ? 'unsent' : 'safe';
    return (await this.#request('recordProgress', { id, body, retry, options })).body as Job;
  }

  /** Registers (first beat) or refreshes a factory. */
  async heartbeat(body: HeartbeatInput, options?: CallOptions): Promise<Factory> {
    return (await this.#request('heartbeat', { body, retry: 'safe', options })).body as Factory;
  }

  /** The product's factories, by id, with `stale`. */
  async listFactories(query: PageQuery = {}, options?: CallOptions): Promise<Page<Factory>> {
    return (await this.#request('listFactories', { query: { ...query }, retry: 'safe', options }))
      .body as Page<Factory>;
  }

  // -------------------------------------------------------------------------
  // Admin and service
  // -------------------------------------------------------------------------

  /** `dead_letter` or `failed` → `queued` (role admin). */
  async requeue(id: string, options?: CallOptions): Promise<Job> {
    return (await this.#request('requeue', { id, retry: 'unsent', options })).body as Job;
  }

  /** Any non-terminal stage → `dead_letter` (reason `cancelled`; role admin). */
  async cancel(id: string, body: { reason?: string } = {}, options?: CallOptions): Promise<Job> {
    return (await this.#request('cancel', { id, body, retry: 'unsent', options })).body as Job;
  }

  /** Liveness (no auth). */
  async health(options?: CallOptions): Promise<{ status: 'ok' }> {
    return (await this.#request('health', { retry: 'safe', options })).body as { status: 'ok' };
  }

  /** Readiness: the store answers (no auth). */
  async ready(options?: CallOptions): Promise<{ status: 'ready'; store: string }> {
    return (await this.#request('ready', { retry: 'safe', options })).body as {
      status: 'ready';
      store: string;
    };
  }

  // --- Retention (issue 14) -------------------------------------------------

  /**
   * One pruning pass (`POST /fleet/admin/prune`; role admin, operator credentials):
   * deletes jobs that finished longer ago than `olderThan` (`7d`, `12h`...), or counts
   * them with `dryRun`. Go on with `nextCursor` until it is null ({@link pruneAll}).
   * Retried like a read: a second pass deletes nothing the first did not leave.
   */
  async prune(body: PruneInput, options?: CallOptions): Promise<PruneResult> {
    return (await this.#request('prune', { body, retry: 'safe', options })).body as PruneResult;
  }

  /**
   * Prunes until every finished job past `olderThan` was looked at (following
   * `nextCursor`); resolves with the totals. `onPass` sees each call's answer.
   */
  async pruneAll(
    body: Omit<PruneInput, 'cursor'>,
    onPass?: (pass: PruneResult) => void,
    options?: CallOptions,
  ): Promise<PruneResult> {
    let cursor: string | null = null;
    let total: PruneResult | null = null;
    do {
      const pass: PruneResult = await this.prune({ ...body, cursor }, options);
      onPass?.(pass);
      total = total === null ? { ...pass } : addPrune(total, pass);
      cursor = pass.nextCursor;
    } while (cursor !== null);
    return total;
  }

  // -------------------------------------------------------------------------
  // Transport
  // -------------------------------------------------------------------------

  async #request(op: ClientOperation, spec: RequestSpec): Promise<Answer> {
    const route = CLIENT_ROUTES[op];
    const path = route.path.replace('{id}', encodeURIComponent(spec.id ?? ''));
    const search = new URLSearchParams();
    for (const [k, v] of Object.entries(spec.query ?? {})) {
      if (v !== undefined && v !== null) search.set(k, String(v));
    }
    const qs = search.toString();
    const url = `${this.baseUrl}${path}${qs ? `?${qs}` : ''}`;
    const label = `${route.method} ${path}`;
    const signal = spec.options?.signal;
    const retries = spec.options?.retries ?? this.#retries;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once(route.method, url, label, spec);
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        const again =
          e instanceof FleetNetworkError
            ? spec.retry === 'safe' || !e.maybeSent
            : e instanceof FleetApiError && spec.retry === 'safe' && RETRY_STATUS.has(e.status);
        if (!again || attempt >= retries) throw e;
        const retryAfter = e instanceof FleetApiError ? e.retryAfterMs : null;
        await sleep(
          backoffMs(attempt, { ...this.#backoff, random: this.#random }, retryAfter),
          signal,
        );
      }
    }
  }

  async #once(method: string, url: string, label: string, spec: RequestSpec): Promise<Answer> {
    const timeoutMs = (spec.options?.timeoutMs ?? this.#timeoutMs) + (spec.extraTimeoutMs ?? 0);
    const timeout = AbortSignal.timeout(timeoutMs);
    const caller = spec.options?.signal;
    const signal = caller ? AbortSignal.any([caller, timeout]) : timeout;
    const headers: Record<string, string> = { accept: 'application/json', ...this.#headers };
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    Object.assign(headers, spec.headers);
    const init: RequestInit = { method, headers, signal };
    if (spec.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(spec.body);
    }
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(url, init);
      text = await res.text();
    } catch (e) {
      if (caller?.aborted) throw caller.reason;
      if (timeout.aborted) throw new FleetNetworkError('timeout', true, label, e);
      throw networkErrorOf(e, label);
    }
    const body = text === '' ? null : parseJson(text);
    if (res.ok) return { status: res.status, headers: res.headers, body };
    const problem: ProblemBody =
      body !== null && typeof body === 'object'
        ? (body as ProblemBody)
        : { detail: text.slice(0, 200) };
    throw new FleetApiError(
      res.status,
      problem,
      label,
      parseRetryAfter(res.headers.get('retry-after')),
    );
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A client for `options.baseUrl` (see {@link FleetClient}). */
export function createFleetClient(options: FleetClientOptions): FleetClient {
  return new FleetClient(options);
}

/**
 * Every item of a paged list, page by page: `paginate((cursor) => client.listJobs({ cursor }))`.
 */
export async function* paginate<T>(
  page: (cursor: string | null) => Promise<Page<T>>,
): AsyncGenerator<T> {
  let cursor: string | null = null;
  do {
    const p: Page<T> = await page(cursor);
    yield* p.items;
    cursor = p.nextCursor;
  } while (cursor !== null);
}
