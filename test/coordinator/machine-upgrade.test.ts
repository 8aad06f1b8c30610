/**
 * A job machine upgrade on a real database: the committed v1 fixture
 * (test/fixtures/sqlite-schema-v1.db, job machine version 1) opened by a build whose job
 * machine is version 2 — made here: it gains a context field (`claims`, counted on every
 * claim) and a state (`parked`) — with a migration v1 → v2. Every job is readable,
 * claimable (through the sweep where it must be) and keeps its history; a migrated job's
 * next write stores version 2; the hot-job cache never serves a snapshot of the wrong
 * version. Without a path (a newer version, or a registry with a gap) the job is refused
 * or the coordinator does not start.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type AnyStateMachine, assign } from 'xstate';
import { openSqliteStore, type SqliteStore } from '../../adapters/store/sqlite/index.js';
import {
  type JobContext,
  type JobInput,
  jobMachine,
  jobMachineSetup,
  type SnapshotMigrations,
} from '../../machines/index.js';
import { SimulatedClock } from '../../runtime/clock.js';
import { Coordinator } from '../../runtime/coordinator.js';
import { isFleetError, unwrap } from '../../runtime/errors.js';
import type { ClaimGrant, EventDoc, JobDoc } from '../../runtime/types.js';
import { jobViolations } from '../support/invariants.js';

const FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/sqlite-schema-v1.db');
const P = 'fixture';

type V2Context = JobContext & { claims: number };

const v1Context = jobMachine.config.context as unknown as (a: { input: JobInput }) => JobContext;
const queued = jobMachine.config.states?.queued as { on: Record<string, unknown> };

/** Version 2 of the job machine: `claims` in the context, and a `parked` state. */
const jobMachineV2 = jobMachineSetup.createMachine({
  ...jobMachine.config,
  context: (args: { input: JobInput }) => ({ ...v1Context(args), claims: 0 }),
  states: {
    ...jobMachine.config.states,
    queued: {
      ...queued,
      on: {
        ...queued.on,
        CLAIM: {
          guard: 'notBeforePassed',
          target: 'assigned',
          actions: [
            'claim',
            'openRun',
            assign(({ context }: { context: V2Context }) => ({ claims: context.claims + 1 })),
          ],
        },
        PARK: { target: 'parked' },
      },
    },
    parked: { on: { UNPARK: { target: 'queued' } } },
  },
} as never) as unknown as AnyStateMachine;

const migrateV1 = vi.fn((s: { value: unknown; context: Record<string, unknown> }) => {
  // Every claim so far was an attempt (a given-back claim undid its attempt).
  s.context.claims = s.context.attempt;
  return s;
});

const V2: SnapshotMigrations = {
  version: 2,
  migrations: [
    { from: 1, description: 'context.claims, counted from attempt', migrate: migrateV1 },
  ],
};

const dirs: string[] = [];
const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  migrateV1.mockClear();
});

function copyOfFixture(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-machine-upgrade-'));
  dirs.push(dir);
  const path = join(dir, 'fleet.db');
  copyFileSync(FIXTURE, path);
  return path;
}

interface Before {
  jobs: Map<string, JobDoc>;
  events: Map<string, Array<Pick<EventDoc, 'seq' | 'type' | 'at'>>>;
}

function readFixture(path: string): Before {
  const raw = new Database(path, { readonly: true });
  const jobs = new Map<string, JobDoc>();
  for (const { json } of raw.prepare('SELECT json FROM jobs').all() as Array<{ json: string }>) {
    const job = JSON.parse(json) as JobDoc;
    jobs.set(job.idempotencyKey, job);
  }
  const events = new Map<string, Array<Pick<EventDoc, 'seq' | 'type' | 'at'>>>();
  for (const job of jobs.values()) {
    const rows = raw
      .prepare('SELECT json FROM events WHERE pk = ? ORDER BY seq')
      .pluck()
      .all(job.id) as string[];
    events.set(
      job.id,
      rows.map((r) => {
        const e = JSON.parse(r) as EventDoc;
        return { seq: e.seq, type: e.type, at: e.at };
      }),
    );
  }
  raw.close();
  return { jobs, events };
}

function open(
  path: string,
  at: string,
): { store: SqliteStore; clock: SimulatedClock; fleet: Coordinator } {
  const store = openSqliteStore({ path });
  stores.push(store);
  const clock = new SimulatedClock(Date.parse(at));
  const fleet = new Coordinator({
    store,
    clock,
    random: () => 0.5,
    machine: jobMachineV2,
    machineVersions: V2,
  });
  return { store, clock, fleet };
}

const contextOf = (job: JobDoc): V2Context => (job.snapshot as { context: V2Context }).context;

