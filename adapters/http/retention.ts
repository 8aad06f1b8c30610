/**
 * Retention on the server (issue 14; the runtime side is `runtime/retention.ts`):
 * - `FLEET_RETENTION`, how long finished jobs are kept (`30d` by default; `0` keeps
 *   them forever), parsed by {@link parseRetention};
 * - `POST /fleet/admin/prune` (`fleet prune --older-than 7d [--dry-run]`): one bounded
 *   pruning pass on demand, answering counts and a cursor to go on with.
 *
 * Who may prune: the store's jobs of every product are pruned, so, like the online
 * backup, the caller needs the `admin` role and credentials marked `operator`.
 */
import { z } from 'zod';
import { FleetError, type PruneReport } from '../../runtime/index.js';
import { authOf, guard } from './auth.js';
import { openApiRegistry } from './http-schemas.js';
import { AUTH_CODES, type FleetApp, must, problems, type RouteContext } from './route-context.js';

const DAY_MS = 86_400_000;

/** Finished jobs are kept this long unless `FLEET_RETENTION` says otherwise: 30 days. */
export const DEFAULT_RETENTION_MS = 30 * DAY_MS;

/** The longest retention (and `olderThan`) accepted: about 100 years. */
const MAX_RETENTION_MS = 36_500 * DAY_MS;

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: DAY_MS,
  w: 7 * DAY_MS,
};

/**
 * A retention period in ms: `30d`, `12h`, `1d12h`, `90m`, `45s`, `2w` (whole numbers,
 * units ms, s, m, h, d, w); `0` (or `off`) keeps jobs forever (0). A number without a
 * unit other than 0 is refused: is `30` days or seconds?
 */
export function parseRetention(raw: string): number | { error: string } {
  const t = raw.trim().toLowerCase();
  if (t === '0' || t === 'off') return 0;
  const parts = [...t.matchAll(/(\d+)(ms|s|m|h|d|w)/g)];
  const n = parts.reduce((sum, p) => sum + Number(p[1]) * (UNIT_MS[p[2]!] ?? 0), 0);
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== t) {
    return {
      error:
        'must be a duration such as 30d, 12h, 1d12h or 90m (units ms, s, m, h, d, w), or 0 to keep jobs forever',
    };
  }
  if (!Number.isSafeInteger(n) || n > MAX_RETENTION_MS) {
    return { error: 'must be at most 36500d' };
  }
  return n;
}

/** Jobs one call looks at, at most, by default and at most. */
const DEFAULT_PRUNE_LIMIT = 1000;
const MAX_PRUNE_LIMIT = 10_000;

/** Where a pass stopped, as the opaque cursor the route hands out. */
const CursorKey = z.strictObject({
  finishedAt: z.string().min(1).max(64),
  id: z.string().min(1).max(1000),
  productId: z.string().min(1).max(1000),
});

const encodeCursor = (key: z.infer<typeof CursorKey>): string =>
  Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');

function decodeCursor(cursor: string): z.infer<typeof CursorKey> {
  try {
    return CursorKey.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
  } catch {
    throw new FleetError('VALIDATION', 'cursor: not a cursor this route handed out');
  }
}

/** The body of `POST /fleet/admin/prune`. */
export const PruneBody = z.strictObject({
  olderThan: z
    .string()
    .min(1)
    .max(100)
    .describe(
      'Prune jobs that finished (`shipped`, `dead_letter`) longer ago than this: `7d`, `12h`, `1d12h`, `90m`; `0` means every finished job.',
    ),
  dryRun: z.boolean().default(false).describe('Count what would go; delete nothing.'),
  limit: z
    .number()
    .int()
    .min(1)
    .max(MAX_PRUNE_LIMIT)
    .default(DEFAULT_PRUNE_LIMIT)
    .describe(`Finished jobs this call looks at, at most (default ${DEFAULT_PRUNE_LIMIT}).`),
  cursor: z
    .string()
    .min(1)
    .max(4096)
    .nullable()
    .default(null)
    .describe('Go on where the previous call stopped (its `nextCursor`).'),
});

