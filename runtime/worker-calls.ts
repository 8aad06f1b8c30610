/**
 * Worker calls, all fenced by the machine's guards: a stage move (`transition`),
 * progress (checkpoint, insight increments, artifact pointers), lease renewal and
 * release. A call from a stale epoch or a non-holder is `FENCED` (checked before the
 * lifecycle); a move the machine does not allow is `INVALID_TRANSITION`; either way
 * nothing changes. A job past its wall budget goes to `dead_letter` first and the
 * caller is fenced.
 */
import type { JobMachineEventType } from '../machines/index.js';
import { addUsage, exceededBudget, usageIsRepresentable, ZERO_USAGE } from './budget.js';
import { contentHash } from './canonical.js';
import { iso } from './clock.js';
import { type Core, parse } from './core.js';
import type { Stored } from './document-store.port.js';
import { FleetError, ok, type Result } from './errors.js';
import type { JobDraft } from './job-draft.js';
import { backoffDelay, isRetryable } from './retry-policy.js';
import * as S from './schemas.js';
import type {
  ArtifactDoc,
  JobDoc,
  PatchInput,
  PatchTarget,
  ProgressInput,
  ReleaseInput,
  RenewInput,
} from './types.js';
import type { Plan } from './write-path.js';

/** `ifMatch`: write only if the job's etag still is this (else `PRECONDITION_FAILED`), atomically. */
export interface Conditional {
  ifMatch?: string;
}

/** The machine event of each worker move but `failed` (which carries retry facts). */
const MOVE_EVENT = {
  building: 'BUILD',
  review: 'REVIEW',
  testing: 'TEST',
  shipped: 'SHIP',
} as const satisfies Record<Exclude<PatchTarget, 'failed'>, JobMachineEventType>;

/**
 * A fenced stage move (`PATCH /fleet/jobs/:id`). A call whose `leaseEpoch` is not the
 * job's epoch, or whose `factoryId` is not the holder, is `FENCED` (checked before the
 * lifecycle); a move the machine does not allow is `INVALID_TRANSITION`; either way
 * nothing changes. Checkpoint, insights and artifacts in the same call are applied
 * with the move or not at all. `ifMatch` makes the write conditional on the job's etag.
 */
export async function transition(
  c: Core,
  productId: string,
  jobId: string,
  input: PatchInput,
  options: Conditional = {},
): Promise<Result<Stored<JobDoc>>> {
  const parsed = parse(S.PatchInput, input);
  if (!parsed.ok) return parsed;
  const p = parsed.value;
  return workerCall(
    c,
    productId,
    jobId,
    p.factoryId,
    (draft) => {
      if (p.checkpoint || p.insights || p.artifacts) {
        const err = applyProgress(draft, p);
        if (err) return err;
      }
      const base = { factoryId: p.factoryId, leaseEpoch: p.leaseEpoch, now: draft.now };
      draft.setOutcome({
        ...(p.result ? { result: p.result } : {}),
        ...(p.verifyResult ? { verifyResult: p.verifyResult } : {}),
        ...(p.error ? { error: p.error } : {}),
      });
      let err: FleetError | null;
      if (p.to === 'failed') {
        const retry = draft.doc.retry;
        const retryable = isRetryable(retry, p.error?.class);
        const delay = backoffDelay(retry, draft.context.failures + 1, c.random);
        err = draft.send({ type: 'FAIL', ...base, retryable, retryAt: draft.now + delay });
      } else {
        err = draft.send({ type: MOVE_EVENT[p.to], ...base });
      }
      if (err) return err;
      checkBudget(draft);
      return null;
    },
    options,
  );
}

/**
 * A fenced write that moves no stage: checkpoint, insight increments, artifact
 * pointers. Same fencing as `transition`; a budget exceeded by the reported insights
 * sends the job to `dead_letter` (reason `budget_exceeded`) and fences the holder out.
 * With `seq`, the holder's call at or below the run's last applied seq is a retry of an
 * applied call: it answers the job unchanged and applies nothing.
 */
export async function recordProgress(
  c: Core,
  productId: string,
  jobId: string,
  input: ProgressInput,
  options: Conditional = {},
): Promise<Result<Stored<JobDoc>>> {
  const parsed = parse(S.ProgressInput, input);
  if (!parsed.ok) return parsed;
  const p = parsed.value;
  return workerCall(
    c,
    productId,
    jobId,
    p.factoryId,
    (draft) => {
      const run = draft.doc.run;
      const mine =
        draft.doc.leaseEpoch === p.leaseEpoch && draft.doc.holderFactoryId === p.factoryId;
      if (mine && p.seq !== undefined && run && p.seq <= (run.progressSeq ?? 0)) return null; // a retry
      const err = applyProgress(draft, p);
      if (err) return err;
      if (p.seq !== undefined && draft.doc.run)
        draft.doc.run = { ...draft.doc.run, progressSeq: p.seq };
      checkBudget(draft);
      return null;
    },
    options,
  );
}

/** Extends the lease to now + `extendMs` (default `leaseMs`); fenced. */
export async function renewLease(
  c: Core,
  productId: string,
  jobId: string,
  input: RenewInput,
  options: Conditional = {},
): Promise<Result<{ leaseEpoch: number; expiresAt: string }>> {
  const parsed = parse(S.RenewInput, input);
  if (!parsed.ok) return parsed;
  const p = parsed.value;
  const r = await workerCall(
    c,
    productId,
    jobId,
    p.factoryId,
    (draft) =>
      draft.send({
        type: 'RENEW',
        factoryId: p.factoryId,
        leaseEpoch: p.leaseEpoch,
        now: draft.now,
        expiresAt: draft.now + (p.extendMs ?? c.leaseMs),
      }),
    options,
  );
  if (!r.ok) return r;
  return ok({ leaseEpoch: r.value.leaseEpoch, expiresAt: r.value.leaseExpiresAt ?? '' });
}

