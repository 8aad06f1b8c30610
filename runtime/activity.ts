/**
 * Recent activity of each product as this process saw it: the last events (newest
 * first) and claims and ships per minute over the last hour, kept in memory from the
 * coordinator's reported events (`Coordinator.subscribe`). Read-only: it never writes.
 *
 * Scope, stated plainly: it holds what this process stored since it started. In a
 * deployment of several processes on one Cosmos DB, each process's tracker sees its own
 * share of the events; the per-job streams and the stage counts read the store and are
 * complete everywhere. The numbers are bounded: {@link ActivityOptions.recent} events and
 * one bucket per minute for {@link ActivityOptions.windowMinutes} per product.
 */
import type { EventDoc } from './types.js';

/** One event, summarised for the overview and the product stream. */
export interface ActivityEvent {
  /** Position in this process's activity feed (1, 2, 3... across products). */
  readonly feedSeq: number;
  readonly productId: string;
  readonly jobId: string;
  readonly seq: number;
  readonly type: string;
  readonly at: string;
  readonly actor: string | null;
  readonly from: string | null;
  readonly to: string | null;
  readonly factoryId: string | null;
  readonly leaseEpoch: number | null;
}

/** Claims and ships per minute, oldest minute first (the last is the current minute). */
export interface Throughput {
  readonly windowMinutes: number;
  /** Start of the first minute (ISO). */
  readonly since: string;
  readonly claims: readonly number[];
  readonly ships: readonly number[];
  readonly totalClaims: number;
  readonly totalShips: number;
}

export interface ActivityOptions {
  /** Events kept per product. @defaultValue 200 */
  recent?: number;
  /** Minutes of throughput kept. @defaultValue 60 */
  windowMinutes?: number;
}

/** What the tracker needs of a coordinator (an object literal in tests). */
export interface ActivitySource {
  subscribe(listener: (event: EventDoc) => void): () => void;
  readonly clock: { now(): number };
}

interface Minute {
  minute: number;
  claims: number;
  ships: number;
}

interface ProductFeed {
  events: ActivityEvent[];
  minutes: Minute[];
  /** `feedSeq` of the newest event dropped from `events` (0: none). */
  dropped: number;
}

const MINUTE = 60_000;

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** See the file header. Call {@link ActivityTracker.close} to unsubscribe. */
export class ActivityTracker {
  readonly #recent: number;
  readonly #window: number;
  readonly #clock: { now(): number };
  readonly #feeds = new Map<string, ProductFeed>();
  readonly #listeners = new Set<(event: ActivityEvent) => void>();
  readonly #unsubscribe: () => void;
  #feedSeq = 0;

  constructor(source: ActivitySource, options: ActivityOptions = {}) {
    this.#recent = options.recent ?? 200;
    this.#window = options.windowMinutes ?? 60;
    this.#clock = source.clock;
    this.#unsubscribe = source.subscribe((e) => this.record(e));
  }

  /** Adds one stored event (called by the subscription; public for tests). */
  record(e: EventDoc): ActivityEvent {
    const data = e.data as Record<string, unknown>;
    const event: ActivityEvent = {
      feedSeq: ++this.#feedSeq,
      productId: e.productId,
      jobId: e.jobId,
      seq: e.seq,
      type: e.type,
      at: e.at,
      actor: e.actor,
      from: str(data.from),
      to: str(data.to),
      factoryId: str(data.factoryId),
      leaseEpoch: typeof data.leaseEpoch === 'number' ? data.leaseEpoch : null,
    };
    const feed = this.#feed(e.productId);
    feed.events.push(event);
    if (feed.events.length > this.#recent) {
      const gone = feed.events.splice(0, feed.events.length - this.#recent);
      feed.dropped = gone[gone.length - 1]!.feedSeq;
    }
    const claimed = e.type === 'claimed';
    const shipped = e.type === 'stage_changed' && event.to === 'shipped';
    if (claimed || shipped) {
      const minute = Math.floor(Date.parse(e.at) / MINUTE);
      let bucket = feed.minutes.find((m) => m.minute === minute);
      if (bucket === undefined) {
        bucket = { minute, claims: 0, ships: 0 };
        feed.minutes.push(bucket);
        feed.minutes.sort((a, b) => a.minute - b.minute);
        const oldest = Math.floor(this.#clock.now() / MINUTE) - this.#window;
        while (feed.minutes.length > 0 && feed.minutes[0]!.minute <= oldest) feed.minutes.shift();
      }
      if (claimed) bucket.claims++;
      else bucket.ships++;
    }
    for (const listener of this.#listeners) listener(event);
    return event;
  }

  #feed(productId: string): ProductFeed {
    let feed = this.#feeds.get(productId);
    if (feed === undefined) {
      feed = { events: [], minutes: [], dropped: 0 };
      this.#feeds.set(productId, feed);
    }
    return feed;
  }

  /** The product's latest events, newest first (at most `limit`). */
  recent(productId: string, limit = 25): ActivityEvent[] {
    const events = this.#feeds.get(productId)?.events ?? [];
    return events.slice(-limit).reverse();
  }

  /**
   * The product's events after `feedSeq`, oldest first, or null when the tracker no
   * longer holds all of them (the reader must start over from a fresh overview).
   */
  after(productId: string, feedSeq: number): ActivityEvent[] | null {
    if (feedSeq > this.#feedSeq) return null;
    const feed = this.#feeds.get(productId);
    if (feed === undefined) return [];
    if (feed.dropped > feedSeq) return null;
    return feed.events.filter((e) => e.feedSeq > feedSeq);
  }

  /** Claims and ships per minute over the window, ending with the current minute. */
  throughput(productId: string): Throughput {
    const now = Math.floor(this.#clock.now() / MINUTE);
    const first = now - this.#window + 1;
    const claims = new Array<number>(this.#window).fill(0);
    const ships = new Array<number>(this.#window).fill(0);
    for (const m of this.#feeds.get(productId)?.minutes ?? []) {
      const i = m.minute - first;
      if (i < 0 || i >= this.#window) continue;
      claims[i] = m.claims;
      ships[i] = m.ships;
    }
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    return {
      windowMinutes: this.#window,
      since: new Date(first * MINUTE).toISOString(),
      claims,
      ships,
      totalClaims: sum(claims),
      totalShips: sum(ships),
    };
  }

  /** The `feedSeq` of the latest event recorded (0 before the first). */
  get lastFeedSeq(): number {
    return this.#feedSeq;
  }

  /** Calls `listener` with every event recorded from now on. Returns the undo. */
  onEvent(listener: (event: ActivityEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops listening to the coordinator; what was recorded stays readable. */
  close(): void {
    this.#unsubscribe();
    this.#listeners.clear();
  }
}
