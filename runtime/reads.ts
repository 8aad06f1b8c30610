/**
 * Reads: one job, lists of jobs, runs, artifacts and events. Nothing is shown before it
 * is durable (`store.sync(store.mark())` first: waits for the batch open now, not for
 * one that already failed, whose writes are gone), and a job's pending outbox is carried
 * out before its runs, artifacts or events are listed, so the stream read is complete.
 */
import { jobIdFor } from './canonical.js';
import type { Core } from './core.js';
import type { JobListView, JobOfView, PageRequest, Stored } from './document-store.port.js';
import { fail, isFleetError, ok, type Result } from './errors.js';
import { publicEvent } from './event-reporter.js';
import type { ArtifactDoc, EventDoc, JobDoc, Page, RunDoc, Stage } from './types.js';

const DECIMAL = /^(0|[1-9][0-9]*)$/;

// -------------------------------------------------------------------------

/** One job of the product, or NOT_FOUND (also for another product's job). */
export async function getJob(
  c: Core,
  productId: string,
  jobId: string,
): Promise<Result<Stored<JobDoc>>> {
  await c.store.sync(c.store.mark()); // never show a change that is not durable yet
  const job = await c.store.jobs.read(productId, jobId);
  return job ? ok(job) : fail('NOT_FOUND', `no job ${jobId}`);
}

/** The product's job submitted under `idempotencyKey`, or NOT_FOUND (a point read: ids derive from keys). */
export async function findByIdempotencyKey(
  c: Core,
  productId: string,
  idempotencyKey: string,
): Promise<Result<Stored<JobDoc>>> {
  return getJob(c, productId, jobIdFor(productId, idempotencyKey));
}

/** The product's jobs, newest first, optionally of one stage; `view` and `maxBytes` as in the port's `jobs.list`. */
export async function listJobs<V extends JobListView = 'full'>(
  c: Core,
  productId: string,
  q: { stage?: Stage; limit?: number; cursor?: string | null; view?: V; maxBytes?: number } = {},
): Promise<Result<Page<Stored<JobOfView<V>>>>> {
  return guardRead(c, () =>
    c.store.jobs.list<V>({
      productId,
      limit: q.limit ?? 50,
      cursor: q.cursor ?? null,
      ...(q.stage ? { stage: q.stage } : {}),
      view: q.view,
      maxBytes: q.maxBytes,
    }),
  );
}

/** The job's runs in attempt order. */
export async function listRuns(
  c: Core,
  productId: string,
  jobId: string,
  q: { limit?: number; cursor?: string | null } = {},
): Promise<Result<Page<Stored<RunDoc>>>> {
  return pageOfJob(c, productId, jobId, q, c.store.runs);
}

/** The job's artifact pointers. */
export async function listArtifacts(
  c: Core,
  productId: string,
  jobId: string,
  q: { limit?: number; cursor?: string | null } = {},
): Promise<Result<Page<Stored<ArtifactDoc>>>> {
  return pageOfJob(c, productId, jobId, q, c.store.artifacts);
}

/** A page of a job-partitioned list (runs, artifacts), once the job's outbox is settled. */
async function pageOfJob<T>(
  c: Core,
  productId: string,
  jobId: string,
  q: { limit?: number; cursor?: string | null },
  container: { list(jobId: string, q: PageRequest): Promise<Page<T>> },
): Promise<Result<Page<T>>> {
  const job = await settled(c, productId, jobId);
  if (!job) return fail('NOT_FOUND', `no job ${jobId}`);
  return guardRead(c, () =>
    container.list(jobId, { limit: q.limit ?? 50, cursor: q.cursor ?? null }),
  );
}

/**
 * The job's event stream in `seq` order (1, 2, 3... no gap). `cursor` is the last
 * seq seen. Pending outbox events are written first, so the stream is complete.
 */
export async function listEvents(
  c: Core,
  productId: string,
  jobId: string,
  q: { limit?: number; cursor?: string | null } = {},
): Promise<Result<Page<EventDoc>>> {
  const job = await settled(c, productId, jobId);
  if (!job) return fail('NOT_FOUND', `no job ${jobId}`);
  // A cursor is the last seq seen, written in decimal: `1e3`, `0x2` or ` 1` are not.
  const afterSeq = q.cursor == null ? 0 : DECIMAL.test(q.cursor) ? Number(q.cursor) : -1;
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
    return fail('VALIDATION', 'cursor: not a cursor of this list');
  const limit = q.limit ?? 50;
  const items = (await c.store.events.list(jobId, { afterSeq, limit })).map(publicEvent);
  const last = items.at(-1);
  return ok({ items, nextCursor: items.length === limit && last ? String(last.seq) : null });
}

/** Reads a job of the product, first repairing its outbox if a follow-up is pending. */
async function settled(c: Core, productId: string, jobId: string): Promise<Stored<JobDoc> | null> {
  await c.store.sync(c.store.mark()); // never show a change that is not durable yet
  const job = await c.store.jobs.read(productId, jobId);
  if (!job || job.outbox.length === 0) return job;
  return c.act(productId, async () => {
    const cur = await c.store.jobs.read(productId, jobId);
    return cur && cur.outbox.length > 0 ? c.writes.flush(cur, true) : cur;
  });
}

async function guardRead<T>(c: Core, read: () => Promise<T>): Promise<Result<T>> {
  try {
    await c.store.sync(c.store.mark()); // never show a change that is not durable yet
    return ok(await read());
  } catch (e) {
    if (isFleetError(e, 'VALIDATION')) return { ok: false, error: e };
    throw e;
  }
}
