/**
 * The Azure Cosmos DB document store: the `DocumentStore` port on `@azure/cosmos` 4, for
 * fleets of several Fleet processes sharing one database (DESIGN.md: the store for many
 * processes). Every process talks to Cosmos DB directly; nothing is cached between calls,
 * so any process sees every other process's writes on its next read.
 *
 * Writes. `create`, `replace` and `delete` are single-document requests, committed when
 * they answer (`sync()` resolves at once). `replace` and a `delete` with an etag carry
 * `accessCondition: IfMatch`, so a write based on a stale read fails with 412 and
 * nothing changes: that is the coordinator's only concurrency control, exactly as on
 * the other stores.
 *
 * Errors leave through one `mapError`: 404 `NOT_FOUND`, 409 `ALREADY_EXISTS`, 412
 * `PRECONDITION_FAILED`, 413 `PAYLOAD_TOO_LARGE`, 429 `RATE_LIMITED` (after the SDK's
 * own retries, which wait the `x-ms-retry-after-ms` the server asks for, up to
 * `throttle.maxRetries` times; the SDK stops retrying once its waits pass
 * `throttle.maxWaitMs`, rounded up to whole seconds), 400 `VALIDATION`,
 * refused keys, timeouts, lost connections and 5xx `STORE_UNAVAILABLE`.
 *
 * Unknown outcomes. A write that times out or loses its connection may or may not have
 * been applied. The SDK does not retry writes; this adapter re-reads the document and
 * decides: our content is there → the write succeeded (its etag is returned); the
 * document is as it was before (same etag, or still absent for a create) → the write was
 * not applied and is sent again (it is conditional, so it can never apply twice: a late
 * first attempt and the retry race on one etag); anything else → the definitive error
 * (`PRECONDITION_FAILED`, `ALREADY_EXISTS`, `NOT_FOUND`). A definitive error met on a
 * retry is checked the same way, since the earlier attempt may be what it collided
 * with. If the re-read itself fails, the call fails with `STORE_UNAVAILABLE` ("outcome
 * unknown"): the coordinator's outbox makes that safe (a job write carries its own
 * follow-up effects, which the next touch or the supervisor's sweep carries out).
 *
 * Queries always name the partition key in SQL as well as in the request options
 * (servers that ignore the option still return one partition). Lists page by key
 * (keyset), never by `OFFSET`: the cursor is the last item's sort key, and the next page
 * is `WHERE (sort key) > cursor ORDER BY sort key`, served from the composite indexes of
 * `registration.ts`. Claim selection is one partition-scoped query of the product's
 * queued jobs in (priority, seq, id) order, filtering capabilities with a subquery
 * (`NOT EXISTS(... NOT ARRAY_CONTAINS(@caps, x))`): it reads the queue from its head
 * and stops after `limit` matches, so its cost grows with the queued jobs ahead of them
 * that need a capability the factory lacks, not with the queue.
 *
 * Stored shape. Documents are stored as given plus two derived job fields
 * (`DERIVED_JOB_FIELDS`), which reads strip along with Cosmos DB's system properties
 * (`_rid`, `_self`, `_ts`, `_attachments`); `_etag` is the port's etag. Cosmos DB ids
 * may not contain `/ \ ? #`: such characters (and `%`) are stored percent-encoded and
 * decoded on read, so any id the port accepts round-trips (lists then order those ids
 * by their encoded form).
 */
import { Agent as HttpsAgent } from 'node:https';
import { isDeepStrictEqual } from 'node:util';
import {
  CosmosClient,
  type Database,
  type ItemDefinition,
  type Container as SdkContainer,
  type SqlParameter,
} from '@azure/cosmos';
import type {
  ArtifactDoc,
  ArtifactsContainer,
  ClaimQuery,
  Container,
  ContainerKey,
  DocumentStore,
  EventDoc,
  EventsContainer,
  FactoriesContainer,
  FactoryDoc,
  FinishedJob,
  FinishedJobKey,
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
  FleetError,
  JOB_SUMMARY_OMITS,
  PRIORITY_RANK,
  schemas,
  TERMINAL_STAGES,
} from '../../../runtime/index.js';
import {
  type CursorCodec,
  type CursorKey,
  type CursorPart,
  cursorCodec,
} from '../shared/cursor.js';
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
import {
  COSMOS_CONTAINERS,
  type CosmosContainerSpec,
  DERIVED_JOB_FIELDS,
  indexingPolicy,
  ORDERS,
  type OrderName,
  orderBy,
} from './registration.js';

export interface CosmosStoreOptions {
  /** The account endpoint, e.g. `https://myaccount.documents.azure.com:443/`. */
  endpoint: string;
  /** The account key (primary or secondary). */
  key: string;
  /** The database; created if missing. Default `fleet`. */
  database?: string;
  /**
   * Accept the server's self-signed TLS certificate. For a local emulator only; refused
   * for any endpoint that is not on the loopback interface.
   */
  allowSelfSignedCertificate?: boolean;
  /** A request that takes longer fails (a write's outcome is then resolved by a re-read). Default 10 s. */
  requestTimeoutMs?: number;
  /** Retries of throttled (429) requests, each after the wait the server asks for. */
  throttle?: { maxRetries?: number; maxWaitMs?: number };
  /** Times a write with an unknown outcome is re-read and, if not applied, sent again. Default 3. */
  unknownOutcomeRetries?: number;
}

/** Request counters (for benchmarks and diagnostics). */
export interface CosmosStoreStats {
  reads: number;
  queries: number;
  writes: number;
  /** Conditional writes refused with 412 (lost races). */
  preconditionFailed: number;
  /** Writes whose outcome was unknown and had to be resolved by a re-read. */
  unknownOutcomes: number;
}

export interface CosmosStore extends DocumentStore {
  readonly kind: 'cosmos';
  readonly endpoint: string;
  readonly database: string;
  stats(): CosmosStoreStats;
  /** Deletes the whole database (tests and benchmarks); the store is closed afterwards. */
  dropDatabase(): Promise<void>;
}

const DEFAULT_DATABASE = 'fleet';
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
const DEFAULT_UNKNOWN_RETRIES = 3;

// ---------------------------------------------------------------------------
// Errors: every failure leaves through `mapError`.
// ---------------------------------------------------------------------------

