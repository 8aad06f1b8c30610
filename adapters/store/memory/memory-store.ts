/**
 * The in-memory document store: the `DocumentStore` port held in maps and ordered
 * indexes, for tests, the simulator and quick runs. It behaves like the durable stores
 * in everything the contract suite checks: etags, copies, error codes, query orders,
 * and it yields to the event loop on every call so callers interleave as they would
 * against a real database.
 *
 * Storage: each document is kept as its JSON text (with `_etag`), so a read is one
 * `JSON.parse` and can never share an object with the store or another caller, and a
 * document behaves as it would after a round trip through SQLite or Cosmos (`undefined`
 * members vanish). A job's body and manifest are kept as a second JSON text, so a
 * summary list (`view: 'summary'`) never parses them; a full read merges the two (the
 * two members then come last in the object). Beside the text each record keeps a few
 * primitive "facts" (stage, priority rank, seq, dueAt...) extracted at write time;
 * indexes are keyed by them, and the previous facts tell a replace or delete which
 * index entries to remove.
 *
 * Atomicity: JavaScript runs one synchronous section at a time, so each write checks
 * the etag and applies the new version (document and every index) in one section after
 * its yield; nothing can observe half a write.
 */
import type {
  ArtifactDoc,
  ArtifactsContainer,
  ClaimQuery,
  Container,
  DepsMode,
  DocumentStore,
  EventDoc,
  EventsContainer,
  FactoriesContainer,
  FactoryDoc,
  FinishedJob,
  FinishedJobKey,
  JobCommit,
  JobDoc,
  JobLink,
  JobListQuery,
  JobListView,
  JobOfView,
  JobsContainer,
  LeaseDoc,
  LeasesContainer,
  Page,
  PageRequest,
  Priority,
  ProfileDoc,
  ProfilesContainer,
  PurgedDocuments,
  RunDoc,
  RunsContainer,
  Stage,
  Stored,
} from '../../../runtime/index.js';
import {
  ACTIVE_STAGES,
  CONTAINERS,
  FleetError,
  PRIORITY_RANK,
  TERMINAL_STAGES,
} from '../../../runtime/index.js';
import { type CursorPart, cursorCodec as sharedCursorCodec } from '../shared/cursor.js';
import { RandomEtags } from '../shared/etag.js';
import { jobListOptions, jsonBytes, PageBudget } from '../shared/job-list.js';
import {
  FAULT_CODES,
  nullableString,
  requireLimit,
  requireNumber,
  requireString,
  StoreFault,
  stringArray,
} from '../shared/store-fault.js';
import { compareStrings, SortedIndex } from './sorted-index.js';

// ---------------------------------------------------------------------------
// Errors: every failure leaves through `mapError`.
// ---------------------------------------------------------------------------

/** The one place where the memory store's failures become `FleetError` codes. */
function mapError(e: unknown, op: string): FleetError {
  if (e instanceof FleetError) return e;
  if (e instanceof StoreFault) return new FleetError(FAULT_CODES[e.kind], `${op}: ${e.message}`);
  return new FleetError('INTERNAL', `${op}: unexpected failure in the memory store`, { cause: e });
}

// ---------------------------------------------------------------------------
// Small shared helpers
// ---------------------------------------------------------------------------

/** Random per write (see ../shared/etag.ts): an etag tells nothing of other writes. */
const etags = new RandomEtags('m');
const nextEtag = (): string => etags.next();

/** Lets other callers run: every store call yields once before it touches state. */
const yieldTurn = (): Promise<void> => Promise.resolve();

/** An unambiguous map key for a pair of strings. */
const pair = (a: string, b: string): string => `${a.length}:${a}|${b}`;

// ---------------------------------------------------------------------------
// Cursors: base64url of a JSON array [tag, ...key parts].
// ---------------------------------------------------------------------------

type Part = CursorPart;

/** Converts between an index key and the opaque cursor of a list. */
interface CursorCodec<K> {
  encode(key: K): string;
  decode(cursor: string): K;
}

function cursorCodec<K, const P extends readonly Part[]>(
  tag: string,
  parts: P,
  toParts: (key: K) => (string | number)[],
  fromParts: (parts: { [I in keyof P]: P[I] extends 'number' ? number : string }) => K,
): CursorCodec<K> {
  const codec = sharedCursorCodec(tag, parts);
  return {
    encode: (key) => codec.encode(toParts(key)),
    decode: (cursor) => fromParts(codec.decode(cursor) as Parameters<typeof fromParts>[0]),
  };
}

/**
 * One page of `index` after `q.cursor`, loading each key with `load`. With `fits`, the
 * page also ends before the first key it refuses (a byte budget).
 */
function pageOf<K, T>(
  index: SortedIndex<K> | undefined,
  q: PageRequest,
  codec: CursorCodec<K>,
  load: (key: K) => T,
  fits?: (key: K) => boolean,
): Page<T> {
  const limit = requireLimit(q.limit, 1);
  const after = q.cursor === undefined || q.cursor === null ? undefined : codec.decode(q.cursor);
  if (index === undefined) return { items: [], nextCursor: null };
  const keys: K[] = [];
  let more = false;
  for (const key of index.values(
    after === undefined ? undefined : { key: after, exclusive: true },
  )) {
    if (keys.length === limit || (fits !== undefined && !fits(key))) {
      more = true;
      break;
    }
    keys.push(key);
  }
  const last = keys[keys.length - 1];
  return {
    items: keys.map(load),
    nextCursor: more && last !== undefined ? codec.encode(last) : null,
  };
}

