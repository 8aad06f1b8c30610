/**
 * The job lifecycle as an XState v5 machine.
 *
 * ```
 *            DEPS_MET
 *  blocked ◄──────────► queued ──CLAIM──► assigned ─BUILD─► building ─REVIEW─► review ─TEST─► testing ─SHIP─► shipped
 *            DEPS_UNMET    ▲                  │                  ▲    ◄──BUILD── review    ◄──BUILD── testing
 *                          │ RETRY_DUE        │ FAIL (retry left, retryable)
 *                        failed ◄─────────────┘ (from any active stage)
 *    every non-terminal stage ──CANCEL / DEPENDENCY_FAILED / BUDGET_EXCEEDED──► dead_letter ──REQUEUE──► queued|blocked
 * ```
 *
 * Pure: no I/O, no clock. Time arrives in events (`now`, `expiresAt`, `retryAt`, all ms
 * since the epoch) and facts the machine cannot know (are the deps met? is this error
 * class retryable?) arrive as event fields computed by the runtime.
 *
 * Fencing lives in the guards: a worker event (BUILD, REVIEW, TEST, SHIP, FAIL, RENEW,
 * RELEASE, RECORD, GIVE_BACK) is accepted only when its `leaseEpoch` equals the context's and its
 * `factoryId` is the holder. Every end of a lease (ship, fail, release, expiry, cancel,
 * budget, dependency failure) increments `leaseEpoch`, as does every claim, so a zombie
 * holder is rejected forever after.
 *
 * Effects are named actions (`openRun`, `closeRun`, `notifyDependents`) with empty
 * bodies: `transition()` returns them and the runtime carries them out after the job
 * write succeeded. A rejected event returns the same snapshot object.
 *
 * This module imports nothing from the project (layer rule).
 */
import { and, assign, not, setup } from 'xstate';

/**
 * Bump when a state is renamed or the context changes shape, and add the migration from
 * the previous version to `JOB_SNAPSHOT_MIGRATIONS` (snapshot-migrations.ts).
 */
export const JOB_MACHINE_VERSION = 1;

export type JobDeadReason =
  | 'retries_exhausted'
  | 'non_retryable'
  | 'lease_expired'
  | 'budget_exceeded'
  | 'dependency_failed'
  | 'cancelled';

export type JobRunExit =
  | 'shipped'
  | 'failed'
  | 'lease_expired'
  | 'released'
  | 'cancelled'
  | 'budget_exceeded'
  | 'dependency_failed';

export interface JobContext {
  /** Fencing token: +1 on every claim and every end of a lease. */
  leaseEpoch: number;
  /** Factory holding the lease, or null. */
  holder: string | null;
  /** Lease expiry (ms since epoch), or null when no lease is held. */
  leaseExpiresAt: number | null;
  /** Renewals of the current lease. */
  renewals: number;
  /** Claims so far (the attempt number of the latest run). */
  attempt: number;
  /** Attempts that ended badly (FAIL or LEASE_EXPIRED); bounded by `maxRetries`. */
  failures: number;
  /** `retry.max`: retries allowed after the first failure-free attempt. */
  maxRetries: number;
  /** A failed job is retried no earlier than this (ms). */
  notBefore: number | null;
  deadReason: JobDeadReason | null;
  /** Time of the first claim since submission or the last requeue (wall budget). */
  firstClaimedAt: number | null;
  /** Content revision: +1 per supersede. */
  revision: number;
  /** Time of the last accepted worker write (ms). */
  lastWriteAt: number | null;
}

export interface JobInput {
  maxRetries: number;
}

interface WorkerFields {
  factoryId: string;
  leaseEpoch: number;
  now: number;
}