/** Failures of the transport (no answer from the server): the request's outcome is unknown. */
const TRANSPORT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'TimeoutError',
  'UND_ERR_SOCKET',
  // The HTTP client's code when the answer's body could not be read (the connection was
  // lost mid-answer): the server may well have applied the request.
  'PARSE_ERROR',
]);

/** Statuses after which a write may or may not have been applied. */
const UNKNOWN_STATUSES = new Set([408, 500, 502, 503, 504]);

interface SdkError {
  code?: number | string;
  name?: string;
  message?: string;
  retryAfterInMs?: number;
}

const sdkError = (e: unknown): SdkError =>
  typeof e === 'object' && e !== null ? (e as SdkError) : { message: String(e) };

/** The numeric status of a Cosmos error response, if it has one. */
function statusOf(e: unknown): number | undefined {
  const code = sdkError(e).code;
  return typeof code === 'number' ? code : undefined;
}

/** True when a write that failed this way may nevertheless have been applied. */
function isUnknownOutcome(e: unknown): boolean {
  if (e instanceof FleetError || e instanceof StoreFault) return false;
  const { code, name } = sdkError(e);
  if (typeof code === 'number') return UNKNOWN_STATUSES.has(code);
  if (typeof code === 'string') return TRANSPORT_CODES.has(code);
  return name === 'TimeoutError' || name === 'AbortError';
}

/**
 * The one place where Cosmos DB failures become `FleetError` codes (see the module
 * comment for the table).
 */
function mapError(e: unknown, op: string): FleetError {
  if (e instanceof FleetError) return e;
  if (e instanceof StoreFault) return new FleetError(FAULT_CODES[e.kind], `${op}: ${e.message}`);
  const err = sdkError(e);
  const status = statusOf(e);
  const message = (err.message ?? '').split('\n')[0]?.slice(0, 300) ?? '';
  switch (status) {
    case 404:
      return new FleetError('NOT_FOUND', `${op}: not found`, { cause: e });
    case 409:
      return new FleetError('ALREADY_EXISTS', `${op}: already exists`, { cause: e });
    case 412:
      return new FleetError('PRECONDITION_FAILED', `${op}: the etag is stale`, { cause: e });
    case 413:
      return new FleetError('PAYLOAD_TOO_LARGE', `${op}: the document is too large`, { cause: e });
    case 429:
      return new FleetError(
        'RATE_LIMITED',
        `${op}: Cosmos DB is throttling requests (429) beyond the configured retries`,
        { cause: e, extra: { retryAfterMs: err.retryAfterInMs ?? 1000 } },
      );
    case 400:
      return new FleetError('VALIDATION', `${op}: Cosmos DB refused the request: ${message}`, {
        cause: e,
      });
    case 401:
    case 403:
      return new FleetError(
        'STORE_UNAVAILABLE',
        `${op}: the Cosmos DB account refused the request (${status}): check COSMOS_KEY`,
        { cause: e },
      );
    default:
      break;
  }
  if (status !== undefined && status >= 400) {
    return new FleetError('STORE_UNAVAILABLE', `${op}: Cosmos DB answered ${status}: ${message}`, {
      cause: e,
    });
  }
  if (isUnknownOutcome(e)) {
    return new FleetError(
      'STORE_UNAVAILABLE',
      `${op}: Cosmos DB did not answer (${err.code ?? err.name})`,
      {
        cause: e,
      },
    );
  }
  return new FleetError('INTERNAL', `${op}: unexpected failure in the Cosmos DB store`, {
    cause: e,
  });
}

// ---------------------------------------------------------------------------
// Stored shape
// ---------------------------------------------------------------------------

/** Cosmos DB's system properties, and the adapter's derived fields: stripped on read. */
const SYSTEM_FIELDS = new Set(['_rid', '_self', '_ts', '_attachments', '_lsn']);
const DERIVED = new Set<string>(Object.values(DERIVED_JOB_FIELDS));

/** `/ \ ? #` are not allowed in Cosmos DB ids; `%` is the escape character. */
const encodeId = (id: string): string =>
  /[/\\?#%]/.test(id)
    ? id.replace(
        /[/\\?#%]/g,
        (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
      )
    : id;
const decodeId = (id: string): string =>
  id.includes('%')
    ? id.replace(/%([0-9A-F]{2})/g, (_m, hex: string) =>
        String.fromCharCode(Number.parseInt(hex, 16)),
      )
    : id;

type Raw = ItemDefinition & { id: string; _etag?: string };

/**
 * The port's etag: a quoted strong entity tag, as Cosmos DB accounts send it (the test
 * server sends bare ones, which are quoted here and unquoted again on the way back).
 */
const portEtag = (etag: string | undefined): string =>
  etag === undefined || etag.startsWith('"') ? (etag ?? '') : `"${etag}"`;

/** The port's view of a stored document: system and derived fields gone, id decoded. */
function fromRaw<T>(raw: Raw, keepEtag: boolean): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (SYSTEM_FIELDS.has(k) || DERIVED.has(k)) continue;
    if (k === '_etag') {
      if (keepEtag) out[k] = portEtag(raw._etag);
      continue;
    }
    out[k] = v;
  }
  out.id = decodeId(raw.id);
  return out as T;
}

/** True when the stored document holds exactly the body we sent. */
function holds(raw: Raw | null, body: Record<string, unknown>): raw is Raw {
  if (raw === null) return false;
  const stored: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!SYSTEM_FIELDS.has(k) && k !== '_etag') stored[k] = v;
  }
  return isDeepStrictEqual(stored, body);
}

const param = (name: string, value: unknown): SqlParameter => ({
  name,
  value: value as SqlParameter['value'],
});

/**
 * `WHERE` condition "after `key` in `order`": for fields f0..fn, the disjunction over i
 * of (f0..f(i-1) equal to the key's, and fi past it in its direction).
 */
function afterKey(order: OrderName, prefix: string): string {
  const fields = ORDERS[order];
  const terms = fields.map((_, i) => {
    const eq = fields.slice(0, i).map(([f], j) => `c.${f} = @${prefix}${j}`);
    const [f, dir] = fields[i] as (typeof fields)[number];
    eq.push(`c.${f} ${dir === 'ascending' ? '>' : '<'} @${prefix}${i}`);
    return `(${eq.join(' AND ')})`;
  });
  return `(${terms.join(' OR ')})`;
}

