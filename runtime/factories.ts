/**
 * Factories: registration by heartbeat, and the derived `stale` (three missed beats).
 */
import { iso, ms } from './clock.js';
import { type Core, MAX_CONFLICTS, parse, stripEtag } from './core.js';
import { fail, isFleetError, ok, type Result } from './errors.js';
import * as S from './schemas.js';
import type { FactoryDoc, HeartbeatInput, Page } from './types.js';

// -------------------------------------------------------------------------

/** Registers the factory on its first beat and records every later one. */
export async function heartbeat(
  c: Core,
  productId: string,
  input: HeartbeatInput,
): Promise<Result<FactoryDoc & { stale: boolean }>> {
  const parsed = parse(S.HeartbeatInput, input);
  if (!parsed.ok) return parsed;
  const h = parsed.value;
  const from = c.store.mark();
  for (let i = 0; i < MAX_CONFLICTS; i++) {
    const now = iso(c.clock.now());
    const cur = await c.store.factories.read(productId, h.factoryId);
    const doc: FactoryDoc = {
      id: h.factoryId,
      productId,
      factoryId: h.factoryId,
      descriptor: h.descriptor ?? cur?.descriptor ?? {},
      capabilities: [...new Set(h.capabilities)].sort(),
      health: h.health,
      load: h.load ?? 0,
      seatLimit: h.seatLimit === undefined ? (cur?.seatLimit ?? null) : h.seatLimit,
      heartbeatIntervalMs:
        h.heartbeatIntervalMs ?? cur?.heartbeatIntervalMs ?? c.heartbeatIntervalMs,
      lastHeartbeatAt: now,
      registeredAt: cur?.registeredAt ?? now,
    };
    try {
      const saved = cur
        ? await c.store.factories.replace(doc, cur._etag)
        : await c.store.factories.create(doc);
      await c.store.sync(from);
      return ok({ ...saved, stale: false });
    } catch (e) {
      if (isFleetError(e, 'PRECONDITION_FAILED', 'ALREADY_EXISTS', 'NOT_FOUND')) continue;
      throw e;
    }
  }
  return fail('STORE_UNAVAILABLE', 'heartbeat kept conflicting; try again');
}

/** True when a factory missed three heartbeats. */
export function isStale(
  c: Core,
  factory: Pick<FactoryDoc, 'lastHeartbeatAt' | 'heartbeatIntervalMs'>,
  now = c.clock.now(),
): boolean {
  return now - ms(factory.lastHeartbeatAt) > 3 * factory.heartbeatIntervalMs;
}

/** The product's factories, each with a derived `stale`. */
export async function listFactories(
  c: Core,
  productId: string,
  page: { limit?: number; cursor?: string | null } = {},
): Promise<Result<Page<FactoryDoc & { stale: boolean }>>> {
  const now = c.clock.now();
  const r = await c.store.factories.list(productId, {
    limit: page.limit ?? 50,
    cursor: page.cursor ?? null,
  });
  return ok({
    items: r.items.map((f) => ({ ...stripEtag(f), stale: isStale(c, f, now) })),
    nextCursor: r.nextCursor,
  });
}

// -- Stale factories across products ----------------------------------------------------

/**
 * Stale factories of every product (each by its own interval: three missed beats), oldest
 * beat first; paged. The store walks factories whose last beat is older than three of
 * the shortest interval a factory may declare (`MIN_HEARTBEAT_INTERVAL_MS`, so 300 ms):
 * no stale factory is older than that, and each found is judged by its own interval. A
 * page may so hold fewer than `limit` items (none, even) and still name a next page.
 * Cost: one store query per `limit` factories that did not beat in the last 300 ms —
 * with the default 10 s interval, about all of them: 2 queries per sweep for 1,000
 * factories at the supervisor's page of 500.
 */
export async function listStaleFactories(
  c: Core,
  page: { limit?: number; cursor?: string | null } = {},
  now = c.clock.now(),
): Promise<Result<Page<FactoryDoc & { stale: true }>>> {
  const r = await c.store.factories.heartbeatBefore(iso(now - 3 * S.MIN_HEARTBEAT_INTERVAL_MS), {
    limit: page.limit ?? 50,
    cursor: page.cursor ?? null,
  });
  return ok({
    items: r.items
      .filter((f) => isStale(c, f, now))
      .map((f) => ({ ...stripEtag(f), stale: true as const })),
    nextCursor: r.nextCursor,
  });
}