export type JobMachineEvent =
  | { type: 'DEPS_MET' }
  | { type: 'DEPS_UNMET' }
  | { type: 'CLAIM'; factoryId: string; now: number; expiresAt: number }
  | ({ type: 'BUILD' } & WorkerFields)
  | ({ type: 'REVIEW' } & WorkerFields)
  | ({ type: 'TEST' } & WorkerFields)
  | ({ type: 'SHIP' } & WorkerFields)
  | ({ type: 'FAIL'; retryable: boolean; retryAt: number } & WorkerFields)
  | ({ type: 'RENEW'; expiresAt: number } & WorkerFields)
  | ({ type: 'RELEASE'; depsMet: boolean } & WorkerFields)
  | ({ type: 'RECORD' } & WorkerFields)
  /**
   * A claim handed back at once, as if it had not happened (a factory found over its
   * seat limit because two processes granted its last seat together): no attempt is
   * counted and the wall clock is as before the claim (`firstClaimedAt`, the value the
   * claim found).
   */
  | ({ type: 'GIVE_BACK'; firstClaimedAt: number | null } & WorkerFields)
  | { type: 'LEASE_EXPIRED'; now: number; depsMet: boolean }
  | { type: 'RETRY_DUE'; now: number; depsMet: boolean }
  | { type: 'SUPERSEDE'; depsMet: boolean; maxRetries: number }
  | { type: 'REQUEUE'; depsMet: boolean }
  | { type: 'CANCEL' }
  | { type: 'DEPENDENCY_FAILED' }
  | { type: 'BUDGET_EXCEEDED' };

export type JobMachineEventType = JobMachineEvent['type'];

/** Events sent by the lease holder; all carry `factoryId` and `leaseEpoch` and are fenced. */
export const WORKER_EVENT_TYPES = [
  'BUILD',
  'REVIEW',
  'TEST',
  'SHIP',
  'FAIL',
  'RENEW',
  'RELEASE',
  'RECORD',
  'GIVE_BACK',
] as const satisfies readonly JobMachineEventType[];

/** Every event type the machine knows (the model-based tests cover each). */
export const JOB_MACHINE_EVENT_TYPES = [
  'DEPS_MET',
  'DEPS_UNMET',
  'CLAIM',
  ...WORKER_EVENT_TYPES,
  'LEASE_EXPIRED',
  'RETRY_DUE',
  'SUPERSEDE',
  'REQUEUE',
  'CANCEL',
  'DEPENDENCY_FAILED',
  'BUDGET_EXCEEDED',
] as const satisfies readonly JobMachineEventType[];

/** True when the event is a worker event and carries the current epoch and holder. */
export function holdsLease(context: JobContext, event: JobMachineEvent): boolean {
  return (
    'leaseEpoch' in event &&
    event.leaseEpoch === context.leaseEpoch &&
    context.holder !== null &&
    event.factoryId === context.holder
  );
}

const setDead = (reason: JobDeadReason) => ({ type: 'setDead' as const, params: { reason } });

const closeRun = (exit: JobRunExit) => ({ type: 'closeRun' as const, params: { exit } });

