/**
 * The driver: performs a model (machine) event through the coordinator's public API.
 *
 * `MAPPING` is the one table from machine event types to coordinator calls. Worker events
 * and admin events are direct calls; the rest are produced by the coordinator itself and
 * are triggered the way they happen in production:
 *
 * | machine event     | coordinator call(s)                                                        | a rejection shows as            |
 * |-------------------|----------------------------------------------------------------------------|---------------------------------|
 * | CLAIM             | `claimNextJob`                                                             | no grant (`ignored`)            |
 * | BUILD/REVIEW/TEST/SHIP | `transition` (`to`: building/review/testing/shipped)                  | FENCED / INVALID_TRANSITION     |
 * | FAIL              | `transition` to `failed`, error class `transient` (retryable) or `fatal`    | FENCED / INVALID_TRANSITION     |
 * | RENEW             | `renewLease` (`extendMs`)                                                  | FENCED / INVALID_TRANSITION     |
 * | RELEASE           | `releaseLease` (deps made met / unmet first)                               | FENCED / INVALID_TRANSITION     |
 * | RECORD            | `recordProgress` with a checkpoint                                         | FENCED / INVALID_TRANSITION     |
 * | CANCEL            | `cancel`                                                                   | INVALID_TRANSITION              |
 * | REQUEUE           | `requeue` (deps made met / unmet first)                                    | INVALID_TRANSITION              |
 * | SUPERSEDE         | `submit` again, same idempotency key, new content (deps pointed at a met / unmet dep) | IDEMPOTENCY_CONFLICT |
 * | LEASE_EXPIRED     | clock to the event's `now`, `reapExpiredLeases`                            | nothing reaped (`ignored`)      |
 * | RETRY_DUE         | clock to the event's `now`, `retryDue`                                     | nothing retried (`ignored`)     |
 * | DEPS_MET          | the dep reaches `testing` (it notifies its dependents); `sweep` if it is there already | `unreported`          |
 * | DEPS_UNMET        | the dep leaves `testing` (it notifies): back to `building`, or (cases `DEPS_UNMET:fail`, `:release`, `:expiry`) failed, released or reaped; `sweep` if it is unmet already | `unreported` |
 * | DEPENDENCY_FAILED | the dep is cancelled (dead_letter notifies its dependents)                 | `unreported`                    |
 * | BUDGET_EXCEEDED   | holding a lease: `recordProgress` with insights over the token budget (the call delivers RECORD then BUDGET_EXCEEDED); otherwise clock past the wall budget, `sweep` | nothing exceeded (`ignored`) |
 *
 * Coordinator calls that have no report of their own (a dependency notification) are
 * `unreported`: only the store tells what they did.
 *
 * | GIVE_BACK         | none: see below                                                            | —                               |
 *
 * No coordinator entry point: GIVE_BACK, which a claim sends only when it finds its
 * factory over its seat limit because two processes granted the last seat at once (the
 * race is driven in test/coordinator/defects.test.ts, item 9); and BUDGET_EXCEEDED for a job that holds no lease and was never
 * claimed since submission or its last requeue (`firstClaimedAt` null, usage zero): the
 * wall budget only runs from the first claim, and usage only grows under a lease (where
 * the budget check fires at once) and is reset by a requeue. `noEntryPoint` names it; the
 * model drops those pairs from the coordinator graph and they are covered at the machine
 * level only (job-model.test.ts).
 *
 * The environment: the job under test (J) depends (soft mode) on one dep job (D) that the
 * driver moves between `building` (unmet) and `testing` (met). The driver keeps the
 * coordinator's invariants (J queued ⇒ D met; J blocked ⇒ D unmet) and only moves D
 * where that cannot change J by itself (J holds a lease, failed, or ended), so each step
 * delivers exactly the machine events the model expects.
 */