const keyParams = (key: CursorKey, prefix: string): SqlParameter[] =>
  key.map((v, i) => param(`@${prefix}${i}`, v));

/** The cursor key of a raw document in `order` (raw: ids as stored). */
const keyOf = (order: OrderName, raw: Raw): CursorKey =>
  ORDERS[order].map(([f]) => (raw as Record<string, unknown>)[f] as string | number);

const cursorParts = (order: OrderName): CursorPart[] =>
  ORDERS[order].map(([f]) => (['seq', 'attempt'].includes(f) ? 'number' : 'string'));

// ---------------------------------------------------------------------------
// The engine: client, lifecycle, one request path
// ---------------------------------------------------------------------------

class Engine {
  closed = false;
  readonly stats: CosmosStoreStats = {
    reads: 0,
    queries: 0,
    writes: 0,
    preconditionFailed: 0,
    unknownOutcomes: 0,
  };

  constructor(
    readonly client: CosmosClient,
    readonly db: Database,
    readonly unknownRetries: number,
    /**
     * The server sends bare (unquoted) etags (the test server does; accounts quote
     * them): conditions are then sent bare too. Learned once, at open.
     */
    readonly bareEtags: boolean,
  ) {}

  /** The etag to send in a condition, in the server's own form. */
  serverEtag(etag: string): string {
    return this.bareEtags && etag.length >= 2 && etag.startsWith('"') && etag.endsWith('"')
      ? etag.slice(1, -1)
      : etag;
  }

  assertOpen(): void {
    if (this.closed) throw new StoreFault('closed', 'the store is closed');
  }

  /** Runs one store call: refused when closed (also when it closes meanwhile), errors mapped. */
  async call<R>(op: string, fn: () => Promise<R>): Promise<R> {
    try {
      this.assertOpen();
      const result = await fn();
      this.assertOpen();
      return result;
    } catch (e) {
      if (this.closed) throw mapError(new StoreFault('closed', 'the store is closed'), op);
      if (statusOf(e) === 412) this.stats.preconditionFailed++;
      throw mapError(e, op);
    }
  }
}

/** What a re-read says about a write whose outcome was unknown. */
type Resolution = { applied: Raw } | 'retry' | { error: unknown };

class CosmosContainer<T extends { id: string }> implements Container<T> {
  protected readonly sdk: SdkContainer;
  protected readonly name: string;
  protected readonly pkField: string;

  constructor(
    protected readonly engine: Engine,
    spec: CosmosContainerSpec,
    sdk: SdkContainer,
  ) {
    this.sdk = sdk;
    this.name = spec.name;
    this.pkField = spec.partitionKey;
  }

