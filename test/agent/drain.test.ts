/**
 * Draining `fleet agent` with signals, against a real `fleet serve`:
 * - one SIGTERM: no new claims, the running job finishes and ships (renewals and
 *   heartbeats go on meanwhile), exit 0;
 * - two: the commands get SIGTERM, then SIGKILL after the grace; their leases are
 *   released (checkpoints kept, no attempt burnt); every process is gone; exit 1;
 * - three: exit at once (130), the commands killed, the leases left to expire.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
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
  waitFor,
} from '../support/agent-harness.js';

afterEach(killEverything);

interface Pids {
  child: number;
  grandchild: number;
}

async function submitHold(server: TestServer, key: string): Promise<string> {
  const { job } = await server.client.submit({ idempotencyKey: key, bodyMd: 'scenario: hold\n' });
  return job.id;
}

/** Every job's command running: resolves with their pids. */
const running = (server: TestServer, dir: string, ids: string[]): Promise<Pids[]> =>
  waitFor('every command running', async () => {
    const pids: Pids[] = [];
    for (const id of ids) {
      const job = await server.client.getJob(id);
      const p = recorded<Pids>(dir, id, `pids-${job.leaseEpoch}`);
      if (!p) return null;
      pids.push(p);
    }
    return pids;
  });

describe('drain', { timeout: PROCESS_TEST_MS }, () => {
  it('one SIGTERM: no new claims, the running job ships while the lease is renewed, exit 0', async () => {
    const server = await startServer({ leaseMs: 6000 });
    const dir = scratch();
    const first = await submitHold(server, 'drain-1');
    const agent = startAgent(server, dir, ['--factory-id', 'drainer', '--seats', '2']);
    const [pids] = await running(server, dir, [first]);

    agent.proc.child.kill('SIGTERM');
    await agent.waitFor('draining', (e) => e.event === 'draining');
    const { job: second } = await server.client.submit({
      idempotencyKey: 'drain-2',
      bodyMd: 'scenario: ship\n',
    });
    // Still renewing and heartbeating while draining.
    const before = (await server.client.getJob(first)).leaseExpiresAt;
    await waitFor('a renewal during the drain', async () => {
      const job = await server.client.getJob(first);
      return job.leaseExpiresAt !== before && job.stage === 'building';
    });
    await waitFor('a heartbeat that says draining', async () => {
      const f = (await server.client.listFactories()).items.find((x) => x.factoryId === 'drainer');
      return f?.descriptor.draining === true;
    });

    writeFileSync(join(dir, `${first}.go`), '');
    expect(await agent.proc.exited).toBe(0);
    expect((await server.client.getJob(first)).stage).toBe('shipped');
    const untouched = await server.client.getJob(second.id);
    expect(untouched).toMatchObject({ stage: 'queued', leaseEpoch: 0, attempt: 0 });
    expect(alive(pids!.child) || alive(pids!.grandchild)).toBe(false);
    const names = agent.events().map((e) => e.event);
    expect(names.slice(-2)).toEqual(['drained', 'exiting']);
    const f = (await server.client.listFactories()).items.find((x) => x.factoryId === 'drainer');
    expect(f?.health).toBe('down');
  });

  it('two SIGTERMs: commands stopped (SIGTERM, grace, SIGKILL), leases released, nothing left, exit 1', async () => {
    const server = await startServer();
    const dir = scratch();
    const ids = [await submitHold(server, 'cancel-1'), await submitHold(server, 'cancel-2')];
    // The commands ignore SIGTERM: only the SIGKILL after the grace ends them.
    const agent = startAgent(server, dir, [
      '--exec',
      STUBBORN,
      '--seats',
      '2',
      '--kill-grace',
      '1s',
    ]);
    const pids = await running(server, dir, ids);
    const epochs = await Promise.all(
      ids.map(async (id) => (await server.client.getJob(id)).leaseEpoch),
    );
    // Each command saved a checkpoint before the signals.
    await waitFor('checkpoints saved', async () => {
      const jobs = await Promise.all(ids.map((id) => server.client.getJob(id)));
      return jobs.every((j) => j.checkpoint?.wipCommit === `held-${j.leaseEpoch}`);
    });

    agent.proc.child.kill('SIGTERM');
    await agent.waitFor('draining', (e) => e.event === 'draining');
    agent.proc.child.kill('SIGTERM');
    await agent.waitFor('cancelling', (e) => e.event === 'cancelling');
    expect(await agent.proc.exited).toBe(1);
    const killed = agent.events().filter((e) => e.event === 'killed');
    expect(killed.map((e) => e.jobId).sort()).toEqual([...ids].sort());

    for (const [i, id] of ids.entries()) {
      const job = await server.client.getJob(id);
      expect(job).toMatchObject({
        stage: 'queued',
        leaseEpoch: epochs[i]! + 1,
        holderFactoryId: null,
        failures: 0,
        checkpoint: { wipCommit: `held-${epochs[i]}` },
      });
      const released = (await server.client.listEvents(id, { limit: 500 })).items.filter(
        (e) => e.type === 'released',
      );
      expect(released.map((e) => (e.data as { reason: string }).reason)).toEqual([
        'agent_stopping',
      ]);
    }
    for (const p of pids) {
      expect(alive(p.child)).toBe(false);
      expect(alive(p.grandchild)).toBe(false);
    }
  });

  it('three SIGTERMs: exits at once (130) with its commands killed; the lease is left to expire', async () => {
    const server = await startServer();
    const dir = scratch();
    const id = await submitHold(server, 'third-1');
    const agent = startAgent(server, dir, ['--exec', STUBBORN, '--kill-grace', '10m']);
    const [pids] = await running(server, dir, [id]);
    const epoch = (await server.client.getJob(id)).leaseEpoch;

    agent.proc.child.kill('SIGTERM');
    await agent.waitFor('draining', (e) => e.event === 'draining');
    agent.proc.child.kill('SIGTERM');
    await agent.waitFor('cancelling', (e) => e.event === 'cancelling');
    agent.proc.child.kill('SIGTERM');
    expect(await agent.proc.exited).toBe(130);
    await waitFor('the command gone', () => !alive(pids!.child) && !alive(pids!.grandchild));
    const job = await server.client.getJob(id);
    expect(job).toMatchObject({ leaseEpoch: epoch, stage: 'building' });
  });
});
