/**
 * The zod schemas of the HTTP surface: request bodies (the runtime's input schemas,
 * reused as they are), params and queries, and the public views of stored documents.
 * Fastify validates requests with these (through fastify-type-provider-zod) and the
 * OpenAPI document at `/docs/json` is generated from the same objects, so the docs
 * cannot drift from what the server accepts.
 *
 * Public views drop what only the coordinator needs: a job's persisted machine
 * snapshot and `machineVersion`, its outbox, `contentHash`, submission `seq`, write
 * counter `rev`, `eventSeq` and `dueAt`; a run's `rev`; every `_etag` (a job's is its
 * `ETag` header instead).
 */
import { z } from 'zod';
import type { ArtifactDoc, FactoryDoc, JobDoc, JobSummary, RunDoc } from '../../runtime/index.js';
import { ERROR_CODES, type ErrorCode, schemas as S, type Stored } from '../../runtime/index.js';

/** Schemas that appear in the OpenAPI document as named components. */
export const openApiRegistry = z.registry<{ id?: string; description?: string }>();

const named = <T extends z.ZodType>(schema: T, id: string, description: string): T => {
  openApiRegistry.add(schema, { id, description });
  return schema;
};

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/** Bodies: the runtime's own input schemas (strict: unknown fields are rejected). */
export const SubmitBody = S.SubmitInput;
export const PatchBody = S.PatchInput;
export const ClaimBody = S.ClaimInput;
export const RenewBody = S.RenewInput;
export const ReleaseBody = S.ReleaseInput;
export const ProgressBody = S.ProgressInput;
export const HeartbeatBody = S.HeartbeatInput;

/** `POST /fleet/jobs/:id/requeue`: no body (or `null`), or an empty object. */
export const RequeueBody = z.strictObject({}).nullish();

/** `POST /fleet/jobs/:id/cancel`: no body (or `null`), or a reason recorded on the event. */
export const CancelBody = z.strictObject({ reason: z.string().max(1000).optional() }).nullish();

/**
 * The longest job id accepted in a path: Fastify's default `maxParamLength`, which the
 * standalone server sets explicitly, so the router and this schema refuse the same ids
 * (both answer `400 VALIDATION`). Fleet's job ids are 26 characters (`job_` and 22 of
 * base64url, see `jobIdFor`), so no id Fleet made is ever refused.
 */
export const MAX_JOB_ID_LENGTH = 100;

export const JobParams = z.strictObject({
  id: z
    .string()
    .min(1)
    .max(MAX_JOB_ID_LENGTH, `must be at most ${MAX_JOB_ID_LENGTH} characters`)
    .describe(`The job id (at most ${MAX_JOB_ID_LENGTH} characters; Fleet's are 26).`),
});

/** Page size: default 50, at most 500 (more is a 400, not a silent cap). */
const Limit = z.coerce
  .number()
  .int()
  .min(1)
  .max(500)
  .default(50)
  .describe('Page size: 1–500, default 50.');

const Cursor = z
  .string()
  .min(1)
  .max(2000)
  .optional()
  .describe('The `nextCursor` of the previous page (opaque).');

export const PageQuery = z.object({ limit: Limit, cursor: Cursor });

/**
 * An event stream's cursor is the last `seq` seen: a canonical decimal integer (no sign,
 * no leading zero, no exponent, hex or spaces) that is a safe integer.
 */
const SEQ = /^(0|[1-9][0-9]{0,15})$/;

export const EventsQuery = z.object({
  limit: Limit,
  cursor: z
    .string()
    .regex(SEQ, 'must be a seq: a decimal whole number, digits only, without a leading zero')
    // Only for what the pattern let through: one error per bad cursor.
    .refine((v) => !SEQ.test(v) || Number(v) <= Number.MAX_SAFE_INTEGER, {
      message: 'must be at most 9007199254740991',
    })
    .optional()
    .describe('The last `seq` seen (a decimal whole number): the page starts after it.'),
});

export const ListJobsQuery = z.object({
  stage: S.Stage.optional().describe('Only jobs in this stage.'),
  limit: Limit,
  cursor: Cursor,
  view: z
    .enum(['summary', 'full'])
    .default('summary')
    .describe(
      '`summary` (default): each job without `bodyMd` and `manifestSnapshot`. `full`: whole jobs; the page then also ends early at the byte budget (see the route).',
    ),
});

/** Conditional-request headers of job routes. Other headers pass through untouched. */
export const IfMatchHeaders = z.looseObject({
  'if-match': z
    .string()
    .max(2000)
    .optional()
    .describe('Do it only if the job’s current ETag is one of these (or `*`).'),
});

export const IfNoneMatchHeaders = z.looseObject({
  'if-none-match': z
    .string()
    .max(2000)
    .optional()
    .describe('Answer 304 (no body) while the job’s ETag is one of these.'),
});

// ---------------------------------------------------------------------------
// Responses: public views
// ---------------------------------------------------------------------------

