/**
 * Every failure Fleet reports has a stable code from this one table. The HTTP adapter
 * turns a code into its status and an RFC 9457 problem document; stores map their
 * native failures (412, 409, SQLITE_CONSTRAINT, Cosmos 429...) to these codes in their
 * own single `mapError` function, so every store fails identically.
 *
 * Expected failures (a fenced call, an invalid move, an unknown job) are returned as
 * `Result` values by the coordinator, never thrown. Store errors are thrown as
 * `FleetError` and handled by the coordinator (a 412 means "re-read and decide").
 */

export const ERROR_CODES = {
  VALIDATION: { status: 400, title: 'Invalid request' },
  UNAUTHENTICATED: { status: 401, title: 'Authentication required' },
  FORBIDDEN: { status: 403, title: 'Forbidden' },
  NOT_FOUND: { status: 404, title: 'Not found' },
  FENCED: { status: 409, title: 'Fenced: stale lease epoch or not the lease holder' },
  INVALID_TRANSITION: { status: 409, title: 'Transition not allowed in the current stage' },
  IDEMPOTENCY_CONFLICT: { status: 409, title: 'Idempotency key reused with different content' },
  /** A store `create` found a document with the same id. */
  ALREADY_EXISTS: { status: 409, title: 'Already exists' },
  PRECONDITION_FAILED: { status: 412, title: 'Precondition failed: stale ETag' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Payload too large' },
  DEPENDENCY_CYCLE: { status: 422, title: 'Dependency cycle' },
  UNKNOWN_DEPENDENCY: { status: 422, title: 'Unknown dependency' },
  /** A persisted snapshot was written by a machine version this build does not know. */
  SNAPSHOT_VERSION: { status: 500, title: 'Unknown machine version' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  /** The operation exists, but not on this server's store (an online backup on Cosmos DB). */
  NOT_IMPLEMENTED: { status: 501, title: 'Not implemented' },
  /** The store did not answer, or answered with an unknown outcome. */
  STORE_UNAVAILABLE: { status: 503, title: 'Store unavailable' },
  INTERNAL: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A coded failure. `detail` is safe to show to clients; `cause` is not. */
export class FleetError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string;
  /** Extra members for the problem document (e.g. `cycle`, `unknown`). */
  readonly extra: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    detail: string,
    options: { cause?: unknown; extra?: Record<string, unknown> } = {},
  ) {
    super(`${code}: ${detail}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FleetError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.detail = detail;
    this.extra = options.extra ?? {};
  }
}

/** True when `e` is a FleetError, optionally with one of the given codes. */
export function isFleetError(e: unknown, ...codes: ErrorCode[]): e is FleetError {
  return e instanceof FleetError && (codes.length === 0 || codes.includes(e.code));
}

/** An expected outcome: a value, or a coded error. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: FleetError };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(
  code: ErrorCode,
  detail: string,
  extra?: Record<string, unknown>,
): Result<T> => ({ ok: false, error: new FleetError(code, detail, extra ? { extra } : {}) });

/** Unwraps a result, throwing its error (for callers that treat failure as exceptional). */
export function unwrap<T>(r: Result<T>): T {
  if (r.ok) return r.value;
  throw r.error;
}
