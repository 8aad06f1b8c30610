/**
 * Conditional requests on jobs (RFC 9110 §13): the `ETag` of a job is its store etag
 * (already a quoted strong tag); `If-Match` makes a mutation conditional, and
 * `If-None-Match` lets a reader revalidate (304).
 *
 * Every job mutation (PATCH, lease renew/release, progress, requeue, cancel) checks
 * `If-Match` atomically: the tag rides into the coordinator's conditional write.
 */
import { type Conditional, type Coordinator, FleetError } from '../../runtime/index.js';
import { must } from './route-context.js';

/** The entity tags of a header value, or `*`. Weak tags (`W/"..."`) never match a write. */
export function entityTags(header: string): '*' | string[] {
  const tags = header
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  return tags.includes('*') ? '*' : tags;
}

const stale = (jobId: string): FleetError =>
  new FleetError('PRECONDITION_FAILED', `job ${jobId} does not match If-Match: it has changed`);

/**
 * The tag to hand to the coordinator's conditional write for an `If-Match` header:
 * undefined when there is no condition (or `*`: the write itself needs the job), the
 * one strong tag given, or, for a list, the job's current tag if the list holds it.
 */
export async function ifMatchTag(
  coordinator: Coordinator,
  productId: string,
  jobId: string,
  header: string | undefined,
): Promise<string | undefined> {
  if (header === undefined) return undefined;
  const tags = entityTags(header);
  if (tags === '*') return undefined;
  const strong = tags.filter((t) => !t.startsWith('W/'));
  if (strong.length === 1) return strong[0];
  const job = must(await coordinator.getJob(productId, jobId));
  if (strong.includes(job._etag)) return job._etag;
  throw stale(jobId);
}

/** The coordinator's `Conditional` option for an `If-Match` header (see `ifMatchTag`). */
export async function conditional(
  coordinator: Coordinator,
  productId: string,
  jobId: string,
  header: string | undefined,
): Promise<Conditional> {
  const ifMatch = await ifMatchTag(coordinator, productId, jobId, header);
  return ifMatch === undefined ? {} : { ifMatch };
}

/** `conditional` for a job route's request: its `:id` and its `If-Match` header. */
export function conditionOf(
  coordinator: Coordinator,
  productId: string,
  request: { params: { id: string }; headers: { 'if-match'?: string | undefined } },
): Promise<Conditional> {
  return conditional(coordinator, productId, request.params.id, request.headers['if-match']);
}

/** True when an `If-None-Match` header names `etag` (weak comparison) or `*`. */
export function noneMatch(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const tags = entityTags(header);
  return tags === '*' || tags.some((t) => (t.startsWith('W/') ? t.slice(2) : t) === etag);
}