/** Per-partition ordered indexes that drop a partition's index when it empties. */
class PartitionOrder<K> {
  readonly #byPartition = new Map<string, SortedIndex<K>>();
  readonly #compare: (a: K, b: K) => number;
  constructor(compare: (a: K, b: K) => number) {
    this.#compare = compare;
  }
  get(pk: string): SortedIndex<K> | undefined {
    return this.#byPartition.get(pk);
  }
  update(pk: string, prev: K | undefined, next: K | undefined): void {
    // Keys here carry no payload: an equal key is the same entry.
    if (prev !== undefined && next !== undefined && this.#compare(prev, next) === 0) return;
    if (prev !== undefined) {
      const index = this.#byPartition.get(pk);
      if (index !== undefined) {
        index.delete(prev);
        if (index.size === 0) this.#byPartition.delete(pk);
      }
    }
    if (next !== undefined) {
      let index = this.#byPartition.get(pk);
      if (index === undefined) {
        index = new SortedIndex(this.#compare);
        this.#byPartition.set(pk, index);
      }
      index.insert(next);
    }
  }
  clear(): void {
    this.#byPartition.clear();
  }
}

// ---------------------------------------------------------------------------
// The generic table behind every container
// ---------------------------------------------------------------------------

/**
 * A stored document: its JSON text (with `_etag`) and the facts its indexes use. A
 * container that sets members apart (jobs: body and manifest) keeps them in `aside`,
 * so a summary is read without parsing them.
 */
interface Rec<F> {
  readonly json: string;
  /** JSON text of the members set apart ({@link TableSpec.apart}), if any. */
  readonly aside: string | undefined;
  readonly etag: string;
  readonly facts: F;
}

/** A write, prepared synchronously when the call is made (the caller's doc as it was then). */
interface Prepared<T, F> {
  readonly pk: string;
  readonly id: string;
  readonly rec: Rec<F>;
  /** The caller's copy of what was written. */
  readonly copy: Stored<T>;
}

/** What a container adds to the generic table. */
interface TableSpec<F> {
  /** Container name, for messages. */
  readonly name: string;
  /** Field holding the partition key. */
  readonly partitionKey: string;
  /**
   * Extracts (and checks) what the indexes need. Must return primitives or fresh
   * arrays: nothing that aliases the document handed back to the caller.
   */
  facts(doc: Record<string, unknown>, pk: string, id: string): F;
  /** Index maintenance: `prev` is removed, `next` added (either may be absent). */
  apply(pk: string, id: string, prev: F | undefined, next: F | undefined): void;
  /** Drops every index entry (on close). */
  clear(): void;
  /**
   * Splits a document into what a summary read returns and the members kept apart
   * (stored as separate JSON text, merged back by a full read). Absent: one text.
   */
  apart?(doc: Record<string, unknown>): [summary: object, apart: object];
}

/** The state shared by a store's containers. */
interface Engine {
  closed: boolean;
}

/**
 * One container's documents, partition by partition, and the generic operations on
 * them. All methods are synchronous: callers yield before calling them.
 */
class Table<T extends { id: string }, F> {
  readonly #parts = new Map<string, Map<string, Rec<F>>>();
  readonly #engine: Engine;
  readonly spec: TableSpec<F>;

  constructor(engine: Engine, spec: TableSpec<F>) {
    this.#engine = engine;
    this.spec = spec;
  }

  /** Serializes `doc` with a fresh etag (any `_etag` it carries is replaced). */
  prepare(doc: T): Prepared<T, F> {
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new StoreFault('invalid', 'a document must be an object');
    }
    const etag = nextEtag();
    // The JSON text is the store's copy; the caller gets a new top-level object with the
    // fresh etag (nested objects are its own), so no second parse on the write path.
    const copy = { ...doc, _etag: etag } as unknown as Stored<T> & Record<string, unknown>;
    let json: string;
    let aside: string | undefined;
    try {
      if (this.spec.apart === undefined) json = JSON.stringify(copy);
      else {
        const [summary, apart] = this.spec.apart(copy);
        json = JSON.stringify(summary);
        aside = JSON.stringify(apart);
      }
    } catch (e) {
      throw new StoreFault('invalid', `document is not JSON-serializable (${String(e)})`);
    }
    const pk = requireString(
      copy[this.spec.partitionKey],
      `${this.spec.name}.${this.spec.partitionKey}`,
    );
    const id = requireString(copy.id, `${this.spec.name}.id`);
    const facts = this.spec.facts(copy, pk, id);
    return { pk, id, rec: { json, aside, etag, facts }, copy };
  }

  assertOpen(): void {
    if (this.#engine.closed) throw new StoreFault('closed', 'the store is closed');
  }

  get(pk: string, id: string): Rec<F> | undefined {
    return this.#parts.get(pk)?.get(id);
  }

  /** The stored document, parsed afresh. */
  load(pk: string, id: string): Stored<T> {
    const rec = this.#indexed(pk, id);
    const doc = JSON.parse(rec.json) as Stored<T>;
    return rec.aside === undefined ? doc : Object.assign(doc, JSON.parse(rec.aside));
  }

  /** The stored document without the members set apart (never parsed). */
  loadSummary(pk: string, id: string): Record<string, unknown> {
    return JSON.parse(this.#indexed(pk, id).json) as Record<string, unknown>;
  }

  /** Bytes of the stored JSON text (UTF-8), with the members set apart or without. */
  bytes(pk: string, id: string, whole: boolean): number {
    const rec = this.#indexed(pk, id);
    return jsonBytes(rec.json) + (whole && rec.aside !== undefined ? jsonBytes(rec.aside) : 0);
  }

  #indexed(pk: string, id: string): Rec<F> {
    const rec = this.get(pk, id);
    if (rec === undefined) throw new Error(`index names ${pk}/${id}, which is not stored`);
    return rec;
  }

  create(w: Prepared<T, F>): void {
    let part = this.#parts.get(w.pk);
    if (part?.has(w.id)) {
      throw new StoreFault('exists', `${this.spec.name} ${w.pk}/${w.id} already exists`);
    }
    if (part === undefined) {
      part = new Map();
      this.#parts.set(w.pk, part);
    }
    part.set(w.id, w.rec);
    this.spec.apply(w.pk, w.id, undefined, w.rec.facts);
  }

  replace(w: Prepared<T, F>, etag: string | undefined): void {
    const prev = this.#existing(w.pk, w.id, etag);
    this.#parts.get(w.pk)!.set(w.id, w.rec);
    this.spec.apply(w.pk, w.id, prev.facts, w.rec.facts);
  }

  delete(pk: string, id: string, etag: string | undefined): void {
    const prev = this.#existing(pk, id, etag);
    const part = this.#parts.get(pk)!;
    part.delete(id);
    if (part.size === 0) this.#parts.delete(pk);
    this.spec.apply(pk, id, prev.facts, undefined);
  }

  clear(): void {
    this.#parts.clear();
    this.spec.clear();
  }

  #existing(pk: string, id: string, etag: string | undefined): Rec<F> {
    const rec = this.get(pk, id);
    if (rec === undefined)
      throw new StoreFault('missing', `${this.spec.name} ${pk}/${id} not found`);
    if (etag !== undefined && rec.etag !== etag) {
      throw new StoreFault('stale', `${this.spec.name} ${pk}/${id}: etag does not match`);
    }
    return rec;
  }

  // --- Retention (issue 14) -------------------------------------------------------

  /** Deletes every document of the partition `pk` (indexes follow); answers how many. */
  deletePartition(pk: string): number {
    const part = this.#parts.get(pk);
    if (part === undefined) return 0;
    this.#parts.delete(pk);
    for (const [id, rec] of part) this.spec.apply(pk, id, rec.facts, undefined);
    return part.size;
  }
}

/**
 * The four basic operations over a table. Each call prepares its input synchronously,
 * yields once, then checks and applies in one synchronous section.
 */
class MemoryContainer<T extends { id: string }, F> implements Container<T> {
  /** The container's table (the store's `commit` writes through it). */
  readonly table: Table<T, F>;