  /** The body to store: a copy of `doc` without `_etag`, id encoded, derived fields added. */
  protected body(doc: T): Record<string, unknown> {
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      throw new StoreFault('invalid', `${this.name}: a document must be an object`);
    }
    const copy = JSON.parse(JSON.stringify(doc)) as Record<string, unknown>;
    delete copy._etag;
    copy.id = encodeId(requireString(copy.id, `${this.name}.id`));
    requireString(copy[this.pkField], `${this.name}.${this.pkField}`);
    this.derive(copy);
    return copy;
  }

  /** Adds derived fields (jobs) and checks the fields queries depend on. */
  protected derive(_body: Record<string, unknown>): void {}

  protected out(raw: Raw): Stored<T> {
    return fromRaw<Stored<T>>(raw, true);
  }

  async #readRaw(partitionKey: string, id: string): Promise<Raw | null> {
    this.engine.stats.reads++;
    const res = await this.sdk.item(encodeId(id), partitionKey).read<Raw>();
    return res.statusCode === 404 || res.resource === undefined ? null : res.resource;
  }

  /**
   * Sends a write; when its outcome is unknown (or a retry meets a definitive error
   * that an earlier attempt may have caused), re-reads and decides (module comment).
   */
  protected async write(
    send: () => Promise<Raw | null>,
    resolve: () => Promise<Resolution>,
  ): Promise<Raw | null> {
    let retried = false;
    for (let attempt = 0; ; attempt++) {
      try {
        this.engine.stats.writes++;
        return await send();
      } catch (e) {
        const unknown = isUnknownOutcome(e);
        if (!unknown && !retried) throw e;
        if (!unknown && ![404, 409, 412].includes(statusOf(e) ?? 0)) throw e;
        if (unknown) this.engine.stats.unknownOutcomes++;
        let decision: Resolution;
        try {
          decision = await resolve();
        } catch (readError) {
          throw new FleetError(
            'STORE_UNAVAILABLE',
            `${this.name}: a write's outcome is unknown and the store cannot be read to decide`,
            { cause: readError },
          );
        }
        if (decision === 'retry') {
          if (!unknown) throw e;
          if (attempt >= this.engine.unknownRetries) {
            throw new FleetError(
              'STORE_UNAVAILABLE',
              `${this.name}: a write was not applied after ${attempt + 1} attempts with unknown outcomes`,
              { cause: e },
            );
          }
          retried = true;
          continue;
        }
        if ('applied' in decision) return decision.applied;
        throw decision.error;
      }
    }
  }

  create(doc: T): Promise<Stored<T>> {
    return this.engine.call(`${this.name}.create`, async () => {
      const body = this.body(doc);
      const pk = body[this.pkField] as string;
      const raw = await this.write(
        async () => {
          const res = await this.sdk.items.create<Raw>(body as Raw);
          return res.resource ?? null;
        },
        async () => {
          const now = await this.#readRaw(pk, decodeId(body.id as string));
          if (holds(now, body)) return { applied: now };
          if (now === null) return 'retry';
          return { error: new StoreFault('exists', 'already exists') };
        },
      );
      if (raw === null) throw new StoreFault('invalid', 'Cosmos DB returned no document');
      return this.out(raw);
    });
  }

  read(partitionKey: string, id: string): Promise<Stored<T> | null> {
    return this.engine.call(`${this.name}.read`, async () => {
      if (
        typeof partitionKey !== 'string' ||
        typeof id !== 'string' ||
        id === '' ||
        partitionKey === ''
      ) {
        return null;
      }
      const raw = await this.#readRaw(partitionKey, id);
      return raw === null ? null : this.out(raw);
    });
  }

  replace(doc: T, etag: string): Promise<Stored<T>> {
    return this.engine.call(`${this.name}.replace`, async () => {
      if (typeof etag !== 'string') throw new StoreFault('invalid', 'etag must be a string');
      const body = this.body(doc);
      const pk = body[this.pkField] as string;
      const id = body.id as string;
      const raw = await this.write(
        async () => {
          const res = await this.sdk.item(id, pk).replace<Raw>(body as Raw, {
            accessCondition: { type: 'IfMatch', condition: this.engine.serverEtag(etag) },
          });
          return res.resource ?? null;
        },
        async () => {
          const now = await this.#readRaw(pk, decodeId(id));
          if (now === null) return { error: new StoreFault('missing', 'not found') };
          if (portEtag(now._etag) === etag) return 'retry';
          if (holds(now, body)) return { applied: now };
          return { error: new StoreFault('stale', 'the etag is stale') };
        },
      );
      if (raw === null) throw new StoreFault('invalid', 'Cosmos DB returned no document');
      return this.out(raw);
    });
  }

  delete(partitionKey: string, id: string, etag?: string): Promise<void> {
    return this.engine.call(`${this.name}.delete`, async () => {
      if (typeof partitionKey !== 'string' || typeof id !== 'string') {
        throw new StoreFault('missing', 'not found');
      }
      if (etag !== undefined && typeof etag !== 'string') {
        throw new StoreFault('invalid', 'etag must be a string');
      }
      await this.write(
        async () => {
          await this.sdk
            .item(encodeId(id), partitionKey)
            .delete(
              etag === undefined
                ? {}
                : { accessCondition: { type: 'IfMatch', condition: this.engine.serverEtag(etag) } },
            );
          return null;
        },
        async () => {
          const now = await this.#readRaw(partitionKey, id);
          // Gone: the delete asked for is done (by this call, or one it raced with).
          if (now === null) return { applied: { id } };
          if (etag !== undefined && portEtag(now._etag) !== etag) {
            return { error: new StoreFault('stale', 'the etag is stale') };
          }
          return 'retry';
        },
      );
    });
  }

  /** Runs a query (partition-scoped when `partitionKey` is given) and returns every row. */
  protected async query<R>(
    query: string,
    parameters: SqlParameter[],
    partitionKey?: string,
  ): Promise<R[]> {
    this.engine.stats.queries++;
    const iterator = this.sdk.items.query<R>(
      { query, parameters },
      partitionKey === undefined ? {} : { partitionKey },
    );
    return (await iterator.fetchAll()).resources;
  }

  /**
   * One page of a partition's documents in `order`, after `cursor`: `limit + 1` rows are
   * fetched, so the extra one says whether another page follows. `shape.select` names
   * the members to read (default all); with `shape.maxBytes` the rows are fetched
   * `shape.chunk` at a time and the page ends before the first that does not fit.
   */
  protected async page<R = Stored<T>>(
    op: string,
    where: string,
    parameters: SqlParameter[],
    order: OrderName,
    codec: CursorCodec,
    q: PageRequest,
    partitionKey?: string,
    shape: { select?: string; maxBytes?: number | undefined; chunk?: number } = {},
  ): Promise<Page<R>> {
    return this.engine.call(`${this.name}.${op}`, async () => {
      const limit = requireLimit(q.limit, 1);
      const after =
        q.cursor === undefined || q.cursor === null ? undefined : codec.decode(q.cursor);
      const conditions = [where];
      const params = [...parameters, param('@top', limit + 1)];
      if (after !== undefined) {
        conditions.push(afterKey(order, 'k'));
        params.push(...keyParams(after, 'k'));
      }
      const sql = `SELECT TOP @top ${shape.select ?? '*'} FROM c WHERE ${conditions.join(' AND ')} ${orderBy(order)}`;
      let rows: Raw[];
      let more: boolean;
      if (shape.maxBytes === undefined) {
        rows = await this.query<Raw>(sql, params, partitionKey);
        more = rows.length > limit;
        if (more) rows.length = limit;
      } else {
        ({ rows, more } = await this.#budgeted(sql, params, partitionKey, limit, shape));
      }
      const last = rows[rows.length - 1];
      return {
        items: rows.map((r) => this.out(r) as R),
        nextCursor: more && last !== undefined ? codec.encode(keyOf(order, last)) : null,
      };
    });
  }

  /** Rows of a page under a byte budget, fetched `chunk` at a time (see {@link page}). */
  async #budgeted(
    query: string,
    parameters: SqlParameter[],
    partitionKey: string | undefined,
    limit: number,
    shape: { maxBytes?: number | undefined; chunk?: number },
  ): Promise<{ rows: Raw[]; more: boolean }> {
    this.engine.stats.queries++;
    const iterator = this.sdk.items.query<Raw>(
      { query, parameters },
      {
        ...(partitionKey === undefined ? {} : { partitionKey }),
        maxItemCount: Math.min(limit + 1, shape.chunk ?? limit + 1),
      },
    );
    const budget = new PageBudget(shape.maxBytes);
    const rows: Raw[] = [];
    while (iterator.hasMoreResults()) {
      const { resources } = await iterator.fetchNext();
      for (const raw of resources ?? []) {
        if (rows.length === limit || !budget.admits(jsonBytes(JSON.stringify(raw)))) {
          return { rows, more: true };
        }
        rows.push(raw);
      }
    }
    return { rows, more: false };
  }

  // --- Retention (issue 14) -------------------------------------------------------

  /**
   * Deletes every document of the partition `pk`, one at a time (a document already
   * gone counts as deleted: the call is idempotent, so an interrupted run is finished
   * by the next); answers how many this call deleted. A partition-scoped query.
   */
  async deletePartition(pk: string): Promise<number> {
    const rows = await this.query<{ id: string }>(
      `SELECT c.id FROM c WHERE c.${this.pkField} = @pk`,
      [param('@pk', pk)],
      pk,
    );
    let deleted = 0;
    for (const r of rows) {
      try {
        await this.delete(pk, decodeId(r.id));
        deleted++;
      } catch (e) {
        if (!(e instanceof FleetError && e.code === 'NOT_FOUND')) throw e;
      }
    }
    return deleted;
  }
}

