/**
 * Every error the HTTP surface answers is an RFC 9457 problem document
 * (`application/problem+json`) with a stable `code` from `runtime/errors.ts`:
 * `{ type, title, status, code, detail, instance, ...extra }`. {@link toProblem} is the
 * one place where failures become status codes: coded `FleetError`s (from the
 * coordinator, the stores or the guards), Fastify's own request errors (validation,
 * malformed JSON, body too large, unsupported media type), and everything else.
 *
 * Decisions:
 * - An unsupported `Content-Type` is `400 VALIDATION` (not 415): the contract's codes
 *   are a closed table and the body simply is not a JSON body the route accepts.
 * - 5xx details are generic ("an internal error occurred"): internal messages, paths
 *   and stacks are logged, never sent.
 * - `type` is a stable URN per code (`urn:fleet:problem:fenced`), not a link.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, type ErrorCode, FleetError } from '../../runtime/index.js';

/** The media type of every error body. */
export const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/** An RFC 9457 problem document as Fleet sends it. */
export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  instance?: string;
  [extra: string]: unknown;
}

/** A problem, and how loudly to log the failure behind it. */
export interface MappedProblem {
  problem: ProblemDocument;
  /** `error`: a 5xx (logged with its stack); `none`: an expected client error. */
  log: 'none' | 'error';
  /** Extra response headers (`WWW-Authenticate`; `Retry-After` on every 429 and 503). */
  headers: Record<string, string>;
}

/** The `type` URI of a code. */
export const problemType = (code: ErrorCode): string =>
  `urn:fleet:problem:${code.toLowerCase().replaceAll('_', '-')}`;

const GENERIC_5XX: Partial<Record<ErrorCode, string>> = {
  STORE_UNAVAILABLE: 'the store is unavailable; try again shortly',
  SNAPSHOT_VERSION: 'a stored job was written by a newer Fleet build; this server cannot read it',
  NOT_IMPLEMENTED: 'the store this server runs on does not support this operation',
};

/** Members a FleetError's `extra` may not override. */
const RESERVED = new Set(['type', 'title', 'status', 'code', 'detail', 'instance']);

/** Limits that shape details (the body limit of the route that failed). */
export interface ProblemContext {
  bodyLimit?: number;
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
}

const WHERE: Record<string, string> = {
  body: 'body',
  querystring: 'query',
  params: 'path',
  headers: 'header',
};

/** Longest path or message a validation problem repeats (a key may be any length). */
const MAX_PART = 200;

/** `text`, cut to `max` characters with an ellipsis when longer. */
function clip(text: string, max = MAX_PART): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function validationProblem(err: FastifyError): ProblemDocument {
  const where = WHERE[err.validationContext ?? 'body'] ?? 'body';
  const issues = (err.validation ?? []) as ValidationIssue[];
  const errors = issues.slice(0, 20).map((i) => {
    const path = clip((i.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.'));
    return { in: where, path, message: clip(i.message ?? 'is invalid') };
  });
  const detail = errors
    .slice(0, 5)
    .map((e) => `${e.path === '' ? `(${where})` : `${where}.${e.path}`}: ${e.message}`)
    .join('; ');
  return make('VALIDATION', detail || `the ${where} is invalid`, { errors });
}

function make(
  code: ErrorCode,
  detail: string,
  extra: Record<string, unknown> = {},
): ProblemDocument {
  const { status, title } = ERROR_CODES[code];
  const problem: ProblemDocument = { type: problemType(code), title, status, code, detail };
  for (const [k, v] of Object.entries(extra)) if (!RESERVED.has(k)) problem[k] = v;
  return problem;
}

/** Closest contract code for a bare HTTP status raised by Fastify or another plugin. */
function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'NOT_FOUND';
    case 412:
      return 'PRECONDITION_FAILED';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 429:
      return 'RATE_LIMITED';
    default:
      return 'VALIDATION';
  }
}

/**
 * The one mapping from a failure to its problem document. Never throws.
 */