/** Gives the job back: `queued` (or `blocked`), epoch + 1, checkpoint kept; fenced. */
export async function releaseLease(
  c: Core,
  productId: string,
  jobId: string,
  input: ReleaseInput,
  options: Conditional = {},
): Promise<Result<Stored<JobDoc>>> {
  const parsed = parse(S.ReleaseInput, input);
  if (!parsed.ok) return parsed;
  const p = parsed.value;
  return workerCall(
    c,
    productId,
    jobId,
    p.factoryId,
    async (draft) => {
      const status = await c.deps.status(productId, draft.doc.deps, draft.doc.depsMode);
      return draft.send(
        {
          type: 'RELEASE',
          factoryId: p.factoryId,
          leaseEpoch: p.leaseEpoch,
          now: draft.now,
          depsMet: status.met,
        },
        { reason: p.reason ?? null },
      );
    },
    options,
  );
}

function applyProgress(draft: JobDraft, p: ProgressInput): FleetError | null {
  const err = draft.send({
    type: 'RECORD',
    factoryId: p.factoryId,
    leaseEpoch: p.leaseEpoch,
    now: draft.now,
  });
  if (err) return err;
  if (p.checkpoint) {
    draft.doc.checkpoint = { ...(draft.doc.checkpoint ?? {}), ...p.checkpoint };
    draft.record('checkpoint_saved', { factoryId: p.factoryId });
  }
  if (p.insights) {
    const { model, estimated: _estimated, ...increments } = p.insights;
    const totals = [addUsage(draft.doc.usage, increments)];
    if (draft.doc.run) totals.push(addUsage(draft.doc.run.insights, increments));
    if (!totals.every((t) => usageIsRepresentable(t, S.MAX_COST_TOTAL))) {
      return new FleetError(
        'VALIDATION',
        `insights: the totals would pass ${Number.MAX_SAFE_INTEGER} (or ${S.MAX_COST_TOTAL} USD); increments are refused past that`,
      );
    }
    draft.addInsights(increments, model);
    const run = draft.doc.run;
    draft.record('insights_recorded', {
      factoryId: p.factoryId,
      runId: run?.id ?? '',
      attempt: run?.attempt ?? draft.doc.attempt,
      insights: { ...ZERO_USAGE, ...increments },
    });
  }
  for (const a of p.artifacts ?? []) {
    const artifact: ArtifactDoc = {
      id: `${draft.doc.id}.a${draft.doc.leaseEpoch}.${contentHash(a.name).slice(0, 16)}`,
      productId: draft.doc.productId,
      jobId: draft.doc.id,
      name: a.name,
      uri: a.uri,
      contentType: a.contentType ?? null,
      bytes: a.bytes ?? null,
      sha256: a.sha256 ?? null,
      leaseEpoch: draft.doc.leaseEpoch,
      factoryId: p.factoryId,
      createdAt: iso(draft.now),
      rev: draft.doc.rev,
    };
    draft.effects.push({ kind: 'artifact', artifact });
    draft.record('artifact_recorded', {
      factoryId: p.factoryId,
      artifactId: artifact.id,
      name: a.name,
      uri: a.uri,
    });
  }
  return null;
}

/** Token and cost limits, checked after insights arrive (a shipped job stays shipped). */
function checkBudget(draft: JobDraft): void {
  if (draft.stage === 'shipped' || draft.stage === 'dead_letter') return;
  const exceeded = exceededBudget(
    draft.doc.budget,
    draft.doc.usage,
    draft.context.firstClaimedAt,
    draft.now,
  );
  if (exceeded) draft.send({ type: 'BUDGET_EXCEEDED' }, { exceeded });
}

/** A worker call: `#workerUpdate` in the product's mailbox, answered once durable. */
function workerCall(
  c: Core,
  productId: string,
  jobId: string,
  actor: string | null,
  plan: Plan,
  options: Conditional = {},
): Promise<Result<Stored<JobDoc>>> {
  return c.act(productId, () => workerUpdate(c, productId, jobId, actor, plan, options));
}

/**
 * `#update` for worker calls: a job past its wall budget goes to `dead_letter` first
 * (that write is kept) and the caller, whoever it is, is `FENCED`: its lease is over.
 */
async function workerUpdate(
  c: Core,
  productId: string,
  jobId: string,
  actor: string | null,
  plan: Plan,
  options: Conditional = {},
): Promise<Result<Stored<JobDoc>>> {
  let outOfTime: FleetError | null = null;
  const r = await c.writes.update(
    productId,
    jobId,
    actor,
    (draft) => {
      outOfTime = null;
      const { budget } = draft.doc;
      if (budget?.wall && draft.stage !== 'shipped' && draft.stage !== 'dead_letter') {
        const firstClaimedAt = draft.context.firstClaimedAt;
        if (exceededBudget({ wall: budget.wall }, ZERO_USAGE, firstClaimedAt, draft.now)) {
          draft.send({ type: 'BUDGET_EXCEEDED' }, { exceeded: 'wall' });
          outOfTime = new FleetError(
            'FENCED',
            `job ${jobId} ran out of its wall budget (${budget.wall}); its lease is over`,
            { extra: { leaseEpoch: draft.doc.leaseEpoch } },
          );
          return null;
        }
      }
      return plan(draft);
    },
    options,
  );
  return r.ok && outOfTime ? { ok: false, error: outOfTime } : r;
}