/** Machine setup: types, guards and named actions; exported so tests can build variants. */
export const jobMachineSetup = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobMachineEvent,
    input: {} as JobInput,
  },
  guards: {
    isHolder: ({ context, event }) => holdsLease(context, event),
    canRetry: ({ context, event }) =>
      event.type === 'FAIL' && event.retryable && context.failures < context.maxRetries,
    isRetryableClass: ({ event }) => event.type === 'FAIL' && event.retryable,
    hasRetriesLeft: ({ context }) => context.failures < context.maxRetries,
    leaseIsExpired: ({ context, event }) =>
      event.type === 'LEASE_EXPIRED' &&
      context.leaseExpiresAt !== null &&
      event.now >= context.leaseExpiresAt,
    retryIsDue: ({ context, event }) =>
      event.type === 'RETRY_DUE' && (context.notBefore === null || event.now >= context.notBefore),
    notBeforePassed: ({ context, event }) =>
      event.type === 'CLAIM' && (context.notBefore === null || event.now >= context.notBefore),
    depsMet: ({ event }) => 'depsMet' in event && event.depsMet,
  },
  actions: {
    claim: assign(({ context, event }) => {
      if (event.type !== 'CLAIM') return {};
      return {
        leaseEpoch: context.leaseEpoch + 1,
        holder: event.factoryId,
        leaseExpiresAt: event.expiresAt,
        renewals: 0,
        attempt: context.attempt + 1,
        notBefore: null,
        firstClaimedAt: context.firstClaimedAt ?? event.now,
        lastWriteAt: event.now,
      };
    }),
    renew: assign(({ context, event }) =>
      event.type === 'RENEW'
        ? {
            leaseExpiresAt: event.expiresAt,
            renewals: context.renewals + 1,
            lastWriteAt: event.now,
          }
        : {},
    ),
    touch: assign(({ event }) => ('now' in event ? { lastWriteAt: event.now } : {})),
    endLease: assign(({ context }) => ({
      leaseEpoch: context.leaseEpoch + 1,
      holder: null,
      leaseExpiresAt: null,
      renewals: 0,
    })),
    setDead: assign((_, params: { reason: JobDeadReason }) => ({ deadReason: params.reason })),
    countFailure: assign(({ context }) => ({ failures: context.failures + 1 })),
    scheduleRetry: assign(({ event }) =>
      event.type === 'FAIL' ? { notBefore: event.retryAt } : {},
    ),
    clearRetry: assign({ notBefore: null }),
    supersede: assign(({ context, event }) =>
      event.type === 'SUPERSEDE'
        ? { revision: context.revision + 1, maxRetries: event.maxRetries }
        : {},
    ),
    undoClaim: assign(({ context, event }) =>
      event.type === 'GIVE_BACK'
        ? { attempt: Math.max(0, context.attempt - 1), firstClaimedAt: event.firstClaimedAt }
        : {},
    ),
    resetAttempts: assign({
      failures: 0,
      deadReason: null,
      notBefore: null,
      firstClaimedAt: null,
    }),
    // Effects: bodies are empty on purpose; the runtime binds them (outbox).
    openRun: () => {},
    closeRun: (_args, _params: { exit: JobRunExit }) => {},
    notifyDependents: () => {},
  },
});

type StateConfig = NonNullable<
  NonNullable<Parameters<typeof jobMachineSetup.createMachine>[0]['states']>[string]
>;
type Handlers = NonNullable<StateConfig['on']>;

/** Transitions shared by every stage in which a factory holds the lease. */
const activeStageHandlers = {
  RENEW: { guard: 'isHolder', actions: 'renew' },
  RECORD: { guard: 'isHolder', actions: 'touch' },
  RELEASE: [
    {
      guard: and(['isHolder', 'depsMet']),
      target: 'queued',
      actions: ['endLease', closeRun('released')],
    },
    { guard: 'isHolder', target: 'blocked', actions: ['endLease', closeRun('released')] },
  ],
  FAIL: [
    {
      guard: and(['isHolder', 'canRetry']),
      target: 'failed',
      actions: ['countFailure', 'scheduleRetry', 'endLease', closeRun('failed')],
    },
    {
      guard: and(['isHolder', 'isRetryableClass']),
      target: 'dead_letter',
      actions: ['countFailure', 'endLease', setDead('retries_exhausted'), closeRun('failed')],
    },
    {
      guard: 'isHolder',
      target: 'dead_letter',
      actions: ['countFailure', 'endLease', setDead('non_retryable'), closeRun('failed')],
    },
  ],
  LEASE_EXPIRED: [
    {
      guard: and(['leaseIsExpired', not('hasRetriesLeft')]),
      target: 'dead_letter',
      actions: ['countFailure', 'endLease', setDead('lease_expired'), closeRun('lease_expired')],
    },
    {
      guard: and(['leaseIsExpired', 'depsMet']),
      target: 'queued',
      actions: ['countFailure', 'endLease', closeRun('lease_expired')],
    },
    {
      guard: 'leaseIsExpired',
      target: 'blocked',
      actions: ['countFailure', 'endLease', closeRun('lease_expired')],
    },
  ],
  CANCEL: {
    target: 'dead_letter',
    actions: ['endLease', setDead('cancelled'), closeRun('cancelled')],
  },
  DEPENDENCY_FAILED: {
    target: 'dead_letter',
    actions: ['endLease', setDead('dependency_failed'), closeRun('dependency_failed')],
  },
  BUDGET_EXCEEDED: {
    target: 'dead_letter',
    actions: ['endLease', setDead('budget_exceeded'), closeRun('budget_exceeded')],
  },
} satisfies Handlers;