  constructor(table: Table<T, F>) {
    this.table = table;
  }

  async create(doc: T): Promise<Stored<T>> {
    try {
      const w = this.table.prepare(doc);
      await yieldTurn();
      this.table.assertOpen();
      this.table.create(w);
      return w.copy;
    } catch (e) {
      throw mapError(e, `${this.table.spec.name}.create`);
    }
  }

  async read(partitionKey: string, id: string): Promise<Stored<T> | null> {
    return this.query('read', () =>
      this.table.get(partitionKey, id) === undefined ? null : this.table.load(partitionKey, id),
    );
  }

  async replace(doc: T, etag: string): Promise<Stored<T>> {
    try {
      if (typeof etag !== 'string') throw new StoreFault('invalid', 'etag must be a string');
      const w = this.table.prepare(doc);
      await yieldTurn();
      this.table.assertOpen();
      this.table.replace(w, etag);
      return w.copy;
    } catch (e) {
      throw mapError(e, `${this.table.spec.name}.replace`);
    }
  }

  async delete(partitionKey: string, id: string, etag?: string): Promise<void> {
    return this.query('delete', () => this.table.delete(partitionKey, id, etag));
  }

  /** Drops every document and index entry (on close). */
  clearAll(): void {
    this.table.clear();
  }

  /** Runs `fn` after a yield, on an open store, with errors mapped. */
  protected async query<R>(op: string, fn: () => R): Promise<R> {
    try {
      await yieldTurn();
      this.table.assertOpen();
      return fn();
    } catch (e) {
      throw mapError(e, `${this.table.spec.name}.${op}`);
    }
  }
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

/** What the job indexes need from a job document. */
interface JobFacts {
  readonly productId: string;
  readonly id: string;
  readonly stage: string;
  readonly rank: number;
  readonly seq: number;
  /** The capability set, sorted and deduplicated, as JSON text. */
  readonly capsKey: string;
  readonly caps: readonly string[];
  readonly notBefore: string | null;
  readonly dueAt: string | null;
  /** Distinct dependency ids. */
  readonly deps: readonly string[];
  readonly depsMode: DepsMode;
  readonly holder: string | null;
  readonly hasOutbox: boolean;
  /** Retention (issue 14): `updatedAt` of a job in a terminal stage, else null. */
  readonly finishedAt: string | null;
}

/** A queued job in its capability bucket; `notBefore` rides along, outside the order. */
interface ClaimKey {
  readonly rank: number;
  readonly seq: number;
  readonly id: string;
  readonly notBefore: string | null;
}
const compareClaim = (a: ClaimKey, b: ClaimKey): number =>
  a.rank - b.rank || a.seq - b.seq || compareStrings(a.id, b.id);

interface DueKey {
  readonly dueAt: string;
  readonly id: string;
  readonly productId: string;
}
const compareDue = (a: DueKey, b: DueKey): number =>
  compareStrings(a.dueAt, b.dueAt) ||
  compareStrings(a.id, b.id) ||
  compareStrings(a.productId, b.productId);

/** Position in a product's list: newest (highest seq) first, then id. */
interface ListKey {
  readonly seq: number;
  readonly id: string;
}
const compareNewestFirst = (a: ListKey, b: ListKey): number =>
  b.seq - a.seq || compareStrings(a.id, b.id);
const listCursor = cursorCodec(
  'jobs.list',
  ['number', 'string'] as const,
  (k: ListKey) => [k.seq, k.id],
  ([seq, id]) => ({ seq, id }),
);

/** Position in a stage across products: oldest (lowest seq) first, then id, then product. */
interface StageKey {
  readonly seq: number;
  readonly id: string;
  readonly productId: string;
}
const compareOldestFirst = (a: StageKey, b: StageKey): number =>
  a.seq - b.seq || compareStrings(a.id, b.id) || compareStrings(a.productId, b.productId);
const stageCursor = cursorCodec(
  'jobs.listBlocked',
  ['number', 'string', 'string'] as const,
  (k: StageKey) => [k.seq, k.id, k.productId],
  ([seq, id, productId]) => ({ seq, id, productId }),
);

/** Retention (issue 14): a terminal job's place in the finished index. */
interface FinishedKey {
  readonly finishedAt: string;
  readonly id: string;
  readonly productId: string;
  readonly stage: string;
}
const compareFinished = (a: FinishedKey, b: FinishedKey): number =>
  compareStrings(a.finishedAt, b.finishedAt) ||
  compareStrings(a.id, b.id) ||
  compareStrings(a.productId, b.productId);
const finishedKey = (f: JobFacts, finishedAt: string): FinishedKey => ({
  finishedAt,
  id: f.id,
  productId: f.productId,
  stage: f.stage,
});

const ACTIVE = new Set<string>(ACTIVE_STAGES);
const TERMINAL = new Set<string>(TERMINAL_STAGES);
const isHeld = (f: JobFacts): f is JobFacts & { holder: string } =>
  f.holder !== null && ACTIVE.has(f.stage);

function jobFacts(doc: Record<string, unknown>, productId: string, id: string): JobFacts {
  const stage = requireString(doc.stage, 'job.stage');
  const priority = doc.priority;
  if (typeof priority !== 'string' || !Object.hasOwn(PRIORITY_RANK, priority)) {
    throw new StoreFault('invalid', `job.priority ${String(priority)} is unknown`);
  }
  const rank = PRIORITY_RANK[priority as Priority];
  const caps = [...new Set(stringArray(doc.capabilities, 'job.capabilities'))].sort(compareStrings);
  const outbox = doc.outbox;
  if (outbox !== undefined && !Array.isArray(outbox))
    throw new StoreFault('invalid', 'job.outbox must be an array');
  return {
    productId,
    id,
    stage,
    rank,
    seq: requireNumber(doc.seq, 'job.seq'),
    capsKey: JSON.stringify(caps),
    caps,
    notBefore: nullableString(doc.notBefore, 'job.notBefore'),
    dueAt: nullableString(doc.dueAt, 'job.dueAt'),
    deps: [...new Set(stringArray(doc.deps, 'job.deps'))],
    depsMode: doc.depsMode === 'soft' ? 'soft' : 'hard',
    holder: nullableString(doc.holderFactoryId, 'job.holderFactoryId'),
    hasOutbox: outbox !== undefined && outbox.length > 0,
    finishedAt: TERMINAL.has(stage) ? requireString(doc.updatedAt, 'job.updatedAt') : null,
  };
}

/** Queued jobs of one capability set, best first. */
interface Bucket {
  readonly caps: readonly string[];
  readonly order: SortedIndex<ClaimKey>;
}

/**
 * Every job index. Each is updated only when the facts it depends on changed, so a
 * write that moves a job between stages touches just the indexes of those stages.
 */
class JobIndexes implements TableSpec<JobFacts> {
  readonly name = 'jobs';
  readonly partitionKey = CONTAINERS.jobs.partitionKey;
  /** productId → capsKey → queued jobs with exactly those capabilities. */
  readonly queues = new Map<string, Map<string, Bucket>>();
  /** Jobs with a dueAt, earliest first, across products. */
  readonly due = new SortedIndex<DueKey>(compareDue);
  /** pair(productId, depId) → ids of jobs that depend on depId. */
  readonly dependents = new Map<string, Set<string>>();
  /** pair(productId, factoryId) → ids of jobs in an active stage held by it. */
  readonly held = new Map<string, Set<string>>();
  /** pair(productId, id) → jobs whose outbox is not empty, in the order they gained it. */
  readonly outbox = new Map<string, { productId: string; id: string }>();
  /** productId → jobs, newest first. */
  readonly byProduct = new PartitionOrder<ListKey>(compareNewestFirst);
  /** pair(productId, stage) → jobs, newest first. */
  readonly byProductStage = new PartitionOrder<ListKey>(compareNewestFirst);
  /** stage → jobs of every product, oldest first. */
  readonly byStage = new PartitionOrder<StageKey>(compareOldestFirst);
  /** productId → stage → number of the product's jobs in that stage (no zero entries). */
  readonly stageCounts = new Map<string, Map<string, number>>();
  /** Retention (issue 14): terminal jobs of every product, earliest finished first. */
  readonly finished = new SortedIndex<FinishedKey>(compareFinished);