/** The answer of `POST /fleet/admin/prune`. */
export const PruneView = z.object({
  dryRun: z.boolean(),
  before: z.string().describe('The cutoff: jobs that finished before this time (ISO-8601).'),
  examined: z.number().int().describe('Finished jobs past the cutoff this call looked at.'),
  pruned: z
    .number()
    .int()
    .describe(
      'Jobs deleted with their runs, lease, events and artifact pointers (a dry run: that would be).',
    ),
  prunedByStage: z.object({ shipped: z.number().int(), dead_letter: z.number().int() }),
  kept: z
    .number()
    .int()
    .describe('Jobs past the cutoff kept because another job names them in its deps.'),
  documents: z
    .object({
      runs: z.number().int(),
      leases: z.number().int(),
      events: z.number().int(),
      artifacts: z.number().int(),
    })
    .describe('Derived documents deleted with the jobs (none on a dry run).'),
  failedJobs: z.number().int().describe('Jobs that could not be pruned (logged with their id).'),
  nextCursor: z
    .string()
    .nullable()
    .describe('Send it back as `cursor` to go on; null when every finished job was looked at.'),
});
openApiRegistry.add(PruneView, {
  id: 'PruneResult',
  description: 'What one call of `POST /fleet/admin/prune` did (or, dry, would do).',
});

export type PruneResult = z.output<typeof PruneView>;

/**
 * Registers `POST /admin/prune` (under the plugin's `/fleet` scope; see the file
 * header). Pruned jobs are counted in the metrics.
 */
export function registerPruneRoutes(app: FleetApp, ctx: RouteContext): void {
  const { coordinator: coord, bodyLimit } = ctx;
  app.post(
    '/admin/prune',
    {
      bodyLimit,
      onRequest: guard(ctx.authenticate, ['admin']),
      schema: {
        operationId: 'prune',
        tags: ['admin'],
        summary: 'Delete jobs that finished longer ago than a given age',
        description: [
          'Role **admin**, and credentials marked `operator` (it prunes **every product’s** jobs): other admins → `403 FORBIDDEN`.',
          'Deletes each job that ended (`shipped` or `dead_letter`) longer ago than `olderThan`, with its runs, lease, events and artifact pointers, oldest first — except a job that another job names in its `deps`, which is `kept` until that job is gone (README “Retention”). The supervisor does the same on its own for `FLEET_RETENTION`; this route is for operators who want it now, or a shorter period once.',
          'One call looks at up to `limit` finished jobs; when `nextCursor` is not null, call again with it as `cursor` (`fleet prune` does). With `dryRun`, nothing is deleted and the counts say what would go now. A store that cannot delete jobs → `501 NOT_IMPLEMENTED`.',
        ].join('\n'),
        body: PruneBody,
        response: {
          200: PruneView,
          ...problems(...AUTH_CODES, 'PAYLOAD_TOO_LARGE', 'NOT_IMPLEMENTED'),
        },
      },
    },
    async (request): Promise<PruneResult> => {
      const auth = authOf(request);
      if (auth.operator !== true) {
        throw new FleetError(
          'FORBIDDEN',
          'pruning deletes every product’s jobs: it needs admin credentials marked operator (a token grant with "operator": true)',
        );
      }
      const { olderThan, dryRun, limit, cursor } = request.body;
      const age = parseRetention(olderThan);
      if (typeof age !== 'number') throw new FleetError('VALIDATION', `olderThan: ${age.error}`);
      const after = cursor === null ? null : decodeCursor(cursor);
      const before = coord.clock.now() - age;
      const report: PruneReport = must(await coord.prune({ before, limit, dryRun, after }));
      if (!dryRun) ctx.metrics.recordPruned(report.pruned);
      request.log.info(
        { dryRun, olderThan, pruned: report.pruned, kept: report.kept, failed: report.failedJobs },
        'prune: done',
      );
      return {
        dryRun,
        before: new Date(before).toISOString(),
        examined: report.examined,
        pruned: report.pruned,
        prunedByStage: report.prunedByStage,
        kept: report.kept,
        documents: report.documents,
        failedJobs: report.failedJobs,
        nextCursor: report.next === null ? null : encodeCursor(report.next),
      };
    },
  );
}
