/**
 * The zod document and input schemas: valid fixtures pass, a missing `productId` and
 * bad enum values fail at the right path, unknown fields are rejected, and SubmitInput
 * applies the defaults API.md documents.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import * as S from '../../runtime/schemas.js';
import {
  makeArtifact,
  makeEvent,
  makeFactory,
  makeJob,
  makeLease,
  makeProfile,
  makeRun,
} from '../support/docs.js';

type Issue = { path: PropertyKey[]; code: string };

/** The issues of a failed parse; throws if the parse succeeded. */
function issuesOf(schema: z.ZodType, value: unknown): Issue[] {
  const r = schema.safeParse(value);
  if (r.success) throw new Error(`expected ${JSON.stringify(value).slice(0, 200)} to fail`);
  return r.error.issues as Issue[];
}

const without = (doc: object, key: string): Record<string, unknown> => {
  const copy: Record<string, unknown> = { ...doc };
  delete copy[key];
  return copy;
};

interface DocCase {
  name: string;
  schema: z.ZodType;
  build: () => object;
  /** [field, bad value] pairs that must fail at exactly `[field]`. */
  bad: Array<[string, unknown]>;
}

const DOCS: DocCase[] = [
  {
    name: 'JobDoc',
    schema: S.JobDoc,
    build: () => makeJob(),
    bad: [
      ['stage', 'done'],
      ['priority', 'urgent'],
      ['depsMode', 'maybe'],
      ['kind', 'tree'],
      ['deadReason', 'tired'],
      ['leaseEpoch', -1],
      ['createdAt', '2026-01-01'],
    ],
  },
  {
    name: 'RunDoc',
    schema: S.RunDoc,
    build: () => makeRun(),
    bad: [
      ['exit', 'vanished'],
      ['attempt', 0],
    ],
  },
  {
    name: 'LeaseDoc',
    schema: S.LeaseDoc,
    build: () => makeLease(),
    bad: [
      ['status', 'stolen'],
      ['leaseEpoch', 1.5],
    ],
  },
  {
    name: 'FactoryDoc',
    schema: S.FactoryDoc,
    build: () => makeFactory(),
    bad: [
      ['health', 'sleepy'],
      ['heartbeatIntervalMs', 0],
    ],
  },
  {
    // ProfileDoc has no enum: a bad version and an empty name stand in.
    name: 'ProfileDoc',
    schema: S.ProfileDoc,
    build: () => makeProfile(),
    bad: [
      ['version', 0],
      ['name', ''],
    ],
  },
  {
    // EventDoc has no enum either (type is a non-empty string).
    name: 'EventDoc',
    schema: S.EventDoc,
    build: () => makeEvent(),
    bad: [
      ['seq', 0],
      ['type', ''],
      ['at', 'yesterday'],
    ],
  },
  {
    name: 'ArtifactDoc',
    schema: S.ArtifactDoc,
    build: () => makeArtifact(),
    bad: [
      ['uri', ''],
      ['leaseEpoch', -1],
    ],
  },
];

describe.each(DOCS.map((c) => [c.name, c] as const))('%s', (_name, c) => {
  it('a fixture from the builder passes', () => {
    const doc = c.build();
    expect(c.schema.safeParse(doc).success).toBe(true);
  });

  it('a doc without productId fails at ["productId"]', () => {
    const base = c.build();
    const issues = issuesOf(c.schema, without(base, 'productId'));
    expect(issues.map((i) => i.path)).toEqual([['productId']]);
  });

  it('an empty productId fails at ["productId"]', () => {
    const issues = issuesOf(c.schema, { ...c.build(), productId: '' });
    expect(issues.map((i) => i.path)).toEqual([['productId']]);
  });

  it.each(c.bad)('a bad %s (%j) fails at exactly that field', (field, value) => {
    const issues = issuesOf(c.schema, { ...c.build(), [field]: value });
    expect(issues.map((i) => i.path)).toEqual([[field]]);
  });

  it('an unknown field is rejected', () => {
    const issues = issuesOf(c.schema, { ...c.build(), surprise: 1 });
    expect(issues).toHaveLength(1);
    expect(issues[0]?.code).toBe('unrecognized_keys');
  });
});