  facts(doc: Record<string, unknown>, pk: string, id: string): JobFacts {
    return jobFacts(doc, pk, id);
  }

  /** Body and manifest (the port's `JOB_SUMMARY_OMITS`) are kept apart: summaries skip them. */
  apart(doc: Record<string, unknown>): [object, object] {
    const { bodyMd, manifestSnapshot, ...summary } = doc;
    return [summary, { bodyMd, manifestSnapshot }];
  }

  apply(pk: string, id: string, prev: JobFacts | undefined, next: JobFacts | undefined): void {
    this.#queue(pk, prev, next);
    this.#due(prev, next);
    this.#dependents(pk, id, prev, next);
    this.#held(pk, id, prev, next);
    this.#outbox(pk, id, prev, next);
    if (prev?.seq !== next?.seq) {
      this.byProduct.update(pk, prev && listKey(prev), next && listKey(next));
    }
    if (prev?.stage !== next?.stage) {
      if (prev) this.#count(pk, prev.stage, -1);
      if (next) this.#count(pk, next.stage, 1);
    }
    if (prev?.seq !== next?.seq || prev?.stage !== next?.stage) {
      if (prev) this.byProductStage.update(pair(pk, prev.stage), listKey(prev), undefined);
      if (next) this.byProductStage.update(pair(pk, next.stage), undefined, listKey(next));
      if (prev) this.byStage.update(prev.stage, stageKey(prev), undefined);
      if (next) this.byStage.update(next.stage, undefined, stageKey(next));
    }
    // Retention (issue 14).
    const wasFinished = prev?.finishedAt ?? null;
    const isFinished = next?.finishedAt ?? null;
    if (wasFinished !== isFinished || prev?.stage !== next?.stage) {
      if (prev && wasFinished !== null) this.finished.delete(finishedKey(prev, wasFinished));
      if (next && isFinished !== null) this.finished.insert(finishedKey(next, isFinished));
    }
  }

  clear(): void {
    this.queues.clear();
    this.due.clear();
    this.dependents.clear();
    this.held.clear();
    this.outbox.clear();
    this.byProduct.clear();
    this.byProductStage.clear();
    this.byStage.clear();
    this.stageCounts.clear();
    this.finished.clear();
  }

  #count(pk: string, stage: string, delta: 1 | -1): void {
    let stages = this.stageCounts.get(pk);
    if (stages === undefined) {
      stages = new Map();
      this.stageCounts.set(pk, stages);
    }
    const n = (stages.get(stage) ?? 0) + delta;
    if (n > 0) stages.set(stage, n);
    else {
      stages.delete(stage);
      if (stages.size === 0) this.stageCounts.delete(pk);
    }
  }

  #queue(pk: string, prev: JobFacts | undefined, next: JobFacts | undefined): void {
    const p = prev?.stage === 'queued' ? prev : undefined;
    const n = next?.stage === 'queued' ? next : undefined;
    if (
      p !== undefined &&
      n !== undefined &&
      p.capsKey === n.capsKey &&
      p.rank === n.rank &&
      p.seq === n.seq &&
      p.notBefore === n.notBefore
    ) {
      return;
    }
    if (p !== undefined) {
      const buckets = this.queues.get(pk);
      const bucket = buckets?.get(p.capsKey);
      if (buckets !== undefined && bucket !== undefined) {
        bucket.order.delete(claimKey(p));
        if (bucket.order.size === 0) {
          buckets.delete(p.capsKey);
          if (buckets.size === 0) this.queues.delete(pk);
        }
      }
    }
    if (n !== undefined) {
      let buckets = this.queues.get(pk);
      if (buckets === undefined) {
        buckets = new Map();
        this.queues.set(pk, buckets);
      }
      let bucket = buckets.get(n.capsKey);
      if (bucket === undefined) {
        bucket = { caps: n.caps, order: new SortedIndex(compareClaim) };
        buckets.set(n.capsKey, bucket);
      }
      bucket.order.insert(claimKey(n));
    }
  }