/** A container whose `list(partition, page)` follows one per-partition order. */
class ListedContainer<T extends { id: string }> extends CosmosContainer<T> {
  readonly #order: OrderName;
  readonly #codec: CursorCodec;

  constructor(
    engine: Engine,
    spec: CosmosContainerSpec,
    sdk: SdkContainer,
    order: OrderName,
    tag: string,
  ) {
    super(engine, spec, sdk);
    this.#order = order;
    this.#codec = cursorCodec(tag, cursorParts(order));
  }

  list(partitionKey: string, q: PageRequest): Promise<Page<Stored<T>>> {
    const where = `c.${this.pkField} = @pk`;
    return this.page(
      'list',
      where,
      [param('@pk', partitionKey)],
      this.#order,
      this.#codec,
      q,
      partitionKey,
    );
  }
}

// -- Stale factories across products -------------------------------------------------

const beatCursor = cursorCodec('factories.heartbeatBefore', cursorParts('heartbeat'));

/** Factories: listed per product by id, and across products by last heartbeat. */
class CosmosFactories extends ListedContainer<FactoryDoc> implements FactoriesContainer {
  constructor(engine: Engine, spec: CosmosContainerSpec, sdk: SdkContainer) {
    super(engine, spec, sdk, 'byId', 'factories.list');
  }

  /** One cross-partition query per page (the factories of a fleet are few). */
  async heartbeatBefore(cutoff: string, q: PageRequest): Promise<Page<Stored<FactoryDoc>>> {
    if (typeof cutoff !== 'string') {
      return this.engine.call('factories.heartbeatBefore', async () =>
        requireString(cutoff, 'cutoff'),
      ) as never;
    }
    return this.page(
      'heartbeatBefore',
      'c.lastHeartbeatAt < @cutoff',
      [param('@cutoff', cutoff)],
      'heartbeat',
      beatCursor,
      q,
    );
  }
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

const ACTIVE = [...ACTIVE_STAGES];

/** The fields of a job link, plus the ones its orders need (`seq`). */
const LINK_FIELDS = 'c.id, c.productId, c.stage, c.deps, c.depsMode, c.seq';
interface LinkRaw {
  id: string;
  productId: string;
  stage: Stage;
  deps?: string[];
  depsMode?: string;
  seq: number;
}
const linkOf = (r: LinkRaw): JobLink => ({
  productId: r.productId,
  id: decodeId(r.id),
  stage: r.stage,
  seq: r.seq,
  deps: r.deps === undefined ? [] : [...new Set(r.deps)],
  depsMode: r.depsMode === 'soft' ? 'soft' : 'hard',
});
const listCursor = cursorCodec('jobs.list', cursorParts('newest'));

/**
 * The members of a job summary, named: the test server has no `OFFSET`, `LIMIT`,
 * `GROUP BY`, `DISTINCT` or `LIKE`, but projects a field list like every account.
 */
const SUMMARY_SELECT = [
  ...Object.keys(schemas.JobDoc.shape).filter(
    (k) => !(JOB_SUMMARY_OMITS as readonly string[]).includes(k),
  ),
  '_etag',
]
  .map((k) => `c.${k}`)
  .join(', ');

/** Whole jobs per round trip of a page with a byte budget. */
const FULL_JOBS_PER_FETCH = 8;
const stageCursor = cursorCodec('jobs.listBlocked', cursorParts('oldest'));

class CosmosJobs extends CosmosContainer<JobDoc> implements JobsContainer {
  /** False once the server refused `GROUP BY` (the test emulator): counts are then tallied here. */
  #groupBy = true;

  protected override derive(body: Record<string, unknown>): void {
    requireString(body.stage, 'job.stage');
    const priority = body.priority;
    if (typeof priority !== 'string' || !Object.hasOwn(PRIORITY_RANK, priority)) {
      throw new StoreFault('invalid', `job.priority ${String(priority)} is unknown`);
    }
    requireNumber(body.seq, 'job.seq');
    stringArray(body.capabilities, 'job.capabilities');
    stringArray(body.deps, 'job.deps');
    nullableString(body.notBefore, 'job.notBefore');
    nullableString(body.dueAt, 'job.dueAt');
    nullableString(body.holderFactoryId, 'job.holderFactoryId');
    const outbox = body.outbox;
    if (outbox !== undefined && !Array.isArray(outbox)) {
      throw new StoreFault('invalid', 'job.outbox must be an array');
    }
    body[DERIVED_JOB_FIELDS.rank] = PRIORITY_RANK[priority as Priority];
    body[DERIVED_JOB_FIELDS.hasOutbox] = Array.isArray(outbox) && outbox.length > 0;
  }

  claimCandidates(q: ClaimQuery): Promise<Stored<JobDoc>[]> {
    return this.engine.call('jobs.claimCandidates', async () => {
      const limit = requireLimit(q.limit, 0);
      const capabilities = stringArray(q.capabilities, 'capabilities');
      requireString(q.now, 'now');
      if (limit === 0) return [];
      const rows = await this.query<Raw>(
        `SELECT TOP @top * FROM c WHERE c.productId = @pk AND c.stage = 'queued'
           AND (IS_NULL(c.notBefore) OR c.notBefore <= @now)
           AND NOT EXISTS(SELECT VALUE x FROM x IN c.capabilities WHERE NOT ARRAY_CONTAINS(@caps, x))
         ${orderBy('claim')}`,
        [
          param('@pk', q.productId),
          param('@now', q.now),
          param('@caps', capabilities),
          param('@top', limit),
        ],
        q.productId,
      );
      return rows.map((r) => this.out(r));
    });
  }