describe('a bad enum value fails with one invalid_value issue at the field', () => {
  it.each([
    ['JobDoc', 'stage', 'done', S.JobDoc, () => makeJob()],
    ['RunDoc', 'exit', 'vanished', S.RunDoc, () => makeRun()],
    ['LeaseDoc', 'status', 'stolen', S.LeaseDoc, () => makeLease()],
    ['FactoryDoc', 'health', 'sleepy', S.FactoryDoc, () => makeFactory()],
  ] as const)('%s.%s = %j', (_doc, field, value, schema, build) => {
    const issues = issuesOf(schema, { ...build(), [field]: value });
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toEqual([field]);
    expect(issues[0]?.code).toBe('invalid_value');
  });

  it('every stage, priority, dead reason and run exit is accepted', () => {
    for (const stage of S.Stage.options)
      expect(S.JobDoc.safeParse(makeJob({ stage })).success).toBe(true);
    for (const priority of S.Priority.options) {
      expect(S.JobDoc.safeParse(makeJob({ priority })).success).toBe(true);
    }
    for (const deadReason of S.DeadReason.options) {
      expect(S.JobDoc.safeParse(makeJob({ deadReason })).success).toBe(true);
    }
    for (const exit of S.RunExit.options)
      expect(S.RunDoc.safeParse(makeRun({ exit })).success).toBe(true);
  });
});

describe('SubmitInput', () => {
  const minimal = { idempotencyKey: 'k', bodyMd: 'b' };
  const DEFAULT_RETRY = {
    max: 3,
    backoff: 'exponential',
    delayMs: 1000,
    maxDelayMs: 300_000,
    on: ['transient'],
  };

  it('applies the API defaults to a minimal submission', () => {
    const v = S.SubmitInput.parse(minimal);
    expect(v.priority).toBe('medium');
    expect(v.capabilities).toEqual([]);
    expect(v.deps).toEqual([]);
    expect(v.depsMode).toBe('hard');
    expect(v.kind).toBe('leaf');
    expect(v.parentId).toBeNull();
    expect(v.manifestSnapshot).toEqual({});
  });

  it('fills every retry default from an empty retry object', () => {
    expect(S.SubmitInput.parse({ ...minimal, retry: {} }).retry).toEqual(DEFAULT_RETRY);
    expect(S.SubmitInput.parse({ ...minimal, retry: { max: 0 } }).retry).toEqual({
      ...DEFAULT_RETRY,
      max: 0,
    });
  });

  it('applies the retry default (API.md: max 3, exponential, 1000, 300000, [transient]) when retry is omitted', () => {
    expect(S.SubmitInput.parse(minimal).retry).toEqual(DEFAULT_RETRY);
  });

  it('rejects unknown fields, at the top and inside nested objects', () => {
    expect(issuesOf(S.SubmitInput, { ...minimal, productId: 'p' })[0]?.code).toBe(
      'unrecognized_keys',
    );
    expect(issuesOf(S.SubmitInput, { ...minimal, retry: { tries: 1 } })[0]?.path).toEqual([
      'retry',
    ]);
    expect(issuesOf(S.SubmitInput, { ...minimal, budget: { minutes: 1 } })[0]?.path).toEqual([
      'budget',
    ]);
  });

  it.each([
    ['an empty idempotencyKey', 'idempotencyKey', ''],
    ['an idempotencyKey of 201 chars', 'idempotencyKey', 'k'.repeat(201)],
    ['priority "urgent"', 'priority', 'urgent'],
    ['depsMode "maybe"', 'depsMode', 'maybe'],
    ['a capability with a space', 'capabilities', ['has space']],
  ] as const)('rejects %s at that field', (_what, field, value) => {
    const issues = issuesOf(S.SubmitInput, { ...minimal, [field]: value });
    expect(issues[0]?.path[0]).toBe(field);
  });

  it('requires bodyMd and idempotencyKey', () => {
    expect(issuesOf(S.SubmitInput, { idempotencyKey: 'k' }).map((i) => i.path)).toEqual([
      ['bodyMd'],
    ]);
    expect(issuesOf(S.SubmitInput, { bodyMd: 'b' }).map((i) => i.path)).toEqual([
      ['idempotencyKey'],
    ]);
  });

  it('accepts ISO-8601 wall budgets and rejects other strings', () => {
    for (const wall of ['PT2H', 'PT30M', 'P1DT2H', 'PT1.5S', 'P2D']) {
      expect(S.SubmitInput.safeParse({ ...minimal, budget: { wall } }).success, wall).toBe(true);
    }
    for (const wall of ['2h', 'P', 'PT', 'PT2', 'P1H']) {
      expect(S.SubmitInput.safeParse({ ...minimal, budget: { wall } }).success, wall).toBe(false);
    }
  });
});
