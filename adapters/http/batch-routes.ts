/**
 * Bulk submission: `POST /fleet/jobs/batch` (a Fleet addition to API.md), up to 1,000
 * submissions per call, each answered on its own (`Coordinator.submitMany`).
 *
 * Decisions:
 * - The answer is `200` when every item succeeded and `207 Multi-Status` when at least
 *   one has a problem; either way the body lists one result per item, in order:
 *   `{ index, status, idempotency?, job?, problem? }`, where `status` is what a single
 *   submit of that item would have answered (201 created, 200 existing, 400, 409, 422)
 *   and `problem` the problem document it would have sent. A problem of the call itself
 *   (not an array, more than 1,000 items, malformed JSON, auth) is one problem document
 *   with its own status, like every route.
 * - Items are validated one by one, so one bad item never refuses the others: the
 *   route's schema (documented with each item's full shape) is enforced for the
 *   envelope only, each item by the coordinator.
 * - Body limit: {@link BATCH_BODY_FACTOR} × the server's body limit (8 MiB by default),
 *   room for 1,000 jobs of about 8 KB each; a body over it is `413 PAYLOAD_TOO_LARGE`
 *   naming that limit.
 * - Role submitter (like single submit); the whole batch counts as one request for rate
 *   limits.
 */
import { validatorCompiler } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  schemas as S,
  SUBMIT_MANY_MAX,
  type SubmitManyItem,
  type SubmitManyResult,
} from '../../runtime/index.js';
import { authOf, guard } from './auth.js';
import { JobView, jobView, Problem } from './http-schemas.js';
import { sendProblem, toProblem } from './problem.js';
import { AUTH_CODES, type FleetApp, must, problems, type RouteContext } from './route-context.js';

/** The batch route accepts bodies this many times the server's body limit. */
export const BATCH_BODY_FACTOR = 8;

const jobsDescription = `The submissions, at most ${SUBMIT_MANY_MAX}, each the body of \`POST /fleet/jobs\` plus optional \`depKeys\`.`;

/** The body as documented: each item a submission (`SubmitManyItem`). */
export const BatchSubmitBody = z
  .strictObject({
    jobs: z.array(S.SubmitManyItem).max(SUBMIT_MANY_MAX).describe(jobsDescription),
  })
  .describe(
    'A bulk submission. `depKeys` (items only): idempotency keys of jobs this one depends on — an earlier item of the same batch, or a job submitted before — resolved to their ids and added to `deps`.',
  );
/** The body as enforced here: the envelope only (each item is checked on its own). */
const BatchEnvelope = z.strictObject({
  jobs: z.array(z.unknown()).max(SUBMIT_MANY_MAX).describe(jobsDescription),
});

export const BatchItemResult = z.object({
  index: z.number().int().nonnegative().describe('Position of the item in `jobs`.'),
  status: z
    .number()
    .int()
    .describe('What a single submit of this item would have answered: 201, 200, 400, 409, 422.'),
  idempotency: z
    .enum(['created', 'existing'])
    .optional()
    .describe('On success: `created`, or `existing` (same key and content; no new job).'),
  job: JobView.optional().describe('On success: the job.'),
  problem: Problem.optional().describe('On failure: the item’s problem document.'),
});
export type BatchItemResult = z.output<typeof BatchItemResult>;

export const BatchSubmitResult = z
  .object({ items: z.array(BatchItemResult) })
  .describe('One result per item, in the order of `jobs`.');
/** The answer to one item, as the route sends it. */
export function batchItem(index: number, r: SubmitManyResult): BatchItemResult {
  if (r.ok) {
    const { job, outcome } = r.value;
    return {
      index,
      status: outcome === 'created' ? 201 : 200,
      idempotency: outcome,
      job: jobView(job),
    };
  }
  const { problem } = toProblem(r.error);
  return { index, status: problem.status, problem: problem as BatchItemResult['problem'] };
}

export function registerBatchRoutes(app: FleetApp, ctx: RouteContext): void {
  const { coordinator: coord, authenticate } = ctx;
  const bodyLimit = ctx.bodyLimit * BATCH_BODY_FACTOR;

  app.post(
    '/jobs/batch',
    {
      bodyLimit,
      onRequest: guard(authenticate, ['submitter']),
      // The documented schema shows each item; only the envelope is enforced here.
      validatorCompiler: (req) =>
        validatorCompiler({
          ...req,
          schema: req.httpPart === 'body' ? BatchEnvelope : (req.schema as unknown as z.ZodType),
        }),
      errorHandler: (error, request, reply) => {
        sendProblem(request, reply, error, { bodyLimit });
      },
      schema: {
        operationId: 'submitJobs',
        tags: ['jobs'],
        summary: `Submit up to ${SUBMIT_MANY_MAX} jobs at once, each answered on its own (Fleet addition)`,
        description: [
          `Role **submitter**. \`{ "jobs": [...] }\`, at most ${SUBMIT_MANY_MAX} submissions, each decided as if submitted alone, in order:`,
          '- new key → item `status: 201`, `idempotency: "created"`;',
          '- same key, same content (a job submitted before, or an earlier item) → `200`, `idempotency: "existing"`, the job as it is;',
          '- same key, different content → `409 IDEMPOTENCY_CONFLICT`: a batch never supersedes (submit the job alone to replace a `queued`/`blocked` job’s content);',
          '- an invalid item → `400 VALIDATION`; deps naming no job of the product (or a later or refused item) → `422 UNKNOWN_DEPENDENCY`; a cycle → `422 DEPENDENCY_CYCLE`.',
          'An item may depend on an earlier item by its key (`depKeys`) or its id.',
          'One bad item never refuses the others. The new jobs are written together (on SQLite one transaction): if the store fails, none of them exists and the call is `503`.',
          'Answer: `200` when every item succeeded, `207` when some have a problem; the body has one result per item, in order.',
          `The whole call is one \`400\` when \`jobs\` is not an array or holds more than ${SUBMIT_MANY_MAX}; the body limit is ${BATCH_BODY_FACTOR} × the server’s (8 MiB by default) → \`413\`.`,
        ].join('\n'),
        body: BatchSubmitBody,
        response: {
          200: BatchSubmitResult.describe('Every item succeeded.'),
          207: BatchSubmitResult.describe('Some items have a problem (see each `status`).'),
          ...problems(...AUTH_CODES, 'PAYLOAD_TOO_LARGE'),
        },
      },
    },
    async (request, reply) => {
      const auth = authOf(request);
      const items = request.body.jobs as SubmitManyItem[];
      const answers = must(await coord.submitMany(auth.productId, items, auth.subject ?? null));
      const out = answers.map((a, i) => batchItem(i, a));
      reply.code(answers.every((a) => a.ok) ? 200 : 207);
      return { items: out };
    },
  );
}
