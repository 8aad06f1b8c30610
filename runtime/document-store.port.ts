/**
 * The store port: a document store shaped like Cosmos DB. Every adapter (memory,
 * sqlite, cosmos) implements it and passes the one contract suite in `test/contract/`.
 *
 * Guarantees every adapter gives:
 * - `create` fails with `ALREADY_EXISTS` when the id is taken in that partition;
 * - `replace` writes only when the stored `_etag` equals the given etag, else
 *   `PRECONDITION_FAILED`; `NOT_FOUND` when there is nothing to replace; every
 *   successful write returns a fresh `_etag`;
 * - documents returned are copies: mutating one never changes the store;
 * - named queries use indexes: their cost does not grow with the number of documents
 *   that do not match (claim selection and due lookup in particular);
 * - failures are `FleetError`s with the codes of `errors.ts`, mapped in one place.
 *
 * Times in documents and queries are ISO-8601 UTC strings with milliseconds, which
 * order correctly as strings.
 */
import type {
  ArtifactDoc,
  DepsMode,
  EventDoc,
  FactoryDoc,
  JobDoc,
  LeaseDoc,
  Page,
  ProfileDoc,
  RunDoc,
  Stage,
} from './types.js';

/** A document as stored, with its entity tag. */
export type Stored<T> = T & { readonly _etag: string };

/** Container names, partition keys and what each holds: the single registration table. */
export const CONTAINERS = {
  jobs: { name: 'fleet_jobs', partitionKey: 'productId' },
  runs: { name: 'fleet_runs', partitionKey: 'jobId' },
  leases: { name: 'fleet_leases', partitionKey: 'jobId' },
  factories: { name: 'fleet_factories', partitionKey: 'productId' },
  profiles: { name: 'fleet_profiles', partitionKey: 'productId' },
  events: { name: 'fleet_events', partitionKey: 'jobId' },
  artifacts: { name: 'fleet_artifacts', partitionKey: 'jobId' },
} as const;

export type ContainerKey = keyof typeof CONTAINERS;

/** Basic document operations, identical in every container. */
export interface Container<T extends { id: string }> {
  /** Creates `doc`; `ALREADY_EXISTS` if its id is taken in its partition. */
  create(doc: T): Promise<Stored<T>>;
  /** The document, or null. */
  read(partitionKey: string, id: string): Promise<Stored<T> | null>;
  /** Replaces `doc` if the stored etag is `etag`; `PRECONDITION_FAILED` otherwise, `NOT_FOUND` if absent. */
  replace(doc: T, etag: string): Promise<Stored<T>>;
  /** Deletes (if `etag` is given, only when it matches); `NOT_FOUND` if absent. */
  delete(partitionKey: string, id: string, etag?: string): Promise<void>;
}

/** Paging for list queries. `cursor` is opaque and adapter-specific. */
export interface PageRequest {
  limit: number;
  cursor?: string | null;
}

/**
 * What dependency checks need of a job, answered from index columns (never by reading
 * or parsing the job document, which may hold a 1 MiB body).
 */
export interface JobLink {
  readonly productId: string;
  readonly id: string;
  readonly stage: Stage;
  /** Submission sequence (claim and list order). */
  readonly seq: number;
  /** Distinct dependency ids. */
  readonly deps: readonly string[];
  readonly depsMode: DepsMode;
}

export interface ClaimQuery {
  productId: string;
  /** The factory's capabilities: a job qualifies when its capabilities are a subset. */
  capabilities: readonly string[];
  /** Jobs whose `notBefore` is later than this are skipped. */
  now: string;
  /** At most this many candidates, best first. */
  limit: number;
}

/** What a job list returns of each job: the whole document, or a summary. */
export type JobListView = 'full' | 'summary';

/**
 * The members a summary leaves out: the job's body (up to 1 MB) and manifest, which
 * make a full page of 500 jobs hundreds of megabytes.
 */
export const JOB_SUMMARY_OMITS = ['bodyMd', 'manifestSnapshot'] as const;

