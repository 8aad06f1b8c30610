/**
 * The client's failures. An answer from the server that is not a success is a
 * {@link FleetApiError} (its `code`, `status` and `detail` come from the RFC 9457
 * problem document); a request that got no answer is a {@link FleetNetworkError}, which
 * says whether the request may have reached the server — the difference between "safe
 * to send again" and "find out what happened first".
 */

/** A problem document as the server sends it (`application/problem+json`). */
export interface ProblemBody {
  type?: string;
  title?: string;
  status?: number;
  code?: string;
  detail?: string;
  instance?: string;
  [member: string]: unknown;
}

/** The server answered with an error. */
export class FleetApiError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** The problem's stable code (`FENCED`, `NOT_FOUND`...), or `HTTP_<status>` for a non-problem answer. */
  readonly code: string;
  /** The problem's detail, safe to show. */
  readonly detail: string;
  /** The whole problem document (extra members: `reason`, `leaseEpoch`, `errors`...). */
  readonly problem: ProblemBody;
  /** From `Retry-After`, in ms; null without one. */
  readonly retryAfterMs: number | null;
  /** Method and path of the request that failed. */
  readonly request: string;

  constructor(
    status: number,
    problem: ProblemBody,
    request: string,
    retryAfterMs: number | null = null,
  ) {
    const code = typeof problem.code === 'string' ? problem.code : `HTTP_${status}`;
    const detail =
      typeof problem.detail === 'string' && problem.detail !== ''
        ? problem.detail
        : (problem.title ?? `HTTP ${status}`);
    super(`${code}: ${detail}`);
    this.name = 'FleetApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
    this.request = request;
  }

  /** Why a `FENCED` call was fenced (`reaped`, `released`, `shipped`...), when the server said. */
  get fenceReason(): string | undefined {
    const r = this.problem.reason;
    return typeof r === 'string' ? r : undefined;
  }
}

/** How a request failed to get an answer. */
export type NetworkFailure = 'refused' | 'timeout' | 'network';

/** No answer came back. */
export class FleetNetworkError extends Error {
  readonly kind: NetworkFailure;
  /**
   * False only when the request certainly never left this machine (connection refused,
   * name not resolved): then sending it again cannot apply it twice. True when it may
   * have been applied (timeout, connection reset): find out before sending it again.
   */
  readonly maybeSent: boolean;
  /** Method and path of the request that failed. */
  readonly request: string;

  constructor(kind: NetworkFailure, maybeSent: boolean, request: string, cause?: unknown) {
    super(
      `${request}: ${kind === 'refused' ? 'could not connect' : kind === 'timeout' ? 'no answer in time' : 'the connection failed'}${
        cause instanceof Error ? ` (${codeOf(cause) ?? cause.message})` : ''
      }`,
      cause === undefined ? undefined : { cause },
    );
    this.name = 'FleetNetworkError';
    this.kind = kind;
    this.maybeSent = maybeSent;
    this.request = request;
  }
}

function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Connection errors that happen before a single byte of the request is sent. */
const NEVER_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Classifies what `fetch` threw (undici wraps the socket error as `cause`, sometimes as
 * an AggregateError of one error per address tried).
 */
export function networkErrorOf(error: unknown, request: string): FleetNetworkError {
  const cause = (error as { cause?: unknown } | null)?.cause ?? error;
  const all: unknown[] = cause instanceof AggregateError ? cause.errors : [cause];
  const codes = all.map(codeOf);
  if (codes.length > 0 && codes.every((c) => c !== undefined && NEVER_SENT.has(c))) {
    return new FleetNetworkError('refused', false, request, all[0]);
  }
  if (codes.some((c) => c === 'UND_ERR_HEADERS_TIMEOUT' || c === 'UND_ERR_BODY_TIMEOUT')) {
    return new FleetNetworkError('timeout', true, request, cause);
  }
  return new FleetNetworkError('network', true, request, cause);
}

/** `Retry-After` (delta seconds or an HTTP date) in ms from `now`; null if absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
