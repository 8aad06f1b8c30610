import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  asJobEvent,
  eventId,
  JOB_EVENT_TYPES,
  type JobEventData,
  type JobEventType,
  runId,
} from '../../runtime/events.js';
import {
  canonicalStream,
  INITIAL_INSIGHT_TOTALS,
  INITIAL_STAGE_COUNTS,
  INITIAL_TIMELINE,
  LiveProjections,
  type ProjectionsSnapshot,
  rebuildAll,
  rebuildInsightTotals,
  rebuildStageCounts,
  rebuildTimelines,
  reduceInsightTotals,
  reduceStageCounts,
  reduceTimeline,
  STAGES,
  timelineEntries,
} from '../../runtime/projections.js';
import type { EventDoc, Stage, Usage } from '../../runtime/types.js';

// ---------------------------------------------------------------------------
// Building events
// ---------------------------------------------------------------------------

const T0 = Date.parse('2026-03-01T00:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

const zeroUsage = (): Usage => ({
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

/** A stored event document of `type`, its `data` typed by the type. */
function ev<K extends JobEventType>(
  productId: string,
  jobId: string,
  seq: number,
  type: K,
  data: JobEventData[K],
  actor: string | null = null,
): EventDoc {
  return {
    id: eventId(jobId, seq),
    productId,
    jobId,
    seq,
    type,
    at: iso(T0 + seq * 1000),
    actor,
    // JobEventData members are interfaces (no index signature); EventDoc stores plain JSON.
    data: { ...data } as Record<string, unknown>,
  };
}

/** Builds one job's events in seq order, tracking stage and epoch like the coordinator. */
class JobStream {
  readonly events: EventDoc[] = [];
  stage: Stage = 'queued';
  epoch = 0;
  attempt = 0;
  constructor(
    readonly productId: string,
    readonly jobId: string,
  ) {}

  #push<K extends JobEventType>(
    type: K,
    to: Stage,
    extra: Omit<JobEventData[K], 'from' | 'to' | 'leaseEpoch'>,
    actor: string | null = null,
  ): this {
    const data = { ...extra, from: this.stage, to, leaseEpoch: this.epoch } as JobEventData[K];
    this.events.push(ev(this.productId, this.jobId, this.events.length + 1, type, data, actor));
    this.stage = to;
    return this;
  }

  submitted(to: 'queued' | 'blocked' = 'queued'): this {
    this.stage = to;
    return this.#push('submitted', to, { version: 1 }, 'submitter');
  }
  superseded(version: number): this {
    return this.#push('superseded', this.stage, { version }, 'submitter');
  }
  blocked(): this {
    return this.#push('blocked', 'blocked', {});
  }
  unblocked(): this {
    return this.#push('unblocked', 'queued', {});
  }
  claimed(factoryId: string): this {
    this.epoch += 1;
    this.attempt += 1;
    return this.#push(
      'claimed',
      'assigned',
      {
        factoryId,
        attempt: this.attempt,
        runId: runId(this.jobId, this.attempt),
        expiresAt: iso(T0 + 60_000),
      },
      factoryId,
    );
  }
  stageChanged(factoryId: string, to: Stage): this {
    return this.#push('stage_changed', to, { factoryId }, factoryId);
  }
  failed(factoryId: string, to: 'failed' | 'dead_letter'): this {
    return this.#push(
      'failed',
      to,
      {
        factoryId,
        errorClass: 'transient',
        notBefore: to === 'failed' ? iso(T0 + 5000) : null,
        deadReason: to === 'dead_letter' ? 'retries_exhausted' : null,
      },
      factoryId,
    );
  }
  released(factoryId: string): this {
    this.epoch += 1;
    return this.#push('released', 'queued', { factoryId, reason: null }, factoryId);
  }
  leaseExpired(factoryId: string, to: 'queued' | 'dead_letter'): this {
    this.epoch += 1;
    return this.#push('lease_expired', to, {
      factoryId,
      deadReason: to === 'dead_letter' ? 'lease_expired' : null,
    });
  }
  retryDue(): this {
    return this.#push('retry_due', 'queued', {});
  }
  requeued(): this {
    this.attempt = 0;
    return this.#push('requeued', 'queued', {}, 'admin');
  }
  cancelled(): this {
    this.epoch += 1;
    return this.#push(
      'cancelled',
      'dead_letter',
      { deadReason: 'cancelled', reason: null },
      'admin',
    );
  }
  dependencyFailed(): this {
    this.epoch += 1;
    return this.#push('dependency_failed', 'dead_letter', {
      deadReason: 'dependency_failed',
      dependencyId: 'dep-1',
    });
  }
  budgetExceeded(): this {
    this.epoch += 1;
    return this.#push('budget_exceeded', 'dead_letter', {
      deadReason: 'budget_exceeded',
      exceeded: 'usd',
    });
  }
  checkpointSaved(factoryId: string): this {
    return this.#push('checkpoint_saved', this.stage, { factoryId }, factoryId);
  }
  insights(factoryId: string, insights: Usage): this {
    return this.#push(
      'insights_recorded',
      this.stage,
      { factoryId, runId: runId(this.jobId, this.attempt), attempt: this.attempt, insights },
      factoryId,
    );
  }
  artifact(factoryId: string, name: string): this {
    return this.#push(
      'artifact_recorded',
      this.stage,
      { factoryId, artifactId: `${this.jobId}.a.${name}`, name, uri: `blob://x/${name}` },
      factoryId,
    );
  }
}