import type { AnyStateMachine } from 'xstate';
import type { JobContext, JobMachineEvent, JobMachineEventType } from '../../machines/index.js';
import type { ErrorCode, Result } from '../../runtime/errors.js';
import { isFenced } from '../../runtime/job-draft.js';
import type { JobDoc } from '../../runtime/types.js';
import { type Harness, makeHarness, must } from '../support/harness.js';
import type { StoreFactory } from '../support/stores.js';
import {
  type DepExit,
  LEASE_MS,
  MAX_RETRIES,
  RENEW_MS,
  RETRY_DELAY_MS,
  type Snap,
  TOKEN_BUDGET,
  WALL,
  WALL_MS,
} from './paths.js';

/** What a coordinator call reported. */
export type Outcome =
  | { status: 'ok' }
  | { status: 'error'; code: ErrorCode }
  /** The call reported that it did nothing (no grant, nothing reaped / retried / exceeded). */
  | { status: 'ignored' }
  /** The call has no report of its own (delivered by a dependency notification). */
  | { status: 'unreported' };

export interface Performed {
  outcome: Outcome;
  /** The machine events the call(s) deliver to J, in order (usually just the event). */
  delivered: JobMachineEvent[];
}

type Rejection = 'fenced-or-invalid' | 'IDEMPOTENCY_CONFLICT' | 'ignored' | 'unreported';

interface Entry<K extends JobMachineEventType> {
  /** The coordinator call(s), for messages. */
  call: string;
  /** How the coordinator answers an event the machine rejects. */
  onReject: Rejection;
  /** How it answers an accepted one. */
  onAccept: 'ok' | 'unreported';
  perform(
    w: World,
    e: Extract<JobMachineEvent, { type: K }>,
    ctx: JobContext,
    stage: string,
  ): Promise<Performed>;
}

type Mapping = { [K in JobMachineEventType]: Entry<K> };

const DEP_WORKER = 'dworker';
const DEP_LEASE_MS = 3_600_000;
const JOB_CAPS = ['job'];

function fromResult(r: Result<unknown>): Outcome {
  return r.ok ? { status: 'ok' } : { status: 'error', code: r.error.code };
}

const one = (e: JobMachineEvent, outcome: Outcome): Performed => ({ outcome, delivered: [e] });

/** Stages in which moving D cannot change J by itself (J is neither queued nor blocked). */
const depFree = (stage: string) => stage !== 'queued' && stage !== 'blocked';