  list<V extends JobListView = 'full'>(q: JobListQuery<V>): Promise<Page<Stored<JobOfView<V>>>> {
    let options: ReturnType<typeof jobListOptions>;
    try {
      options = jobListOptions(q);
    } catch (e) {
      return Promise.reject(mapError(e, 'jobs.list'));
    }
    const params = [param('@pk', q.productId)];
    let where = 'c.productId = @pk';
    if (q.stage !== undefined) {
      where += ' AND c.stage = @stage';
      params.push(param('@stage', q.stage));
    }
    const summary = options.view === 'summary';
    return this.page<Stored<JobOfView<V>>>(
      'list',
      where,
      params,
      'newest',
      listCursor,
      q,
      q.productId,
      {
        // A summary names its members: the server never sends body and manifest.
        ...(summary ? { select: SUMMARY_SELECT } : {}),
        maxBytes: options.maxBytes,
        // Whole jobs may be 1 MB each: fetch a few at a time, so the budget stops early.
        chunk: summary ? Number.POSITIVE_INFINITY : FULL_JOBS_PER_FETCH,
      },
    );
  }

  listBlocked(q: PageRequest): Promise<Page<JobLink>> {
    return this.engine.call('jobs.listBlocked', async () => {
      const limit = requireLimit(q.limit, 1);
      const after =
        q.cursor === undefined || q.cursor === null ? undefined : stageCursor.decode(q.cursor);
      const conditions = ["c.stage = 'blocked'"];
      const params = [param('@top', limit + 1)];
      if (after !== undefined) {
        conditions.push(afterKey('oldest', 'k'));
        params.push(...keyParams(after, 'k'));
      }
      const rows = await this.query<LinkRaw>(
        `SELECT TOP @top ${LINK_FIELDS} FROM c WHERE ${conditions.join(' AND ')} ${orderBy('oldest')}`,
        params,
      );
      const more = rows.length > limit;
      if (more) rows.length = limit;
      const last = rows[rows.length - 1];
      return {
        items: rows.map(linkOf),
        nextCursor:
          more && last !== undefined ? stageCursor.encode(keyOf('oldest', last as Raw)) : null,
      };
    });
  }

  dependents(productId: string, jobId: string): Promise<JobLink[]> {
    return this.engine.call('jobs.dependents', async () => {
      const rows = await this.query<LinkRaw>(
        `SELECT ${LINK_FIELDS} FROM c WHERE c.productId = @pk AND ARRAY_CONTAINS(c.deps, @dep)`,
        [param('@pk', productId), param('@dep', jobId)],
        productId,
      );
      // Submission order, like the other stores.
      rows.sort((a, b) => a.seq - b.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return rows.map(linkOf);
    });
  }

  links(productId: string, ids: readonly string[]): Promise<JobLink[]> {
    return this.engine.call('jobs.links', async () => {
      if (!Array.isArray(ids)) throw new StoreFault('invalid', 'ids must be an array');
      const wanted = [...new Set(ids.filter((id) => typeof id === 'string' && id !== ''))];
      if (wanted.length === 0 || typeof productId !== 'string' || productId === '') return [];
      const rows = await this.query<LinkRaw>(
        `SELECT ${LINK_FIELDS} FROM c WHERE c.productId = @pk AND ARRAY_CONTAINS(@ids, c.id)`,
        [param('@pk', productId), param('@ids', wanted.map(encodeId))],
        productId,
      );
      return rows.map(linkOf);
    });
  }

  heldBy(
    productId: string,
    factoryId: string,
    limit: number,
  ): Promise<Array<{ id: string; seq: number }>> {
    return this.engine.call('jobs.heldBy', async () => {
      const n = requireLimit(limit, 0);
      const rows = await this.query<{ id: string; seq: number }>(
        'SELECT c.id, c.seq FROM c WHERE c.productId = @pk AND c.holderFactoryId = @f AND ARRAY_CONTAINS(@active, c.stage)',
        [param('@pk', productId), param('@f', factoryId), param('@active', ACTIVE)],
        productId,
      );
      return rows
        .map((r) => ({ id: decodeId(r.id), seq: r.seq }))
        .sort((a, b) => a.seq - b.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .slice(0, n);
    });
  }

  due(q: {
    now: string;
    limit: number;
    after?: { dueAt: string; id: string };
  }): Promise<Stored<JobDoc>[]> {
    return this.engine.call('jobs.due', async () => {
      const limit = requireLimit(q.limit, 0);
      requireString(q.now, 'now');
      if (limit === 0) return [];
      const conditions = ['c.dueAt <= @now'];
      const params = [param('@now', q.now), param('@top', limit)];
      if (q.after !== undefined) {
        conditions.push(afterKey('due', 'k'));
        params.push(
          ...keyParams(
            [
              requireString(q.after.dueAt, 'after.dueAt'),
              encodeId(requireString(q.after.id, 'after.id')),
            ],
            'k',
          ),
        );
      }
      const rows = await this.query<Raw>(
        `SELECT TOP @top * FROM c WHERE ${conditions.join(' AND ')} ${orderBy('due')}`,
        params,
      );
      return rows.map((r) => this.out(r));
    });
  }

  withOutbox(q: { limit: number }): Promise<Stored<JobDoc>[]> {
    return this.engine.call('jobs.withOutbox', async () => {
      const limit = requireLimit(q.limit, 0);
      if (limit === 0) return [];
      const rows = await this.query<Raw>(
        `SELECT TOP @top * FROM c WHERE c.${DERIVED_JOB_FIELDS.hasOutbox} = true`,
        [param('@top', limit)],
      );
      return rows.map((r) => this.out(r));
    });
  }

  countHeld(productId: string, factoryId: string): Promise<number> {
    return this.engine.call('jobs.countHeld', async () => {
      const [n] = await this.query<number>(
        'SELECT VALUE COUNT(1) FROM c WHERE c.productId = @pk AND c.holderFactoryId = @f AND ARRAY_CONTAINS(@active, c.stage)',
        [param('@pk', productId), param('@f', factoryId), param('@active', ACTIVE)],
        productId,
      );
      return n ?? 0;
    });
  }

  countByStage(): Promise<Array<{ productId: string; stage: Stage; count: number }>> {
    return this.engine.call('jobs.countByStage', async () => {
      let rows: Array<{ productId: string; stage: Stage; count: number }>;
      if (this.#groupBy) {
        try {
          rows = await this.query(
            'SELECT c.productId, c.stage, COUNT(1) AS count FROM c GROUP BY c.productId, c.stage',
            [],
          );
        } catch (e) {
          if (statusOf(e) !== 400) throw e;
          this.#groupBy = false;
          rows = await this.#tally();
        }
      } else {
        rows = await this.#tally();
      }
      return rows
        .filter((r) => r.count > 0)
        .sort((a, b) =>
          a.productId < b.productId
            ? -1
            : a.productId > b.productId
              ? 1
              : a.stage < b.stage
                ? -1
                : a.stage > b.stage
                  ? 1
                  : 0,
        );
    });
  }

  /** Counts for servers without `GROUP BY`: one count per stage, products tallied here. */
  async #tally(): Promise<Array<{ productId: string; stage: Stage; count: number }>> {
    const rows = await this.query<{ productId: string; stage: Stage }>(
      'SELECT c.productId, c.stage FROM c',
      [],
    );
    const counts = new Map<string, { productId: string; stage: Stage; count: number }>();
    for (const r of rows) {
      const key = `${r.productId.length}:${r.productId}|${r.stage}`;
      const entry = counts.get(key);
      if (entry) entry.count++;
      else counts.set(key, { productId: r.productId, stage: r.stage, count: 1 });
    }
    return [...counts.values()];
  }

  // --- Retention (issue 14) -------------------------------------------------------

  finishedBefore(q: {
    before: string;
    limit: number;
    after?: FinishedJobKey;
  }): Promise<FinishedJob[]> {
    return this.engine.call('jobs.finishedBefore', async () => {
      const limit = requireLimit(q.limit, 0);
      const before = requireString(q.before, 'before');
      if (limit === 0) return [];
      const conditions = ['ARRAY_CONTAINS(@terminal, c.stage)', 'c.updatedAt < @before'];
      const params = [
        param('@terminal', [...TERMINAL_STAGES]),
        param('@before', before),
        param('@top', limit),
      ];
      if (q.after !== undefined) {
        conditions.push(afterKey('finished', 'k'));
        params.push(
          ...keyParams(
            [
              requireString(q.after.finishedAt, 'after.finishedAt'),
              encodeId(requireString(q.after.id, 'after.id')),
              requireString(q.after.productId, 'after.productId'),
            ],
            'k',
          ),
        );
      }
      const rows = await this.query<{
        id: string;
        productId: string;
        stage: Stage;
        updatedAt: string;
      }>(
        `SELECT TOP @top c.id, c.productId, c.stage, c.updatedAt FROM c WHERE ${conditions.join(' AND ')} ${orderBy('finished')}`,
        params,
      );
      return rows.map((r) => ({
        finishedAt: r.updatedAt,
        id: decodeId(r.id),
        productId: r.productId,
        stage: r.stage,
      }));
    });
  }
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

class CosmosEvents extends CosmosContainer<EventDoc> implements EventsContainer {
  append(doc: EventDoc): Promise<boolean> {
    return this.engine.call('events.append', async () => {
      try {
        await this.create(doc);
        return true;
      } catch (e) {
        if (!(e instanceof FleetError && e.code === 'ALREADY_EXISTS')) throw e;
        return false;
      }
    });
  }

  list(jobId: string, q: { afterSeq?: number; limit: number }): Promise<EventDoc[]> {
    return this.engine.call('events.list', async () => {
      const limit = requireLimit(q.limit, 0);
      if (limit === 0) return [];
      const afterSeq = q.afterSeq ?? 0;
      requireNumber(afterSeq, 'afterSeq');
      const rows = await this.query<Raw>(
        'SELECT TOP @top * FROM c WHERE c.jobId = @pk AND c.seq > @after ORDER BY c.seq',
        [param('@pk', jobId), param('@after', afterSeq), param('@top', limit)],
        jobId,
      );
      // The port promises plain EventDocs here (strict schema), so drop the etag.
      return rows.map((r) => fromRaw<EventDoc>(r, false));
    });
  }
}

// ---------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------

const isLoopback = (host: string): boolean =>
  host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);

class CosmosDocumentStore implements CosmosStore {
  readonly kind = 'cosmos' as const;
  readonly jobs: CosmosJobs;
  readonly runs: RunsContainer;
  readonly leases: LeasesContainer;
  readonly factories: FactoriesContainer;
  readonly profiles: ProfilesContainer;
  readonly events: CosmosEvents;
  readonly artifacts: ArtifactsContainer;

