/**
 * Who is calling, decided by the host: the plugin never reads tokens itself. The host's
 * `authenticate(request)` names the caller's product and roles (or null: not
 * authenticated), and each route states which roles may call it. Tenancy follows from
 * this alone: every route uses the product of the caller, never one from the URL or body.
 */
import type { FastifyRequest } from 'fastify';
import { FleetError } from '../../runtime/index.js';

/** The roles of the REST contract (API.md). `admin` may do everything. */
export const FLEET_ROLES = ['submitter', 'factory', 'admin'] as const;

export type FleetRole = (typeof FLEET_ROLES)[number];

/** What the host's authentication decided about one request. */
export interface FleetAuth {
  /** The product (tenant) every call of this request acts on. */
  productId: string;
  /** Granted roles; unknown names grant nothing. */
  roles: readonly FleetRole[];
  /** Who it is (a user, a token name), recorded as the actor of the events it causes. */
  subject?: string;
  /**
   * The factory ids this caller may act as in factory calls (claim, heartbeat, lease
   * renew and release, progress, PATCH); another is `403 FORBIDDEN`. Absent: any
   * factory of its product (fencing then protects a job from stale holders, not from a
   * colleague holding a factory token of the same product).
   */
  factoryIds?: readonly string[];
  /**
   * May take server-wide actions that cross products: an online backup of the database
   * (it holds every product's jobs). Needs the `admin` role too. @defaultValue false
   */
  operator?: boolean;
}

/**
 * The host's authentication hook: the caller's product and roles, or null when the
 * request carries no valid credentials (answered `401 UNAUTHENTICATED`). It runs before
 * the body is read, so it may look at headers, the socket, or decorations the host's
 * own hooks set. A throw is the host's bug: answered `500 INTERNAL` and logged, unless
 * it throws a `FleetError`, whose code is answered as usual.
 */
export type Authenticate = (
  request: FastifyRequest,
) => FleetAuth | null | Promise<FleetAuth | null>;

/** Which callers a route admits: one of these roles, or every Fleet role. */
export type Access = readonly FleetRole[] | 'any';

const ROLE_SET = new Set<string>(FLEET_ROLES);
const auths = new WeakMap<FastifyRequest, FleetAuth>();

/** A host that returns a malformed FleetAuth has a bug: fail loudly (500), never guess. */
function checked(auth: unknown): FleetAuth | null {
  if (auth === null || auth === undefined) return null;
  const a = auth as Partial<FleetAuth>;
  if (
    typeof a.productId !== 'string' ||
    a.productId.length === 0 ||
    a.productId.length > 200 ||
    !Array.isArray(a.roles) ||
    (a.subject !== undefined && typeof a.subject !== 'string') ||
    (a.factoryIds !== undefined &&
      (!Array.isArray(a.factoryIds) || !a.factoryIds.every((f) => typeof f === 'string'))) ||
    (a.operator !== undefined && typeof a.operator !== 'boolean')
  ) {
    throw new TypeError(
      'authenticate() returned an invalid FleetAuth: want { productId: string (1-200 chars), roles: FleetRole[], subject?: string, factoryIds?: string[], operator?: boolean }',
    );
  }
  return {
    productId: a.productId,
    roles: a.roles.filter((r): r is FleetRole => ROLE_SET.has(r)),
    ...(a.subject === undefined ? {} : { subject: a.subject }),
    ...(a.factoryIds === undefined ? {} : { factoryIds: [...a.factoryIds] }),
    ...(a.operator === true ? { operator: true } : {}),
  };
}

/**
 * Refuses (`403 FORBIDDEN`) a factory call for `factoryId` by a caller bound to other
 * factories ({@link FleetAuth.factoryIds}); an unbound caller may act as any.
 */
export function mustActAs(auth: FleetAuth, factoryId: string): void {
  if (auth.factoryIds === undefined || auth.factoryIds.includes(factoryId)) return;
  throw new FleetError('FORBIDDEN', 'these credentials may not act as this factory', {
    extra: { factoryId },
  });
}

/** True when `roles` admit a route of `access`. */
export function admits(roles: readonly FleetRole[], access: Access): boolean {
  if (roles.includes('admin')) return true;
  return access === 'any' ? roles.length > 0 : access.some((r) => roles.includes(r));
}

/**
 * An `onRequest` hook for one route: authenticates (401 if nobody), checks the roles
 * (403 if not admitted) and remembers the caller for {@link authOf}. It runs before the
 * body is read, so an unauthenticated caller learns nothing about validation.
 */
export function guard(authenticate: Authenticate, access: Access) {
  const needs = access === 'any' ? 'any Fleet role' : `the role ${access.join(' or ')}`;
  return async function fleetGuard(request: FastifyRequest): Promise<void> {
    const auth = checked(await authenticate(request));
    if (auth === null) {
      throw new FleetError('UNAUTHENTICATED', 'a valid bearer token is required');
    }
    if (!admits(auth.roles, access)) {
      throw new FleetError('FORBIDDEN', `this route needs ${needs}`);
    }
    auths.set(request, auth);
  };
}

/**
 * The caller of a factory call whose body names a `factoryId`, once {@link mustActAs}
 * admitted it.
 */
export function actingAs(request: FastifyRequest & { body: { factoryId: string } }): FleetAuth {
  const auth = authOf(request);
  mustActAs(auth, request.body.factoryId);
  return auth;
}

/**
 * Who counts as one caller for per-caller limits (the request rate, parked long-poll
 * claims): a product and a subject — one token of the standalone server.
 */
export const callerKey = (auth: FleetAuth): string =>
  `${auth.productId}\u0000${auth.subject ?? ''}`;

/** The caller of a request that passed its route's {@link guard}. */
export function authOf(request: FastifyRequest): FleetAuth {
  const auth = auths.get(request);
  if (auth === undefined) throw new Error(`route ${request.url} has no Fleet guard`);
  return auth;
}