/** Transitions that end a job that holds no lease (queued, blocked, failed). */
const idleEndings = {
  CANCEL: { target: 'dead_letter', actions: ['endLease', setDead('cancelled')] },
  DEPENDENCY_FAILED: {
    target: 'dead_letter',
    actions: ['endLease', setDead('dependency_failed')],
  },
  BUDGET_EXCEEDED: { target: 'dead_letter', actions: ['endLease', setDead('budget_exceeded')] },
} satisfies Handlers;

const supersede = {
  SUPERSEDE: [
    { guard: 'depsMet', target: 'queued', actions: 'supersede' },
    { target: 'blocked', actions: 'supersede' },
  ],
} satisfies Handlers;

/** The job lifecycle machine. States are the API's stages, one for one. */
export const jobMachine = jobMachineSetup.createMachine({
  id: 'job',
  initial: 'queued',
  context: ({ input }) => ({
    leaseEpoch: 0,
    holder: null,
    leaseExpiresAt: null,
    renewals: 0,
    attempt: 0,
    failures: 0,
    maxRetries: input?.maxRetries ?? 3,
    notBefore: null,
    deadReason: null,
    firstClaimedAt: null,
    revision: 1,
    lastWriteAt: null,
  }),
  states: {
    queued: {
      on: {
        CLAIM: { guard: 'notBeforePassed', target: 'assigned', actions: ['claim', 'openRun'] },
        DEPS_UNMET: { target: 'blocked' },
        ...supersede,
        ...idleEndings,
      },
    },
    blocked: {
      on: {
        DEPS_MET: { target: 'queued' },
        ...supersede,
        ...idleEndings,
      },
    },
    assigned: {
      on: {
        BUILD: { guard: 'isHolder', target: 'building', actions: 'touch' },
        GIVE_BACK: {
          guard: 'isHolder',
          target: 'queued',
          actions: ['endLease', 'undoClaim', closeRun('released')],
        },
        ...activeStageHandlers,
      },
    },
    building: {
      on: {
        REVIEW: { guard: 'isHolder', target: 'review', actions: 'touch' },
        ...activeStageHandlers,
      },
    },
    review: {
      on: {
        TEST: { guard: 'isHolder', target: 'testing', actions: 'touch' },
        BUILD: { guard: 'isHolder', target: 'building', actions: 'touch' },
        ...activeStageHandlers,
      },
    },
    testing: {
      // Soft dependents may start once a dep reaches testing, and must wait again when
      // it leaves testing by any way but shipping (back to building, failed, released,
      // reaped, ...): both ends notify them.
      entry: 'notifyDependents',
      exit: 'notifyDependents',
      on: {
        SHIP: { guard: 'isHolder', target: 'shipped', actions: ['endLease', closeRun('shipped')] },
        BUILD: { guard: 'isHolder', target: 'building', actions: 'touch' },
        ...activeStageHandlers,
      },
    },
    shipped: {
      type: 'final',
      entry: 'notifyDependents',
    },
    failed: {
      on: {
        RETRY_DUE: [
          { guard: and(['retryIsDue', 'depsMet']), target: 'queued', actions: 'clearRetry' },
          { guard: 'retryIsDue', target: 'blocked', actions: 'clearRetry' },
        ],
        REQUEUE: [
          { guard: 'depsMet', target: 'queued', actions: 'resetAttempts' },
          { target: 'blocked', actions: 'resetAttempts' },
        ],
        ...idleEndings,
      },
    },
    dead_letter: {
      entry: 'notifyDependents',
      on: {
        REQUEUE: [
          { guard: 'depsMet', target: 'queued', actions: 'resetAttempts' },
          { target: 'blocked', actions: 'resetAttempts' },
        ],
      },
    },
  },
});

export type JobMachine = typeof jobMachine;

/** The machine's states, which are exactly the job stages. */
export const JOB_STATES = Object.keys(jobMachine.config.states ?? {}) as readonly string[];
