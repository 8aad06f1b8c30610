import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../../adapters/store/sqlite/index.js';
import { storeViolations } from '../support/invariants.js';

const WORKER = fileURLToPath(new URL('./crash-worker.ts', import.meta.url));
const ROUNDS = 12;

interface Ack {
  jobId: string;
  stage: string;
  leaseEpoch: number;
  eventSeq: number;
}

/** Runs the worker on `db` and SIGKILLs it `afterMs` after its first ack; returns the acks it printed. */
function runAndKill(db: string, round: number, afterMs: number): Promise<Ack[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, db, String(round)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acks: Ack[] = [];
    let buffered = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const [tag, jobId, stage, epoch, seq] = line.split(' ');
        if (tag !== 'ack' || !jobId || !stage) continue;
        acks.push({ jobId, stage, leaseEpoch: Number(epoch), eventSeq: Number(seq) });
        timer ??= setTimeout(() => child.kill('SIGKILL'), afterMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('exit', (_code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL')
        reject(new Error(`worker exited on its own (${signal}): ${stderr.slice(-2000)}`));
      else resolve(acks);
    });
  });
}

describe('crash safety (sqlite, synchronous=FULL)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-crash-'));
  const db = join(dir, 'fleet.db');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`loses nothing acknowledged across ${ROUNDS} SIGKILLs at random moments on one file`, async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 48271) % 2147483647;
      return seed / 2147483647;
    };
    let total = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      const acks = await runAndKill(db, round, 50 + Math.floor(random() * 700));
      total += acks.length;

      const raw = new Database(db, { readonly: true });
      expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
      raw.close();

      const store = openSqliteStore({ path: db });
      try {
        expect(await storeViolations(store)).toEqual([]);
        for (const a of acks) {
          const job = await store.jobs.read('crash', a.jobId);
          expect(job, `acknowledged job ${a.jobId} is gone`).not.toBeNull();
          expect(job?.eventSeq ?? 0).toBeGreaterThanOrEqual(a.eventSeq);
          const events = await store.events.list(a.jobId, { afterSeq: a.eventSeq - 1, limit: 1 });
          const pending = job?.outbox.find((e) => e.kind === 'event' && e.event.seq === a.eventSeq);
          const event =
            events[0]?.seq === a.eventSeq
              ? events[0]
              : pending?.kind === 'event'
                ? pending.event
                : undefined;
          expect(event?.data.to, `event ${a.eventSeq} of ${a.jobId}`).toBe(a.stage);
          expect(event?.data.leaseEpoch).toBe(a.leaseEpoch);
        }
      } finally {
        await store.close();
      }
    }
    console.log(`crash test: ${ROUNDS} SIGKILLs, ${total} acknowledged changes checked`);
    expect(total).toBeGreaterThan(ROUNDS * 5);
  }, 240_000);
});