export const MAPPING: Mapping = {
  CLAIM: {
    call: 'claimNextJob',
    onReject: 'ignored',
    onAccept: 'ok',
    async perform(w, e) {
      await w.setClock(e.now);
      const r = await w.h.coord.claimNextJob(w.h.product, {
        factoryId: e.factoryId,
        capabilities: JOB_CAPS,
      });
      if (!r.ok) return one(e, fromResult(r));
      if (r.value === null) return one(e, { status: 'ignored' });
      if (r.value.job.id !== w.jobId) throw new Error(`claim handed out ${r.value.job.id}`);
      return one(e, { status: 'ok' });
    },
  },
  BUILD: move('building'),
  REVIEW: move('review'),
  TEST: move('testing'),
  SHIP: move('shipped'),
  FAIL: {
    call: 'transition(to: failed)',
    onReject: 'fenced-or-invalid',
    onAccept: 'ok',
    async perform(w, e) {
      await w.setClock(e.now);
      const r = await w.h.coord.transition(w.h.product, w.jobId, {
        factoryId: e.factoryId,
        leaseEpoch: e.leaseEpoch,
        to: 'failed',
        error: { class: e.retryable ? 'transient' : 'fatal', message: 'model' },
      });
      return one(e, fromResult(r));
    },
  },
  RENEW: {
    call: 'renewLease',
    onReject: 'fenced-or-invalid',
    onAccept: 'ok',
    async perform(w, e) {
      await w.setClock(e.now);
      if (e.expiresAt - e.now !== RENEW_MS) throw new Error('RENEW: unexpected extension');
      const r = await w.h.coord.renewLease(w.h.product, w.jobId, {
        factoryId: e.factoryId,
        leaseEpoch: e.leaseEpoch,
        extendMs: RENEW_MS,
      });
      return one(e, fromResult(r));
    },
  },
  RELEASE: {
    call: 'releaseLease',
    onReject: 'fenced-or-invalid',
    onAccept: 'ok',
    async perform(w, e, _ctx, stage) {
      if (depFree(stage)) await w.setDeps(e.depsMet);
      await w.setClock(e.now);
      const r = await w.h.coord.releaseLease(w.h.product, w.jobId, {
        factoryId: e.factoryId,
        leaseEpoch: e.leaseEpoch,
      });
      return one(e, fromResult(r));
    },
  },
  RECORD: {
    call: 'recordProgress(checkpoint)',
    onReject: 'fenced-or-invalid',
    onAccept: 'ok',
    async perform(w, e) {
      await w.setClock(e.now);
      const r = await w.h.coord.recordProgress(w.h.product, w.jobId, {
        factoryId: e.factoryId,
        leaseEpoch: e.leaseEpoch,
        checkpoint: { wipCommit: `c${w.counter++}` },
      });
      return one(e, fromResult(r));
    },
  },
  CANCEL: {
    call: 'cancel',
    onReject: 'fenced-or-invalid',
    onAccept: 'ok',
    async perform(w, e) {
      return one(e, fromResult(await w.h.coord.cancel(w.h.product, w.jobId, 'model')));
    },
  },
  REQUEUE: {
    call: 'requeue',
    onReject: 'fenced-or-invalid',
    onAccept: 'ok',
    async perform(w, e, _ctx, stage) {
      if (depFree(stage)) await w.setDeps(e.depsMet);
      return one(e, fromResult(await w.h.coord.requeue(w.h.product, w.jobId)));
    },
  },
  SUPERSEDE: {
    call: 'submit (same idempotency key, new content)',
    onReject: 'IDEMPOTENCY_CONFLICT',
    onAccept: 'ok',
    async perform(w, e, _ctx, stage) {
      // A waiting job's deps are met iff D is (the invariant); point J at a dep in the
      // wanted state: D itself, or a new one. A job that is not waiting keeps its deps.
      const waiting = stage === 'queued' || stage === 'blocked';
      const old = w.dep;
      let dep = old;
      if (waiting && (await w.depMet()) !== e.depsMet) {
        dep = await w.newDep(e.depsMet ? 'testing' : 'building');
      }
      if (e.maxRetries !== MAX_RETRIES) throw new Error('SUPERSEDE: unexpected maxRetries');
      const r = await w.submitJob(dep.id);
      if (r.ok && r.value.outcome !== 'superseded') {
        throw new Error(`SUPERSEDE: outcome ${r.value.outcome}`);
      }
      if (r.ok && dep !== old) {
        w.dep = dep;
        // The old dep has no dependents now: end it so no sweep ever touches it again.
        must(await w.h.coord.cancel(w.h.product, old.id, 'replaced'));
      }
      return one(e, fromResult(r));
    },
  },
  LEASE_EXPIRED: {
    call: 'reapExpiredLeases',
    onReject: 'ignored',
    onAccept: 'ok',
    async perform(w, e, _ctx, stage) {
      if (depFree(stage)) await w.setDeps(e.depsMet);
      await w.setClock(e.now);
      const n = await w.h.coord.reapExpiredLeases(e.now);
      return one(e, n === 0 ? { status: 'ignored' } : { status: 'ok' });
    },
  },
  RETRY_DUE: {
    call: 'retryDue',
    onReject: 'ignored',
    onAccept: 'ok',
    async perform(w, e, _ctx, stage) {
      if (depFree(stage)) await w.setDeps(e.depsMet);
      await w.setClock(e.now);
      const n = await w.h.coord.retryDue(e.now);
      return one(e, n === 0 ? { status: 'ignored' } : { status: 'ok' });
    },
  },
  DEPS_MET: {
    call: 'dep reaches testing (notifies) | sweep',
    onReject: 'unreported',
    onAccept: 'unreported',
    async perform(w, e) {
      if (await w.depMet()) await w.h.coord.sweep(w.h.clock.now());
      else await w.moveDep(w.dep, 'testing');
      return one(e, { status: 'unreported' });
    },
  },
  DEPS_UNMET: {
    call: 'dep leaves testing: back to building, failed, released, lease expired (notifies) | sweep',
    onReject: 'unreported',
    onAccept: 'unreported',
    async perform(w, e, _ctx, stage) {
      const via = (e as { via?: DepExit }).via ?? 'building';
      if (await w.depMet()) await w.unmeetDep(via, stage);
      else await w.h.coord.sweep(w.h.clock.now());
      return one(e, { status: 'unreported' });
    },
  },
  DEPENDENCY_FAILED: {
    call: 'cancel(dep) (dead_letter notifies)',
    onReject: 'unreported',
    onAccept: 'unreported',
    async perform(w, e) {
      const d = await w.depDoc();
      if (d.stage === 'dead_letter') await w.moveDep(w.dep, 'building'); // revive, to kill again
      must(await w.h.coord.cancel(w.h.product, w.dep.id, 'dep dies'));
      return one(e, { status: 'unreported' });
    },
  },
  GIVE_BACK: {
    call: '(none: a claim racing another process for a factory’s last seat)',
    onReject: 'unreported',
    onAccept: 'unreported',
    async perform() {
      throw new Error('GIVE_BACK has no coordinator entry point (noEntryPoint)');
    },
  },
  BUDGET_EXCEEDED: {
    call: 'recordProgress(insights over budget) | sweep past the wall budget',
    onReject: 'ignored',
    onAccept: 'ok',
    async perform(w, e, ctx) {
      if (ctx.holder !== null) {
        const who = { factoryId: ctx.holder, leaseEpoch: ctx.leaseEpoch };
        const now = w.h.clock.now();
        const r = await w.h.coord.recordProgress(w.h.product, w.jobId, {
          ...who,
          insights: { tokensIn: TOKEN_BUDGET + 1 },
        });
        return { outcome: fromResult(r), delivered: [{ type: 'RECORD', ...who, now }, e] };
      }
      const now = Math.max(w.h.clock.now(), (ctx.firstClaimedAt ?? w.h.clock.now()) + WALL_MS + 1);
      await w.setClock(now);
      const report = await w.h.coord.sweep(now);
      return one(e, report.budgetExceeded === 0 ? { status: 'ignored' } : { status: 'ok' });
    },
  },
};

