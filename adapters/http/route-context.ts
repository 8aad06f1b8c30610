/**
 * What every route module of the plugin shares: the coordinator, the host's
 * authentication, metrics, the long-poll registry and the limits; plus small helpers
 * (the typed Fastify instance, Result unwrapping, documented error responses).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { type Coordinator, ERROR_CODES, type ErrorCode, type Result } from '../../runtime/index.js';
import type { Authenticate } from './auth.js';
import type { ClaimWaiters } from './claim-waiters.js';
import { Problem } from './http-schemas.js';
import type { FleetMetrics } from './metrics.js';
import { PROBLEM_MEDIA_TYPE } from './problem.js';

/** The plugin's Fastify instance, typed by the zod type provider. */
export type FleetApp = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  ZodTypeProvider
>;

export interface RouteContext {
  readonly coordinator: Coordinator;
  readonly authenticate: Authenticate;
  readonly metrics: FleetMetrics;
  readonly waiters: ClaimWaiters;
  /** Largest request body, in bytes. */
  readonly bodyLimit: number;
  /** Safety re-check interval of parked long-poll claims, in ms. */
  readonly claimRecheckMs: number;
  /** Long-poll claims one caller (product and subject) may have parked at once. */
  readonly maxParkedClaims: number;
  /** Byte budget of a page of `GET /fleet/jobs` (stored JSON of its jobs). */
  readonly listPageBytes: number;
}

/**
 * Default byte budget of a job list page: 4 MiB. A full page of 500 jobs with 1 MB
 * bodies would be 500 MB (a 76 MiB page stalled the server 639 ms in the review), so
 * pages stop at this size; 4 MiB is some 30 ms of serializing here, and still holds a
 * page of 500 summaries (2–3 KB each) or four jobs of the largest body.
 */
export const DEFAULT_LIST_PAGE_BYTES = 4 * 1024 * 1024;

/** The value of a coordinator result; its error is thrown to the error handler. */
export function must<T>(r: Result<T>): T {
  if (r.ok) return r.value;
  throw r.error;
}

const WHEN: Partial<Record<ErrorCode, string>> = {
  VALIDATION: 'the body, query or path fails its schema, or the body is not JSON',
  UNAUTHENTICATED: 'no or unknown credentials',
  FORBIDDEN: 'the caller lacks the role',
  NOT_FOUND: 'no such job in the caller’s product',
  FENCED: 'stale leaseEpoch, or the caller does not hold the lease',
  INVALID_TRANSITION: 'the lifecycle does not allow this now',
  IDEMPOTENCY_CONFLICT: 'same idempotencyKey, different content, job past queued/blocked',
  PRECONDITION_FAILED: 'If-Match names a stale ETag',
  PAYLOAD_TOO_LARGE: 'the body is over the size limit',
  DEPENDENCY_CYCLE: 'the deps would form a cycle',
  UNKNOWN_DEPENDENCY: 'a dep names no job of this product',
  STORE_UNAVAILABLE: 'the store did not answer; retry',
  RATE_LIMITED:
    'over the caller’s request rate (when the server has one), or too many long-poll claims of this caller waiting already; see Retry-After',
  NOT_IMPLEMENTED: 'the server’s store does not support this',
};

/**
 * The documented error responses of a route (OpenAPI), as problem documents. Every
 * authenticated route can also answer 401, 403, 400 and 503; pass the rest.
 */
export function problems(...codes: ErrorCode[]): Record<number, unknown> {
  const all: ErrorCode[] = ['VALIDATION', ...codes, 'STORE_UNAVAILABLE'];
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(all)) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<number, unknown> = {};
  for (const [status, list] of byStatus) {
    out[status] = {
      description: list.map((c) => `\`${c}\`: ${WHEN[c] ?? ERROR_CODES[c].title}`).join('; '),
      content: { [PROBLEM_MEDIA_TYPE]: { schema: Problem } },
    };
  }
  return out;
}

/** Error responses of every authenticated route (each is also rate limited, when a limit is set). */
export const AUTH_CODES: ErrorCode[] = ['UNAUTHENTICATED', 'FORBIDDEN', 'RATE_LIMITED'];