describe('a v1 database opened by a build whose job machine is version 2', () => {
  it('every job is readable, claimable and keeps its history; writes store version 2', async () => {
    const path = copyOfFixture();
    const before = readFixture(path);
    expect(before.jobs.size).toBe(8);
    for (const job of before.jobs.values()) expect(job.machineVersion).toBe(1);
    const { store, clock, fleet } = open(path, '2026-01-01T00:00:30.000Z');
    const byKey = (key: string): JobDoc => before.jobs.get(key) as JobDoc;

    // Readable: every job as stored (a read changes nothing), every event kept.
    for (const job of before.jobs.values()) {
      const read = unwrap(await fleet.getJob(P, job.id));
      expect(read.stage).toBe(job.stage);
      expect(read.machineVersion).toBe(1);
      const events = unwrap(await fleet.listEvents(P, job.id, { limit: 100 }));
      expect(events.items.map((e) => ({ seq: e.seq, type: e.type, at: e.at }))).toEqual(
        before.events.get(job.id),
      );
    }

    // The holder of the v1 `building` job goes on under its lease: fenced as before.
    const building = byKey('building');
    const holder = { factoryId: 'factory-1', leaseEpoch: building.leaseEpoch };
    const stale = await fleet.transition(P, building.id, {
      ...holder,
      leaseEpoch: building.leaseEpoch - 1,
      to: 'review',
    });
    expect(!stale.ok && stale.error.code).toBe('FENCED');
    const moved = unwrap(await fleet.transition(P, building.id, { ...holder, to: 'review' }));
    expect(migrateV1).toHaveBeenCalled();
    expect(moved.machineVersion).toBe(2);
    expect(moved.stage).toBe('review');
    expect(contextOf(moved)).toMatchObject({ claims: 1, attempt: 1, leaseEpoch: 1, renewals: 1 });
    expect(moved.checkpoint).toEqual(building.checkpoint);
    expect(moved.usage).toEqual(building.usage);
    // Its next write is served by the hot-job cache (no read, no migration).
    migrateV1.mockClear();
    const reads = vi.spyOn(store.jobs, 'read');
    const tested = unwrap(await fleet.transition(P, building.id, { ...holder, to: 'testing' }));
    expect(reads).not.toHaveBeenCalled();
    reads.mockRestore();
    expect(migrateV1).not.toHaveBeenCalled();
    expect(tested.machineVersion).toBe(2);
    expect(contextOf(tested).claims).toBe(1);

    // A day later: the sweep reaps the expired v1 lease and retries the failed job; the
    // cancelled one is requeued; each is migrated on its way.
    clock.set(Date.parse('2026-01-02T00:00:00.000Z'));
    const report = await fleet.sweep();
    expect(report).toMatchObject({ reaped: 2, retried: 1, failedJobs: 0 });
    unwrap(await fleet.requeue(P, byKey('cancelled').id));

    // Claimable: every job that is not shipped, in the queue's order, on a fresh factory.
    const claimed = new Map<string, ClaimGrant>();
    const claimAll = async (): Promise<void> => {
      for (;;) {
        const g = unwrap(
          await fleet.claimNextJob(P, { factoryId: 'factory-2', capabilities: ['node', 'gpu'] }),
        );
        if (g === null) return;
        claimed.set(g.job.idempotencyKey, g);
      }
    };
    await claimAll();
    expect([...claimed.keys()].sort()).toEqual(
      ['assigned', 'building', 'cancelled', 'dep-of-blocked', 'failed', 'queued'].sort(),
    );
    // The blocked job waits for its dep; shipping the dep frees it.
    const dep = claimed.get('dep-of-blocked') as ClaimGrant;
    const depHolder = { factoryId: 'factory-2', leaseEpoch: dep.lease.leaseEpoch };
    for (const to of ['building', 'review', 'testing', 'shipped'] as const) {
      unwrap(await fleet.transition(P, dep.job.id, { ...depHolder, to }));
    }
    await claimAll();
    expect(claimed.has('blocked')).toBe(true);

    for (const [key, g] of claimed) {
      const job = unwrap(await fleet.getJob(P, g.job.id));
      const was = byKey(key);
      expect(job.machineVersion, key).toBe(2);
      expect(job.stage, key).toBe(key === 'dep-of-blocked' ? 'shipped' : 'assigned');
      // The migration counted the v1 claims; the v2 claim added one.
      expect(contextOf(job).claims, key).toBe(job.attempt);
      expect(job.attempt, key).toBe(was.attempt + 1);
      expect(job.leaseEpoch, key).toBeGreaterThan(was.leaseEpoch);
      expect(job.bodyMd, key).toBe(was.bodyMd);
      expect(job.createdAt, key).toBe(was.createdAt);
      // History: the v1 events first, then the new ones, gap-free.
      const events = unwrap(await fleet.listEvents(P, job.id, { limit: 100 })).items;
      const old = before.events.get(job.id) ?? [];
      expect(
        events.slice(0, old.length).map((e) => ({ seq: e.seq, type: e.type, at: e.at })),
        key,
      ).toEqual(old);
      expect(
        events.map((e) => e.seq),
        key,
      ).toEqual(events.map((_, i) => i + 1));
      expect(events.length, key).toBe(job.eventSeq);
      expect(await jobViolations(store, job), key).toEqual([]);
    }
    // The shipped v1 job was never written: still version 1, as it was.
    expect(unwrap(await fleet.getJob(P, byKey('shipped').id))).toEqual(byKey('shipped'));
  });

  it('a job rewritten at version 1 after this process cached it is migrated, not served stale', async () => {
    const path = copyOfFixture();
    const before = readFixture(path);
    const { store, fleet } = open(path, '2026-01-01T00:00:30.000Z');
    const queuedJob = before.jobs.get('queued') as JobDoc;
    const g = unwrap(await fleet.claimNextJob(P, { factoryId: 'factory-2' }));
    expect(g?.job.id).toBe(queuedJob.id);
    const grant = g as ClaimGrant;
    expect(grant.job.machineVersion).toBe(2);
    // An older process (still on version 1) writes the job: same state, v1 snapshot,
    // a renewal it counted on its own.
    const cur = unwrap(await fleet.getJob(P, queuedJob.id));
    const { _etag, ...doc } = cur;
    const { claims: _claims, ...v1 } = contextOf(cur);
    await store.jobs.replace(
      {
        ...doc,
        machineVersion: 1,
        snapshot: { ...cur.snapshot, context: { ...v1, renewals: 5 } },
      },
      _etag,
    );
    migrateV1.mockClear();
    const holder = { factoryId: 'factory-2', leaseEpoch: grant.lease.leaseEpoch };
    const built = unwrap(await fleet.transition(P, queuedJob.id, { ...holder, to: 'building' }));
    expect(migrateV1).toHaveBeenCalledTimes(1);
    expect(built.machineVersion).toBe(2);
    expect(contextOf(built)).toMatchObject({ claims: 1, attempt: 1, renewals: 5 });
  });

  it('new jobs, one at a time or in a batch, are written at version 2 and claimed as such', async () => {
    const { fleet } = open(copyOfFixture(), '2026-01-01T00:00:30.000Z');
    const one = unwrap(await fleet.submit(P, { idempotencyKey: 'new-one', bodyMd: 'x' }));
    const many = unwrap(
      await fleet.submitMany(P, [
        { idempotencyKey: 'new-many', bodyMd: 'y', priority: 'critical' },
      ]),
    );
    const batched = many[0];
    expect(batched?.ok).toBe(true);
    const created = [one.job, batched?.ok ? batched.value.job : undefined];
    for (const job of created) {
      expect(job?.machineVersion).toBe(2);
      expect(contextOf(job as JobDoc).claims).toBe(0);
    }
    const g = unwrap(await fleet.claimNextJob(P, { factoryId: 'factory-9' }));
    expect(g?.job.idempotencyKey).toBe('new-many');
    expect(contextOf(g?.job as JobDoc).claims).toBe(1);
  });

  it('a version newer than the build is refused with SNAPSHOT_VERSION and left as it is', async () => {
    const path = copyOfFixture();
    const before = readFixture(path);
    const { store, fleet } = open(path, '2026-01-01T00:00:30.000Z');
    const job = before.jobs.get('queued') as JobDoc;
    const cur = unwrap(await fleet.getJob(P, job.id));
    const { _etag, ...doc } = cur;
    const poisoned = await store.jobs.replace({ ...doc, machineVersion: 3 }, _etag);
    const r = await fleet.cancel(P, job.id);
    expect(!r.ok && r.error.code).toBe('SNAPSHOT_VERSION');
    expect(!r.ok && r.error.detail).toContain('version 3');
    expect(unwrap(await fleet.getJob(P, job.id))).toEqual(poisoned);
  });
});

describe('the coordinator checks its machine versions at start', () => {
  it('refuses a registry with a missing step (VALIDATION), and starts on a complete one', () => {
    const store = { kind: 'memory' } as never;
    let caught: unknown;
    try {
      new Coordinator({
        store,
        machine: jobMachineV2,
        machineVersions: { version: 3, migrations: V2.migrations },
      });
    } catch (e) {
      caught = e;
    }
    expect(isFleetError(caught, 'VALIDATION')).toBe(true);
    expect(String((caught as Error).message)).toContain('no migration from version 2 to 3');
    expect(
      () => new Coordinator({ store, machine: jobMachineV2, machineVersions: V2 }),
    ).not.toThrow();
  });
});