function move<K extends 'BUILD' | 'REVIEW' | 'TEST' | 'SHIP'>(
  to: 'building' | 'review' | 'testing' | 'shipped',
): Entry<K> {
  return {
    call: `transition(to: ${to})`,
    onReject: 'fenced-or-invalid',
    onAccept: 'ok',
    async perform(w, e: Extract<JobMachineEvent, { type: 'BUILD' | 'REVIEW' | 'TEST' | 'SHIP' }>) {
      await w.setClock(e.now);
      const r = await w.h.coord.transition(w.h.product, w.jobId, {
        factoryId: e.factoryId,
        leaseEpoch: e.leaseEpoch,
        to,
      });
      return one(e, fromResult(r));
    },
  };
}

/**
 * Why a (state, event) pair cannot be produced through the coordinator, or null if it
 * can. The model leaves these pairs out of the coordinator graph.
 */
export function noEntryPoint(
  type: JobMachineEventType,
  ctx: JobContext,
  accepted: boolean,
): string | null {
  if (type === 'GIVE_BACK') {
    return 'GIVE_BACK: sent only by a claim that finds its factory over its seat limit after a race between processes';
  }
  if (
    type === 'BUDGET_EXCEEDED' &&
    accepted &&
    ctx.holder === null &&
    ctx.firstClaimedAt === null
  ) {
    return 'BUDGET_EXCEEDED without a lease before any claim: no wall clock runs and usage is zero';
  }
  return null;
}

