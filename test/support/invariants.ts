/**
 * Invariants every store must satisfy after any history, crash or not. The crash test
 * checks them after each SIGKILL; the simulator will check them after every step.
 *
 * The outbox is part of the state: a job write that was committed while its follow-up
 * was not is fine as long as the follow-up is recorded on the job (and the next touch
 * carries it out), so events, runs and the lease are read as "stored, plus pending".
 */
import type { DocumentStore } from '../../runtime/document-store.port.js';
import * as S from '../../runtime/schemas.js';
import type { EventDoc, JobDoc, LeaseDoc, RunDoc, Stage } from '../../runtime/types.js';

const ACTIVE = new Set<Stage>(['assigned', 'building', 'review', 'testing']);

/** Every job of the store, all products (the products from the stage counts, then each list). */
export async function allJobs(store: DocumentStore): Promise<JobDoc[]> {
  const jobs: JobDoc[] = [];
  const products = new Set((await store.jobs.countByStage()).map((r) => r.productId));
  for (const productId of products) {
    let cursor: string | null = null;
    do {
      const page: { items: JobDoc[]; nextCursor: string | null } = await store.jobs.list({
        productId,
        limit: 500,
        cursor,
      });
      jobs.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
  }
  return jobs;
}

/** Checks one job against its events, runs and lease; returns the violations found. */
export async function jobViolations(store: DocumentStore, job: JobDoc): Promise<string[]> {
  const v: string[] = [];
  const where = `job ${job.id}`;
  const parsed = S.JobDoc.safeParse(stripEtag(job));
  if (!parsed.success)
    v.push(`${where}: document does not match its schema: ${parsed.error.message}`);

  const stored = await store.events.list(job.id, { limit: 100_000 });
  const pending = job.outbox.flatMap((e) => (e.kind === 'event' ? [e.event] : []));
  const bySeq = new Map<number, EventDoc>();
  for (const e of [...stored, ...pending]) bySeq.set(e.seq, e);
  const seqs = [...bySeq.keys()].sort((a, b) => a - b);
  if (seqs.length !== job.eventSeq || seqs.some((s, i) => s !== i + 1)) {
    v.push(`${where}: events are not 1..${job.eventSeq} without gaps: [${seqs.join(',')}]`);
  }
  const last = bySeq.get(job.eventSeq);
  if (!last) v.push(`${where}: no event ${job.eventSeq}`);
  else {
    if (last.data.to !== job.stage) {
      v.push(
        `${where}: stage ${job.stage} but its last event (${last.type}) says ${String(last.data.to)}`,
      );
    }
    if (last.data.leaseEpoch !== job.leaseEpoch) {
      v.push(
        `${where}: epoch ${job.leaseEpoch} but its last event says ${String(last.data.leaseEpoch)}`,
      );
    }
  }
  for (let s = 2; s <= seqs.length; s++) {
    const prev = bySeq.get(s - 1);
    const cur = bySeq.get(s);
    if (prev && cur && cur.data.from !== prev.data.to) {
      v.push(
        `${where}: event ${s} starts from ${String(cur.data.from)} but ${s - 1} ended in ${String(prev.data.to)}`,
      );
    }
    if (prev && cur && Number(cur.data.leaseEpoch) < Number(prev.data.leaseEpoch)) {
      v.push(`${where}: epoch went backwards at event ${s}`);
    }
  }

  const runs = new Map<number, RunDoc>();
  for (const r of (await store.runs.list(job.id, { limit: 500 })).items) runs.set(r.attempt, r);
  for (const e of job.outbox) if (e.kind === 'run') runs.set(e.run.attempt, e.run);
  for (let a = 1; a <= job.attempt; a++) {
    if (!runs.has(a)) v.push(`${where}: attempt ${a} has no run`);
  }
  const open = [...runs.values()].filter((r) => r.endedAt === null);
  if (ACTIVE.has(job.stage)) {
    if (
      open.length !== 1 ||
      open[0]?.attempt !== job.attempt ||
      open[0]?.leaseEpoch !== job.leaseEpoch
    ) {
      v.push(
        `${where}: ${job.stage} needs exactly its current run open, found ${open.map((r) => r.attempt).join(',') || 'none'}`,
      );
    }
  } else if (open.length > 0) {
    v.push(`${where}: ${job.stage} but run(s) ${open.map((r) => r.attempt).join(',')} still open`);
  }
  const epochs = new Map<number, string>();
  for (const r of runs.values()) {
    const holder = epochs.get(r.leaseEpoch);
    if (holder !== undefined && holder !== r.factoryId)
      v.push(`${where}: epoch ${r.leaseEpoch} had two holders`);
    epochs.set(r.leaseEpoch, r.factoryId ?? '');
  }

  let lease: LeaseDoc | null = await store.leases.read(job.id, job.id);
  for (const e of job.outbox) if (e.kind === 'lease') lease = e.lease;
  if (job.holderFactoryId !== null) {
    if (
      lease?.status !== 'held' ||
      lease.holderFactoryId !== job.holderFactoryId ||
      lease.leaseEpoch !== job.leaseEpoch
    ) {
      v.push(
        `${where}: held by ${job.holderFactoryId}@${job.leaseEpoch} but the lease says ${lease ? `${lease.status} ${lease.holderFactoryId}@${lease.leaseEpoch}` : 'nothing'}`,
      );
    }
  } else if (lease && lease.status === 'held') {
    v.push(`${where}: nobody holds it but the lease says held by ${lease.holderFactoryId}`);
  }
  return v;
}

/** Every violation in the store (empty when all invariants hold). */
export async function storeViolations(store: DocumentStore): Promise<string[]> {
  const out: string[] = [];
  for (const job of await allJobs(store)) out.push(...(await jobViolations(store, job)));
  return out;
}

function stripEtag(doc: JobDoc & { _etag?: string }): JobDoc {
  const { _etag: _ignored, ...rest } = doc;
  return rest;
}
