/**
 * zod schemas for every document Fleet stores, and for the inputs the coordinator
 * accepts. Types are inferred from these schemas (see `types.ts`); nothing in the
 * project re-declares a document shape by hand.
 *
 * Every document carries `productId` (tenancy) and an `id`; the partition key of each
 * container is named in `CONTAINERS` (document-store.port.ts).
 */
import { z } from 'zod';
import { durationMs, MAX_WALL_MS } from './budget.js';
import { JOB_EVENT_TYPES } from './events.js';
import { jsonDepthExceeds, MAX_JSON_DEPTH } from './json-depth.js';

/** The shortest heartbeat interval a factory may declare, in ms. */
export const MIN_HEARTBEAT_INTERVAL_MS = 100;

/** ISO-8601 UTC timestamp with milliseconds, e.g. `2026-11-21T13:45:00.000Z`. */
export const IsoTime = z.iso.datetime({ offset: false });

export const Stage = z.enum([
  'queued',
  'blocked',
  'assigned',
  'building',
  'review',
  'testing',
  'shipped',
  'failed',
  'dead_letter',
]);

export const Priority = z.enum(['critical', 'high', 'medium', 'low']);

/** Claim order: lower rank is claimed first. */
export const PRIORITY_RANK: Readonly<Record<z.infer<typeof Priority>, number>> = {
  critical: 0,
  high: 1,
  medium: 2,
  low: 3,
};

export const DepsMode = z.enum(['hard', 'soft']);
export const JobKind = z.enum(['leaf', 'composite']);
export const Health = z.enum(['ok', 'degraded', 'down']);
export const LeaseStatus = z.enum(['held', 'expired', 'released']);

/** Why a job ended in `dead_letter`. */
export const DeadReason = z.enum([
  'retries_exhausted',
  'non_retryable',
  'lease_expired',
  'budget_exceeded',
  'dependency_failed',
  'cancelled',
]);

/** How an attempt (a run) ended. */
export const RunExit = z.enum([
  'shipped',
  'failed',
  'lease_expired',
  'released',
  'cancelled',
  'budget_exceeded',
  'dependency_failed',
]);

/**
 * C0 and C1 control characters and the bidirectional overrides and isolates (plus the
 * implicit marks): refused in keys and ids, where they would hide or reorder text in
 * logs, terminals and the inspector.
 */
const UNSAFE_TEXT = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** An id or key: 1–200 characters, no control or bidirectional-override characters. */
const Identifier = z
  .string()
  .min(1)
  .max(200)
  .refine(
    (v) => !UNSAFE_TEXT.test(v),
    'must not contain control or bidirectional-override characters',
  );
const Capability = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9._:/+-]+$/, 'capabilities are letters, digits and . _ : / + -');

/** ISO-8601 duration such as `PT2H`, `PT30M`, `P1DT2H`. */
export const IsoDuration = z
  .string()
  .max(64)
  .regex(
    /^P(?!$)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$/,
    'an ISO-8601 duration such as PT2H or P1DT30M',
  );

/** Largest `budget.usd`: one million dollars. */
export const MAX_BUDGET_USD = 1_000_000;
/** Largest `budget.tokens`: 10^12. */
export const MAX_BUDGET_TOKENS = 1_000_000_000_000;

/**
 * A job's limits. Every one is bounded so that every deadline and comparison derived
 * from it stays a finite, representable time or number (a wall budget of 10^8 days once
 * made every sweep throw on an invalid date).
 */
export const Budget = z.strictObject({
  usd: z.number().nonnegative().max(MAX_BUDGET_USD).optional(),
  tokens: z.number().int().nonnegative().max(MAX_BUDGET_TOKENS).optional(),
  wall: IsoDuration.refine((d) => {
    try {
      return durationMs(d) <= MAX_WALL_MS;
    } catch {
      return true; // malformed: the pattern above says so
    }
  }, 'at most 365 days (P365D)').optional(),
});

export const RetryPolicy = z.strictObject({
  /** Retries after the first attempt. */
  max: z.number().int().min(0).max(100).default(3),
  backoff: z.enum(['exponential', 'fixed']).default('exponential'),
  /** First (or every, for `fixed`) delay, in ms. */
  delayMs: z.number().int().min(0).max(86_400_000).default(1000),
  /** Cap on the exponential delay, in ms. */
  maxDelayMs: z
    .number()
    .int()
    .min(0)
    .max(7 * 86_400_000)
    .default(300_000),
  /** Error classes that may be retried (a set: order and repeats do not matter). */
  on: z.array(z.string().min(1).max(100)).max(50).default(['transient']),
});