/** The outcome the coordinator must report, from the machine and the job-draft classification. */
export function expectedOutcome(ctx: JobContext, e: JobMachineEvent, accepted: boolean): Outcome {
  const entry = MAPPING[e.type];
  if (accepted) return { status: entry.onAccept };
  switch (entry.onReject) {
    case 'fenced-or-invalid':
      return { status: 'error', code: isFenced(ctx, e) ? 'FENCED' : 'INVALID_TRANSITION' };
    case 'IDEMPOTENCY_CONFLICT':
      return { status: 'error', code: 'IDEMPOTENCY_CONFLICT' };
    case 'ignored':
      return { status: 'ignored' };
    case 'unreported':
      return { status: 'unreported' };
  }
}

/** Performs a machine event on the world's coordinator. */
export function perform(w: World, e: JobMachineEvent, model: Snap): Promise<Performed> {
  const entry = MAPPING[e.type] as Entry<JobMachineEventType>;
  return entry.perform(w, e as never, model.context, String(model.value));
}

interface Dep {
  id: string;
  cap: string;
}

/** One coordinator on a fresh store, with J submitted (queued, its dep D met). */
export class World {
  readonly h: Harness;
  readonly key = 'job-under-test';
  jobId = '';
  dep: Dep = { id: '', cap: '' };
  counter = 0;
  #deps = 0;
  #depExpiresAt = 0;

  private constructor(h: Harness) {
    this.h = h;
  }

  static async open(factory: StoreFactory, machine?: AnyStateMachine): Promise<World> {
    const h = await makeHarness(factory, {
      leaseMs: LEASE_MS,
      ...(machine ? { machine } : {}),
    });
    const w = new World(h);
    try {
      w.dep = await w.newDep('testing');
      const r = must(await w.submitJob(w.dep.id));
      if (r.outcome !== 'created' || r.job.stage !== 'queued') {
        throw new Error('setup: J not queued');
      }
      w.jobId = r.job.id;
      return w;
    } catch (err) {
      await h.close();
      throw err;
    }
  }

  close(): Promise<void> {
    return this.h.close();
  }

  /**
   * Moves the clock forward to `now` (never back: the model's time is monotone), renewing
   * D's lease first if the jump would reach its end (the longest jump is the wall budget,
   * shorter than a dep lease).
   */
  async setClock(now: number): Promise<void> {
    const cur = this.h.clock.now();
    if (now < cur) throw new Error(`model time went back: ${now} < ${cur}`);
    if (now - cur > DEP_LEASE_MS)
      throw new Error(`clock jump longer than a dep lease: ${now - cur}`);
    if (now >= this.#depExpiresAt) {
      const d = await this.depDoc();
      if (d.holderFactoryId === DEP_WORKER) await this.#renewDep(d);
    }
    this.h.clock.set(now);
  }

  /** Submits J (new content each time: a re-submission supersedes). */
  submitJob(depId: string) {
    return this.h.coord.submit(this.h.product, {
      idempotencyKey: this.key,
      bodyMd: `job under test, content ${this.counter++}`,
      capabilities: JOB_CAPS,
      deps: [depId],
      depsMode: 'soft',
      retry: { max: MAX_RETRIES, backoff: 'fixed', delayMs: RETRY_DELAY_MS },
      budget: { tokens: TOKEN_BUDGET, wall: WALL },
    });
  }