  constructor(
    readonly endpoint: string,
    readonly database: string,
    readonly engine: Engine,
    sdk: Record<ContainerKey, SdkContainer>,
  ) {
    const c = COSMOS_CONTAINERS;
    this.jobs = new CosmosJobs(engine, c.jobs, sdk.jobs);
    this.runs = new ListedContainer<RunDoc>(engine, c.runs, sdk.runs, 'attempts', 'runs.list');
    this.leases = new CosmosContainer<LeaseDoc>(engine, c.leases, sdk.leases);
    this.factories = new CosmosFactories(engine, c.factories, sdk.factories);
    this.profiles = new ListedContainer<ProfileDoc>(
      engine,
      c.profiles,
      sdk.profiles,
      'byId',
      'profiles.list',
    );
    this.events = new CosmosEvents(engine, c.events, sdk.events);
    this.artifacts = new ListedContainer<ArtifactDoc>(
      engine,
      c.artifacts,
      sdk.artifacts,
      'created',
      'artifacts.list',
    );
  }

  stats(): CosmosStoreStats {
    return { ...this.engine.stats };
  }

  /** Every write is committed when it answers. */
  /** Every write is committed when it answers: nothing to mark. */
  mark(): number {
    return 0;
  }

  sync(_from?: number): Promise<void> {
    return this.engine.call('sync', async () => {});
  }

  ping(): Promise<void> {
    return this.engine.call('ping', async () => {
      await this.engine.db.read();
    });
  }

  async close(): Promise<void> {
    this.#shutdown();
  }

  #shutdown(): void {
    if (this.engine.closed) return;
    this.engine.closed = true;
    this.engine.client.dispose();
  }

  async dropDatabase(): Promise<void> {
    if (!this.engine.closed) {
      await this.engine.call('dropDatabase', async () => {
        await this.engine.db.delete();
      });
    }
    this.#shutdown();
  }

  // --- Retention (issue 14) -------------------------------------------------------