/** A job without its body and manifest (`view: 'summary'`). */
export type JobSummary = Omit<JobDoc, (typeof JOB_SUMMARY_OMITS)[number]>;

/** The document type a list of view `V` returns. */
export type JobOfView<V extends JobListView> = V extends 'summary' ? JobSummary : JobDoc;

/** A page of a product's jobs (`JobsContainer.list`). */
export interface JobListQuery<V extends JobListView = JobListView> extends PageRequest {
  productId: string;
  /** Only jobs in this stage. */
  stage?: Stage;
  /**
   * `summary`: each job without {@link JOB_SUMMARY_OMITS}, which the store does not even
   * read or parse. @defaultValue 'full'
   */
  view?: V;
  /**
   * Byte budget of the page: it ends early, after the last job whose stored JSON (as
   * this view returns it, UTF-8) keeps the page's total within `maxBytes`; `nextCursor`
   * then continues after that job. A page always holds at least one job, so a job
   * larger than the budget comes alone on its page. @defaultValue no budget
   */
  maxBytes?: number;
}

export interface JobsContainer extends Container<JobDoc> {
  /**
   * Queued jobs of a product that the factory may take, best first: priority rank,
   * then submission `seq`, then id. An index seek per distinct capability set, never
   * a scan of the queue.
   */
  claimCandidates(q: ClaimQuery): Promise<Stored<JobDoc>[]>;
  /**
   * Jobs of a product, newest first (by `seq`), optionally of one stage, whole or as
   * summaries, within an optional byte budget ({@link JobListQuery}). Cursors of both
   * views are interchangeable.
   */
  list<V extends JobListView = 'full'>(q: JobListQuery<V>): Promise<Page<Stored<JobOfView<V>>>>;
  /**
   * Links of the blocked jobs of every product, oldest first (the sweep's repair pass),
   * from an index of blocked jobs only.
   */
  listBlocked(q: PageRequest): Promise<Page<JobLink>>;
  /** Links of the jobs of the product whose `deps` include `jobId`, in submission order. */
  dependents(productId: string, jobId: string): Promise<JobLink[]>;
  /**
   * The stored job's etag, or null when there is none: answered without reading or
   * parsing the document (an index read, or memory). Optional: a store that has it
   * lets the runtime keep the jobs it wrote parsed and trust them while their etag
   * holds (a hot-job cache); without it every write reads the job first.
   */
  etag?(productId: string, id: string): Promise<string | null>;
  /** Links of the product's jobs among `ids` (a missing id is left out), in no set order. */
  links(productId: string, ids: readonly string[]): Promise<JobLink[]>;
  /**
   * The product's jobs the factory holds a lease on (active stages), at most `limit`,
   * oldest submission first (`seq`, then id): who keeps a seat when two processes
   * granted the last one at once.
   */
  heldBy(
    productId: string,
    factoryId: string,
    limit: number,
  ): Promise<Array<{ id: string; seq: number }>>;
  /**
   * Jobs of any product with `dueAt <= now`, in (dueAt, id) order, starting after
   * `after` when given (so a sweep can page past jobs it chose to leave alone).
   */
  due(q: {
    now: string;
    limit: number;
    after?: { dueAt: string; id: string };
  }): Promise<Stored<JobDoc>[]>;
  /** Jobs of any product whose outbox is not empty. */
  withOutbox(q: { limit: number }): Promise<Stored<JobDoc>[]>;
  /** How many jobs of the product the factory holds a lease on (active stages). */
  countHeld(productId: string, factoryId: string): Promise<number>;
  /**
   * How many jobs each product has in each stage, across every product, in
   * (productId, stage) order (string order). Only pairs with at least one job appear.
   * Answered from an index (metrics gauges), never by reading the job documents.
   */
  countByStage(): Promise<Array<{ productId: string; stage: Stage; count: number }>>;

