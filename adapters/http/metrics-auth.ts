/**
 * An optional bearer token for `GET /metrics` (`metricsToken`, `FLEET_METRICS_TOKEN`).
 * The metrics name every product and how busy it is, so a deployment whose metrics port
 * is reachable by more than its scraper can require a token of its own: the scraper's,
 * not any Fleet token (a Fleet token acts for one product; the metrics are all of them).
 *
 * The comparison is of SHA-256 digests with `timingSafeEqual`: equal lengths whatever
 * was sent, and time that says nothing about how much of a guess was right.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { FleetError } from '../../runtime/index.js';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** The bearer credential of a request, or null. */
function bearer(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m ? m[1]! : null;
}

/**
 * An `onRequest` hook admitting only `Authorization: Bearer <token>`; anything else is
 * `401 UNAUTHENTICATED` (with `WWW-Authenticate`).
 */
export function metricsGuard(token: string) {
  const expected = digest(token);
  return async function fleetMetricsGuard(request: FastifyRequest): Promise<void> {
    const given = bearer(request);
    // Digest even a missing credential, so every refusal costs the same.
    const ok = timingSafeEqual(digest(given ?? ''), expected) && given !== null;
    if (!ok) {
      throw new FleetError(
        'UNAUTHENTICATED',
        'the metrics need the metrics token: Authorization: Bearer <metrics token>',
      );
    }
  };
}