export const Checkpoint = z.strictObject({
  wipBranch: z.string().max(500).optional(),
  wipBase: z.string().max(500).optional(),
  wipCommit: z.string().max(500).optional(),
});

/** Largest `costUsd` of one report: a billion dollars. */
export const MAX_COST_INCREMENT = 1_000_000_000;
/** Largest accumulated `costUsd` of a run or a job. */
export const MAX_COST_TOTAL = 1_000_000_000_000;

/** A counter increment: a whole number a JavaScript number holds exactly. */
const Count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/**
 * Usage reported by an agent. In a PATCH these are increments since the last report.
 * Each is bounded, and a report whose totals would pass `Number.MAX_SAFE_INTEGER` (or
 * {@link MAX_COST_TOTAL} dollars) is refused, so stored totals stay exact and finite.
 */
export const Insights = z.strictObject({
  model: z.string().max(200).optional(),
  tokensIn: Count.optional(),
  tokensOut: Count.optional(),
  tokensCached: Count.optional(),
  costUsd: z.number().nonnegative().max(MAX_COST_INCREMENT).optional(),
  estimated: z.boolean().optional(),
  turns: Count.optional(),
  toolCalls: Count.optional(),
  filesChanged: Count.optional(),
  linesAdded: Count.optional(),
  linesDeleted: Count.optional(),
});

/** Numeric insight totals, always present (zeros), accumulated per run and per job. */
export const Usage = z.strictObject({
  tokensIn: z.number().nonnegative(),
  tokensOut: z.number().nonnegative(),
  tokensCached: z.number().nonnegative(),
  costUsd: z.number().nonnegative(),
  turns: z.number().nonnegative(),
  toolCalls: z.number().nonnegative(),
  filesChanged: z.number().nonnegative(),
  linesAdded: z.number().nonnegative(),
  linesDeleted: z.number().nonnegative(),
});

export const ErrorInfo = z.strictObject({
  class: z.string().min(1).max(100),
  message: z.string().max(10_000).default(''),
});

/** A JSON object as stored (documents read back; no depth check). */
const JsonObject = z.record(z.string(), z.unknown());

/**
 * A JSON object from a client: at most {@link MAX_JSON_DEPTH} levels deep (checked
 * without recursion), so canonical hashing, serialization and storage never meet a
 * structure deep enough to exhaust the stack.
 */
const JsonInput = JsonObject.refine(
  (v) => !jsonDepthExceeds(v, MAX_JSON_DEPTH),
  `nested deeper than ${MAX_JSON_DEPTH} levels`,
);

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/** Body of a submission (`POST /fleet/jobs`). Unknown fields are rejected. */
export const SubmitInput = z.strictObject({
  idempotencyKey: Identifier,
  bodyMd: z.string().max(1_000_000),
  manifestSnapshot: JsonInput.default({}),
  priority: Priority.default('medium'),
  capabilities: z.array(Capability).max(50).default([]),
  deps: z.array(Identifier).max(500).default([]),
  depsMode: DepsMode.default('hard'),
  budget: Budget.optional(),
  retry: RetryPolicy.prefault({}),
  kind: JobKind.default('leaf'),
  parentId: Identifier.nullable().default(null),
  trackerItemId: Identifier.optional(),
  engineClass: z.string().min(1).max(100).optional(),
  profile: z.string().min(1).max(200).optional(),
});

/**
 * One item of a bulk submission (`POST /fleet/jobs/batch`): a submission, plus deps named
 * by idempotency key (`depKeys`: an earlier item of the same batch, or a job submitted
 * before), each resolved to that job's id and merged into `deps`.
 */
export const SubmitManyItem = SubmitInput.extend({
  depKeys: z.array(Identifier).max(500).optional(),
});

/** Worker moves accepted by `PATCH /fleet/jobs/:id`. */
export const PatchTarget = z.enum(['building', 'review', 'testing', 'shipped', 'failed']);

export const Artifact = z.strictObject({
  name: z.string().min(1).max(200),
  uri: z.string().min(1).max(2000),
  contentType: z.string().max(200).optional(),
  bytes: z.number().int().nonnegative().optional(),
  sha256: z
    .string()
    .regex(/^[a-f0-9]{64}$/)
    .optional(),
});

/** Moves that end an attempt: the only ones whose run records `result` and `verifyResult`. */
const ENDS_ATTEMPT = new Set(['shipped', 'failed']);