  #due(prev: JobFacts | undefined, next: JobFacts | undefined): void {
    const before = prev?.dueAt ?? null;
    const after = next?.dueAt ?? null;
    if (before === after) return;
    if (prev !== undefined && before !== null) {
      this.due.delete({ dueAt: before, id: prev.id, productId: prev.productId });
    }
    if (next !== undefined && after !== null) {
      this.due.insert({ dueAt: after, id: next.id, productId: next.productId });
    }
  }

  #dependents(
    pk: string,
    id: string,
    prev: JobFacts | undefined,
    next: JobFacts | undefined,
  ): void {
    const before = prev?.deps ?? [];
    const after = next?.deps ?? [];
    if (before.length === after.length && before.every((d, i) => d === after[i])) return;
    const keep = new Set(after);
    for (const dep of before) {
      if (keep.has(dep)) continue;
      const key = pair(pk, dep);
      const set = this.dependents.get(key);
      set?.delete(id);
      if (set?.size === 0) this.dependents.delete(key);
    }
    for (const dep of after) {
      const key = pair(pk, dep);
      let set = this.dependents.get(key);
      if (set === undefined) {
        set = new Set();
        this.dependents.set(key, set);
      }
      set.add(id);
    }
  }

  #held(pk: string, id: string, prev: JobFacts | undefined, next: JobFacts | undefined): void {
    const before = prev !== undefined && isHeld(prev) ? prev.holder : null;
    const after = next !== undefined && isHeld(next) ? next.holder : null;
    if (before === after) return;
    if (before !== null) {
      const key = pair(pk, before);
      const set = this.held.get(key);
      set?.delete(id);
      if (set?.size === 0) this.held.delete(key);
    }
    if (after !== null) {
      const key = pair(pk, after);
      let set = this.held.get(key);
      if (set === undefined) {
        set = new Set();
        this.held.set(key, set);
      }
      set.add(id);
    }
  }

  #outbox(pk: string, id: string, prev: JobFacts | undefined, next: JobFacts | undefined): void {
    const before = prev?.hasOutbox === true;
    const after = next?.hasOutbox === true;
    if (before === after) return;
    if (after) this.outbox.set(pair(pk, id), { productId: pk, id });
    else this.outbox.delete(pair(pk, id));
  }
}

const linkOf = (f: JobFacts): JobLink => ({
  productId: f.productId,
  id: f.id,
  stage: f.stage as Stage,
  seq: f.seq,
  deps: f.deps,
  depsMode: f.depsMode,
});

const claimKey = (f: JobFacts): ClaimKey => ({
  rank: f.rank,
  seq: f.seq,
  id: f.id,
  notBefore: f.notBefore,
});
const listKey = (f: JobFacts): ListKey => ({ seq: f.seq, id: f.id });
const stageKey = (f: JobFacts): StageKey => ({ seq: f.seq, id: f.id, productId: f.productId });

/** A claim bucket being merged: its iterator and its current head. */
interface MergeHead {
  readonly it: Iterator<ClaimKey>;
  head: ClaimKey;
}

class MemoryJobs extends MemoryContainer<JobDoc, JobFacts> implements JobsContainer {
  readonly #ix: JobIndexes;

  constructor(engine: Engine) {
    const ix = new JobIndexes();
    super(new Table<JobDoc, JobFacts>(engine, ix));
    this.#ix = ix;
  }

  claimCandidates(q: ClaimQuery): Promise<Stored<JobDoc>[]> {
    return this.query('claimCandidates', () => {
      const limit = requireLimit(q.limit, 0);
      const now = requireString(q.now, 'now');
      const buckets = this.#ix.queues.get(q.productId);
      if (buckets === undefined || limit === 0) return [];
      const have = new Set(q.capabilities);
      // One seek per distinct capability set the factory satisfies; then a k-way merge
      // of their heads. k is the number of distinct sets (small), so a linear pick of
      // the best head beats a heap.
      const heads: MergeHead[] = [];
      for (const bucket of buckets.values()) {
        if (!bucket.caps.every((c) => have.has(c))) continue;
        const it = bucket.order.values();
        const first = it.next();
        if (first.done !== true) heads.push({ it, head: first.value });
      }
      const ids: string[] = [];
      while (ids.length < limit && heads.length > 0) {
        let best = 0;
        for (let i = 1; i < heads.length; i++) {
          if (compareClaim(heads[i]!.head, heads[best]!.head) < 0) best = i;
        }
        const h = heads[best]!;
        const key = h.head;
        const step = h.it.next();
        if (step.done === true) heads.splice(best, 1);
        else h.head = step.value;
        if (key.notBefore !== null && key.notBefore > now) continue;
        ids.push(key.id);
      }
      return ids.map((id) => this.table.load(q.productId, id));
    });
  }

  list<V extends JobListView = 'full'>(q: JobListQuery<V>): Promise<Page<Stored<JobOfView<V>>>> {
    return this.query('list', () => {
      const { view, maxBytes } = jobListOptions(q);
      const index =
        q.stage === undefined
          ? this.#ix.byProduct.get(q.productId)
          : this.#ix.byProductStage.get(pair(q.productId, q.stage));
      const whole = view === 'full';
      const budget = new PageBudget(maxBytes);
      return pageOf(
        index,
        q,
        listCursor,
        (k) =>
          (whole
            ? this.table.load(q.productId, k.id)
            : this.table.loadSummary(q.productId, k.id)) as Stored<JobOfView<V>>,
        budget.limited
          ? (k) => budget.admits(this.table.bytes(q.productId, k.id, whole))
          : undefined,
      );
    });
  }

  listBlocked(q: PageRequest): Promise<Page<JobLink>> {
    return this.query('listBlocked', () =>
      pageOf(this.#ix.byStage.get('blocked'), q, stageCursor, (k) => this.#link(k.productId, k.id)),
    );
  }

  dependents(productId: string, jobId: string): Promise<JobLink[]> {
    return this.query('dependents', () => {
      const ids = this.#ix.dependents.get(pair(productId, jobId));
      if (ids === undefined) return [];
      // Deterministic order (submission order), whatever order the index was built in.
      return [...ids]
        .map((id) => this.table.get(productId, id)!.facts)
        .sort((a, b) => a.seq - b.seq || compareStrings(a.id, b.id))
        .map(linkOf);
    });
  }

  /** The stored job's etag, from memory (see the port). */
  etag(productId: string, id: string): Promise<string | null> {
    return this.query('etag', () => this.table.get(productId, id)?.etag ?? null);
  }

  links(productId: string, ids: readonly string[]): Promise<JobLink[]> {
    return this.query('links', () => {
      if (!Array.isArray(ids)) throw new StoreFault('invalid', 'ids must be an array');
      const out: JobLink[] = [];
      for (const id of new Set(ids)) {
        const rec = typeof id === 'string' ? this.table.get(productId, id) : undefined;
        if (rec !== undefined) out.push(linkOf(rec.facts));
      }
      return out;
    });
  }

  heldBy(
    productId: string,
    factoryId: string,
    limit: number,
  ): Promise<Array<{ id: string; seq: number }>> {
    return this.query('heldBy', () => {
      const n = requireLimit(limit, 0);
      const ids = this.#ix.held.get(pair(productId, factoryId)) ?? new Set<string>();
      return [...ids]
        .map((id) => ({ id, seq: this.table.get(productId, id)!.facts.seq }))
        .sort((a, b) => a.seq - b.seq || compareStrings(a.id, b.id))
        .slice(0, n);
    });
  }

  #link(productId: string, id: string): JobLink {
    const rec = this.table.get(productId, id);
    if (rec === undefined) throw new Error(`index names ${productId}/${id}, which is not stored`);
    return linkOf(rec.facts);
  }

