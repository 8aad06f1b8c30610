/**
 * `fleet agent` against a real `fleet serve` (child processes on 127.0.0.1): a fake
 * coding agent (`fixtures/fake-agent.mjs`) driven by each job's body. A job ships with
 * its stages, checkpoint, insights, result and log; exit statuses, `fail` messages,
 * signals and `--timeout` become the right failures; a retry resumes from the previous
 * checkpoint; Claude and Codex transcripts become insight totals; git counts the files
 * and lines a run changed. Every wait is on a condition, never a sleep.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { Job } from '../../adapters/client/index.js';
import {
  alive,
  killEverything,
  PROCESS_TEST_MS,
  recorded,
  STUBBORN,
  scratch,
  startAgent,
  startServer,
  type TestServer,
  waitForStage,
} from '../support/agent-harness.js';
import {
  CLAUDE_TOTALS,
  CLAUDE_TRANSCRIPT,
  CODEX_TOTALS,
  CODEX_TRANSCRIPT,
  ZERO,
} from './fixtures/transcripts.js';

const NO_RETRY = { max: 0, backoff: 'fixed' as const, delayMs: 0, on: ['transient'] };

afterEach(killEverything);

async function submit(
  server: TestServer,
  key: string,
  scenario: string,
  extra: Record<string, unknown> = {},
): Promise<Job> {
  const { job } = await server.client.submit({
    idempotencyKey: key,
    bodyMd: `# ${key}\n\nscenario: ${scenario}\n`,
    retry: NO_RETRY,
    ...extra,
  });
  return job;
}

async function eventsOf(server: TestServer, id: string) {
  return (await server.client.listEvents(id, { limit: 500 })).items;
}

describe('fleet agent', { timeout: PROCESS_TEST_MS }, () => {
  it('ships a job with its stages, checkpoint, insights, result and log; the token never reaches the command', async () => {
    const server = await startServer();
    const dir = scratch();
    const job = await submit(server, 'ship-1', 'ship');
    const agent = startAgent(server, dir, [
      '--factory-id',
      'factory-a',
      '--capabilities',
      'node,git',
    ]);
    const shipped = await waitForStage(server, job.id, 'shipped', 'dead_letter', 'failed');
    expect(shipped.stage).toBe('shipped');

    const stages = (await eventsOf(server, job.id))
      .filter((e) => e.type === 'stage_changed')
      .map((e) => (e.data as { to: string }).to);
    expect(stages).toEqual(['building', 'review', 'testing', 'shipped']);
    expect(shipped.checkpoint).toEqual({ wipBranch: `wip/${job.id}`, wipCommit: 'abc123' });
    expect(shipped.usage).toMatchObject({
      tokensIn: 1500,
      tokensOut: 200,
      costUsd: 0.05,
      turns: 3,
      toolCalls: 2,
    });
    const [run] = (await server.client.listRuns(job.id)).items;
    expect(run).toMatchObject({
      attempt: 1,
      factoryId: 'factory-a',
      exit: 'shipped',
      result: { pr: `https://example.test/pr/${job.id}` },
      model: 'fake-1',
    });
    expect(run!.insights.tokensIn).toBe(1500);

    // The log: one file per (job, epoch), its pointer recorded with the final report.
    const [artifact] = (await server.client.listArtifacts(job.id)).items;
    expect(artifact).toMatchObject({
      name: 'log',
      contentType: 'text/plain',
      factoryId: 'factory-a',
    });
    const logFile = fileURLToPath(artifact!.uri);
    expect(logFile).toBe(join(dir, 'logs', `${job.id}.e${run!.leaseEpoch}.log`));
    const log = readFileSync(logFile);
    expect(log.toString()).toContain(`working on ${job.id}`);
    expect(log.toString()).toContain('all good');
    expect(artifact!.bytes).toBe(log.length);
    expect(artifact!.sha256).toBe(createHash('sha256').update(log).digest('hex'));

    // What the command saw: the body on stdin, the job's variables, never the token.
    const env = recorded(dir, job.id, `env-${run!.leaseEpoch}`);
    expect(env).toMatchObject({
      body: `# ship-1\n\nscenario: ship\n`,
      FLEET_JOB_ID: job.id,
      FLEET_RUN_ID: run!.id,
      FLEET_LEASE_EPOCH: String(run!.leaseEpoch),
      FLEET_ATTEMPT: '1',
      FLEET_CHECKPOINT: '',
      tokenVariables: [],
      tokenValueSeen: false,
    });

    // The factory registered with its seats and capabilities; the agent reported each step.
    const factory = (await server.client.listFactories()).items.find(
      (f) => f.factoryId === 'factory-a',
    );
    expect(factory).toMatchObject({ capabilities: ['git', 'node'], seatLimit: 1, health: 'ok' });
    expect(factory!.descriptor).toMatchObject({ agent: 'fleet-agent', pid: agent.proc.pid });
    const names = agent
      .events()
      .filter((e) => e.jobId === job.id)
      .map((e) => e.event);
    expect(names).toEqual(expect.arrayContaining(['claimed', 'stage', 'spawned', 'shipped']));
    expect(names).not.toContain('fenced');
  });

  it('maps exit statuses, fail messages and signals to failures with their class', async () => {
    const server = await startServer();
    const dir = scratch();
    const jobs = {
      exit3: await submit(server, 'exit-3', 'exit', { bodyMd: 'scenario: exit\nstatus: 3\n' }),
      exit75: await submit(server, 'exit-75', 'exit', { bodyMd: 'scenario: exit\nstatus: 75\n' }),
      fail: await submit(server, 'fail-msg', 'fail'),
      signal: await submit(server, 'self-kill', 'self-kill'),
    };
    startAgent(server, dir, ['--seats', '4']);
    const ended = Object.fromEntries(
      await Promise.all(
        Object.entries(jobs).map(async ([k, j]) => [
          k,
          await waitForStage(server, j.id, 'dead_letter', 'shipped'),
        ]),
      ),
    ) as Record<keyof typeof jobs, Job>;

    // No retries allowed: each ends in dead_letter with the class of its failure.
    expect(ended.exit3).toMatchObject({ stage: 'dead_letter', deadReason: 'non_retryable' });
    expect(ended.exit3.lastError?.class).toBe('agent_exit');
    expect(ended.exit3.lastError?.message).toMatch(/^exited with status 3\n/);
    expect(ended.exit3.lastError?.message).toContain('fatal: the build broke (status 3)');

    expect(ended.exit75).toMatchObject({ stage: 'dead_letter', deadReason: 'retries_exhausted' });
    expect(ended.exit75.lastError?.class).toBe('transient');

    expect(ended.fail).toMatchObject({ stage: 'dead_letter', deadReason: 'retries_exhausted' });
    expect(ended.fail.lastError).toEqual({
      class: 'transient',
      message: 'the model provider is rate limiting',
    });

    expect(ended.signal).toMatchObject({ stage: 'dead_letter', deadReason: 'non_retryable' });
    expect(ended.signal.lastError?.class).toBe('agent_signal');
    expect(ended.signal.lastError?.message).toMatch(/^killed by SIGKILL/);

    for (const j of Object.values(ended)) {
      const runs = (await server.client.listRuns(j.id)).items;
      expect(runs).toHaveLength(1);
      expect(runs[0]!.exit).toBe('failed');
      expect(runs[0]!.error?.class).toBe(j.lastError?.class);
    }
  });

  it('--timeout: SIGTERM to the group, SIGKILL after the grace, failed with class timeout', async () => {
    const server = await startServer();
    const dir = scratch();
    const job = await submit(server, 'hang-1', 'hang');
    // The command ignores SIGTERM: only the SIGKILL after the grace ends it.
    const agent = startAgent(server, dir, [
      '--exec',
      STUBBORN,
      '--timeout',
      '2s',
      '--kill-grace',
      '1s',
    ]);
    const ended = await waitForStage(server, job.id, 'dead_letter', 'shipped');
    expect(ended.lastError?.class).toBe('timeout');
    expect(ended.lastError?.message).toMatch(/^ran longer than 2s/);
    const mine = agent
      .events()
      .filter((e) => e.jobId === job.id)
      .map((e) => e.event);
    expect(mine).toContain('timeout');
    const pids = recorded<{ child: number; grandchild: number }>(
      dir,
      job.id,
      `pids-${ended.leaseEpoch - 1}`,
    );
    // Its pids are recorded once it ignores SIGTERM (on a machine so slow that 2 s
    // passed before that, SIGTERM alone ended it and there is nothing more to check).
    if (pids) {
      expect(mine).toContain('killed');
      expect(alive(pids.child) || alive(pids.grandchild)).toBe(false);
    }
  });

  it('a retry resumes: the next attempt gets the previous checkpoint in FLEET_CHECKPOINT', async () => {
    const server = await startServer({ reaperIntervalMs: 100 });
    const dir = scratch();
    const job = await submit(server, 'resume-1', 'resume', {
      retry: { max: 1, backoff: 'fixed', delayMs: 0, on: ['transient'] },
    });
    startAgent(server, dir);
    const shipped = await waitForStage(server, job.id, 'shipped', 'dead_letter');
    expect(shipped.stage).toBe('shipped');
    expect(shipped.attempt).toBe(2);
    const runs = (await server.client.listRuns(job.id)).items;
    expect(runs.map((r) => r.exit)).toEqual(['failed', 'shipped']);
    const second = recorded<{ FLEET_CHECKPOINT: string; FLEET_ATTEMPT: string }>(
      dir,
      job.id,
      `env-${runs[1]!.leaseEpoch}`,
    );
    expect(second?.FLEET_ATTEMPT).toBe('2');
    expect(JSON.parse(second!.FLEET_CHECKPOINT)).toEqual({ wipCommit: 'attempt-1' });
    expect(shipped.checkpoint).toEqual({ wipCommit: 'attempt-2' });
  });

  it('--insights-from claude|codex: transcripts on stdout become insight totals', async () => {
    const server = await startServer();
    const dir = scratch();
    writeFileSync(join(dir, 'claude.jsonl'), CLAUDE_TRANSCRIPT);
    writeFileSync(join(dir, 'codex.jsonl'), CODEX_TRANSCRIPT);
    const claude = await submit(server, 'claude-1', 'claude', { capabilities: ['claude'] });
    const codex = await submit(server, 'codex-1', 'codex', { capabilities: ['codex'] });
    startAgent(server, dir, ['--insights-from', 'claude', '--capabilities', 'claude']);
    startAgent(server, dir, ['--insights-from', 'codex', '--capabilities', 'codex']);
    const c1 = await waitForStage(server, claude.id, 'shipped', 'dead_letter');
    const c2 = await waitForStage(server, codex.id, 'shipped', 'dead_letter');
    expect(c1.usage).toEqual({ ...ZERO, ...CLAUDE_TOTALS });
    expect(c2.usage).toEqual({ ...ZERO, ...CODEX_TOTALS });
    const [run] = (await server.client.listRuns(claude.id)).items;
    expect(run!.model).toBe('claude-sonnet-4-5');
  });

  it('counts the files and lines a run changed in a git workdir (not what was modified before)', async () => {
    const server = await startServer();
    const dir = scratch();
    const repo = scratch('fleet-agent-repo-');
    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.test', ...args], {
        cwd: repo,
      });
    git('init', '-q');
    writeFileSync(join(repo, 'a.txt'), 'one\n');
    writeFileSync(join(repo, 'b.txt'), 'old\n');
    writeFileSync(join(repo, 'c.txt'), 'x\n');
    git('add', '.');
    git('commit', '-qm', 'start');
    // modified before the run: not the run's work
    writeFileSync(join(repo, 'c.txt'), 'x\ny\nz\n');
    const job = await submit(server, 'edit-1', 'edit');
    startAgent(server, dir, ['--workdir', repo]);
    const shipped = await waitForStage(server, job.id, 'shipped', 'dead_letter');
    expect(shipped.usage).toMatchObject({ filesChanged: 2, linesAdded: 3, linesDeleted: 1 });
    const env = recorded<{ cwd: string }>(dir, job.id, `env-${shipped.leaseEpoch - 1}`);
    expect(env?.cwd).toBe(repo);
  });
});
