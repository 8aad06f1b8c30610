/**
 * The overview of one product: jobs by stage and factories with their health (both read
 * from the store, so every process of a deployment answers the same), plus throughput
 * and recent events from this process's {@link ActivityTracker}. Read-only.
 */
import type { ActivityEvent, ActivityTracker, Throughput } from './activity.js';
import { ms } from './clock.js';
import type { Coordinator } from './coordinator.js';
import { Stage } from './schemas.js';
import type { FactoryDoc, Health, Stage as StageName } from './types.js';

/** A factory's liveness from the age of its last heartbeat. */
export type FactoryStatus = 'ok' | 'stale' | 'lost';

/** Missed beats after which a factory is `stale` (as `Coordinator.isStale`) and `lost`. */
export const STALE_AFTER_BEATS = 3;
export const LOST_AFTER_BEATS = 30;

/** Most factories an overview lists (the rest are counted). */
export const OVERVIEW_FACTORY_LIMIT = 200;

export interface FactorySummary {
  readonly factoryId: string;
  readonly status: FactoryStatus;
  /** What the factory reported. */
  readonly health: Health;
  readonly lastHeartbeatAt: string;
  /** Age of the last heartbeat, ms. */
  readonly ageMs: number;
  readonly heartbeatIntervalMs: number;
  readonly load: number;
  readonly seatLimit: number | null;
  /** Leases it holds now (0 for lost factories: not counted). */
  readonly seatsHeld: number;
  readonly capabilities: readonly string[];
}

export interface ProductOverview {
  readonly productId: string;
  readonly generatedAt: string;
  /** Every stage, zeros included. */
  readonly stages: Readonly<Record<StageName, number>>;
  readonly totalJobs: number;
  readonly factories: {
    readonly items: readonly FactorySummary[];
    readonly counts: Readonly<Record<FactoryStatus, number>>;
    /** True when the product has more factories than the overview lists. */
    readonly truncated: boolean;
  };
  readonly throughput: Throughput;
  /** Newest first. */
  readonly recentEvents: readonly ActivityEvent[];
}

/** A factory's status at `now` (ms). */
export function factoryStatus(
  f: Pick<FactoryDoc, 'lastHeartbeatAt' | 'heartbeatIntervalMs'>,
  now: number,
): FactoryStatus {
  const age = now - ms(f.lastHeartbeatAt);
  if (age > LOST_AFTER_BEATS * f.heartbeatIntervalMs) return 'lost';
  if (age > STALE_AFTER_BEATS * f.heartbeatIntervalMs) return 'stale';
  return 'ok';
}

/** Reads the overview of `productId` (see the file header). */
export async function productOverview(
  coordinator: Pick<Coordinator, 'store' | 'clock'>,
  activity: ActivityTracker,
  productId: string,
  options: { recent?: number } = {},
): Promise<ProductOverview> {
  const { store } = coordinator;
  await store.sync(store.mark()); // never show a change that is not durable yet
  const now = coordinator.clock.now();
  const stages = Object.fromEntries(Stage.options.map((s) => [s, 0])) as Record<StageName, number>;
  for (const row of await store.jobs.countByStage()) {
    if (row.productId === productId) stages[row.stage] += row.count;
  }
  const page = await store.factories.list(productId, { limit: OVERVIEW_FACTORY_LIMIT });
  const counts: Record<FactoryStatus, number> = { ok: 0, stale: 0, lost: 0 };
  const items: FactorySummary[] = [];
  for (const f of page.items) {
    const status = factoryStatus(f, now);
    counts[status]++;
    items.push({
      factoryId: f.factoryId,
      status,
      health: f.health,
      lastHeartbeatAt: f.lastHeartbeatAt,
      ageMs: Math.max(0, now - ms(f.lastHeartbeatAt)),
      heartbeatIntervalMs: f.heartbeatIntervalMs,
      load: f.load,
      seatLimit: f.seatLimit,
      seatsHeld: status === 'lost' ? 0 : await store.jobs.countHeld(productId, f.factoryId),
      capabilities: f.capabilities,
    });
  }
  return {
    productId,
    generatedAt: new Date(now).toISOString(),
    stages,
    totalJobs: Object.values(stages).reduce((a, b) => a + b, 0),
    factories: { items, counts, truncated: page.nextCursor !== null },
    throughput: activity.throughput(productId),
    recentEvents: activity.recent(productId, options.recent ?? 25),
  };
}