  due(q: {
    now: string;
    limit: number;
    after?: { dueAt: string; productId: string; id: string };
  }): Promise<Stored<JobDoc>[]> {
    return this.query('due', () => {
      const limit = requireLimit(q.limit, 0);
      const now = requireString(q.now, 'now');
      const out: Stored<JobDoc>[] = [];
      if (limit === 0) return out;
      const from = q.after ? { key: { ...q.after }, exclusive: true } : undefined;
      for (const key of this.#ix.due.values(from)) {
        if (key.dueAt > now) break;
        out.push(this.table.load(key.productId, key.id));
        if (out.length === limit) break;
      }
      return out;
    });
  }

  withOutbox(q: { limit: number }): Promise<Stored<JobDoc>[]> {
    return this.query('withOutbox', () => {
      const limit = requireLimit(q.limit, 0);
      const out: Stored<JobDoc>[] = [];
      if (limit === 0) return out;
      for (const { productId, id } of this.#ix.outbox.values()) {
        out.push(this.table.load(productId, id));
        if (out.length === limit) break;
      }
      return out;
    });
  }

  countHeld(productId: string, factoryId: string): Promise<number> {
    return this.query('countHeld', () => this.#ix.held.get(pair(productId, factoryId))?.size ?? 0);
  }

  countByStage(): Promise<Array<{ productId: string; stage: Stage; count: number }>> {
    return this.query('countByStage', () => {
      const out: { productId: string; stage: Stage; count: number }[] = [];
      for (const [productId, stages] of this.#ix.stageCounts) {
        for (const [stage, count] of stages) out.push({ productId, stage: stage as Stage, count });
      }
      return out.sort(
        (a, b) => compareStrings(a.productId, b.productId) || compareStrings(a.stage, b.stage),
      );
    });
  }

  // --- Retention (issue 14) -------------------------------------------------------

  finishedBefore(q: {
    before: string;
    limit: number;
    after?: FinishedJobKey;
  }): Promise<FinishedJob[]> {
    return this.query('finishedBefore', () => {
      const limit = requireLimit(q.limit, 0);
      const before = requireString(q.before, 'before');
      const out: FinishedJob[] = [];
      if (limit === 0) return out;
      const a = q.after;
      const from =
        a === undefined
          ? undefined
          : {
              key: {
                finishedAt: requireString(a.finishedAt, 'after.finishedAt'),
                id: requireString(a.id, 'after.id'),
                productId: requireString(a.productId, 'after.productId'),
                stage: '',
              },
              exclusive: true,
            };
      for (const k of this.#ix.finished.values(from)) {
        if (k.finishedAt >= before) break;
        out.push({ ...k, stage: k.stage as Stage });
        if (out.length === limit) break;
      }
      return out;
    });
  }
}

// ---------------------------------------------------------------------------
// Containers listed per partition in one order
// ---------------------------------------------------------------------------

/** A table spec whose facts are just the key of a per-partition order. */
class OrderedSpec<K> implements TableSpec<K> {
  readonly name: string;
  readonly partitionKey: string;
  readonly order: PartitionOrder<K>;
  readonly #key: (doc: Record<string, unknown>, id: string) => K;

  constructor(
    name: string,
    partitionKey: string,
    compare: (a: K, b: K) => number,
    key: (doc: Record<string, unknown>, id: string) => K,
  ) {
    this.name = name;
    this.partitionKey = partitionKey;
    this.order = new PartitionOrder(compare);
    this.#key = key;
  }

  facts(doc: Record<string, unknown>, _pk: string, id: string): K {
    return this.#key(doc, id);
  }

  apply(pk: string, _id: string, prev: K | undefined, next: K | undefined): void {
    this.order.update(pk, prev, next);
  }

  clear(): void {
    this.order.clear();
  }
}

interface IdKey {
  readonly id: string;
}
const compareIds = (a: IdKey, b: IdKey): number => compareStrings(a.id, b.id);

/** A container whose `list(partition, page)` follows one per-partition order. */
class ListedContainer<T extends { id: string }, K extends IdKey> extends MemoryContainer<T, K> {
  readonly #spec: OrderedSpec<K>;
  readonly #cursor: CursorCodec<K>;

  constructor(engine: Engine, spec: OrderedSpec<K>, cursor: CursorCodec<K>) {
    super(new Table<T, K>(engine, spec));
    this.#spec = spec;
    this.#cursor = cursor;
  }

  list(partitionKey: string, q: PageRequest): Promise<Page<Stored<T>>> {
    return this.query('list', () =>
      pageOf(this.#spec.order.get(partitionKey), q, this.#cursor, (k) =>
        this.table.load(partitionKey, k.id),
      ),
    );
  }
}

interface RunKey {
  readonly attempt: number;
  readonly id: string;
}
const runsSpec = (): OrderedSpec<RunKey> =>
  new OrderedSpec(
    'runs',
    CONTAINERS.runs.partitionKey,
    (a, b) => a.attempt - b.attempt || compareStrings(a.id, b.id),
    (doc, id) => ({ attempt: requireNumber(doc.attempt, 'run.attempt'), id }),
  );
const runsCursor = cursorCodec(
  'runs.list',
  ['number', 'string'] as const,
  (k: RunKey) => [k.attempt, k.id],
  ([attempt, id]) => ({ attempt, id }),
);

interface ArtifactKey {
  readonly createdAt: string;
  readonly id: string;
}
const artifactsSpec = (): OrderedSpec<ArtifactKey> =>
  new OrderedSpec(
    'artifacts',
    CONTAINERS.artifacts.partitionKey,
    (a, b) => compareStrings(a.createdAt, b.createdAt) || compareStrings(a.id, b.id),
    (doc, id) => ({ createdAt: requireString(doc.createdAt, 'artifact.createdAt'), id }),
  );
const artifactsCursor = cursorCodec(
  'artifacts.list',
  ['string', 'string'] as const,
  (k: ArtifactKey) => [k.createdAt, k.id],
  ([createdAt, id]) => ({ createdAt, id }),
);

const byIdSpec = (name: string, partitionKey: string): OrderedSpec<IdKey> =>
  new OrderedSpec(name, partitionKey, compareIds, (_doc, id) => ({ id }));
const idCursor = (tag: string): CursorCodec<IdKey> =>
  cursorCodec(
    tag,
    ['string'] as const,
    (k: IdKey) => [k.id],
    ([id]) => ({ id }),
  );

// -- Stale factories across products -------------------------------------------------

/** A factory's key: its id (the per-product order) and its last beat (the cross-product one). */
interface FactoryKey extends IdKey {
  readonly pk: string;
  /** `lastHeartbeatAt`, or null when the document has none (then it is not in the beat order). */
  readonly heartbeatAt: string | null;
}

type BeatKey = FactoryKey & { readonly heartbeatAt: string };

const compareBeats = (a: BeatKey, b: BeatKey): number =>
  compareStrings(a.heartbeatAt, b.heartbeatAt) ||
  compareStrings(a.pk, b.pk) ||
  compareStrings(a.id, b.id);

/** Factories by id per product, plus every product's factories by last heartbeat. */
class FactoriesSpec extends OrderedSpec<FactoryKey> {
  readonly byBeat = new SortedIndex<BeatKey>(compareBeats);

