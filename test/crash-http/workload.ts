/**
 * The clients of the HTTP crash test: one submitter and many factories, each speaking
 * Fleet's REST API through the typed client (`adapters/client`) to a server that is
 * SIGKILLed and restarted under them. They write down every request the server
 * answered 2xx in a shared {@link Ledger}, which the test then checks against the
 * database.
 *
 * How a client gets through an outage:
 * - a request that never left (connection refused), or a `429`, is sent again after a
 *   short jittered backoff, for as long as the test's deadline allows;
 * - a safe request (submit: idempotent on its key; reads) is sent again after any
 *   failure without an answer;
 * - an unsafe request (claim, PATCH) that may have been applied (connection reset,
 *   timeout, `5xx`) is resolved by re-reading: a PATCH re-reads its job and carries on
 *   from the stage it finds (sending the move again only if the job is still held by
 *   it, at its epoch, in the stage the move starts from); a claim lists the `assigned`
 *   jobs and adopts one held by this factory, if the claim was applied.
 *
 * The client's own retries are off (`retries: 0`), so each answer is seen here.
 */
import {
  createFleetClient,
  FleetApiError,
  type FleetClient,
  FleetNetworkError,
  type Job,
  sleep,
} from '../../adapters/client/index.js';
import type { PatchTarget } from '../../runtime/index.js';

/** Where a factory moves a job from each active stage when all goes well. */
const NEXT: Readonly<Record<string, PatchTarget>> = {
  assigned: 'building',
  building: 'review',
  review: 'testing',
  testing: 'shipped',
};

/** A submit answered 2xx. */
export interface SubmitAck {
  jobId: string;
  idempotencyKey: string;
  deps: string[];
}

/** A lease a factory holds: from a claim answered 2xx, or adopted after an ambiguous claim. */
export interface GrantAck {
  jobId: string;
  factoryId: string;
  leaseEpoch: number;
  /** The run's attempt (a 2xx claim's answer; the job's `attempt` for an adoption). */
  attempt: number;
  /** The job's `updatedAt` in the answer: the `at` of its `claimed` event. */
  at: string;
  adopted: boolean;
}

/** A PATCH answered 2xx. */
export interface PatchAck {
  jobId: string;
  factoryId: string;
  /** The epoch the PATCH carried. */
  sentEpoch: number;
  to: PatchTarget;
  /** The job in the answer: its stage, epoch and `updatedAt` (the `at` of the move's event). */
  stage: string;
  leaseEpoch: number;
  at: string;
}

/** Everything the clients saw, and counters of how they got through. */
export class Ledger {
  readonly submits: SubmitAck[] = [];
  readonly grants: GrantAck[] = [];
  readonly patches: PatchAck[] = [];
  /** Requests sent again because they never left (refused) or were rate limited. */
  resent = 0;
  /** Requests whose outcome was unknown (reset, timeout, 5xx), resolved by re-reading. */
  ambiguous = 0;
  /** Claims with an unknown outcome, and how many of them had been applied (adopted). */
  ambiguousClaims = 0;
  adoptedClaims = 0;
  /** 5xx answers (each also counted as ambiguous). */
  serverErrors = 0;
  /** PATCHes refused 409 FENCED (the lease had moved on) and 409 INVALID_TRANSITION. */
  fenced = 0;
  invalidTransitions = 0;
  /** Other 4xx answers to writes: none is expected. */
  readonly unexpected: string[] = [];
  /** Called on each 2xx answer to a write (the kill schedule counts them). */
  onAnswer: () => void = () => {};
}

/** Shared by every client of one test run. */
export interface WorkloadContext {
  baseUrl: string;
  ledger: Ledger;
  /** A client call that gets no answer after this (ms, `performance.now()`) throws: the test failed. */
  deadline: number;
  /** Uniform in [0, 1): the test's seeded generator, one per client. */
  random: () => number;
  /** True once the test failed elsewhere: every client call throws instead of trying again. */
  cancelled: () => boolean;
}

type Outcome<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'refused'; error: FleetApiError }
  | { kind: 'ambiguous'; error: unknown };

/** The typed client with its retries off and generous timeouts (the machine is loaded). */
export function crashClient(baseUrl: string, token: string): FleetClient {
  return createFleetClient({ baseUrl, token, retries: 0, timeoutMs: 60_000 });
}

