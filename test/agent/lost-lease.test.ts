/**
 * Losing a lease, for real: `fleet serve` and `fleet agent` processes, the job's command
 * with a grandchild in its process group, and SIGSTOP/SIGCONT to freeze a process.
 *
 * - Agent A stopped past its lease: the supervisor reaps it and agent B takes the job.
 *   When A resumes, its next write is FENCED (reason `reaped`) and its command's whole
 *   group — child and grandchild — is gone; B ships; the job shipped exactly once.
 * - The server stopped (unreachable): the agent kills its command before the lease ends.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  alive,
  killEverything,
  PROCESS_TEST_MS,
  recorded,
  scratch,
  startAgent,
  startServer,
  type TestServer,
  waitFor,
  waitForStage,
} from '../support/agent-harness.js';

afterEach(killEverything);

interface Pids {
  pgid: number;
  child: number;
  grandchild: number;
}

/** The pids the command of `jobId` at `epoch` recorded, once it has. */
const pidsOf = (dir: string, jobId: string, epoch: number): Promise<Pids> =>
  waitFor(`the command of epoch ${epoch} running`, () =>
    recorded<Pids>(dir, jobId, `pids-${epoch}`),
  );

async function submitHold(server: TestServer, key: string): Promise<string> {
  const { job } = await server.client.submit({
    idempotencyKey: key,
    bodyMd: 'scenario: hold\n',
    retry: { max: 3, backoff: 'fixed', delayMs: 0, on: ['transient'] },
  });
  return job.id;
}

describe('lost lease', { timeout: PROCESS_TEST_MS }, () => {
  it('A frozen past its lease is reaped, B takes over; A resumes FENCED with its child and grandchild gone; one ship', async () => {
    const server = await startServer({ leaseMs: 6000, reaperIntervalMs: 200 });
    const dir = scratch();
    const id = await submitHold(server, 'lost-1');
    const a = startAgent(server, dir, ['--factory-id', 'A']);
    const spawnedA = await a.waitFor(
      'A runs the job',
      (e) => e.event === 'spawned' && e.jobId === id,
    );
    const claimedA = a.events().find((e) => e.event === 'claimed' && e.jobId === id)!;
    const epochA = claimedA.leaseEpoch as number;
    const pidsA = await pidsOf(dir, id, epochA);
    expect(spawnedA.pid).toBeGreaterThan(0);

    process.kill(a.proc.pid, 'SIGSTOP');
    // A cannot act while stopped: its command runs on, in its own process group.
    expect(alive(pidsA.child) && alive(pidsA.grandchild)).toBe(true);
    expect(pidsA.pgid).not.toBe(a.proc.pid);

    const b = startAgent(server, dir, ['--factory-id', 'B']);
    const reaped = await waitFor('the job reaped and claimed by B', async () => {
      const job = await server.client.getJob(id);
      return job.holderFactoryId === 'B' ? job : null;
    });
    expect(reaped.leaseEpoch).toBe(epochA + 2); // lease expired (+1), B's claim (+1)
    const pidsB = await pidsOf(dir, id, reaped.leaseEpoch);

    process.kill(a.proc.pid, 'SIGCONT');
    const fenced = await a.waitFor('A fenced', (e) => e.event === 'fenced' && e.jobId === id);
    expect(fenced).toMatchObject({ reason: 'reaped', leaseEpoch: reaped.leaseEpoch });
    await waitFor(
      'A’s child and grandchild gone',
      () => !alive(pidsA.child) && !alive(pidsA.grandchild),
    );
    // B's command was not touched.
    expect(alive(pidsB.child) && alive(pidsB.grandchild)).toBe(true);

    writeFileSync(join(dir, `${id}.go`), '');
    const shipped = await waitForStage(server, id, 'shipped', 'dead_letter');
    expect(shipped.stage).toBe('shipped');
    const events = (await server.client.listEvents(id, { limit: 500 })).items;
    const ships = events.filter(
      (e) => e.type === 'stage_changed' && (e.data as { to: string }).to === 'shipped',
    );
    expect(ships).toHaveLength(1);
    expect(ships[0]!.actor).toBe('B');
    expect(events.filter((e) => e.type === 'lease_expired')).toHaveLength(1);
    const runs = (await server.client.listRuns(id)).items;
    expect(runs.map((r) => [r.factoryId, r.exit])).toEqual([
      ['A', 'lease_expired'],
      ['B', 'shipped'],
    ]);
    expect(runs[1]!.result).toEqual({ heldBy: String(reaped.leaseEpoch) });
    // Everything A wrote after its lease ended was refused: no A write at B's epoch.
    expect(
      events.filter(
        (e) => e.actor === 'A' && (e.data as { leaseEpoch: number }).leaseEpoch > epochA,
      ),
    ).toEqual([]);
    await waitFor('B’s command gone after it exited', () => !alive(pidsB.grandchild));
    expect(b.events().some((e) => e.event === 'fenced')).toBe(false);
  });

  it('server unreachable: the agent kills its command before the lease ends', async () => {
    const server = await startServer({ leaseMs: 12_000, reaperIntervalMs: 3_600_000 });
    const dir = scratch();
    const id = await submitHold(server, 'unreachable-1');
    const a = startAgent(server, dir, ['--factory-id', 'A']);
    const claimed = await a.waitFor('A claims', (e) => e.event === 'claimed' && e.jobId === id);
    const pids = await pidsOf(dir, id, claimed.leaseEpoch as number);

    process.kill(server.proc.pid, 'SIGSTOP'); // connections hang; nothing answers
    const deadline = await a.waitFor('A gives up the lease', (e) => e.event === 'lease_deadline');
    await waitFor('the command’s group gone', () => !alive(pids.child) && !alive(pids.grandchild));
    // The kill came before the lease's end (same machine, same clock).
    expect(Date.parse(deadline.at)).toBeLessThan(Date.parse(deadline.expiresAt as string));
    process.kill(server.proc.pid, 'SIGCONT');
    // Once it answers again, A gives the job back (its release, or a FENCED if reaped).
    await a.waitFor(
      'A reports the end',
      (e) => (e.event === 'released' || e.event === 'fenced') && e.jobId === id,
    );
    const job = await server.client.getJob(id);
    expect(job.leaseEpoch).toBeGreaterThan(claimed.leaseEpoch as number);
  });
});
