/**
 * The README's quick start, as written: `npm start`, then the agent line and the submit
 * line copied from the README and run by a shell with `npx`, and `npx fleet events
 * --follow` until the job ships. Only the port (0) and the data folder (a temp one)
 * differ, so the test neither needs port 8080 nor touches ./data.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFleetClient } from '../../adapters/client/index.js';
import {
  killEverything,
  PROCESS_TEST_MS,
  ROOT,
  scratch,
  spawnTracked,
  waitFor,
  withoutNpmSettings,
} from '../support/agent-harness.js';

afterAll(killEverything);

describe('README quick start', { timeout: PROCESS_TEST_MS }, () => {
  it('npm start, npx fleet agent --exec ..., npx fleet submit: the job ships', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const quickStart = readme.slice(
      readme.indexOf('## Quick start'),
      readme.indexOf('## Configuration'),
    );
    const agentLine = /^npx fleet agent --exec .*$/m.exec(quickStart)?.[0];
    const submitLine = /^echo .* \| npx fleet submit - --key \S+/m.exec(quickStart)?.[0];
    expect(agentLine).toBeDefined();
    expect(submitLine).toBeDefined();
    expect(quickStart).toContain('npm start');

    const data = scratch('fleet-quickstart-');
    const base = { ...withoutNpmSettings(), PORT: '0', FLEET_DB: join(data, 'fleet.db') };
    // dist/ was built by the test run's global setup; `prestart` would rebuild it under
    // the other tests' feet, so the start script runs without its pre-script here.
    const server = spawnTracked('npm', ['start', '--ignore-scripts'], base);
    const url = (await server.waitForLine(/^fleet listening on (http:\/\/\S+)$/, 'npm start'))[1]!;
    const token = (
      JSON.parse(readFileSync(join(data, 'dev-token.json'), 'utf8')) as { token: string }
    ).token;
    const env = {
      ...withoutNpmSettings(),
      FLEET_URL: url,
      FLEET_TOKEN: token,
      XDG_STATE_HOME: data,
    };

    const agent = spawnTracked('sh', ['-c', agentLine!], env);
    await agent.waitForLine(/ agent \S+ on http/, 'the agent starts');
    const submit = spawnTracked('sh', ['-c', submitLine!], env);
    expect(await submit.exited, submit.stderr()).toBe(0);
    const id = /^created job (job_\S+) \(queued/m.exec(submit.stdout())?.[1];
    expect(id).toBeDefined();

    const follow = spawnTracked('npx', ['fleet', 'events', id!, '--follow'], env);
    expect(await follow.exited, follow.stderr()).toBe(0);
    expect(follow.stdout()).toMatch(/stage_changed\s+testing→shipped/);
    await agent.waitForLine(
      new RegExp(` job ${id!.replace(/^job_/, '')} shipped$`),
      'the agent ships it',
    );

    const client = createFleetClient({ baseUrl: url, token });
    const job = await waitFor('shipped', async () => {
      const j = await client.getJob(id!);
      return j.stage === 'shipped' ? j : null;
    });
    const [run] = (await client.listRuns(job.id)).items;
    expect(run?.result).toEqual({ summary: 'Hello from a factory! (# Say hello)' });
  });
});