const counts = (partial: Partial<Record<Stage, number>>): Record<Stage, number> => ({
  ...INITIAL_STAGE_COUNTS,
  ...partial,
});

/** Folds a reducer over typed events (no dedupe: hand-built streams are clean). */
function foldWith<S>(
  reduce: (s: S, e: ReturnType<typeof asJobEvent>) => S,
  init: S,
  docs: EventDoc[],
): S {
  return docs.map(asJobEvent).reduce(reduce, init);
}

// ---------------------------------------------------------------------------
// Random valid streams
// ---------------------------------------------------------------------------

interface StepChoice {
  pick: number;
  usage: Usage;
}

const usageArb: fc.Arbitrary<Usage> = fc.record({
  tokensIn: fc.nat(100_000),
  tokensOut: fc.nat(100_000),
  tokensCached: fc.nat(100_000),
  // Cents and tenths of cents: sums of these are not exact in binary floating point.
  costUsd: fc.nat(100_000).map((n) => n / 1000),
  turns: fc.nat(50),
  toolCalls: fc.nat(200),
  filesChanged: fc.nat(20),
  linesAdded: fc.nat(2000),
  linesDeleted: fc.nat(2000),
});

const stepArb: fc.Arbitrary<StepChoice> = fc.record({ pick: fc.nat(), usage: usageArb });

type Move = (job: JobStream, usage: Usage) => void;
const F = 'factory-1';

/** Moves allowed from each stage (a superset of what the job machine allows is fine). */
const MOVES: Record<Stage, Move[]> = {
  queued: [
    (j) => j.claimed(F),
    (j) => j.blocked(),
    (j) => j.cancelled(),
    (j) => j.superseded(2),
    (j) => j.dependencyFailed(),
  ],
  blocked: [
    (j) => j.unblocked(),
    (j) => j.cancelled(),
    (j) => j.dependencyFailed(),
    (j) => j.superseded(2),
  ],
  assigned: [],
  building: [],
  review: [],
  testing: [],
  shipped: [],
  failed: [(j) => j.retryDue(), (j) => j.requeued(), (j) => j.cancelled()],
  dead_letter: [(j) => j.requeued()],
};
const NEXT_ACTIVE: Record<'assigned' | 'building' | 'review' | 'testing', Stage> = {
  assigned: 'building',
  building: 'review',
  review: 'testing',
  testing: 'shipped',
};
for (const stage of ['assigned', 'building', 'review', 'testing'] as const) {
  MOVES[stage] = [
    (j) => j.stageChanged(F, NEXT_ACTIVE[stage]),
    (j, u) => j.insights(F, u),
    (j, u) => j.insights(F, u),
    (j) => j.checkpointSaved(F),
    (j) => j.artifact(F, 'log'),
    (j) => j.failed(F, 'failed'),
    (j) => j.failed(F, 'dead_letter'),
    (j) => j.released(F),
    (j) => j.leaseExpired(F, 'queued'),
    (j) => j.leaseExpired(F, 'dead_letter'),
    (j) => j.budgetExceeded(),
    (j) => j.cancelled(),
  ];
}