  constructor() {
    super('factories', CONTAINERS.factories.partitionKey, compareIds, (_doc, id) => ({
      id,
      pk: '',
      heartbeatAt: null,
    }));
  }

  override facts(doc: Record<string, unknown>, pk: string, id: string): FactoryKey {
    const beat = doc.lastHeartbeatAt;
    return { id, pk, heartbeatAt: typeof beat === 'string' ? beat : null };
  }

  override apply(pk: string, id: string, prev?: FactoryKey, next?: FactoryKey): void {
    super.apply(pk, id, prev, next);
    if (prev?.heartbeatAt != null) this.byBeat.delete(prev as BeatKey);
    if (next?.heartbeatAt != null) this.byBeat.insert(next as BeatKey);
  }

  override clear(): void {
    super.clear();
    this.byBeat.clear();
  }
}

const beatCursor = cursorCodec(
  'factories.heartbeatBefore',
  ['string', 'string', 'string'] as const,
  (k: BeatKey) => [k.heartbeatAt, k.pk, k.id],
  ([heartbeatAt, pk, id]) => ({ heartbeatAt, pk, id }),
);

const factoryIdCursor = cursorCodec(
  'factories.list',
  ['string'] as const,
  (k: FactoryKey) => [k.id],
  ([id]) => ({ id, pk: '', heartbeatAt: null }),
);

class MemoryFactories
  extends ListedContainer<FactoryDoc, FactoryKey>
  implements FactoriesContainer
{
  readonly #beats: SortedIndex<BeatKey>;

  constructor(engine: Engine) {
    const spec = new FactoriesSpec();
    super(engine, spec, factoryIdCursor);
    this.#beats = spec.byBeat;
  }

  heartbeatBefore(cutoff: string, q: PageRequest): Promise<Page<Stored<FactoryDoc>>> {
    return this.query('heartbeatBefore', () => {
      requireString(cutoff, 'cutoff');
      const limit = requireLimit(q.limit, 1);
      const after =
        q.cursor === undefined || q.cursor === null ? undefined : beatCursor.decode(q.cursor);
      const keys: BeatKey[] = [];
      let more = false;
      for (const key of this.#beats.values(
        after === undefined ? undefined : { key: after, exclusive: true },
      )) {
        if (key.heartbeatAt >= cutoff) break;
        if (keys.length === limit) {
          more = true;
          break;
        }
        keys.push(key);
      }
      const last = keys[keys.length - 1];
      return {
        items: keys.map((k) => this.table.load(k.pk, k.id)),
        nextCursor: more && last !== undefined ? beatCursor.encode(last) : null,
      };
    });
  }
}

interface EventKey {
  readonly seq: number;
  readonly id: string;
}

class MemoryEvents extends MemoryContainer<EventDoc, EventKey> implements EventsContainer {
  readonly #spec: OrderedSpec<EventKey>;

  constructor(engine: Engine) {
    const spec = new OrderedSpec<EventKey>(
      'events',
      CONTAINERS.events.partitionKey,
      (a, b) => a.seq - b.seq || compareStrings(a.id, b.id),
      (doc, id) => ({ seq: requireNumber(doc.seq, 'event.seq'), id }),
    );
    super(new Table<EventDoc, EventKey>(engine, spec));
    this.#spec = spec;
  }

  async append(doc: EventDoc): Promise<boolean> {
    try {
      const w = this.table.prepare(doc);
      await yieldTurn();
      this.table.assertOpen();
      if (this.table.get(w.pk, w.id) !== undefined) return false;
      this.table.create(w);
      return true;
    } catch (e) {
      throw mapError(e, 'events.append');
    }
  }

  list(jobId: string, q: { afterSeq?: number; limit: number }): Promise<EventDoc[]> {
    return this.query('list', () => {
      const limit = requireLimit(q.limit, 0);
      const afterSeq = q.afterSeq === undefined ? 0 : requireNumber(q.afterSeq, 'afterSeq');
      const index = this.#spec.order.get(jobId);
      const out: EventDoc[] = [];
      if (index === undefined || limit === 0) return out;
      // seq is an integer and '' the least id: this bound is the first event with seq > afterSeq.
      for (const key of index.values({ key: { seq: Math.floor(afterSeq) + 1, id: '' } })) {
        // The port promises plain EventDocs here (strict schema), so drop the etag.
        const { _etag: _, ...event } = this.table.load(jobId, key.id);
        out.push(event);
        if (out.length === limit) break;
      }
      return out;
    });
  }
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

class MemoryStore implements DocumentStore {
  readonly kind = 'memory';
  readonly jobs: JobsContainer;
  readonly runs: RunsContainer;
  readonly leases: LeasesContainer;
  readonly factories: FactoriesContainer;
  readonly profiles: ProfilesContainer;
  readonly events: EventsContainer;
  readonly artifacts: ArtifactsContainer;
  readonly #engine: Engine = { closed: false };
  readonly #tables: {
    jobs: Table<JobDoc, JobFacts>;
    events: Table<EventDoc, EventKey>;
    runs: Table<RunDoc, RunKey>;
    leases: Table<LeaseDoc, null>;
    artifacts: Table<ArtifactDoc, ArtifactKey>;
  };
  readonly #clearAll: () => void;