/** A short full-jitter pause before a request is sent again (never a wait for a condition). */
function backoff(ctx: WorkloadContext, attempt: number): Promise<void> {
  return sleep(ctx.random() * Math.min(500, 20 * 2 ** Math.min(attempt, 5)));
}

function checkDeadline(ctx: WorkloadContext, what: string, last: unknown): void {
  if (ctx.cancelled()) throw new Error(`${what}: cancelled (the test failed)`, { cause: last });
  if (performance.now() > ctx.deadline) {
    throw new Error(`${what}: no answer before the test's deadline (last: ${String(last)})`, {
      cause: last,
    });
  }
}

/**
 * Sends `send` until the server answers: again after a refused connection or a 429; an
 * answer is `ok` or `refused` (a 4xx), no answer after the request may have left is
 * `ambiguous` (and so is a 5xx).
 */
async function attempt<T>(
  ctx: WorkloadContext,
  what: string,
  send: () => Promise<T>,
): Promise<Outcome<T>> {
  for (let n = 0; ; n++) {
    try {
      return { kind: 'ok', value: await send() };
    } catch (e) {
      if (e instanceof FleetNetworkError && !e.maybeSent) {
        ctx.ledger.resent++;
      } else if (e instanceof FleetApiError && e.status === 429) {
        ctx.ledger.resent++;
      } else if (e instanceof FleetApiError && e.status < 500) {
        return { kind: 'refused', error: e };
      } else if (e instanceof FleetApiError || e instanceof FleetNetworkError) {
        if (e instanceof FleetApiError) ctx.ledger.serverErrors++;
        ctx.ledger.ambiguous++;
        return { kind: 'ambiguous', error: e };
      } else {
        throw e;
      }
      checkDeadline(ctx, what, e);
      await backoff(ctx, n);
    }
  }
}

/** A safe request (idempotent or a read), sent until it is answered; a 4xx throws. */
async function reliably<T>(ctx: WorkloadContext, what: string, send: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    const r = await attempt(ctx, what, send);
    if (r.kind === 'ok') return r.value;
    if (r.kind === 'refused') throw r.error;
    checkDeadline(ctx, what, r.error);
    await backoff(ctx, n);
  }
}

/** What the submitter sends. */
export interface SubmitPlan {
  /** Keys are `<prefix><n>`. */
  keyPrefix: string;
  /** Keeps submitting while this says so. */
  more: () => boolean;
}

/**
 * The submitter: one job at a time, a fifth of them depending on an earlier job; each
 * submit is sent until answered (it is idempotent on its key), then written down.
 */
export async function runSubmitter(
  ctx: WorkloadContext,
  token: string,
  plan: SubmitPlan,
): Promise<void> {
  const client = crashClient(ctx.baseUrl, token);
  const priorities = ['critical', 'high', 'medium', 'low'] as const;
  for (let n = 0; plan.more(); n++) {
    const acked = ctx.ledger.submits;
    const deps =
      acked.length > 0 && ctx.random() < 0.2
        ? [acked[Math.floor(ctx.random() * acked.length)]!.jobId]
        : [];
    const idempotencyKey = `${plan.keyPrefix}${n}`;
    const input = {
      idempotencyKey,
      bodyMd: `# crash-http job ${n}`,
      priority: priorities[Math.floor(ctx.random() * priorities.length)]!,
      deps,
      retry: { max: 2, backoff: 'fixed' as const, delayMs: 100, on: ['transient'] },
    };
    let answer: Awaited<ReturnType<FleetClient['submit']>>;
    try {
      answer = await reliably(ctx, `submit ${idempotencyKey}`, () => client.submit(input));
    } catch (e) {
      ctx.ledger.unexpected.push(`submit ${idempotencyKey}: ${String(e)}`);
      continue;
    }
    acked.push({ jobId: answer.job.id, idempotencyKey, deps });
    ctx.ledger.onAnswer();
  }
}

/**
 * A factory: claim (long-poll), then move the job through its stages one PATCH at a
 * time until it ships, fails (a tenth of the moves: transient, so the job is retried;
 * one in fifty permanent, so it is dead-lettered) or the lease is lost; until `stop()`.
 */
