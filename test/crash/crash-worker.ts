/**
 * The process the crash test kills. It opens the SQLite store at argv[2] and runs
 * submissions, claims, stage moves, failures, releases and sweeps from several
 * concurrent workers until it is killed, printing one line per acknowledged change:
 *
 *   ack <jobId> <stage> <leaseEpoch> <eventSeq>
 *
 * A line is printed only after the coordinator answered, i.e. after the change is
 * durable (group commit + sync), so every printed change must survive a SIGKILL.
 */
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import type { JobDoc, PatchTarget, Result } from '../../runtime/index.js';
import { Coordinator } from '../../runtime/index.js';

const path = process.argv[2];
const round = process.argv[3] ?? '0';
if (!path) throw new Error('usage: crash-worker <db> <round>');

const store = openSqliteStore({ path, synchronous: 'FULL' });
const coord = new Coordinator({ store, leaseMs: 2_000 });
const product = 'crash';
let n = 0;
let rng = Number(round) * 7919 + 17;
const random = (): number => {
  rng = (rng * 1103515245 + 12345) % 2147483648;
  return rng / 2147483648;
};

const ack = (r: Result<JobDoc>): void => {
  if (!r.ok) return;
  const j = r.value;
  process.stdout.write(`ack ${j.id} ${j.stage} ${j.leaseEpoch} ${j.eventSeq}\n`);
};

const NEXT: Partial<Record<JobDoc['stage'], PatchTarget>> = {
  assigned: 'building',
  building: 'review',
  review: 'testing',
  testing: 'shipped',
};

async function worker(w: number): Promise<void> {
  const factoryId = `r${round}-f${w}`;
  for (;;) {
    const roll = random();
    if (roll < 0.35) {
      const deps: string[] = [];
      const r = await coord.submit(product, {
        idempotencyKey: `r${round}-w${w}-${n++}`,
        bodyMd: 'crash test job',
        priority: (['critical', 'high', 'medium', 'low'] as const)[Math.floor(random() * 4)],
        deps,
        retry: { max: 2, backoff: 'fixed', delayMs: 1000 },
      });
      if (r.ok) ack({ ok: true, value: r.value.job });
      continue;
    }
    const claimed = await coord.claimNextJob(product, { factoryId });
    if (!claimed.ok || !claimed.value) {
      await coord.sweep();
      continue;
    }
    let job: JobDoc = claimed.value.job;
    ack({ ok: true, value: job });
    const leaseEpoch = claimed.value.lease.leaseEpoch;
    while (NEXT[job.stage] !== undefined) {
      const p = random();
      if (p < 0.05) {
        ack(
          await coord.releaseLease(product, job.id, {
            factoryId,
            leaseEpoch,
            reason: 'crash test',
          }),
        );
        break;
      }
      if (p < 0.1) {
        ack(
          await coord.transition(product, job.id, {
            factoryId,
            leaseEpoch,
            to: 'failed',
            error: { class: 'transient', message: 'x' },
          }),
        );
        break;
      }
      if (p < 0.2) {
        ack(
          await coord.recordProgress(product, job.id, {
            factoryId,
            leaseEpoch,
            checkpoint: { wipCommit: `c${n++}` },
            insights: { tokensIn: 10 },
          }),
        );
        continue;
      }
      const r = await coord.transition(product, job.id, {
        factoryId,
        leaseEpoch,
        to: NEXT[job.stage] as PatchTarget,
      });
      ack(r);
      if (!r.ok) break;
      job = r.value;
    }
  }
}

await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