export const JobView = named(
  S.JobDoc.omit({
    seq: true,
    contentHash: true,
    dueAt: true,
    rev: true,
    eventSeq: true,
    outbox: true,
    machineVersion: true,
    snapshot: true,
  }),
  'Job',
  'A job. Its ETag header is the version to send back in If-Match.',
);
export type JobView = z.output<typeof JobView>;

export const JobSummaryView = named(
  JobView.omit({ bodyMd: true, manifestSnapshot: true }),
  'JobSummary',
  'A job without its body and manifest: what `GET /fleet/jobs` lists unless `view=full`.',
);
export type JobSummaryView = z.output<typeof JobSummaryView>;

export const RunView = named(S.RunDoc.omit({ rev: true }), 'Run', 'One attempt (claim) of a job.');
export type RunView = z.output<typeof RunView>;

export const EventView = named(
  S.EventDoc,
  'JobEvent',
  'One entry of a job’s append-only event stream; `seq` is 1, 2, 3... with no gap.',
);

export const FactoryView = named(
  S.FactoryDoc.extend({
    stale: z.boolean().describe('True when the factory missed three heartbeats.'),
  }),
  'Factory',
  'A factory (a machine running agents), as of its last heartbeat.',
);
export type FactoryView = z.output<typeof FactoryView>;

export const ArtifactView = named(
  S.ArtifactDoc,
  'Artifact',
  'A pointer to an artifact in blob storage, stamped with the lease epoch that wrote it.',
);
export type ArtifactView = z.output<typeof ArtifactView>;

export const LeaseView = named(
  z.object({
    leaseEpoch: z.number().int().nonnegative(),
    expiresAt: S.IsoTime,
    ttlMs: z
      .number()
      .int()
      .nonnegative()
      .describe(
        'What is left of the lease when the answer was made, in ms (by the server’s clock): time it from when you sent the request, and no clock skew matters.',
      ),
  }),
  'Lease',
  'The caller’s lease: renew before `expiresAt` (within `ttlMs`); send `leaseEpoch` with every worker call.',
);

export const ClaimView = named(
  z.object({
    job: JobView,
    lease: LeaseView,
    run: z.object({ id: z.string(), attempt: z.number().int().positive() }),
  }),
  'Claim',
  'A claimed job, its lease and the run it opened.',
);

export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() });

export const Health = z.object({ status: z.literal('ok') });
export const Ready = z.object({ status: z.literal('ready'), store: z.string() });

export const Problem = named(
  z.looseObject({
    type: z.string().describe('`urn:fleet:problem:<code>`'),
    title: z.string(),
    status: z.number().int(),
    code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
    detail: z.string(),
    instance: z.string().optional().describe('The request path.'),
  }),
  'Problem',
  'RFC 9457 problem document (application/problem+json). `code` is stable; other members (`errors`, `cycle`, `unknown`...) add detail. A `FENCED` problem of a worker call has `leaseEpoch` (the job’s epoch now) and `reason`: what ended the caller’s epoch (`reaped`, `released`, `cancelled`, `requeued`, `shipped`, `failed`, `budget_exceeded`, `dependency_failed`, `superseded` by a newer lease, or `not_holder`). 429 and 503 answers carry `Retry-After` (seconds).',
);

/** Nothing: a 204 or 304 answer. */
export const NoContent = z.null();

// ---------------------------------------------------------------------------
// View builders
// ---------------------------------------------------------------------------

const JOB_KEYS = Object.keys(JobView.shape) as (keyof JobView)[];
const SUMMARY_KEYS = Object.keys(JobSummaryView.shape) as (keyof JobSummaryView)[];

/** The public view of a job document (a whitelist: an internal field never leaks). */
/** Sets the job's `ETag` on the reply and returns its public view. */
export function sendJob(
  reply: { header(name: string, value: string): unknown },
  job: JobDoc & { _etag: string },
): JobView {
  reply.header('ETag', job._etag);
  return jobView(job);
}

export function jobView(doc: JobDoc): JobView {
  const src = doc as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of JOB_KEYS) out[k] = src[k];
  return out as JobView;
}

/** The public view of a job summary (a whitelist, like {@link jobView}). */
export function jobSummaryView(doc: JobSummary): JobSummaryView {
  const src = doc as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of SUMMARY_KEYS) out[k] = src[k];
  return out as JobSummaryView;
}

export function runView(doc: Stored<RunDoc> | RunDoc): RunView {
  const { rev: _rev, _etag: _e, ...view } = doc as Stored<RunDoc>;
  return view;
}

export function artifactView(doc: Stored<ArtifactDoc> | ArtifactDoc): ArtifactView {
  const { _etag: _e, ...view } = doc as Stored<ArtifactDoc>;
  return view;
}

export function factoryView(doc: FactoryDoc & { stale: boolean; _etag?: string }): FactoryView {
  const { _etag: _e, ...view } = doc;
  return view;
}