  // --- Retention (issue 14) -------------------------------------------------------
  /**
   * Jobs of every product in a terminal stage (`shipped`, `dead_letter`) whose
   * `updatedAt` (for a terminal job: when it got there) is before `before`, in
   * (finishedAt, id, productId) order, starting after `after` when given, at most
   * `limit`. From an index of terminal jobs only, never a scan of the others; answered
   * from index columns, never by reading the documents.
   */
  finishedBefore(q: {
    before: string;
    limit: number;
    after?: FinishedJobKey;
  }): Promise<FinishedJob[]>;
}

/** Where a listing of {@link JobsContainer.finishedBefore} stands: the last job seen. */
export interface FinishedJobKey {
  readonly finishedAt: string;
  readonly id: string;
  readonly productId: string;
}

/** A terminal job as {@link JobsContainer.finishedBefore} lists it. */
export interface FinishedJob extends FinishedJobKey {
  readonly stage: Stage;
}

/** What {@link DocumentStore.purgeJob} deleted besides the job: documents per container. */
export interface PurgedDocuments {
  runs: number;
  leases: number;
  events: number;
  artifacts: number;
}

export interface EventsContainer extends Container<EventDoc> {
  /**
   * Creates the event unless one with its id exists (then a no-op): idempotent append.
   * True when this call stored it, false when it was there already (so a process that
   * carries out another's outbox does not report the event a second time).
   */
  append(doc: EventDoc): Promise<boolean>;
  /** The job's events with `seq > afterSeq`, in `seq` order. */
  list(jobId: string, q: { afterSeq?: number; limit: number }): Promise<EventDoc[]>;
}

export interface RunsContainer extends Container<RunDoc> {
  /** The job's runs in attempt order. */
  list(jobId: string, q: PageRequest): Promise<Page<Stored<RunDoc>>>;
}

export interface ArtifactsContainer extends Container<ArtifactDoc> {
  /** The job's artifact pointers in creation order. */
  list(jobId: string, q: PageRequest): Promise<Page<Stored<ArtifactDoc>>>;
}

export interface FactoriesContainer extends Container<FactoryDoc> {
  /** The product's factories by id. */
  list(productId: string, q: PageRequest): Promise<Page<Stored<FactoryDoc>>>;

  // -- Stale factories across products ------------------------------------------------
  /**
   * The factories of every product whose `lastHeartbeatAt` is before `cutoff` (ISO-8601
   * UTC with milliseconds, as the clock writes it; compared as text), oldest beat first,
   * then by product and id; paged. From an index (SQLite, memory) or one cross-partition
   * query per page (Cosmos DB); never a read of every factory. A factory that beats
   * between two pages may be missed by the walk (it is not stale then).
   */
  heartbeatBefore(cutoff: string, q: PageRequest): Promise<Page<Stored<FactoryDoc>>>;
}

export interface ProfilesContainer extends Container<ProfileDoc> {
  list(productId: string, q: PageRequest): Promise<Page<Stored<ProfileDoc>>>;
}

export type LeasesContainer = Container<LeaseDoc>;

/**
 * A job write and the documents derived from it, applied together or not at all
 * ({@link DocumentStore.commit}).
 */
export interface JobCommit {
  /** The job as it must be stored. */
  job: JobDoc;
  /** The stored job's etag this write replaces (`PRECONDITION_FAILED` if it moved), or null to create it (`ALREADY_EXISTS` if taken). */
  etag: string | null;
  /** Events to append; their ids must be new. */
  events: readonly EventDoc[];
  /** Runs to write, each replacing any stored version (this write is the job's newest). */
  runs: readonly RunDoc[];
  /** The lease mirror to write (replacing any stored version), or null. */
  lease: LeaseDoc | null;
  /** Artifact pointers to write, each replacing any stored version. */
  artifacts: readonly ArtifactDoc[];
}