export async function runFactory(
  ctx: WorkloadContext,
  token: string,
  factoryId: string,
  stop: () => boolean,
): Promise<void> {
  const client = crashClient(ctx.baseUrl, token);
  const { ledger } = ctx;

  /** After an ambiguous claim: the job the claim gave this factory, if it was applied. */
  const adopt = async (): Promise<Job | null> => {
    const page = await reliably(ctx, `${factoryId}: list assigned`, () =>
      client.listJobs({ stage: 'assigned', limit: 500 }),
    );
    const mine = page.items.find((j) => j.holderFactoryId === factoryId);
    // The list is of summaries; the moves need only stage, epoch and holder.
    return mine ? (mine as Job) : null;
  };

  /** Works `job` (held at `epoch`) until it leaves this factory's hands. */
  const work = async (first: Job, epoch: number): Promise<void> => {
    let job = first;
    for (;;) {
      if (job.leaseEpoch !== epoch || job.holderFactoryId !== factoryId) return;
      const next = NEXT[job.stage];
      if (next === undefined) return;
      const roll = ctx.random();
      const to: PatchTarget = roll < 0.02 || roll >= 0.9 ? 'failed' : next;
      const body = {
        factoryId,
        leaseEpoch: epoch,
        to,
        ...(to === 'failed'
          ? { error: { class: roll < 0.02 ? 'permanent' : 'transient', message: 'crash-http' } }
          : {}),
      };
      const r = await attempt(ctx, `${factoryId}: PATCH ${job.id} → ${to}`, () =>
        client.transition(job.id, body),
      );
      if (r.kind === 'ok') {
        ledger.patches.push({
          jobId: job.id,
          factoryId,
          sentEpoch: epoch,
          to,
          stage: r.value.stage,
          leaseEpoch: r.value.leaseEpoch,
          at: r.value.updatedAt,
        });
        ledger.onAnswer();
        job = r.value;
        continue;
      }
      if (r.kind === 'refused') {
        if (r.error.code === 'FENCED') {
          ledger.fenced++;
          return;
        }
        if (r.error.code === 'INVALID_TRANSITION') ledger.invalidTransitions++;
        else ledger.unexpected.push(`PATCH ${job.id} → ${to}: ${r.error.message}`);
      }
      // Unknown outcome, or refused as invalid: carry on from what the job says now.
      job = await reliably(ctx, `${factoryId}: read ${job.id}`, () => client.getJob(job.id));
    }
  };

  while (!stop()) {
    const r = await attempt(ctx, `${factoryId}: claim`, () =>
      client.claim({ factoryId, waitMs: 1000 }),
    );
    if (r.kind === 'refused') {
      ledger.unexpected.push(`claim by ${factoryId}: ${r.error.message}`);
      continue;
    }
    if (r.kind === 'ambiguous') {
      ledger.ambiguousClaims++;
      const job = await adopt();
      if (job) {
        ledger.adoptedClaims++;
        ledger.grants.push({
          jobId: job.id,
          factoryId,
          leaseEpoch: job.leaseEpoch,
          attempt: job.attempt,
          at: job.updatedAt,
          adopted: true,
        });
        await work(job, job.leaseEpoch);
      }
      continue;
    }
    const claim = r.value;
    if (claim === null) continue;
    ledger.grants.push({
      jobId: claim.job.id,
      factoryId,
      leaseEpoch: claim.lease.leaseEpoch,
      attempt: claim.run.attempt,
      at: claim.job.updatedAt,
      adopted: false,
    });
    ledger.onAnswer();
    await work(claim.job, claim.lease.leaseEpoch);
  }
}

/** Stages a job leaves on its own or through a factory; the rest are final. */
const UNFINISHED = [
  'queued',
  'blocked',
  'assigned',
  'building',
  'review',
  'testing',
  'failed',
] as const;

/** True when no job of the product is in an unfinished stage (one list call per stage). */
export async function allFinished(ctx: WorkloadContext, token: string): Promise<boolean> {
  const client = crashClient(ctx.baseUrl, token);
  for (const stage of UNFINISHED) {
    const page = await reliably(ctx, `list ${stage}`, () => client.listJobs({ stage, limit: 1 }));
    if (page.items.length > 0) return false;
  }
  return true;
}