/** A valid stream for one job: submitted, then moves chosen by `steps` until shipped. */
function buildJob(
  productId: string,
  jobId: string,
  blocked: boolean,
  steps: StepChoice[],
): EventDoc[] {
  const job = new JobStream(productId, jobId).submitted(blocked ? 'blocked' : 'queued');
  for (const { pick, usage } of steps) {
    const moves = MOVES[job.stage];
    const move = moves[pick % Math.max(1, moves.length)];
    if (move === undefined) break; // shipped: terminal
    move(job, usage);
  }
  return job.events;
}

const jobsArb = fc.array(
  fc.record({
    product: fc.constantFrom('p1', 'p2'),
    blocked: fc.boolean(),
    steps: fc.array(stepArb, { maxLength: 30 }),
  }),
  { minLength: 1, maxLength: 6 },
);

/** Merges per-job streams into one, keeping each job's order; `picks` choose the job. */
function interleave(streams: EventDoc[][], picks: number[]): EventDoc[] {
  const queues = streams.map((s) => [...s]);
  const out: EventDoc[] = [];
  let i = 0;
  for (;;) {
    const open = queues.filter((q) => q.length > 0);
    if (open.length === 0) return out;
    const q = open[(picks[i % Math.max(1, picks.length)] ?? 0) % open.length];
    const next = q?.shift();
    if (next !== undefined) out.push(next);
    i++;
  }
}

/** Re-delivers copies of earlier events later: (a, b) copies event a to somewhere after it. */
function redeliver(events: EventDoc[], dups: [number, number][]): EventDoc[] {
  const out = [...events];
  for (const [a, b] of dups) {
    if (out.length === 0) break;
    const from = a % out.length;
    const original = out[from];
    if (original === undefined) continue;
    const at = from + 1 + (b % (out.length - from));
    out.splice(at, 0, structuredClone(original));
  }
  return out;
}

const scenarioArb = fc
  .record({
    jobs: jobsArb,
    picks: fc.array(fc.nat(), { maxLength: 50 }),
    dups: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 20 }),
  })
  .map(({ jobs, picks, dups }) => {
    const streams = jobs.map((j, n) => buildJob(j.product, `job-${n}`, j.blocked, j.steps));
    const clean = interleave(streams, picks);
    return { streams, clean, delivered: redeliver(clean, dups) };
  });