  /**
   * No atomic batch here: the job is checked at `etag`, its derived partitions are
   * emptied one by one, and the job is deleted last under the etag, so an interrupted
   * purge leaves the job (still terminal, still past its retention) for the next pass,
   * which finishes it. Derived documents are partitioned by job id, and job ids are
   * unique across products (`jobIdFor`).
   */
  purgeJob(productId: string, id: string, etag: string): Promise<PurgedDocuments | null> {
    return this.engine.call('purgeJob', async () => {
      requireString(productId, 'productId');
      requireString(id, 'id');
      if (typeof etag !== 'string') throw new StoreFault('invalid', 'etag must be a string');
      const job = await this.jobs.read(productId, id);
      if (job === null) return null;
      if (job._etag !== etag) throw new StoreFault('stale', 'the etag is stale');
      const derived = this.#derived();
      const purged: PurgedDocuments = {
        runs: await derived.runs.deletePartition(id),
        leases: await derived.leases.deletePartition(id),
        events: await derived.events.deletePartition(id),
        artifacts: await derived.artifacts.deletePartition(id),
      };
      try {
        await this.jobs.delete(productId, id, etag);
      } catch (e) {
        // Gone meanwhile: another process's purge finished it.
        if (!(e instanceof FleetError && e.code === 'NOT_FOUND')) throw e;
      }
      return purged;
    });
  }

  #derived(): Record<'runs' | 'leases' | 'events' | 'artifacts', CosmosContainer<{ id: string }>> {
    return {
      runs: this.runs as unknown as CosmosContainer<{ id: string }>,
      leases: this.leases as unknown as CosmosContainer<{ id: string }>,
      events: this.events as unknown as CosmosContainer<{ id: string }>,
      artifacts: this.artifacts as unknown as CosmosContainer<{ id: string }>,
    };
  }
}

/** A composite index as text: its (path, order) pairs in index order. */
const compositeKey = (ix: ReadonlyArray<{ path?: string; order?: string }>): string =>
  ix.map((p) => `${p.path}:${p.order ?? 'ascending'}`).join(',');

/** Creates the container if missing; refuses one with another partition key; adds missing composite indexes. */
async function ensureContainer(db: Database, spec: CosmosContainerSpec): Promise<SdkContainer> {
  const policy = indexingPolicy(spec);
  const { container, resource } = await db.containers.createIfNotExists({
    id: spec.name,
    partitionKey: { paths: [spec.partitionKeyPath] },
    indexingPolicy: policy,
  });
  const paths = resource?.partitionKey?.paths;
  if (paths !== undefined && (paths.length !== 1 || paths[0] !== spec.partitionKeyPath)) {
    throw new FleetError(
      'STORE_UNAVAILABLE',
      `container ${spec.name} exists with partition key ${paths.join(',')}; Fleet needs ${spec.partitionKeyPath}`,
    );
  }
  // Composite indexes compare as (path, order) lists: servers return the members in
  // any order, and a needless replace re-indexes the container (and the test server
  // empties a replaced container).
  const existing = resource?.indexingPolicy?.compositeIndexes ?? [];
  const have = new Set(existing.map(compositeKey));
  const missing = policy.compositeIndexes.filter((ix) => !have.has(compositeKey(ix)));
  if (resource !== undefined && missing.length > 0) {
    // An older Fleet (or someone by hand) created it without some of ours: add them.
    await container.replace({
      ...resource,
      id: spec.name,
      indexingPolicy: { ...resource.indexingPolicy, compositeIndexes: [...existing, ...missing] },
    });
  }
  return container;
}

/**
 * Connects to a Cosmos DB account and opens (creating if missing) the database and its
 * containers, as the registration table says. Throws `STORE_UNAVAILABLE` when the
 * account cannot be reached or refuses the key, `VALIDATION` for bad options.
 */
export async function openCosmosStore(options: CosmosStoreOptions): Promise<CosmosStore> {
  const database = options.database ?? DEFAULT_DATABASE;
  let url: URL;
  try {
    url = new URL(options.endpoint);
  } catch {
    throw new FleetError('VALIDATION', `COSMOS_ENDPOINT is not a URL: ${String(options.endpoint)}`);
  }
  if (options.allowSelfSignedCertificate && !isLoopback(url.hostname)) {
    throw new FleetError(
      'VALIDATION',
      `a self-signed certificate is accepted only from a loopback endpoint (got ${url.hostname})`,
    );
  }
  const throttle = options.throttle ?? {};
  const client = new CosmosClient({
    endpoint: options.endpoint,
    key: options.key,
    ...(options.allowSelfSignedCertificate && url.protocol === 'https:'
      ? { agent: new HttpsAgent({ rejectUnauthorized: false, keepAlive: true }) }
      : {}),
    connectionPolicy: {
      enableEndpointDiscovery: false,
      requestTimeout: options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      retryOptions: {
        maxRetryAttemptCount: throttle.maxRetries ?? 9,
        fixedRetryIntervalInMilliseconds: 0,
        maxWaitTimeInSeconds: Math.ceil((throttle.maxWaitMs ?? 30_000) / 1000),
      },
    },
    userAgentSuffix: 'fleet',
  });
  try {
    const { database: db, resource } = await client.databases.createIfNotExists({ id: database });
    const sdk = {} as Record<ContainerKey, SdkContainer>;
    for (const [key, spec] of Object.entries(COSMOS_CONTAINERS) as [
      ContainerKey,
      CosmosContainerSpec,
    ][]) {
      sdk[key] = await ensureContainer(db, spec);
    }
    // The server's etag form, known before the first condition is sent (an etag may come
    // from another process, not from a read of this store).
    const bare = resource?._etag !== undefined && !resource._etag.startsWith('"');
    const engine = new Engine(
      client,
      db,
      options.unknownOutcomeRetries ?? DEFAULT_UNKNOWN_RETRIES,
      bare,
    );
    return new CosmosDocumentStore(options.endpoint, database, engine, sdk);
  } catch (e) {
    client.dispose();
    const mapped = mapError(e, `opening Cosmos DB database ${database} at ${url.host}`);
    if (mapped.code === 'INTERNAL' || mapped.code === 'VALIDATION') {
      throw new FleetError('STORE_UNAVAILABLE', mapped.detail, { cause: e });
    }
    throw mapped;
  }
}