export function toProblem(error: unknown, context: ProblemContext = {}): MappedProblem {
  const headers: Record<string, string> = {};
  let problem: ProblemDocument;
  let log: MappedProblem['log'] = 'none';
  if (error instanceof FleetError) {
    if (error.status >= 500) {
      log = 'error';
      problem = make(error.code, GENERIC_5XX[error.code] ?? 'an internal error occurred');
    } else {
      problem = make(error.code, error.detail, { ...error.extra });
    }
  } else {
    const err = (error ?? {}) as Partial<FastifyError> & { name?: string };
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (Array.isArray(err.validation)) {
      problem = validationProblem(err as FastifyError);
    } else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || status === 413) {
      const limit = context.bodyLimit;
      problem = make(
        'PAYLOAD_TOO_LARGE',
        limit === undefined
          ? 'the request body is too large'
          : `the request body is larger than ${limit} bytes`,
        limit === undefined ? {} : { limitBytes: limit },
      );
    } else if (
      err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      (err.name === 'SyntaxError' && status === 400)
    ) {
      problem = make('VALIDATION', 'the body is not valid JSON');
    } else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || status === 415) {
      problem = make('VALIDATION', 'unsupported Content-Type: send the body as application/json');
    } else if (status >= 400 && status < 500) {
      // Fastify's (and well-behaved plugins') own client errors carry safe messages.
      const code = codeForStatus(status);
      const safe = typeof err.code === 'string' && err.code.startsWith('FST_');
      problem = make(code, safe && err.message ? err.message : ERROR_CODES[code].title);
    } else {
      log = 'error';
      problem = make('INTERNAL', 'an internal error occurred');
    }
  }
  if (problem.code === 'UNAUTHENTICATED') headers['www-authenticate'] = 'Bearer realm="fleet"';
  if (problem.status === 429 || problem.status === 503) {
    headers['retry-after'] = String(retryAfterSeconds(problem, error));
  }
  return { problem, log, headers };
}

/**
 * Whole seconds (RFC 9110, at least 1) a throttled or unavailable caller should wait:
 * the problem's own figure, else what the store asked for, else 1.
 */
function retryAfterSeconds(problem: ProblemDocument, error: unknown): number {
  const { retryAfterSeconds: s, retryAfterMs: ms } = problem;
  if (typeof s === 'number' && Number.isFinite(s) && s >= 1) return Math.ceil(s);
  if (typeof ms === 'number' && Number.isFinite(ms) && ms > 0) return Math.ceil(ms / 1000);
  const asked = error instanceof FleetError ? Number(error.extra.retryAfterMs) : Number.NaN;
  return Number.isFinite(asked) && asked > 0 ? Math.ceil(asked / 1000) : 1;
}

/**
 * Sends the problem for `error` on `reply` (status, media type, headers), logging 5xx
 * failures with their stack. Returns the mapped problem (for metrics).
 */
export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  error: unknown,
  context: ProblemContext = {},
): ProblemDocument {
  const { problem, log, headers } = toProblem(error, context);
  problem.instance = request.url;
  if (log === 'error') request.log.error({ err: error }, `request failed: ${problem.code}`);
  reply.code(problem.status).type(PROBLEM_MEDIA_TYPE).headers(headers).send(problem);
  return problem;
}

/** The 404 problem of an unknown route. */
export function routeNotFound(
  request: FastifyRequest,
  allowed: readonly string[] = [],
): FleetError {
  const path = request.url.split('?')[0];
  if (allowed.length === 0)
    return new FleetError('NOT_FOUND', `no route ${request.method} ${path}`);
  return new FleetError(
    'NOT_FOUND',
    `no route ${request.method} ${path}; this path accepts ${allowed.join(', ')}`,
    { extra: { allow: [...allowed] } },
  );
}

/**
 * For the host's `Fastify({ frameworkErrors })` option: answers the errors Fastify
 * raises before any route or plugin sees the request (a malformed URL, a path
 * parameter over `maxParamLength`, a failed constraint) with problem documents too.
 */
export function fleetFrameworkErrors(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    // Fastify's message quotes the whole URL; say what is wrong, as the schema would.
    const limit = paramLengthLimit(request.server);
    const message = `must be at most ${limit} characters`;
    sendProblem(
      request,
      reply,
      new FleetError('VALIDATION', `a path parameter is too long: it ${message}`, {
        extra: { errors: [{ in: 'path', path: '', message }] },
      }),
    );
    return;
  }
  sendProblem(request, reply, error);
}

/**
 * The router's longest path parameter: set with `routerOptions.maxParamLength` (the
 * top-level option is deprecated in Fastify 5, and `initialConfig.maxParamLength` then
 * still says the default), else the default, 100.
 */
export function paramLengthLimit(server: FastifyInstance): number {
  const config = server.initialConfig;
  return config.routerOptions?.maxParamLength ?? config.maxParamLength ?? 100;
}