function assertNonNegative(snapshot: ProjectionsSnapshot): void {
  for (const byStage of Object.values(snapshot.stageCounts)) {
    for (const stage of STAGES) expect(byStage[stage]).toBeGreaterThanOrEqual(0);
  }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe('timeline', () => {
  it('records every event of a job in seq order with its stage move, actor and epoch', () => {
    const job = new JobStream('p1', 'j1')
      .submitted()
      .claimed('f1')
      .stageChanged('f1', 'building')
      .insights('f1', { ...zeroUsage(), tokensIn: 5 })
      .stageChanged('f1', 'shipped');
    const timeline = timelineEntries(foldWith(reduceTimeline, INITIAL_TIMELINE, job.events));
    expect(timeline).toEqual([
      {
        seq: 1,
        at: iso(T0 + 1000),
        type: 'submitted',
        from: 'queued',
        to: 'queued',
        actor: 'submitter',
        leaseEpoch: 0,
      },
      {
        seq: 2,
        at: iso(T0 + 2000),
        type: 'claimed',
        from: 'queued',
        to: 'assigned',
        actor: 'f1',
        leaseEpoch: 1,
      },
      {
        seq: 3,
        at: iso(T0 + 3000),
        type: 'stage_changed',
        from: 'assigned',
        to: 'building',
        actor: 'f1',
        leaseEpoch: 1,
      },
      {
        seq: 4,
        at: iso(T0 + 4000),
        type: 'insights_recorded',
        from: 'building',
        to: 'building',
        actor: 'f1',
        leaseEpoch: 1,
      },
      {
        seq: 5,
        at: iso(T0 + 5000),
        type: 'stage_changed',
        from: 'building',
        to: 'shipped',
        actor: 'f1',
        leaseEpoch: 1,
      },
    ]);
  });

  it('is pure: the previous state is not mutated', () => {
    const [first, second] = new JobStream('p1', 'j1')
      .submitted()
      .claimed('f1')
      .events.map(asJobEvent);
    if (first === undefined || second === undefined) throw new Error('two events expected');
    const one = reduceTimeline(INITIAL_TIMELINE, first);
    const two = reduceTimeline(one, second);
    expect(one).toHaveLength(1);
    expect(two).toHaveLength(2);
    expect(INITIAL_TIMELINE).toHaveLength(0);
  });

  it('rebuilds per job, whatever the interleaving of jobs', () => {
    const a = new JobStream('p1', 'a').submitted().claimed('f1').events;
    const b = new JobStream('p1', 'b').submitted('blocked').unblocked().events;
    const timelines = rebuildTimelines([a[0], b[0], b[1], a[1]].filter((e) => e !== undefined));
    expect(Object.keys(timelines).sort()).toEqual(['a', 'b']);
    expect(timelines.a?.map((e) => e.type)).toEqual(['submitted', 'claimed']);
    expect(timelines.b?.map((e) => [e.from, e.to])).toEqual([
      ['blocked', 'blocked'],
      ['blocked', 'queued'],
    ]);
  });
});

describe('insight totals', () => {
  it('sums insights_recorded increments and counts runs and attempts', () => {
    const u1: Usage = {
      tokensIn: 100,
      tokensOut: 50,
      tokensCached: 10,
      costUsd: 0.1,
      turns: 1,
      toolCalls: 3,
      filesChanged: 1,
      linesAdded: 10,
      linesDeleted: 2,
    };
    const u2: Usage = {
      tokensIn: 200,
      tokensOut: 70,
      tokensCached: 0,
      costUsd: 0.2,
      turns: 2,
      toolCalls: 4,
      filesChanged: 2,
      linesAdded: 5,
      linesDeleted: 1,
    };
    const job = new JobStream('p1', 'j1')
      .submitted()
      .claimed('f1')
      .insights('f1', u1)
      .leaseExpired('f1', 'queued')
      .claimed('f2')
      .insights('f2', u2)
      .stageChanged('f2', 'building');
    const totals = foldWith(reduceInsightTotals, INITIAL_INSIGHT_TOTALS, job.events);
    expect(totals).toEqual({
      tokensIn: 300,
      tokensOut: 120,
      tokensCached: 10,
      costUsd: 0.1 + 0.2,
      turns: 3,
      toolCalls: 7,
      filesChanged: 3,
      linesAdded: 15,
      linesDeleted: 3,
      runs: 2,
      attempts: 2,
    });
    expect(rebuildInsightTotals(job.events)).toEqual({ j1: totals });
  });

  it('attempts follow the latest claim, runs count every claim (requeue resets attempts)', () => {
    const job = new JobStream('p1', 'j1')
      .submitted()
      .claimed('f1')
      .failed('f1', 'dead_letter')
      .requeued()
      .claimed('f2');
    const totals = foldWith(reduceInsightTotals, INITIAL_INSIGHT_TOTALS, job.events);
    expect(totals.runs).toBe(2);
    expect(totals.attempts).toBe(1);
  });

  it('ignores every other event type', () => {
    const job = new JobStream('p1', 'j1')
      .submitted()
      .superseded(2)
      .blocked()
      .unblocked()
      .cancelled();
    expect(foldWith(reduceInsightTotals, INITIAL_INSIGHT_TOTALS, job.events)).toEqual(
      INITIAL_INSIGHT_TOTALS,
    );
  });
});

describe('stage counts', () => {
  it('adds a submitted job to its stage and moves jobs on from !== to', () => {
    const a = new JobStream('p1', 'a').submitted().claimed('f1').stageChanged('f1', 'building');
    const b = new JobStream('p1', 'b').submitted('blocked');
    const c = new JobStream('p1', 'c')
      .submitted()
      .claimed('f1')
      .stageChanged('f1', 'building')
      .stageChanged('f1', 'review')
      .stageChanged('f1', 'testing')
      .stageChanged('f1', 'shipped');
    const d = new JobStream('p1', 'd').submitted().cancelled();
    const all = [...a.events, ...b.events, ...c.events, ...d.events];
    expect(foldWith(reduceStageCounts, INITIAL_STAGE_COUNTS, all)).toEqual(
      counts({ building: 1, blocked: 1, shipped: 1, dead_letter: 1 }),
    );
  });

  it('does not move on events whose from equals to', () => {
    const job = new JobStream('p1', 'j1').submitted().claimed('f1');
    const before = foldWith(reduceStageCounts, INITIAL_STAGE_COUNTS, job.events);
    job.checkpointSaved('f1').insights('f1', zeroUsage()).artifact('f1', 'diff');
    const after = foldWith(reduceStageCounts, INITIAL_STAGE_COUNTS, job.events);
    expect(after).toEqual(before);
    expect(after).toEqual(counts({ assigned: 1 }));
  });

  it('keeps products apart', () => {
    const a = new JobStream('p1', 'a').submitted().claimed('f1').events;
    const b = new JobStream('p2', 'b').submitted('blocked').events;
    expect(rebuildStageCounts([...a, ...b])).toEqual({
      p1: counts({ assigned: 1 }),
      p2: counts({ blocked: 1 }),
    });
  });
});

describe('every event type', () => {
  it('is accepted by every reducer without throwing', () => {
    const base = { from: 'queued', to: 'queued', leaseEpoch: 1 } as const;
    const data: { [K in JobEventType]: JobEventData[K] } = {
      submitted: { ...base, version: 1 },
      superseded: { ...base, version: 2 },
      blocked: { ...base, to: 'blocked' },
      unblocked: { ...base, from: 'blocked' },
      claimed: {
        ...base,
        to: 'assigned',
        factoryId: F,
        attempt: 1,
        runId: 'r',
        expiresAt: iso(T0),
      },
      stage_changed: { ...base, from: 'assigned', to: 'building', factoryId: F },
      failed: {
        ...base,
        from: 'building',
        to: 'failed',
        factoryId: F,
        errorClass: null,
        notBefore: null,
        deadReason: null,
      },
      released: { ...base, from: 'building', factoryId: F, reason: null },
      lease_expired: { ...base, from: 'building', factoryId: null, deadReason: null },
      retry_due: { ...base, from: 'failed' },
      requeued: { ...base, from: 'dead_letter' },
      cancelled: { ...base, to: 'dead_letter', deadReason: 'cancelled', reason: null },
      dependency_failed: {
        ...base,
        to: 'dead_letter',
        deadReason: 'dependency_failed',
        dependencyId: null,
      },
      budget_exceeded: {
        ...base,
        from: 'building',
        to: 'dead_letter',
        deadReason: 'budget_exceeded',
        exceeded: 'tokens',
      },
      checkpoint_saved: { ...base, from: 'building', to: 'building', factoryId: F },
      insights_recorded: {
        ...base,
        from: 'building',
        to: 'building',
        factoryId: F,
        runId: 'r',
        attempt: 1,
        insights: zeroUsage(),
      },
      artifact_recorded: {
        ...base,
        from: 'building',
        to: 'building',
        factoryId: F,
        artifactId: 'a',
        name: 'n',
        uri: 'u',
      },
    };
    // Start from a state with one job in every stage, so no move can go below zero.
    const full = counts(Object.fromEntries(STAGES.map((s) => [s, 1])));
    for (const type of JOB_EVENT_TYPES) {
      const event = asJobEvent(ev('p1', 'j1', 1, type, data[type]));
      expect(() => reduceTimeline(INITIAL_TIMELINE, event), type).not.toThrow();
      expect(() => reduceInsightTotals(INITIAL_INSIGHT_TOTALS, event), type).not.toThrow();
      expect(() => reduceStageCounts(full, event), type).not.toThrow();
      expect(reduceTimeline(INITIAL_TIMELINE, event).last?.type).toBe(type);
      const live = new LiveProjections();
      expect(live.apply(ev('p1', 'j1', 1, type, data[type]))).toBe('applied');
    }
  });

  it('rejects an unknown event type (the stream is ours) without changing anything', () => {
    const live = new LiveProjections();
    const bogus: EventDoc = {
      ...ev('p1', 'j1', 1, 'retry_due', { from: 'failed', to: 'queued', leaseEpoch: 0 }),
      type: 'teleported' as EventDoc['type'],
    };
    expect(() => live.apply(bogus)).toThrow(TypeError);
    expect(() => rebuildAll([bogus])).toThrow(TypeError);
    expect(live.lastSeq('j1')).toBe(0);
    expect(live.snapshot()).toEqual({ timelines: {}, insightTotals: {}, stageCounts: {} });
  });
});

/** Three jobs of two products, interleaved as the outbox might deliver them. */
function realistic(): { clean: EventDoc[]; streams: EventDoc[][] } {
  const u = (n: number): Usage => ({
    ...zeroUsage(),
    tokensIn: 1000 * n,
    tokensOut: 300 * n,
    costUsd: 0.013 * n,
    turns: n,
    toolCalls: 2 * n,
  });
  const a = new JobStream('p1', 'a')
    .submitted()
    .claimed('f1')
    .stageChanged('f1', 'building')
    .insights('f1', u(1))
    .checkpointSaved('f1')
    .insights('f1', u(2))
    .failed('f1', 'failed')
    .retryDue()
    .claimed('f2')
    .stageChanged('f2', 'building')
    .insights('f2', u(3))
    .artifact('f2', 'diff')
    .stageChanged('f2', 'review')
    .stageChanged('f2', 'testing')
    .stageChanged('f2', 'shipped');
  const b = new JobStream('p1', 'b')
    .submitted('blocked')
    .superseded(2)
    .unblocked()
    .claimed('f3')
    .insights('f3', u(7))
    .leaseExpired('f3', 'queued')
    .claimed('f1')
    .budgetExceeded();
  const c = new JobStream('p2', 'c')
    .submitted()
    .claimed('f4')
    .released('f4')
    .blocked()
    .dependencyFailed();
  const streams = [a.events, b.events, c.events];
  return { streams, clean: interleave(streams, [0, 1, 2, 2, 1, 0, 0, 1, 2, 1, 1, 0, 2]) };
}

describe('live projections', () => {
  it('equal the rebuild on a realistic interleaved stream, at every prefix', () => {
    const { clean } = realistic();
    const live = new LiveProjections();
    clean.forEach((event, i) => {
      expect(live.apply(event)).toBe('applied');
      expect(live.snapshot()).toEqual(rebuildAll(clean.slice(0, i + 1)));
    });
    const snapshot = live.snapshot();
    expect(snapshot.stageCounts).toEqual({
      p1: counts({ shipped: 1, dead_letter: 1 }),
      p2: counts({ dead_letter: 1 }),
    });
    expect(snapshot.insightTotals.a?.runs).toBe(2);
    expect(snapshot.insightTotals.b?.tokensIn).toBe(7000);
    expect(snapshot.timelines.c?.map((e) => e.type)).toEqual([
      'submitted',
      'claimed',
      'released',
      'blocked',
      'dependency_failed',
    ]);
    // Accessors agree with the snapshot.
    expect(live.timeline('a')).toEqual(snapshot.timelines.a);
    expect(live.insightTotals('b')).toEqual(snapshot.insightTotals.b);
    expect(live.stageCounts('p2')).toEqual(snapshot.stageCounts.p2);
    expect(live.timeline('nope')).toEqual([]);
    expect(live.insightTotals('nope')).toEqual(INITIAL_INSIGHT_TOTALS);
    expect(live.stageCounts('nope')).toEqual(INITIAL_STAGE_COUNTS);
  });

  it('ignores re-deliveries: seq at or below the last applied is a no-op', () => {
    const { clean } = realistic();
    const live = new LiveProjections();
    live.applyAll(clean);
    const before = live.snapshot();
    for (const event of clean) expect(live.apply(structuredClone(event))).toBe('duplicate');
    expect(live.snapshot()).toEqual(before);
    expect(live.snapshot()).toEqual(rebuildAll(clean));
    expect(live.lastSeq('a')).toBe(15);
  });

  it('holds an early event until the missing one arrives', () => {
    const [e1, e2, e3] = new JobStream('p1', 'j')
      .submitted()
      .claimed('f1')
      .stageChanged('f1', 'building').events;
    if (e1 === undefined || e2 === undefined || e3 === undefined)
      throw new Error('three events expected');
    const live = new LiveProjections();
    expect(live.apply(e1)).toBe('applied');
    expect(live.apply(e3)).toBe('buffered');
    expect(live.apply(e3)).toBe('duplicate');
    expect(live.waitingCount()).toBe(1);
    expect(live.snapshot()).toEqual(rebuildAll([e1, e3]));
    expect(live.stageCounts('p1')).toEqual(counts({ queued: 1 }));
    expect(live.apply(e2)).toBe('applied');
    expect(live.waitingCount()).toBe(0);
    expect(live.lastSeq('j')).toBe(3);
    expect(live.stageCounts('p1')).toEqual(counts({ building: 1 }));
    expect(live.snapshot()).toEqual(rebuildAll([e1, e2, e3]));
  });

  it('snapshots are copies: mutating one changes nothing', () => {
    const { clean } = realistic();
    const live = new LiveProjections();
    live.applyAll(clean);
    const s = live.snapshot();
    s.timelines.a?.pop();
    if (s.insightTotals.a) s.insightTotals.a.tokensIn = -1;
    if (s.stageCounts.p1) s.stageCounts.p1.shipped = 99;
    expect(live.snapshot()).toEqual(rebuildAll(clean));
  });
});

describe('properties', () => {
  it('live snapshot == rebuild of the deduped stream, for any interleaving and re-delivery', () => {
    fc.assert(
      fc.property(scenarioArb, ({ clean, delivered }) => {
        const live = new LiveProjections();
        for (const event of delivered) {
          live.apply(event);
          assertNonNegative(live.snapshot());
        }
        const rebuilt = rebuildAll(clean);
        expect(live.snapshot()).toEqual(rebuilt);
        expect(live.waitingCount()).toBe(0);
        // Rebuild is itself insensitive to repeats.
        expect(rebuildAll(delivered)).toEqual(rebuilt);
        // And equals the hand fold of each job's own stream by the plain reducers.
        const perJob = new Map<string, EventDoc[]>();
        for (const e of clean) perJob.set(e.jobId, [...(perJob.get(e.jobId) ?? []), e]);
        for (const [jobId, events] of perJob) {
          expect(rebuilt.timelines[jobId]).toEqual(
            timelineEntries(foldWith(reduceTimeline, INITIAL_TIMELINE, events)),
          );
          expect(rebuilt.insightTotals[jobId]).toEqual(
            foldWith(reduceInsightTotals, INITIAL_INSIGHT_TOTALS, events),
          );
        }
      }),
      { numRuns: 300 },
    );
  });

  it('live snapshot == rebuild even when each job’s own events arrive out of order', () => {
    fc.assert(
      fc.property(
        scenarioArb.chain(({ clean, delivered }) =>
          fc.record({
            clean: fc.constant(clean),
            shuffled: fc.shuffledSubarray(delivered, {
              minLength: delivered.length,
              maxLength: delivered.length,
            }),
          }),
        ),
        ({ clean, shuffled }) => {
          const live = new LiveProjections();
          live.applyAll(shuffled);
          expect(live.waitingCount()).toBe(0);
          expect(live.snapshot()).toEqual(rebuildAll(clean));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('stage counts never go negative and sum to the number of jobs, per product', () => {
    fc.assert(
      fc.property(scenarioArb, ({ streams, clean }) => {
        let state = new Map<string, Record<Stage, number>>();
        for (const event of clean.map(asJobEvent)) {
          const next = reduceStageCounts(state.get(event.productId) ?? INITIAL_STAGE_COUNTS, event);
          state = new Map(state).set(event.productId, { ...next });
          for (const stage of STAGES) expect(next[stage]).toBeGreaterThanOrEqual(0);
        }
        const jobsPerProduct = new Map<string, number>();
        for (const s of streams) {
          const p = s[0]?.productId;
          if (p !== undefined) jobsPerProduct.set(p, (jobsPerProduct.get(p) ?? 0) + 1);
        }
        for (const [productId, n] of jobsPerProduct) {
          const byStage = state.get(productId) ?? INITIAL_STAGE_COUNTS;
          expect(STAGES.reduce((sum, s) => sum + byStage[s], 0)).toBe(n);
        }
        expect(rebuildStageCounts(clean)).toEqual(Object.fromEntries(state));
      }),
      { numRuns: 300 },
    );
  });

  it('canonicalStream keeps each job’s events once, in seq order, up to the first gap', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(), ({ delivered }, drop) => {
        const victim = delivered[drop % Math.max(1, delivered.length)];
        const kept = delivered.filter(
          (e) => !(victim && e.jobId === victim.jobId && e.seq === victim.seq),
        );
        const stream = canonicalStream(kept);
        const seen = new Map<string, number>();
        for (const e of stream) {
          expect(e.seq).toBe((seen.get(e.jobId) ?? 0) + 1);
          seen.set(e.jobId, e.seq);
        }
        if (victim) expect(seen.get(victim.jobId) ?? 0).toBe(victim.seq - 1);
      }),
      { numRuns: 100 },
    );
  });
});
