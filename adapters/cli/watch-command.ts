/**
 * `fleet watch`: a live view of the product — jobs by stage and the factories — redrawn
 * in place on a terminal every `--interval` (polling the list routes), one JSON object
 * per frame with `--json`, a single frame with `--once`.
 *
 * Stages are counted from `GET /fleet/jobs?stage=` pages, up to `COUNT_CAP` jobs per
 * stage (shown as `5000+` beyond that), so a frame costs a bounded number of requests
 * however large the queue is.
 */
import type { Stage } from '../../runtime/index.js';
import type { Factory, FleetClient } from '../client/index.js';
import { paginate, sleep } from '../client/index.js';
import { type ConnectionOptions, clientFor, connection } from './connection.js';
import { print, printJson, table, time } from './output.js';
import { STAGES } from './stages.js';

/** Most jobs counted per stage and frame. */
export const COUNT_CAP = 5000;

export interface WatchOptions extends ConnectionOptions {
  json?: boolean;
  once?: boolean;
  /** Between frames, in ms. */
  intervalMs: number;
}

/** One frame of the view. */
export interface WatchFrame {
  at: string;
  url: string;
  stages: Record<Stage, number>;
  /** Stages with more jobs than were counted. */
  capped: Stage[];
  factories: Factory[];
}

async function countStage(client: FleetClient, stage: Stage): Promise<number> {
  let n = 0;
  for (let cursor: string | null = null; ; ) {
    const page = await client.listJobs({ stage, limit: 500, cursor });
    n += page.items.length;
    cursor = page.nextCursor;
    if (cursor === null || n >= COUNT_CAP) return n;
  }
}

/** Reads one frame. */
export async function readFrame(client: FleetClient, url: string): Promise<WatchFrame> {
  const counts = await Promise.all(STAGES.map((s) => countStage(client, s)));
  const factories: Factory[] = [];
  for await (const f of paginate((cursor) => client.listFactories({ limit: 500, cursor }))) {
    factories.push(f);
  }
  const stages = Object.fromEntries(STAGES.map((s, i) => [s, counts[i] ?? 0])) as Record<
    Stage,
    number
  >;
  return {
    at: new Date().toISOString(),
    url,
    stages,
    capped: STAGES.filter((s) => stages[s] >= COUNT_CAP),
    factories,
  };
}

/** The frame as lines of text. */
export function renderFrame(frame: WatchFrame, intervalMs: number | null): string[] {
  const lines = [
    `fleet ${frame.url}   ${time(frame.at)}${intervalMs === null ? '' : `   (every ${intervalMs / 1000}s; Ctrl-C to stop)`}`,
    '',
  ];
  const total = Object.values(frame.stages).reduce((a, b) => a + b, 0);
  lines.push(
    ...table(
      ['STAGE', 'JOBS'],
      [
        ...STAGES.map((s) => [s, `${frame.stages[s]}${frame.capped.includes(s) ? '+' : ''}`]),
        ['total', `${total}${frame.capped.length > 0 ? '+' : ''}`],
      ],
    ),
  );
  lines.push('');
  if (frame.factories.length === 0) {
    lines.push('no factories');
  } else {
    lines.push(
      ...table(
        ['FACTORY', 'HEALTH', 'STALE', 'LOAD', 'SEATS', 'LAST BEAT'],
        frame.factories.map((f) => [
          f.factoryId,
          f.health,
          f.stale ? 'yes' : 'no',
          f.load.toFixed(2),
          f.seatLimit,
          time(f.lastHeartbeatAt),
        ]),
      ),
    );
  }
  return lines;
}

/** `fleet watch`. */
export async function watch(o: WatchOptions): Promise<number> {
  const client = clientFor(o);
  const { url } = connection(o);
  const tty = process.stdout.isTTY === true && !o.json;
  for (let first = true; ; first = false) {
    const frame = await readFrame(client, url);
    if (o.json) {
      printJson(frame);
    } else {
      // Home and clear: the frame replaces the last one in place.
      if (tty) process.stdout.write('\x1b[H\x1b[2J');
      else if (!first) print();
      for (const line of renderFrame(frame, o.once ? null : o.intervalMs)) print(line);
    }
    if (o.once) return 0;
    await sleep(o.intervalMs);
  }
}