/** The port the runtime depends on. */
export interface DocumentStore {
  readonly kind: string;
  readonly jobs: JobsContainer;
  readonly runs: RunsContainer;
  readonly leases: LeasesContainer;
  readonly factories: FactoriesContainer;
  readonly profiles: ProfilesContainer;
  readonly events: EventsContainer;
  readonly artifacts: ArtifactsContainer;
  /**
   * A position in the store's commit sequence, taken before a unit of work writes
   * anything: `sync(mark)` later covers every write made since. Stores that commit each
   * write before answering return 0.
   */
  mark(): number;
  /**
   * Resolves when every write this store has answered so far is durable. A write is
   * visible to later reads as soon as it returns, but may be committed together with
   * other writes (group commit): callers acknowledge a change to a client only after
   * `sync()`. Stores that commit each write before answering resolve at once. If the
   * group commit fails, `sync()` rejects for everyone whose writes were in it, and
   * those writes are gone. With `from` (a {@link mark}), it also rejects when any commit
   * since that mark failed, even one that ended before the call: a unit of work whose
   * writes spanned several commits (it yielded to the event loop between them) must not
   * acknowledge a change an earlier commit lost.
   */
  sync(from?: number): Promise<void>;
  /**
   * Writes a job and its derived documents in one atomic step (all or nothing, and in
   * the same durable commit), when the store can: then the runtime needs no outbox for
   * them and no second write of the job to clear it. Stores whose documents live in
   * separately committed partitions (Cosmos DB) leave it out, and the runtime uses the
   * outbox (DESIGN.md). Returns the stored job with its new etag.
   */
  commit?(c: JobCommit): Promise<Stored<JobDoc>>;
  /** Resolves when the store answers (readiness probe). */
  ping(): Promise<void>;
  /**
   * Optional (stores kept in a local file: SQLite): writes a consistent copy of the whole
   * store to the new file `file` while the store keeps serving, and resolves with its
   * size. The copy holds every write committed before the call, and is a state the
   * store was in (never half a commit). Refuses a `file` that exists (`ALREADY_EXISTS`);
   * leaves nothing at `file` when it fails or `signal` aborts. `onProgress` is called
   * after each step of the copy.
   */
  backup?(
    file: string,
    options?: {
      onProgress?: (progress: { totalPages: number; remainingPages: number }) => void;
      signal?: AbortSignal;
    },
  ): Promise<{ pages: number; bytes: number }>;
  /** Releases resources; the store is unusable afterwards. */
  close(): Promise<void>;

  // --- Bulk submission (issue 13, goal 4) ---------------------------------------------
  /**
   * Several {@link commit}s in one atomic step: every job write and derived document of
   * every commit, or none of them (the first failure, e.g. a taken id or a stale etag,
   * undoes the whole step), in the same durable commit. Optional, like `commit`: a store
   * without it gets one write per job and the outbox (bulk submission then compensates
   * a failed write by deleting the jobs it created). Returns the stored jobs in order.
   */
  commitMany?(commits: readonly JobCommit[]): Promise<Stored<JobDoc>[]>;
  // --- Retention (issue 14) -------------------------------------------------------
  /**
   * Deletes the job `id` of `productId` if its stored etag is `etag`, together with its
   * derived documents: its runs, lease, events and artifact pointers (every document
   * of the job's partition in those containers). Resolves with how many derived
   * documents went, or null when the job is not there (nothing else is touched then).
   * `PRECONDITION_FAILED` when the job changed since `etag`.
   *
   * SQLite and memory do it in one atomic step (all or nothing; with a stale etag
   * nothing is deleted). Cosmos DB cannot write across partitions at once: it deletes
   * the derived documents first, partition by partition, and the job last (under the
   * etag), so an interrupted purge leaves the job in place and a second call finishes
   * it (every step is idempotent). The caller checks that the job may go (a terminal
   * job past its retention, no dependents) at `etag`. Optional only so that a test's
   * wrapper of a store may leave it out: every adapter of this project has it, and
   * without it nothing is ever pruned (the admin route answers `NOT_IMPLEMENTED`).
   */
  purgeJob?(productId: string, id: string, etag: string): Promise<PurgedDocuments | null>;
}
