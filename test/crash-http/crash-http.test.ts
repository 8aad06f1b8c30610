/**
 * Crashes under real load: the built `fleet serve` on one SQLite file, 16 factories and
 * a submitter speaking HTTP to it (`workload.ts`), and the server SIGKILLed 20 times at
 * random moments, each time restarted on the same file and port while the clients keep
 * going through the outage.
 *
 * A "moment" is a condition, never a time: after each start the server is killed once
 * the clients have had `k` more 2xx answers to writes, `k` drawn from the seeded
 * generator (`FLEET_CRASH_SEED` replays the draws; the interleaving of 17 clients and a
 * server is, of course, never the same twice). The seed is printed.
 *
 * Afterwards, with the clients finished and the server stopped, the database must hold
 * every request the server answered 2xx (each submit's job; each claim's run and
 * `claimed` event; each PATCH's event, one event per answer), no (job, epoch) may have
 * been granted twice, every job's event stream is 1..n without a gap, every job is
 * `shipped` or `dead_letter`, the store satisfies `test/support/invariants.ts`, and
 * `PRAGMA integrity_check` says ok. The counts are printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStore, sqliteConnection } from '../../adapters/store/sqlite/index.js';
import { allJobs, jobViolations } from '../support/invariants.js';
import { seededRandom } from '../support/random.js';
import {
  freePort,
  killServer,
  killServers,
  type ServerProcess,
  startServer,
  stopServer,
} from './server-process.js';
import { allFinished, Ledger, runFactory, runSubmitter, type WorkloadContext } from './workload.js';

const KILLS = 20;
const FACTORIES = 16;
/** At least this many jobs are submitted, kills or not. */
const MIN_JOBS = 150;
/** A kill comes after 1..MAX_ANSWERS_BETWEEN_KILLS 2xx answers since the last start. */
const MAX_ANSWERS_BETWEEN_KILLS = 150;
const PRODUCT = 'crash-http';
const SUBMITTER_TOKEN = 'crash-http-submitter';
const FACTORY_TOKEN = 'crash-http-factory';
const ADMIN_TOKEN = 'crash-http-admin';
/** Generous bounds (a loaded 2-core machine is slow, not wrong). */
const START_BOUND_MS = 60_000;
const STOP_BOUND_MS = 60_000;
const TEST_BOUND_MS = 420_000;
const CLIENT_BOUND_MS = 360_000;

/** `FLEET_CRASH_SEED` if set (to replay), else a fresh one. */
function seedOf(): number {
  const given = process.env.FLEET_CRASH_SEED;
  if (given !== undefined && given !== '') return Number(given) >>> 0;
  return (Math.random() * 2 ** 32) >>> 0;
}

/** A (possibly partial) event row as stored. */
interface StoredEvent {
  seq: number;
  type: string;
  at: string;
  data: Record<string, unknown>;
}

