/**
 * Every `fleet` command for people, run as the compiled binary against a real
 * `fleet serve`: its human output and its `--json`, its errors (the problem's detail,
 * exit 1; a bad command line, exit 2), and `--help` on each.
 */
import { writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../adapters/client/index.js';
import {
  fleet,
  killEverything,
  OTHER_TOKEN,
  PROCESS_TEST_MS,
  runFleet,
  scratch,
  startServer,
  type TestServer,
  TOKEN,
  waitFor,
} from '../support/agent-harness.js';

let server: TestServer;
let dir: string;

beforeAll(async () => {
  server = await startServer();
  dir = scratch();
}, PROCESS_TEST_MS);
afterAll(killEverything);

/** Runs `fleet args` against the test server. */
const run = (args: string[], env: Record<string, string> = {}, stdin?: string) =>
  fleet(args, { ...server.env, ...env }, stdin === undefined ? {} : { stdin });

/** A port nothing listens on (one just closed). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Drives a claimed job to `shipped` as factory `f` (submit it `critical`: it is claimed first). */
async function ship(id: string, factoryId = 'cli-factory'): Promise<void> {
  const c = server.client;
  const claim = await c.claim({ factoryId });
  expect(claim?.job.id).toBe(id);
  const me = { factoryId, leaseEpoch: claim!.lease.leaseEpoch };
  for (const to of ['building', 'review', 'testing'] as const)
    await c.transition(id, { ...me, to });
  await c.transition(id, { ...me, to: 'shipped', insights: { tokensIn: 10, costUsd: 0.5 } });
}

describe('fleet commands', { timeout: PROCESS_TEST_MS }, () => {
  it('submit: from a file or stdin, idempotent on --key, with priority, capabilities, deps and budget', async () => {
    const file = join(dir, 'job.md');
    writeFileSync(file, '# Fix the flaky test\n');
    const first = await run(['submit', file, '--key', 'cli-1']);
    expect(first.code, first.stderr).toBe(0);
    const m = /^created job (job_\S+) \(queued, priority medium, key cli-1\)$/.exec(
      first.stdout.trim(),
    );
    expect(m).not.toBeNull();
    const again = await run(['submit', file, '--key', 'cli-1']);
    expect(again.stdout.trim()).toBe(`existing job ${m![1]} (queued, priority medium, key cli-1)`);

    const json = await run(
      [
        'submit',
        '-',
        '--key',
        'cli-2',
        '--priority',
        'high',
        '--caps',
        'node, gpu',
        '--deps',
        m![1]!,
        '--budget-usd',
        '2.5',
        '--json',
      ],
      {},
      '# From stdin\n',
    );
    expect(json.code, json.stderr).toBe(0);
    const out = JSON.parse(json.stdout) as { outcome: string; job: Job };
    expect(out.outcome).toBe('created');
    expect(out.job).toMatchObject({
      idempotencyKey: 'cli-2',
      bodyMd: '# From stdin\n',
      priority: 'high',
      capabilities: ['gpu', 'node'],
      deps: [m![1]],
      stage: 'blocked',
      budget: { usd: 2.5 },
    });

    const bad = await run(['submit', file, '--key', 'cli-3', '--priority', 'urgent']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/fleet: option --priority <priority> argument urgent is invalid/);
    const missing = await run(['submit', join(dir, 'nope.md'), '--key', 'x']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^fleet: cannot read .*nope\.md: ENOENT/m);
  });

  it('jobs: a table, filtered by stage, paged with --cursor; --json is the page', async () => {
    for (const k of ['list-a', 'list-b', 'list-c']) {
      await server.client.submit({ idempotencyKey: k, bodyMd: k, capabilities: ['list'] });
    }
    const table = await run(['jobs', '--stage', 'queued']);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STAGE\s+PRIORITY\s+ATTEMPT\s+EPOCH\s+HOLDER\s+KEY\s+UPDATED$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[6])).toEqual(
      expect.arrayContaining(['list-a', 'list-b', 'list-c']),
    );
    expect(lines.slice(1).every((l) => l.split(/\s+/)[1] === 'queued')).toBe(true);

    const one = await run(['jobs', '--stage', 'queued', '--limit', '1']);
    const more = /^more: fleet jobs --cursor (\S+)$/m.exec(one.stdout);
    expect(more).not.toBeNull();
    const page = JSON.parse(
      (await run(['jobs', '--stage', 'queued', '--limit', '1', '--json'])).stdout,
    );
    expect(page.items).toHaveLength(1);
    const next = JSON.parse(
      (
        await run([
          'jobs',
          '--stage',
          'queued',
          '--limit',
          '1',
          '--cursor',
          page.nextCursor,
          '--json',
        ])
      ).stdout,
    );
    expect(next.items[0].id).not.toBe(page.items[0].id);

    expect((await run(['jobs', '--stage', 'review'])).stdout.trim()).toBe('no review jobs');
    expect((await run(['jobs', '--limit', '0'])).code).toBe(2);
  });

  it('job: the job, its runs and events; --json has all three', async () => {
    const { job } = await server.client.submit({
      idempotencyKey: 'show-1',
      bodyMd: 'x',
      priority: 'critical',
    });
    await ship(job.id);
    const human = await run(['job', job.id]);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`job ${job.id}\n`);
    expect(human.stdout).toMatch(/^ {2}stage {8}shipped$/m);
    expect(human.stdout).toMatch(/^ {2}usage {8}tokens 10 in \/ 0 out, \$0\.50, /m);
    expect(human.stdout).toMatch(/^runs \(1\)$/m);
    expect(human.stdout).toMatch(/^ {2}1 +cli-factory +1 .* shipped +10 +\$0\.50/m);
    expect(human.stdout).toMatch(/^events \(7\)$/m);
    expect(human.stdout).toMatch(
      /^ {2}6 .* insights_recorded +testing +1 +cli-factory +.*tokensIn=10 costUsd=0\.5/m,
    );
    expect(human.stdout).toMatch(/^ {2}7 .* stage_changed +testing→shipped +2 +cli-factory/m);
    const json = JSON.parse((await run(['job', job.id, '--json'])).stdout);
    expect(json.job).toMatchObject({ id: job.id, stage: 'shipped' });
    expect(json.runs).toHaveLength(1);
    expect(json.events.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('factories: a table of health and load; --json lists them', async () => {
    await server.client.heartbeat({
      factoryId: 'f-table',
      capabilities: ['a', 'b'],
      health: 'degraded',
      load: 0.5,
      seatLimit: 4,
    });
    const human = await run(['factories']);
    expect(human.stdout).toMatch(
      /^FACTORY\s+HEALTH\s+STALE\s+LOAD\s+SEATS\s+CAPABILITIES\s+LAST BEAT$/m,
    );
    expect(human.stdout).toMatch(/^f-table\s+degraded\s+no\s+0\.50\s+4\s+a,b\s+\d{4}-/m);
    const json = JSON.parse((await run(['factories', '--json'])).stdout);
    expect(json.items.find((f: { factoryId: string }) => f.factoryId === 'f-table')).toMatchObject({
      health: 'degraded',
      seatLimit: 4,
      stale: false,
    });
  });

  it('cancel and requeue (admin): a sentence, or the job as JSON', async () => {
    const { job } = await server.client.submit({ idempotencyKey: 'admin-1', bodyMd: 'x' });
    const cancelled = await run(['cancel', job.id, '--reason', 'not needed']);
    expect(cancelled.stdout.trim()).toBe(`cancelled job ${job.id}: now dead_letter (cancelled)`);
    const requeued = await run(['requeue', job.id, '--json']);
    expect(JSON.parse(requeued.stdout)).toMatchObject({ id: job.id, stage: 'queued' });
    const again = await run(['cancel', job.id, '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({
      stage: 'dead_letter',
      deadReason: 'cancelled',
    });
    expect((await run(['requeue', job.id])).stdout.trim()).toBe(
      `requeued job ${job.id}: now queued`,
    );
    // not allowed now: the problem's detail, exit 1
    const invalid = await run(['requeue', job.id]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(
      /^fleet: REQUEUE is not allowed while job \S+ is queued \(INVALID_TRANSITION, HTTP 409\)$/m,
    );
  });

  it('events: a table or JSON lines; --follow prints new events until the job ships', async () => {
    const { job } = await server.client.submit({
      idempotencyKey: 'follow-1',
      bodyMd: 'x',
      priority: 'critical',
    });
    const listed = await run(['events', job.id]);
    expect(listed.stdout).toMatch(/^SEQ\s+AT\s+TYPE\s+STAGE\s+EPOCH\s+ACTOR\s+DETAIL$/m);
    expect(listed.stdout).toMatch(/^1\s+\S+ \S+\s+submitted\s+queued\s+0\s/m);

    const follow = runFleet(
      ['events', job.id, '--follow', '--json', '--interval', '100ms'],
      server.env,
    );
    await follow.waitForLine(/"type":"submitted"/, 'the first event');
    await ship(job.id);
    expect(await follow.exited).toBe(0);
    const seen = follow
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; type: string });
    expect(seen.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(seen.at(-1)?.type).toBe('stage_changed');
  });

  it('watch: stage counts and factories; --once for one frame, --json per frame', async () => {
    const human = await run(['watch', '--once']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^fleet ${server.url.replace(/[.]/g, '\\.')} `));
    expect(human.stdout).toMatch(/^STAGE\s+JOBS$/m);
    expect(human.stdout).toMatch(/^shipped\s+\d+$/m);
    expect(human.stdout).toMatch(/^FACTORY\s+HEALTH\s+STALE\s+LOAD\s+SEATS\s+LAST BEAT$/m);
    const frame = JSON.parse((await run(['watch', '--once', '--json'])).stdout);
    const jobs = await server.client.listJobs({ limit: 500 });
    const byStage: Record<string, number> = {};
    for (const j of jobs.items) byStage[j.stage] = (byStage[j.stage] ?? 0) + 1;
    for (const [stage, n] of Object.entries(frame.stages)) expect(n).toBe(byStage[stage] ?? 0);
    expect(frame.factories.length).toBeGreaterThan(0);

    // Without --once it keeps drawing frames: two frames, then stop it.
    const live = runFleet(['watch', '--json', '--interval', '100ms'], server.env);
    await waitFor('two frames', () => live.stdout().trim().split('\n').length >= 2);
    live.child.kill('SIGTERM');
    await live.exited;
  });

  it('errors: the problem’s detail and exit 1; no token or a bad URL, exit 2; unreachable, exit 1', async () => {
    const missing = await run(['job', 'job_nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('fleet: no job job_nope (NOT_FOUND, HTTP 404)');
    const otherProduct = await run(['jobs', '--json'], { FLEET_TOKEN: OTHER_TOKEN });
    expect(JSON.parse(otherProduct.stdout).items).toEqual([]);
    const wrong = await run(['jobs'], { FLEET_TOKEN: 'not-a-token' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/\(UNAUTHENTICATED, HTTP 401\)/);
    const none = await fleet(['jobs'], { FLEET_URL: server.url });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^fleet: no token: set FLEET_TOKEN or pass --token-file FILE/);
    const badUrl = await run(['jobs', '--url', 'ftp://x']);
    expect(badUrl.code).toBe(2);
    const unreachable = await run(['jobs', '--url', `http://127.0.0.1:${await closedPort()}`]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      /^fleet: GET \/fleet\/jobs: could not connect \(ECONNREFUSED\)$/m,
    );
  });

  it('--token-file: a plain token, or JSON with "token" (the development server’s file)', async () => {
    const plain = join(dir, 'token.txt');
    const json = join(dir, 'dev-token.json');
    writeFileSync(plain, `${TOKEN}\n`);
    writeFileSync(json, JSON.stringify({ token: TOKEN, productId: 'agent-tests' }));
    for (const file of [plain, json]) {
      const r = await fleet(['jobs', '--json', '--token-file', file], { FLEET_URL: server.url });
      expect(r.code, r.stderr).toBe(0);
    }
    const bad = await fleet(['jobs', '--token-file', join(dir, 'missing')], {
      FLEET_URL: server.url,
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cannot read the token file/);
  });

  it('--help on every command; help, --version, the inspector’s machines', async () => {
    const commands = [
      'serve',
      'reap',
      'agent',
      'submit',
      'jobs',
      'job',
      'watch',
      'factories',
      'requeue',
      'cancel',
      'events',
      'backup',
      'prune',
    ];
    const results = await Promise.all(commands.map((c) => fleet([c, '--help'])));
    for (const [i, r] of results.entries()) {
      expect(r.code, commands[i]).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^usage: fleet ${commands[i]} `, 'm'));
    }
    expect(results[2]!.stdout).toContain('--exec <command>');
    expect(results[2]!.stdout).toContain('file descriptor 3');
    const help = await fleet(['help', 'submit']);
    expect(help.stdout).toMatch(/^usage: fleet submit \[options\] <file>/m);
    const version = await fleet(['--version']);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const noArgs = await fleet([]);
    expect(noArgs.code).toBe(2);
    expect(noArgs.stderr).toMatch(/^fleet: no command given/);
    const machines = await fleet(['machines']);
    expect(machines.code).toBe(0);
    expect(machines.stdout).toMatch(/^stateDiagram-v2\n {2}\[\*\] --> queued/);
    const machinesHelp = await fleet(['machines', '--help']);
    expect(machinesHelp.code).toBe(0);
    expect(machinesHelp.stdout).toMatch(/^usage: fleet machines /m);
    const badFormat = await fleet(['machines', '--format', 'bogus']);
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr).toMatch(/unknown format bogus/);
  });
});