export const PatchInput = z
  .strictObject({
    factoryId: Identifier,
    leaseEpoch: z.number().int().nonnegative(),
    to: PatchTarget,
    checkpoint: Checkpoint.optional(),
    result: JsonInput.optional(),
    verifyResult: JsonInput.optional(),
    error: ErrorInfo.optional(),
    insights: Insights.optional(),
    artifacts: z.array(Artifact).max(100).optional(),
  })
  .superRefine((p, ctx) => {
    for (const field of ['result', 'verifyResult'] as const) {
      if (p[field] !== undefined && !ENDS_ATTEMPT.has(p.to)) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `is recorded when an attempt ends: send it with to: shipped or failed (not ${p.to})`,
        });
      }
    }
  });

/** A fenced write that changes no stage: checkpoint, insights, artifact pointers. */
export const ProgressInput = z.strictObject({
  factoryId: Identifier,
  leaseEpoch: z.number().int().nonnegative(),
  /**
   * Per-run sequence (1, 2, 3...): a call whose seq is at or below the last one applied
   * in this run is a retry; it answers the job unchanged and applies nothing.
   */
  seq: z.number().int().positive().optional(),
  checkpoint: Checkpoint.optional(),
  insights: Insights.optional(),
  artifacts: z.array(Artifact).max(100).optional(),
});

export const ClaimInput = z.strictObject({
  factoryId: Identifier,
  capabilities: z.array(Capability).max(50).optional(),
  waitMs: z.number().int().min(0).max(30_000).default(0),
});

export const RenewInput = z.strictObject({
  factoryId: Identifier,
  leaseEpoch: z.number().int().nonnegative(),
  /** New expiry = now + extendMs. Defaults to the coordinator's lease length. */
  extendMs: z.number().int().min(1000).max(3_600_000).optional(),
});

export const ReleaseInput = z.strictObject({
  factoryId: Identifier,
  leaseEpoch: z.number().int().nonnegative(),
  reason: z.string().max(1000).optional(),
});

export const HeartbeatInput = z.strictObject({
  factoryId: Identifier,
  descriptor: JsonInput.optional(),
  capabilities: z.array(Capability).max(50),
  health: Health,
  load: z.number().nonnegative().optional(),
  /** Most leases at once; `null` removes the limit; omitted keeps the last one. */
  seatLimit: z.number().int().min(0).max(10_000).nullable().optional(),
  /** How often this factory beats, in ms; stale after 3 missed beats. */
  heartbeatIntervalMs: z.number().int().min(MIN_HEARTBEAT_INTERVAL_MS).max(3_600_000).optional(),
});

// ---------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------

const DocBase = {
  id: Identifier,
  productId: Identifier,
};

/** An effect recorded on a job write, carried out after it (the outbox). */
export const OutboxEffect = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('event'), event: z.lazy(() => EventDoc) }),
  z.strictObject({ kind: z.literal('run'), run: z.lazy(() => RunDoc) }),
  z.strictObject({ kind: z.literal('lease'), lease: z.lazy(() => LeaseDoc) }),
  z.strictObject({ kind: z.literal('artifact'), artifact: z.lazy(() => ArtifactDoc) }),
  /** Re-evaluate the jobs that depend on this one (it shipped, reached testing, or died). */
  z.strictObject({ kind: z.literal('notifyDependents'), jobId: Identifier }),
]);

/** The run of the attempt in progress, kept on the job until it ends. */
export const CurrentRun = z.strictObject({
  id: Identifier,
  attempt: z.number().int().positive(),
  factoryId: Identifier,
  leaseEpoch: z.number().int().nonnegative(),
  startedAt: IsoTime,
  insights: Usage,
  model: z.string().optional(),
  /** The highest progress `seq` applied in this run (a retried call at or below it is a no-op). */
  progressSeq: z.number().int().positive().optional(),
});

