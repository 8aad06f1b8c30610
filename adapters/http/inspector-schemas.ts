/**
 * The zod schemas of the inspector's API routes (`/fleet/overview`, `/fleet/me`,
 * `/fleet/stream`), registered as named OpenAPI components beside the contract's.
 */
import { z } from 'zod';
import { schemas as S } from '../../runtime/index.js';
import { openApiRegistry } from './http-schemas.js';

const named = <T extends z.ZodType>(schema: T, id: string, description: string): T => {
  openApiRegistry.add(schema, { id, description });
  return schema;
};

/** One event as the overview and the product stream summarise it. */
export const ActivityEventView = named(
  z.object({
    feedSeq: z.number().int().describe('Position in this server process’s activity feed.'),
    productId: z.string(),
    jobId: z.string(),
    seq: z.number().int().describe('The event’s seq in its job’s stream.'),
    type: z.string(),
    at: S.IsoTime,
    actor: z.string().nullable(),
    from: z.string().nullable().describe('Stage before.'),
    to: z.string().nullable().describe('Stage after.'),
    factoryId: z.string().nullable(),
    leaseEpoch: z.number().int().nullable(),
  }),
  'ActivityEvent',
  'A job event, summarised (the full event is in the job’s stream).',
);

export const FactorySummaryView = z.object({
  factoryId: z.string(),
  status: z
    .enum(['ok', 'stale', 'lost'])
    .describe('From the heartbeat age: stale after 3 missed beats, lost after 30.'),
  health: S.Health.describe('What the factory reported.'),
  lastHeartbeatAt: S.IsoTime,
  ageMs: z.number().describe('Age of the last heartbeat, ms.'),
  heartbeatIntervalMs: z.number().int(),
  load: z.number(),
  seatLimit: z.number().int().nullable(),
  seatsHeld: z.number().int().describe('Leases held now (0 for lost factories).'),
  capabilities: z.array(z.string()),
});

export const OverviewView = named(
  z.object({
    productId: z.string(),
    generatedAt: S.IsoTime,
    stages: z.record(S.Stage, z.number().int()).describe('Jobs per stage, every stage listed.'),
    totalJobs: z.number().int(),
    factories: z.object({
      items: z.array(FactorySummaryView),
      counts: z.object({ ok: z.number().int(), stale: z.number().int(), lost: z.number().int() }),
      truncated: z.boolean().describe('More factories exist than are listed (200).'),
    }),
    throughput: z
      .object({
        windowMinutes: z.number().int(),
        since: S.IsoTime.describe('Start of the first minute.'),
        claims: z.array(z.number().int()).describe('Claims per minute, oldest first.'),
        ships: z.array(z.number().int()).describe('Jobs shipped per minute, oldest first.'),
        totalClaims: z.number().int(),
        totalShips: z.number().int(),
      })
      .describe('Counted by this server process from the events it stored.'),
    recentEvents: z.array(ActivityEventView).describe('Newest first.'),
  }),
  'Overview',
  'The product at a glance: jobs by stage, factories, throughput, recent events.',
);

export const MeView = named(
  z.object({
    productId: z.string(),
    roles: z.array(z.enum(['submitter', 'factory', 'admin'])),
    subject: z.string().nullable(),
  }),
  'Caller',
  'Who the credentials belong to: product, roles, subject.',
);

export const StreamQuery = z.object({
  job: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe(
      'A job id: stream that job’s events (replayed from the store) instead of the product’s.',
    ),
});

export const StreamHeaders = z.looseObject({
  'last-event-id': z
    .string()
    .max(200)
    .optional()
    .describe('Resume after this event id (a job stream: the last `seq` received).'),
  accept: z.string().max(1000).optional(),
});