  async #renewDep(d: JobDoc): Promise<void> {
    must(
      await this.h.coord.renewLease(this.h.product, d.id, {
        factoryId: DEP_WORKER,
        leaseEpoch: d.leaseEpoch,
        extendMs: DEP_LEASE_MS,
      }),
    );
    this.#depExpiresAt = this.h.clock.now() + DEP_LEASE_MS;
  }

  async depDoc(dep: Dep = this.dep): Promise<JobDoc> {
    return must(await this.h.coord.getJob(this.h.product, dep.id));
  }

  /** True when D satisfies J's soft dependency. */
  async depMet(): Promise<boolean> {
    const s = (await this.depDoc()).stage;
    return s === 'testing' || s === 'shipped';
  }

  async setDeps(met: boolean): Promise<void> {
    await this.moveDep(this.dep, met ? 'testing' : 'building');
  }

  /** A new dep job (own capability, so only the dep worker claims it), moved to `stage`. */
  async newDep(stage: 'building' | 'testing'): Promise<Dep> {
    const n = this.#deps++;
    const dep = { id: '', cap: `dep-${n}` };
    const r = must(
      await this.h.coord.submit(this.h.product, {
        idempotencyKey: `dep-${n}`,
        bodyMd: `dep ${n}`,
        capabilities: [dep.cap],
        // It fails, is released and expires many times: never out of attempts.
        retry: { max: 100, backoff: 'fixed', delayMs: RETRY_DELAY_MS },
      }),
    );
    dep.id = r.job.id;
    await this.moveDep(dep, stage);
    return dep;
  }

  /**
   * Takes D (in `testing`, held by the dep worker) out of `testing` by `via`. A lease
   * expiry moves the clock (1 s past a minimal renewal), so it is only used while J is
   * `queued` (holding no lease the move could end); otherwise D goes back to building.
   */
  async unmeetDep(via: DepExit, stage: string): Promise<void> {
    const p = this.h.product;
    const c = this.h.coord;
    const d = await this.depDoc();
    if (d.stage !== 'testing' || d.holderFactoryId !== DEP_WORKER)
      throw new Error(`dep is ${d.stage}, held by ${d.holderFactoryId}: not in testing`);
    const who = { factoryId: DEP_WORKER, leaseEpoch: d.leaseEpoch };
    switch (via === 'expiry' && stage !== 'queued' ? 'building' : via) {
      case 'building':
        return this.moveDep(this.dep, 'building');
      case 'fail':
        must(
          await c.transition(p, d.id, {
            ...who,
            to: 'failed',
            error: { class: 'transient', message: 'dep fails' },
          }),
        );
        return;
      case 'release':
        must(await c.releaseLease(p, d.id, who));
        return;
      case 'expiry': {
        must(await c.renewLease(p, d.id, { ...who, extendMs: 1000 }));
        this.h.clock.set(this.h.clock.now() + 1001);
        const reaped = await c.reapExpiredLeases();
        if (reaped !== 1) throw new Error(`dep expiry reaped ${reaped} leases`);
        return;
      }
    }
  }

  /** Moves a dep to `building` (unmet) or `testing` (met), reviving it if it ended. */
  async moveDep(dep: Dep, target: 'building' | 'testing'): Promise<void> {
    const p = this.h.product;
    const c = this.h.coord;
    let d = await this.depDoc(dep);
    if (d.stage === 'dead_letter' || d.stage === 'failed') {
      must(await c.requeue(p, dep.id));
      d = await this.depDoc(dep);
    }
    if (d.stage === 'queued') {
      const g = must(await c.claimNextJob(p, { factoryId: DEP_WORKER, capabilities: [dep.cap] }));
      if (g?.job.id !== dep.id) throw new Error(`dep claim handed out ${g?.job.id}`);
      d = g.job;
      this.#depExpiresAt = this.h.clock.now() + LEASE_MS;
    }
    for (let i = 0; i < 4 && d.stage !== target; i++) {
      const to =
        target === 'building'
          ? 'building'
          : d.stage === 'building'
            ? 'review'
            : d.stage === 'review'
              ? 'testing'
              : 'building';
      d = must(
        await c.transition(p, dep.id, { factoryId: DEP_WORKER, leaseEpoch: d.leaseEpoch, to }),
      );
    }
    if (d.stage !== target) throw new Error(`dep stuck in ${d.stage}`);
  }
}