  constructor() {
    const engine = this.#engine;
    const jobs = new MemoryJobs(engine);
    const runs = new ListedContainer<RunDoc, RunKey>(engine, runsSpec(), runsCursor);
    const leases = new MemoryContainer<LeaseDoc, null>(
      new Table<LeaseDoc, null>(engine, {
        name: 'leases',
        partitionKey: CONTAINERS.leases.partitionKey,
        facts: () => null,
        apply: () => {},
        clear: () => {},
      }),
    );
    const factories = new MemoryFactories(engine);
    const profiles = new ListedContainer<ProfileDoc, IdKey>(
      engine,
      byIdSpec('profiles', CONTAINERS.profiles.partitionKey),
      idCursor('profiles.list'),
    );
    const events = new MemoryEvents(engine);
    const artifacts = new ListedContainer<ArtifactDoc, ArtifactKey>(
      engine,
      artifactsSpec(),
      artifactsCursor,
    );
    this.jobs = jobs;
    this.runs = runs;
    this.leases = leases;
    this.factories = factories;
    this.profiles = profiles;
    this.events = events;
    this.artifacts = artifacts;
    const all = [jobs, runs, leases, factories, profiles, events, artifacts];
    this.#tables = {
      jobs: jobs.table,
      events: events.table,
      runs: runs.table,
      leases: leases.table,
      artifacts: artifacts.table,
    };
    this.#clearAll = () => {
      for (const c of all) c.clearAll();
    };
  }

  /**
   * A job and its derived documents in one synchronous step: everything is checked
   * first (the job's etag or absence, the events' ids), then everything applied, so a
   * commit is all or nothing.
   */
  async commit(c: JobCommit): Promise<Stored<JobDoc>> {
    const [job] = await this.#commitAll([c], 'commit');
    return job as Stored<JobDoc>;
  }

  /**
   * Several commits in one synchronous step: all of them checked first (each job's etag
   * or absence, every event id, no id twice), then all applied, so it is all or nothing.
   */
  commitMany(commits: readonly JobCommit[]): Promise<Stored<JobDoc>[]> {
    return this.#commitAll(commits, 'commitMany');
  }

  async #commitAll(commits: readonly JobCommit[], op: string): Promise<Stored<JobDoc>[]> {
    try {
      const k = this.#tables;
      const prepared = commits.map((c) => ({
        c,
        job: k.jobs.prepare(c.job),
        events: c.events.map((e) => k.events.prepare(e)),
        upserts: [
          ...c.runs.map((r) => upsert(k.runs, r)),
          ...(c.lease === null ? [] : [upsert(k.leases, c.lease)]),
          ...c.artifacts.map((a) => upsert(k.artifacts, a)),
        ],
      }));
      await yieldTurn();
      k.jobs.assertOpen();
      const jobIds = new Set<string>();
      const eventIds = new Set<string>();
      for (const { c, job, events } of prepared) {
        const key = `${job.pk}\u0000${job.id}`;
        const stored = k.jobs.get(job.pk, job.id);
        if (jobIds.has(key)) {
          throw new StoreFault('exists', `jobs ${job.pk}/${job.id} is written twice`);
        }
        jobIds.add(key);
        if (c.etag === null) {
          if (stored !== undefined) {
            throw new StoreFault('exists', `jobs ${job.pk}/${job.id} already exists`);
          }
        } else if (stored === undefined) {
          throw new StoreFault('missing', `jobs ${job.pk}/${job.id} not found`);
        } else if (stored.etag !== c.etag) {
          throw new StoreFault('stale', `jobs ${job.pk}/${job.id}: etag does not match`);
        }
        for (const e of events) {
          const eventKey = `${e.pk}\u0000${e.id}`;
          if (k.events.get(e.pk, e.id) !== undefined || eventIds.has(eventKey)) {
            throw new StoreFault('exists', `events ${e.pk}/${e.id} already exists`);
          }
          eventIds.add(eventKey);
        }
      }
      const out: Stored<JobDoc>[] = [];
      for (const { c, job, events, upserts } of prepared) {
        if (c.etag === null) k.jobs.create(job);
        else k.jobs.replace(job, c.etag);
        for (const e of events) k.events.create(e);
        for (const apply of upserts) apply();
        out.push(job.copy);
      }
      return out;
    } catch (e) {
      throw mapError(e, op);
    }
  }

  /** Nothing here is batched: every write applies when it returns. */
  mark(): number {
    return 0;
  }

  /** Writes apply when they return and nothing here is durable: resolves at once. */
  async sync(_from?: number): Promise<void> {
    if (this.#engine.closed)
      throw mapError(new StoreFault('closed', 'the store is closed'), 'sync');
  }

  async ping(): Promise<void> {
    await yieldTurn();
    if (this.#engine.closed)
      throw mapError(new StoreFault('closed', 'the store is closed'), 'ping');
  }

  async close(): Promise<void> {
    if (this.#engine.closed) return;
    this.#engine.closed = true;
    this.#clearAll();
  }

  // --- Retention (issue 14) -------------------------------------------------------

  /** The job and its partitions in runs, leases, events and artifacts, in one synchronous step. */
  async purgeJob(productId: string, id: string, etag: string): Promise<PurgedDocuments | null> {
    try {
      const pk = requireString(productId, 'productId');
      const jobId = requireString(id, 'id');
      if (typeof etag !== 'string') throw new StoreFault('invalid', 'etag must be a string');
      await yieldTurn();
      const k = this.#tables;
      k.jobs.assertOpen();
      const stored = k.jobs.get(pk, jobId);
      if (stored === undefined) return null;
      if (stored.etag !== etag) {
        throw new StoreFault('stale', `jobs ${pk}/${jobId}: etag does not match`);
      }
      k.jobs.delete(pk, jobId, etag);
      return {
        runs: k.runs.deletePartition(jobId),
        leases: k.leases.deletePartition(jobId),
        events: k.events.deletePartition(jobId),
        artifacts: k.artifacts.deletePartition(jobId),
      };
    } catch (e) {
      throw mapError(e, `purgeJob ${String(productId)}/${String(id)}`);
    }
  }
}

/** An upsert prepared now and applied by the returned function. */
function upsert<T extends { id: string }, F>(table: Table<T, F>, doc: T): () => void {
  const w = table.prepare(doc);
  return () => {
    if (table.get(w.pk, w.id) === undefined) table.create(w);
    else table.replace(w, undefined);
  };
}

/**
 * A new, empty in-memory store (`kind: 'memory'`). It guarantees everything the port
 * promises, checked by the contract suite:
 * - each successful write returns a fresh, random `_etag` (96 bits); `replace` and
 *   `delete` with another etag fail with `PRECONDITION_FAILED`, a missing document with
 *   `NOT_FOUND`, a duplicate `create` with `ALREADY_EXISTS`; an `_etag` inside a given
 *   document is ignored;
 * - documents are stored and returned as copies (a JSON round trip);
 * - every call returns a promise and yields before touching state, so concurrent
 *   callers interleave between calls; each write is atomic;
 * - named queries read indexes maintained on every write (`claimCandidates` seeks one
 *   index per distinct capability set of the product's queue; `due` reads an index
 *   ordered by `dueAt`): their cost does not grow with non-matching documents;
 * - cursors are opaque; one this store did not issue fails with `VALIDATION`, as does a
 *   `limit` that is not a positive integer (0 is allowed for the non-paged queries);
 * - after `close()` every call fails with `STORE_UNAVAILABLE` (including calls already
 *   in flight); closing twice is harmless.
 * Data lives only as long as the store object.
 */
export function createMemoryStore(): DocumentStore {
  return new MemoryStore();
}
