/**
 * Writes whose answer is lost. The agent's HTTP goes through a fetch that hands each
 * request to the server (`app.inject`) and, for the requests a test picks, throws a
 * connection reset *after* the server applied it — the ambiguous failure. A stage move
 * is resolved by re-reading the job (or, for the final report, its run) and is applied
 * once; a progress call is resent with its `seq` and applied once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { JobRun, type RunSettings } from '../../adapters/cli/agent/job-run.js';
import { createFleetClient } from '../../adapters/client/index.js';
import { createMemoryStore } from '../../adapters/store/memory/index.js';
import { buildTestApp, type TestApp } from '../http/support.js';
import { FAKE_AGENT, killEverything, PROCESS_TEST_MS, scratch } from '../support/agent-harness.js';
import { injectFetch, type SentRequest } from '../support/inject-fetch.js';

type Sent = SentRequest;

/** Loses the first answer of each request that matches one of `picks`. */
function loseFirst(...picks: Array<(r: Sent) => boolean>): (r: Sent) => boolean {
  const done = new Set<number>();
  return (r) => {
    const i = picks.findIndex((p, k) => !done.has(k) && p(r));
    if (i < 0) return false;
    done.add(i);
    return true;
  };
}

const patchTo = (to: string) => (r: Sent) => r.method === 'PATCH' && r.body?.to === to;
const progress = (r: Sent) => r.path.endsWith('/progress');

describe('answers lost after the server applied the write', { timeout: PROCESS_TEST_MS }, () => {
  let t: TestApp;
  afterEach(async () => {
    await killEverything();
    await t?.app.close();
  });

  async function runOne(scenario: string, lose: (r: Sent) => boolean) {
    t = await buildTestApp({ store: createMemoryStore() });
    const dir = scratch();
    const sent: Sent[] = [];
    const client = createFleetClient({
      baseUrl: 'http://fleet.test',
      token: 'admin',
      fetch: injectFetch(t.app, sent, lose),
      backoff: { baseMs: 1, capMs: 1 },
    });
    const { job } = await client.submit({
      idempotencyKey: scenario,
      bodyMd: `scenario: ${scenario}\nstatus: 3\n`,
      retry: { max: 0 },
    });
    const claim = await client.claim({ factoryId: 'f1' });
    if (!claim) throw new Error('nothing claimed');
    const reports: Array<{ event: string; [k: string]: unknown }> = [];
    const settings: RunSettings = {
      exec: `"${process.execPath}" "${FAKE_AGENT}"`,
      workdir: dir,
      timeoutMs: null,
      killGraceMs: 1000,
      insightsFrom: null,
      logDir: dir,
      progressIntervalMs: 60_000,
      env: { PATH: process.env.PATH ?? '', FAKE_DIR: dir },
    };
    const run = new JobRun(
      {
        client,
        factoryId: 'f1',
        settings,
        report: { event: (event, fields) => reports.push({ event, ...fields }) },
        random: () => 0,
      },
      claim,
      performance.now(),
    );
    const outcome = await run.run();
    const events = (await client.listEvents(job.id, { limit: 500 })).items;
    return { outcome, job: await client.getJob(job.id), events, reports, sent };
  }

  it('stage moves and a seq’d progress call: each applied once, the job ships', async () => {
    const r = await runOne(
      'ship',
      loseFirst(patchTo('building'), patchTo('review'), progress, patchTo('shipped')),
    );
    expect(r.outcome).toBe('shipped');
    expect(r.job.stage).toBe('shipped');
    const moves = r.events
      .filter((e) => e.type === 'stage_changed')
      .map((e) => (e.data as { to: string }).to);
    expect(moves).toEqual(['building', 'review', 'testing', 'shipped']);
    expect(r.job.usage).toMatchObject({ tokensIn: 1500, tokensOut: 200, turns: 3, toolCalls: 2 });
    // The lost progress call was sent again (by the client: a seq'd call is safe to resend).
    const seqs = r.sent.filter(progress).map((s) => s.body?.seq);
    expect(seqs[0]).toBe(seqs[1]);
    const resolved = r.reports.filter((e) => e.event === 'resolved').map((e) => e.op);
    expect(resolved).toEqual(['PATCH building', 'PATCH review', 'PATCH shipped']);
    // Each lost move was followed by a read of the job before anything was sent again.
    const afterLostShip = r.sent.findIndex(patchTo('shipped'));
    expect(r.sent[afterLostShip + 1]).toMatchObject({
      method: 'GET',
      path: `/fleet/jobs/${r.job.id}`,
    });
  });

  it('a lost final failure report is found in the run and not sent twice', async () => {
    const r = await runOne('exit', loseFirst(patchTo('failed')));
    expect(r.outcome).toBe('failed');
    expect(r.job).toMatchObject({ stage: 'dead_letter', deadReason: 'non_retryable' });
    expect(r.job.lastError?.class).toBe('agent_exit');
    expect(r.events.filter((e) => e.type === 'failed')).toHaveLength(1);
    expect(r.sent.filter(patchTo('failed'))).toHaveLength(1);
    expect(r.reports.some((e) => e.event === 'fenced')).toBe(false);
  });
});
