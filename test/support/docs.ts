/**
 * Fixture builders for store documents. Every builder parses its result with the
 * document's zod schema, so a fixture that drifts from `runtime/schemas.ts` fails at
 * once instead of testing a shape the runtime never writes.
 *
 * Times are fixed (from {@link T0}); ids get a random suffix from {@link uid} so tests
 * can share a persistent store without seeing each other's documents.
 */
import { randomUUID } from 'node:crypto';
import { iso, ms } from '../../runtime/clock.js';
import * as S from '../../runtime/schemas.js';
import type {
  ArtifactDoc,
  EventDoc,
  FactoryDoc,
  JobDoc,
  LeaseDoc,
  ProfileDoc,
  RunDoc,
  Usage,
} from '../../runtime/types.js';

/** The fixed origin of fixture times: `2026-01-01T00:00:00.000Z`. */
export const T0 = '2026-01-01T00:00:00.000Z';

/** {@link T0} plus `offsetMs` (negative goes back), as ISO-8601 UTC with milliseconds. */
export const at = (offsetMs: number): string => iso(ms(T0) + offsetMs);

/** A fresh identifier: `prefix-` and 12 random hex digits. Never the same twice. */
export const uid = (prefix: string): string =>
  `${prefix}-${randomUUID().replaceAll('-', '').slice(0, 12)}`;

/** All-zero usage totals. */
export const zeroUsage = (): Usage => ({
  tokensIn: 0,
  tokensOut: 0,
  tokensCached: 0,
  costUsd: 0,
  turns: 0,
  toolCalls: 0,
  filesChanged: 0,
  linesAdded: 0,
  linesDeleted: 0,
});

/** A queued, medium-priority leaf job with no capabilities or deps; `overrides` win. */
export function makeJob(overrides: Partial<JobDoc> = {}): JobDoc {
  const id = overrides.id ?? uid('job');
  return S.JobDoc.parse({
    id,
    productId: 'product-fixture',
    idempotencyKey: `key-${id}`,
    stage: 'queued',
    priority: 'medium',
    capabilities: [],
    deps: [],
    depsMode: 'hard',
    kind: 'leaf',
    parentId: null,
    bodyMd: '# Do the thing\n',
    manifestSnapshot: {},
    budget: null,
    retry: {
      max: 3,
      backoff: 'exponential',
      delayMs: 1000,
      maxDelayMs: 300_000,
      on: ['transient'],
    },
    trackerItemId: null,
    engineClass: null,
    profile: null,
    checkpoint: null,
    attempt: 0,
    failures: 0,
    leaseEpoch: 0,
    holderFactoryId: null,
    leaseExpiresAt: null,
    notBefore: null,
    deadReason: null,
    lastError: null,
    firstClaimedAt: null,
    usage: zeroUsage(),
    run: null,
    createdAt: T0,
    updatedAt: T0,
    version: 1,
    seq: 0,
    contentHash: 'a'.repeat(64),
    dueAt: null,
    rev: 0,
    eventSeq: 0,
    outbox: [],
    machineVersion: 1,
    snapshot: {},
    ...overrides,
  });
}

/** The first run (attempt 1) of a job, still in progress; `overrides` win. */
export function makeRun(overrides: Partial<RunDoc> = {}): RunDoc {
  const jobId = overrides.jobId ?? uid('job');
  const attempt = overrides.attempt ?? 1;
  return S.RunDoc.parse({
    id: `${jobId}.r${attempt}`,
    productId: 'product-fixture',
    jobId,
    attempt,
    factoryId: 'factory-1',
    leaseEpoch: 1,
    engine: null,
    startedAt: T0,
    endedAt: null,
    exit: null,
    verifyResult: null,
    result: null,
    error: null,
    insights: zeroUsage(),
    model: null,
    rev: 1,
    ...overrides,
  });
}

/** A held lease at epoch 1, expiring a minute after {@link T0}; `overrides` win. */
export function makeLease(overrides: Partial<LeaseDoc> = {}): LeaseDoc {
  const jobId = overrides.jobId ?? uid('job');
  return S.LeaseDoc.parse({
    id: jobId,
    productId: 'product-fixture',
    jobId,
    holderFactoryId: 'factory-1',
    leaseEpoch: 1,
    expiresAt: at(60_000),
    renewals: 0,
    status: 'held',
    rev: 1,
    ...overrides,
  });
}

/** A healthy factory without capabilities, beating every 5 s; `overrides` win. */
export function makeFactory(overrides: Partial<FactoryDoc> = {}): FactoryDoc {
  const id = overrides.id ?? uid('factory');
  return S.FactoryDoc.parse({
    id,
    productId: 'product-fixture',
    factoryId: id,
    descriptor: {},
    capabilities: [],
    health: 'ok',
    load: 0,
    seatLimit: null,
    heartbeatIntervalMs: 5000,
    lastHeartbeatAt: T0,
    registeredAt: T0,
    ...overrides,
  });
}

/** Version 1 of a profile; `overrides` win. */
export function makeProfile(overrides: Partial<ProfileDoc> = {}): ProfileDoc {
  return S.ProfileDoc.parse({
    id: overrides.id ?? uid('profile'),
    productId: 'product-fixture',
    name: 'default',
    version: 1,
    snapshot: { engine: 'test' },
    createdAt: T0,
    ...overrides,
  });
}

/** Event `seq` 1 (`submitted`) of a job, id as the runtime derives it; `overrides` win. */
export function makeEvent(overrides: Partial<EventDoc> = {}): EventDoc {
  const jobId = overrides.jobId ?? uid('job');
  const seq = overrides.seq ?? 1;
  return S.EventDoc.parse({
    id: `${jobId}.e${String(seq).padStart(10, '0')}`,
    productId: 'product-fixture',
    jobId,
    seq,
    type: 'submitted',
    at: at(seq),
    actor: null,
    data: { from: 'queued', to: 'queued', leaseEpoch: 0, version: 1 },
    ...overrides,
  });
}

/** A log artifact pointer written at epoch 1; `overrides` win. */
export function makeArtifact(overrides: Partial<ArtifactDoc> = {}): ArtifactDoc {
  return S.ArtifactDoc.parse({
    id: overrides.id ?? uid('artifact'),
    productId: 'product-fixture',
    jobId: overrides.jobId ?? uid('job'),
    name: 'log',
    uri: 'blob://fixtures/log.txt',
    contentType: 'text/plain',
    bytes: 42,
    sha256: null,
    leaseEpoch: 1,
    factoryId: 'factory-1',
    createdAt: T0,
    ...overrides,
  });
}