export const JobDoc = z.strictObject({
  ...DocBase,
  idempotencyKey: z.string().min(1).max(200),
  stage: Stage,
  priority: Priority,
  capabilities: z.array(z.string()),
  deps: z.array(z.string()),
  depsMode: DepsMode,
  kind: JobKind,
  parentId: z.string().nullable(),
  bodyMd: z.string(),
  manifestSnapshot: JsonObject,
  budget: Budget.nullable(),
  retry: z.strictObject({
    max: z.number().int(),
    backoff: z.enum(['exponential', 'fixed']),
    delayMs: z.number().int(),
    maxDelayMs: z.number().int(),
    on: z.array(z.string()),
  }),
  trackerItemId: z.string().nullable(),
  engineClass: z.string().nullable(),
  profile: z.string().nullable(),
  checkpoint: Checkpoint.nullable(),
  /** Claims of this job so far (the attempt number of the latest run). */
  attempt: z.number().int().nonnegative(),
  /** Attempts that ended badly (failed or lease expired); `retry.max` bounds them. */
  failures: z.number().int().nonnegative(),
  leaseEpoch: z.number().int().nonnegative(),
  holderFactoryId: z.string().nullable(),
  leaseExpiresAt: IsoTime.nullable(),
  notBefore: IsoTime.nullable(),
  deadReason: DeadReason.nullable(),
  lastError: ErrorInfo.nullable(),
  firstClaimedAt: IsoTime.nullable(),
  /** Insight totals over every run of this job (drives budgets). */
  usage: Usage,
  run: CurrentRun.nullable(),
  createdAt: IsoTime,
  updatedAt: IsoTime,
  /** Content revision: 1 at submission, +1 per supersede. */
  version: z.number().int().positive(),
  /** Submission sequence: claim order among equal priorities (never left to chance). */
  seq: z.number().int().nonnegative(),
  /** sha256 of the canonical submitted content (idempotency). */
  contentHash: z.string(),
  /** Earliest time the supervisor must look at this job (lease expiry, wall budget, retry). */
  dueAt: IsoTime.nullable(),
  /** Write counter of this document: +1 on every write (orders derived documents). */
  rev: z.number().int().nonnegative(),
  /** Last event `seq` assigned; events are numbered 1, 2, 3... with no gap. */
  eventSeq: z.number().int().nonnegative(),
  outbox: z.array(OutboxEffect),
  machineVersion: z.number().int().positive(),
  snapshot: JsonObject,
});

export const RunDoc = z.strictObject({
  ...DocBase,
  jobId: Identifier,
  attempt: z.number().int().positive(),
  factoryId: z.string().nullable(),
  leaseEpoch: z.number().int().nonnegative(),
  engine: z.string().nullable(),
  profileSnapshot: JsonObject.nullable().optional(),
  startedAt: IsoTime,
  endedAt: IsoTime.nullable(),
  exit: RunExit.nullable(),
  verifyResult: JsonObject.nullable(),
  result: JsonObject.nullable(),
  error: ErrorInfo.nullable(),
  insights: Usage,
  model: z.string().nullable(),
  /** Job write that produced this version of the run (newer wins). */
  rev: z.number().int().nonnegative(),
});

export const LeaseDoc = z.strictObject({
  ...DocBase,
  jobId: Identifier,
  holderFactoryId: z.string().nullable(),
  leaseEpoch: z.number().int().nonnegative(),
  expiresAt: IsoTime.nullable(),
  renewals: z.number().int().nonnegative(),
  status: LeaseStatus,
  rev: z.number().int().nonnegative(),
});

export const FactoryDoc = z.strictObject({
  ...DocBase,
  factoryId: Identifier,
  descriptor: JsonObject,
  capabilities: z.array(z.string()),
  health: Health,
  load: z.number().nonnegative(),
  /** Most leases this factory may hold at once; null = unlimited. */
  seatLimit: z.number().int().nonnegative().nullable(),
  heartbeatIntervalMs: z.number().int().positive(),
  lastHeartbeatAt: IsoTime,
  registeredAt: IsoTime,
});

export const ProfileDoc = z.strictObject({
  ...DocBase,
  name: z.string().min(1).max(200),
  version: z.number().int().positive(),
  snapshot: JsonObject,
  createdAt: IsoTime,
});

export const EventDoc = z.strictObject({
  ...DocBase,
  jobId: Identifier,
  seq: z.number().int().positive(),
  type: z.enum(JOB_EVENT_TYPES),
  at: IsoTime,
  actor: z.string().nullable(),
  data: JsonObject,
  /**
   * The Fleet process that stored the event (an opaque stamp, set by the append): the
   * one that reports it to listeners. Not part of the API's view of an event.
   */
  writer: z.string().max(64).optional(),
});

export const ArtifactDoc = z.strictObject({
  ...DocBase,
  jobId: Identifier,
  name: z.string().min(1).max(200),
  uri: z.string().min(1),
  contentType: z.string().nullable(),
  bytes: z.number().int().nonnegative().nullable(),
  sha256: z.string().nullable(),
  /** The lease epoch of the write that recorded this pointer. */
  leaseEpoch: z.number().int().nonnegative(),
  factoryId: z.string(),
  createdAt: IsoTime,
  /** Job write that recorded this version (a pointer reported again under its name wins). */
  rev: z.number().int().nonnegative().optional(),
});
