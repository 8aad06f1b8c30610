/**
 * The commands people run against a Fleet server: `submit`, `jobs`, `job`,
 * `factories`, `requeue`, `cancel`, `events`. Each prints a table (or a sentence) by
 * default and JSON with `--json` (one document; `events` prints one event per line);
 * an error answer prints the problem's detail and exits 1.
 */
import { readFileSync } from 'node:fs';
import type { Priority, Stage, SubmitInput } from '../../runtime/index.js';
import {
  type FleetClient,
  type Job,
  type JobEvent,
  paginate,
  type Run,
  sleep,
} from '../client/index.js';
import { type ConnectionOptions, clientFor } from './connection.js';
import { CliError, print, printJson, table, time, usd } from './output.js';

/** `--json`. */
interface JsonOption {
  json?: boolean;
}

const list = (csv: string | undefined): string[] =>
  csv === undefined
    ? []
    : csv
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');

/** Reads the body of `fleet submit FILE|-`. */
async function readBody(file: string): Promise<string> {
  if (file !== '-') {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      throw new CliError(
        `cannot read ${file}: ${(e as { code?: string }).code ?? (e as Error).message}`,
      );
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export interface SubmitOptions extends ConnectionOptions, JsonOption {
  key: string;
  priority?: Priority;
  caps?: string;
  deps?: string;
  budgetUsd?: number;
}

/** `fleet submit FILE|- --key K`: submits the markdown body (idempotent on the key). */
export async function submit(file: string, o: SubmitOptions): Promise<number> {
  const client = clientFor(o);
  const input: SubmitInput = {
    idempotencyKey: o.key,
    bodyMd: await readBody(file),
    ...(o.priority ? { priority: o.priority } : {}),
    ...(o.caps !== undefined ? { capabilities: list(o.caps) } : {}),
    ...(o.deps !== undefined ? { deps: list(o.deps) } : {}),
    ...(o.budgetUsd !== undefined ? { budget: { usd: o.budgetUsd } } : {}),
  };
  const { job, outcome } = await client.submit(input);
  if (o.json) printJson({ outcome, job });
  else
    print(
      `${outcome} job ${job.id} (${job.stage}, priority ${job.priority}, key ${job.idempotencyKey})`,
    );
  return 0;
}

export interface JobsOptions extends ConnectionOptions, JsonOption {
  stage?: Stage;
  limit?: number;
  cursor?: string;
}

const jobRow = (j: Job) => [
  j.id,
  j.stage,
  j.priority,
  j.attempt,
  j.leaseEpoch,
  j.holderFactoryId,
  j.idempotencyKey,
  time(j.updatedAt),
];

/** `fleet jobs`: the product's jobs, newest first. */
export async function jobs(o: JobsOptions): Promise<number> {
  const page = await clientFor(o).listJobs({
    limit: o.limit ?? 20,
    ...(o.stage ? { stage: o.stage } : {}),
    ...(o.cursor ? { cursor: o.cursor } : {}),
  });
  if (o.json) {
    printJson(page);
    return 0;
  }
  if (page.items.length === 0) {
    print(o.stage ? `no ${o.stage} jobs` : 'no jobs');
    return 0;
  }
  for (const line of table(
    ['ID', 'STAGE', 'PRIORITY', 'ATTEMPT', 'EPOCH', 'HOLDER', 'KEY', 'UPDATED'],
    page.items.map(jobRow),
  )) {
    print(line);
  }
  if (page.nextCursor) print(`more: fleet jobs --cursor ${page.nextCursor}`);
  return 0;
}

async function all<T>(
  page: (cursor: string | null) => Promise<{ items: T[]; nextCursor: string | null }>,
): Promise<T[]> {
  const items: T[] = [];
  for await (const item of paginate(page)) items.push(item);
  return items;
}

/** What an event adds beyond its type and stages, in a few words. */
export function eventDetail(e: JobEvent): string {
  const d = e.data as Record<string, unknown>;
  const parts: string[] = [];
  for (const k of [
    'factoryId',
    'attempt',
    'reason',
    'deadReason',
    'errorClass',
    'exceeded',
    'name',
    'version',
  ]) {
    const v = d[k];
    if (v !== undefined && v !== null && v !== '') parts.push(`${k}=${String(v)}`);
  }
  const insights = d.insights as Record<string, number> | undefined;
  if (insights) {
    const nonZero = Object.entries(insights).filter(([, v]) => v > 0);
    if (nonZero.length > 0) parts.push(nonZero.map(([k, v]) => `${k}=${v}`).join(' '));
  }
  return parts.join(' ');
}

const eventRow = (e: JobEvent) => {
  const d = e.data as { from?: string; to?: string; leaseEpoch?: number };
  return [
    e.seq,
    time(e.at),
    e.type,
    d.from === d.to ? d.to : `${d.from}→${d.to}`,
    d.leaseEpoch,
    e.actor,
    eventDetail(e),
  ];
};

const EVENT_HEADERS = ['SEQ', 'AT', 'TYPE', 'STAGE', 'EPOCH', 'ACTOR', 'DETAIL'];

const runRow = (r: Run) => [
  r.attempt,
  r.factoryId,
  r.leaseEpoch,
  time(r.startedAt),
  time(r.endedAt),
  r.exit ?? 'running',
  r.insights.tokensIn + r.insights.tokensOut,
  usd(r.insights.costUsd),
  r.error ? `${r.error.class}: ${r.error.message.split('\n')[0]}` : '',
];

/** `fleet job ID`: the job, its runs and its events. */
export async function job(id: string, o: ConnectionOptions & JsonOption): Promise<number> {
  const client = clientFor(o);
  const j = await client.getJob(id);
  const [runs, events] = await Promise.all([
    all((cursor) => client.listRuns(id, { limit: 500, cursor })),
    all((cursor) => client.listEvents(id, { limit: 500, cursor })),
  ]);
  if (o.json) {
    printJson({ job: j, runs, events });
    return 0;
  }
  const u = j.usage;
  const fields: Array<[string, string]> = [
    ['stage', j.stage + (j.deadReason ? ` (${j.deadReason})` : '')],
    ['key', j.idempotencyKey],
    ['priority', j.priority],
    ['capabilities', j.capabilities.join(', ') || '-'],
    ['deps', j.deps.length > 0 ? `${j.deps.join(', ')} (${j.depsMode})` : '-'],
    ['attempt', `${j.attempt} (failures ${j.failures}, retries ${j.retry.max})`],
    [
      'lease',
      j.holderFactoryId
        ? `epoch ${j.leaseEpoch}, held by ${j.holderFactoryId} until ${time(j.leaseExpiresAt)}`
        : `epoch ${j.leaseEpoch}, not held`,
    ],
    ['not before', time(j.notBefore)],
    ['checkpoint', j.checkpoint ? JSON.stringify(j.checkpoint) : '-'],
    [
      'usage',
      `tokens ${u.tokensIn} in / ${u.tokensOut} out, ${usd(u.costUsd)}, ${u.turns} turns, ${u.filesChanged} files (+${u.linesAdded} -${u.linesDeleted})`,
    ],
    [
      'last error',
      j.lastError ? `${j.lastError.class}: ${j.lastError.message.split('\n')[0]}` : '-',
    ],
    ['created', time(j.createdAt)],
    ['updated', time(j.updatedAt)],
  ];
  print(`job ${j.id}`);
  for (const [k, v] of fields) print(`  ${k.padEnd(12)} ${v}`);
  print();
  print(`runs (${runs.length})`);
  if (runs.length > 0) {
    for (const line of table(
      ['ATTEMPT', 'FACTORY', 'EPOCH', 'STARTED', 'ENDED', 'EXIT', 'TOKENS', 'COST', 'ERROR'],
      runs.map(runRow),
    )) {
      print(`  ${line}`);
    }
  }
  print();
  print(`events (${events.length})`);
  for (const line of table(EVENT_HEADERS, events.map(eventRow))) print(`  ${line}`);
  return 0;
}

/** `fleet factories`: the product's factories. */
export async function factories(o: ConnectionOptions & JsonOption): Promise<number> {
  const client = clientFor(o);
  const items = await all((cursor) => client.listFactories({ limit: 500, cursor }));
  if (o.json) {
    printJson({ items });
    return 0;
  }
  if (items.length === 0) {
    print('no factories');
    return 0;
  }
  const rows = items.map((f) => [
    f.factoryId,
    f.health,
    f.stale ? 'yes' : 'no',
    f.load.toFixed(2),
    f.seatLimit,
    f.capabilities.join(',') || '-',
    time(f.lastHeartbeatAt),
  ]);
  for (const line of table(
    ['FACTORY', 'HEALTH', 'STALE', 'LOAD', 'SEATS', 'CAPABILITIES', 'LAST BEAT'],
    rows,
  )) {
    print(line);
  }
  return 0;
}

/** `fleet requeue ID` (role admin). */
export async function requeue(id: string, o: ConnectionOptions & JsonOption): Promise<number> {
  const j = await clientFor(o).requeue(id);
  if (o.json) printJson(j);
  else print(`requeued job ${j.id}: now ${j.stage}`);
  return 0;
}

/** `fleet cancel ID` (role admin). */
export async function cancel(
  id: string,
  o: ConnectionOptions & JsonOption & { reason?: string },
): Promise<number> {
  const j = await clientFor(o).cancel(id, o.reason ? { reason: o.reason } : {});
  if (o.json) printJson(j);
  else print(`cancelled job ${j.id}: now ${j.stage} (${j.deadReason})`);
  return 0;
}

export interface EventsOptions extends ConnectionOptions, JsonOption {
  follow?: boolean;
  /** Between polls of `--follow`, in ms. */
  intervalMs: number;
}

const ENDED: readonly string[] = ['shipped', 'dead_letter'];

/**
 * `fleet events ID [--follow]`: the job's events in order. With `--follow`, new events
 * are printed as they come (polling) until the job is `shipped` or `dead_letter` and
 * every event is shown, or until interrupted.
 */
export async function events(id: string, o: EventsOptions): Promise<number> {
  const client: FleetClient = clientFor(o);
  let cursor: string | null = null;
  let headerShown = false;
  for (;;) {
    const page = await client.listEvents(id, { limit: 500, cursor });
    if (o.json) {
      for (const e of page.items) printJson(e);
    } else if (page.items.length > 0) {
      const lines = table(EVENT_HEADERS, page.items.map(eventRow));
      // One header for the whole stream; later pages align on their own rows.
      for (const line of headerShown ? lines.slice(1) : lines) print(line);
      headerShown = true;
    }
    const last = page.items.at(-1);
    if (last) cursor = String(last.seq);
    if (page.nextCursor !== null) continue;
    if (!o.follow) return 0;
    if (ENDED.includes(String((last?.data as { to?: string } | undefined)?.to ?? ''))) {
      const j = await client.getJob(id);
      if (ENDED.includes(j.stage)) {
        const more = await client.listEvents(id, { limit: 1, cursor });
        if (more.items.length === 0) return 0;
      }
    }
    await sleep(o.intervalMs);
  }
}
