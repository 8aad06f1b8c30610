/**
 * The Cosmos DB registration table: for every container of the port, its name and
 * partition key (taken from the runtime's `CONTAINERS`, so the names exist once) and the
 * composite indexes its queries need. Cosmos DB serves an `ORDER BY` on two or more
 * fields only from a composite index with exactly those paths and directions, so every
 * multi-field order a query of this adapter uses is listed here, beside the query's name;
 * `openCosmosStore` creates the containers from this table, and the queries in
 * `cosmos-store.ts` name their order through `ORDERS`, so the two cannot drift apart.
 */
import type { ContainerKey } from '../../../runtime/index.js';
import { CONTAINERS } from '../../../runtime/index.js';

type Direction = 'ascending' | 'descending';

/** One field of a multi-field order: `[path without the leading slash, direction]`. */
export type OrderField = readonly [field: string, direction: Direction];

/**
 * Fields the adapter adds to a stored job (and strips on read), so that queries can
 * order and filter on values the port's documents do not hold as such.
 */
export const DERIVED_JOB_FIELDS = {
  /** `PRIORITY_RANK[priority]`: claim order. */
  rank: 'fleetRank',
  /** `outbox.length > 0`: the sweep's outbox query without reading arrays. */
  hasOutbox: 'fleetHasOutbox',
} as const;

/** The multi-field orders of the adapter's queries, by query. */
export const ORDERS = {
  /** jobs.claimCandidates: best first (stage is the equality filter, first in the index). */
  claim: [
    ['stage', 'ascending'],
    [DERIVED_JOB_FIELDS.rank, 'ascending'],
    ['seq', 'ascending'],
    ['id', 'ascending'],
  ],
  /** jobs.list: newest first. */
  newest: [
    ['seq', 'descending'],
    ['id', 'ascending'],
  ],
  /** jobs.listBlocked: oldest first across products. */
  oldest: [
    ['seq', 'ascending'],
    ['id', 'ascending'],
    ['productId', 'ascending'],
  ],
  /** jobs.due: earliest due first. */
  due: [
    ['dueAt', 'ascending'],
    ['id', 'ascending'],
  ],
  /** runs.list: attempt order. */
  attempts: [
    ['attempt', 'ascending'],
    ['id', 'ascending'],
  ],
  /** artifacts.list: creation order. */
  created: [
    ['createdAt', 'ascending'],
    ['id', 'ascending'],
  ],
  /** factories.list, profiles.list: by id (one field: the default range index serves it). */
  byId: [['id', 'ascending']],
  /** factories.heartbeatBefore: oldest beat first across products. */
  heartbeat: [
    ['lastHeartbeatAt', 'ascending'],
    ['productId', 'ascending'],
    ['id', 'ascending'],
  ],
  /** Retention (issue 14), jobs.finishedBefore: earliest finished first across products. */
  finished: [
    ['updatedAt', 'ascending'],
    ['id', 'ascending'],
    ['productId', 'ascending'],
  ],
} as const satisfies Record<string, readonly OrderField[]>;

export type OrderName = keyof typeof ORDERS;

export interface CosmosContainerSpec {
  readonly name: string;
  /** The partition key path, e.g. `/productId`. */
  readonly partitionKeyPath: string;
  /** The document field holding the partition key. */
  readonly partitionKey: string;
  /** Orders served by composite indexes of this container. */
  readonly orders: readonly OrderName[];
}

const spec = (key: ContainerKey, orders: readonly OrderName[]): CosmosContainerSpec => ({
  name: CONTAINERS[key].name,
  partitionKey: CONTAINERS[key].partitionKey,
  partitionKeyPath: `/${CONTAINERS[key].partitionKey}`,
  orders,
});

/** Every container, its key and its composite indexes: the single source of truth. */
export const COSMOS_CONTAINERS: Readonly<Record<ContainerKey, CosmosContainerSpec>> = {
  jobs: spec('jobs', ['claim', 'newest', 'oldest', 'due', 'finished']),
  runs: spec('runs', ['attempts']),
  leases: spec('leases', []),
  factories: spec('factories', ['byId', 'heartbeat']),
  profiles: spec('profiles', ['byId']),
  events: spec('events', []),
  artifacts: spec('artifacts', ['created']),
};

/** The `indexingPolicy` of a container: default range indexes plus its composites. */
export function indexingPolicy(s: CosmosContainerSpec) {
  return {
    indexingMode: 'consistent' as const,
    automatic: true,
    includedPaths: [{ path: '/*' }],
    excludedPaths: [{ path: '/"_etag"/?' }],
    compositeIndexes: s.orders
      .filter((name) => ORDERS[name].length > 1)
      .map((name) => ORDERS[name].map(([field, order]) => ({ path: `/${field}`, order }))),
  };
}

/** The `ORDER BY` clause of an order, on the query alias `c`. */
export function orderBy(name: OrderName): string {
  return `ORDER BY ${ORDERS[name]
    .map(([field, order]) => `c.${field} ${order === 'ascending' ? 'ASC' : 'DESC'}`)
    .join(', ')}`;
}