describe('crash safety under HTTP load (fleet serve on SQLite, SIGKILL)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-crash-http-'));
  const db = join(dir, 'fleet.db');
  afterAll(async () => {
    await killServers();
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    `loses no acknowledged write across ${KILLS} SIGKILLs of the server under ${FACTORIES} factories and a submitter`,
    async () => {
      const seed = seedOf();
      const random = seededRandom(seed);
      console.log(`crash-http: seed ${seed} (FLEET_CRASH_SEED=${seed} replays the draws)`);

      const port = await freePort(random);
      const env = {
        HOST: '127.0.0.1',
        PORT: String(port),
        FLEET_STORE: 'sqlite',
        FLEET_DB: db,
        FLEET_TOKENS: JSON.stringify([
          { token: SUBMITTER_TOKEN, productId: PRODUCT, roles: ['submitter'] },
          { token: FACTORY_TOKEN, productId: PRODUCT, roles: ['factory'] },
          { token: ADMIN_TOKEN, productId: PRODUCT, roles: ['admin'] },
        ]),
        // Long enough that a factory rarely loses its lease to an outage; a lost one is
        // reaped (the job counts an attempt) and the factory is fenced, which is fine.
        FLEET_LEASE_MS: '15000',
        FLEET_REAPER_INTERVAL_MS: '200',
        FLEET_LOG_LEVEL: 'warn',
        FLEET_LOG_FORMAT: 'json',
      };

      let started = await startServer(env, START_BOUND_MS);
      let server: ServerProcess = started.server;
      const baseUrl = started.url;
      expect(baseUrl).toBe(`http://127.0.0.1:${port}`);

      const ledger = new Ledger();
      const deadline = performance.now() + CLIENT_BOUND_MS;
      const context = (salt: number): WorkloadContext => ({
        baseUrl,
        ledger,
        deadline,
        random: seededRandom((seed ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0),
        cancelled: () => run.failure !== null,
      });

      // The kill schedule: after k more 2xx answers, SIGKILL, restart, draw the next k.
      const gaps = Array.from(
        { length: KILLS },
        () => 1 + Math.floor(random() * MAX_ANSWERS_BETWEEN_KILLS),
      );
      console.log(`crash-http: kills after ${gaps.join(', ')} answers since each start`);
      // Shared with the callbacks below (an object, so no narrowing goes stale).
      const run = {
        answers: 0,
        kills: 0,
        nextKillAt: gaps[0]!,
        restarting: null as Promise<void> | null,
        failure: null as Error | null,
        stopping: false,
      };
      // A failed restart, or a client that throws (no answer by the deadline), fails the test
      // and stops the rest.
      const failed = (e: unknown): void => {
        run.failure ??= e instanceof Error ? e : new Error(String(e));
      };
      // A server that dies on its own (not by our hand) is a failure in itself.
      const watch = (s: ServerProcess): void => {
        void s.exited.then((code) => {
          if (s === server && run.restarting === null && !run.stopping) {
            run.failure ??= new Error(`fleet serve exited by itself (${code})\n${s.output()}`);
          }
        });
      };
      const restart = async (): Promise<void> => {
        await killServer(server);
        run.kills++;
        started = await startServer(env, START_BOUND_MS);
        server = started.server;
        watch(server);
        if (started.url !== baseUrl) throw new Error(`restarted on ${started.url}, not ${baseUrl}`);
        if (run.kills < KILLS) run.nextKillAt = run.answers + gaps[run.kills]!;
      };
      ledger.onAnswer = () => {
        run.answers++;
        if (run.restarting === null && run.kills < KILLS && run.answers >= run.nextKillAt) {
          run.restarting = restart()
            .catch(failed)
            .finally(() => {
              run.restarting = null;
            });
        }
      };
      watch(server);

      let finished = false;
      const factories = Array.from({ length: FACTORIES }, (_, i) =>
        runFactory(
          context(i + 1),
          FACTORY_TOKEN,
          `factory-${i}`,
          () => finished || run.failure !== null,
        ).catch(failed),
      );
      const submitter = runSubmitter(context(0), SUBMITTER_TOKEN, {
        keyPrefix: `crash-http-${seed}-`,
        more: () => run.failure === null && (run.kills < KILLS || ledger.submits.length < MIN_JOBS),
      }).catch(failed);

      try {
        await submitter;
        // Every kill is done; the last restart may still be under way.
        while (run.restarting !== null) await run.restarting;
        // The clients finish once no job is left unfinished (a condition, polled).
        const admin = context(FACTORIES + 1);
        while (run.failure === null && !(await allFinished(admin, ADMIN_TOKEN))) {
          if (performance.now() > deadline) throw new Error('jobs left unfinished at the deadline');
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        finished = true;
        await Promise.all(factories);
      }
      if (run.failure) throw run.failure;

      run.stopping = true;
      expect(await stopServer(server, STOP_BOUND_MS), `a clean stop\n${server.output()}`).toBe(0);

      // ---- the database ----
      const store = openSqliteStore({ path: db });
      try {
        const sql = sqliteConnection(store);
        expect(sql.pragma('integrity_check', { simple: true })).toBe('ok');

        const jobs = await allJobs(store);
        const byId = new Map(jobs.map((j) => [j.id, j]));
        const events = new Map<string, StoredEvent[]>();
        for (const row of sql.prepare('SELECT pk, json FROM events ORDER BY pk, seq').all() as {
          pk: string;
          json: string;
        }[]) {
          const list = events.get(row.pk) ?? [];
          list.push(JSON.parse(row.json) as StoredEvent);
          events.set(row.pk, list);
        }

        // Every job: final, its stream 1..n without a gap, and the store's invariants.
        const violations: string[] = [];
        let shipped = 0;
        let deadLettered = 0;
        for (const job of jobs) {
          if (job.stage === 'shipped') shipped++;
          else if (job.stage === 'dead_letter') deadLettered++;
          else violations.push(`job ${job.id} ended ${job.stage}`);
          const seqs = (events.get(job.id) ?? []).map((e) => e.seq);
          if (seqs.length !== job.eventSeq || seqs.some((s, i) => s !== i + 1)) {
            violations.push(`job ${job.id}: events [${seqs.join(',')}], eventSeq ${job.eventSeq}`);
          }
          if (job.outbox.length > 0) violations.push(`job ${job.id}: outbox not empty`);
          violations.push(...(await jobViolations(store, job)));
        }

        // No (job, epoch) granted twice: by the clients' answers, and by the store.
        const granted = new Map<string, string[]>();
        for (const g of ledger.grants) {
          const key = `${g.jobId}@${g.leaseEpoch}`;
          granted.set(key, [...(granted.get(key) ?? []), g.factoryId]);
        }
        const duplicates = [...granted].filter(([, holders]) => holders.length > 1);
        for (const [jobId, list] of events) {
          const claimedEpochs = list
            .filter((e) => e.type === 'claimed')
            .map((e) => e.data.leaseEpoch);
          if (new Set(claimedEpochs).size !== claimedEpochs.length) {
            duplicates.push([`${jobId} (stored claims at epochs ${claimedEpochs.join(',')})`, []]);
          }
        }

        // Every 2xx answer is in the database.
        const missing: string[] = [];
        const used = new Set<string>();
        const findEvent = (jobId: string, match: (e: StoredEvent) => boolean): boolean => {
          const e = (events.get(jobId) ?? []).find(
            (x) => !used.has(`${jobId}#${x.seq}`) && match(x),
          );
          if (e) used.add(`${jobId}#${e.seq}`);
          return e !== undefined;
        };
        for (const s of ledger.submits) {
          const job = byId.get(s.jobId);
          if (!job || job.idempotencyKey !== s.idempotencyKey) {
            missing.push(`submit ${s.idempotencyKey} → ${s.jobId}`);
          }
        }
        let claimsChecked = 0;
        for (const g of ledger.grants) {
          if (g.adopted) continue;
          claimsChecked++;
          const runs = (await store.runs.list(g.jobId, { limit: 500 })).items;
          const run = runs.find((r) => r.attempt === g.attempt);
          if (!run || run.leaseEpoch !== g.leaseEpoch || run.factoryId !== g.factoryId) {
            missing.push(`claim of ${g.jobId} by ${g.factoryId} at epoch ${g.leaseEpoch}: run`);
          }
          const ok = findEvent(
            g.jobId,
            (e) =>
              e.type === 'claimed' &&
              e.data.leaseEpoch === g.leaseEpoch &&
              e.data.factoryId === g.factoryId &&
              e.at === g.at,
          );
          if (!ok)
            missing.push(`claim of ${g.jobId} by ${g.factoryId} at epoch ${g.leaseEpoch}: event`);
        }
        for (const p of ledger.patches) {
          const ok = findEvent(
            p.jobId,
            (e) =>
              (e.type === 'stage_changed' || e.type === 'failed') &&
              e.data.factoryId === p.factoryId &&
              e.data.to === p.stage &&
              e.data.leaseEpoch === p.leaseEpoch &&
              e.at === p.at,
          );
          if (!ok) {
            missing.push(`PATCH ${p.jobId} → ${p.to} by ${p.factoryId} at epoch ${p.sentEpoch}`);
          }
        }
        const checked = ledger.submits.length + claimsChecked + ledger.patches.length;

        console.log(
          [
            `crash-http (seed ${seed}): ${run.kills} kills; ${ledger.submits.length} submits, ` +
              `${claimsChecked} claims (+${ledger.adoptedClaims} of ${ledger.ambiguousClaims} ambiguous claims found applied and adopted), ` +
              `${ledger.patches.length} transitions answered 2xx`,
            `  ${checked} 2xx answers checked against the database, ${missing.length} missing`,
            `  jobs: ${jobs.length} (${shipped} shipped, ${deadLettered} dead-lettered); ` +
              `duplicates found: ${duplicates.length}`,
            `  clients: ${ledger.resent} requests resent after a refused connection or 429, ` +
              `${ledger.ambiguous} ambiguous outcomes resolved by re-reading (${ledger.serverErrors} were 5xx), ` +
              `${ledger.fenced} PATCHes fenced, ${ledger.invalidTransitions} invalid transitions`,
          ].join('\n'),
        );

        expect(run.kills).toBe(KILLS);
        expect(ledger.unexpected).toEqual([]);
        expect(missing).toEqual([]);
        expect(duplicates).toEqual([]);
        expect(violations).toEqual([]);
        expect(jobs.length).toBe(ledger.submits.length);
        expect(ledger.serverErrors).toBe(0);
        expect(shipped + deadLettered).toBe(jobs.length);
        expect(shipped).toBeGreaterThan(0);
      } finally {
        await store.close();
      }
    },
    TEST_BOUND_MS,
  );
});
