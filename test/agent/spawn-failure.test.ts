/**
 * A command that cannot be started gives the job back instead of failing it (no
 * attempt burnt) and marks the factory degraded; after three in a row the agent stops
 * claiming and stays up, degraded. Both kinds: a spawn error (the working directory
 * does not exist) and the shell's 127 (command not found).
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  killEverything,
  PROCESS_TEST_MS,
  scratch,
  startAgent,
  startServer,
  waitFor,
} from '../support/agent-harness.js';

afterEach(killEverything);

describe('spawn failure', { timeout: PROCESS_TEST_MS }, () => {
  it('releases the job, marks the factory degraded, and stops claiming after three in a row', async () => {
    const server = await startServer();
    const dir = scratch();
    const { job } = await server.client.submit({
      idempotencyKey: 'spawn-1',
      bodyMd: 'scenario: ship\n',
      retry: { max: 0 },
    });

    const noDir = startAgent(server, dir, [
      '--factory-id',
      'no-dir',
      '--workdir',
      join(dir, 'missing'),
    ]);
    const stopped = await noDir.waitFor('stops claiming', (e) => e.event === 'stopped_claiming');
    expect(stopped.failures).toBe(3);
    const failures = noDir.events().filter((e) => e.event === 'spawn_failed');
    expect(failures).toHaveLength(3);
    expect(String(failures[0]!.error)).toMatch(/ENOENT/);

    const noCommand = startAgent(server, dir, [
      '--factory-id',
      'no-command',
      '--exec',
      '/nonexistent/coding-agent --yes',
    ]);
    await noCommand.waitFor('stops claiming', (e) => e.event === 'stopped_claiming');
    expect(String(noCommand.events().find((e) => e.event === 'spawn_failed')?.error)).toMatch(
      /status 127/,
    );

    // Six claims, six releases, no failure counted: the job waits, still queued.
    const after = await server.client.getJob(job.id);
    expect(after).toMatchObject({ stage: 'queued', failures: 0, attempt: 6, lastError: null });
    const events = (await server.client.listEvents(job.id, { limit: 500 })).items;
    expect(events.filter((e) => e.type === 'claimed')).toHaveLength(6);
    const released = events.filter((e) => e.type === 'released');
    expect(released.map((e) => (e.data as { reason: string }).reason)).toEqual(
      Array(6).fill('spawn_failed'),
    );
    // Both agents stay up, degraded and not claiming, and say so in their heartbeats.
    const factories = await waitFor('both factories degraded', async () => {
      const items = (await server.client.listFactories()).items;
      const ours = items.filter((f) => f.factoryId === 'no-dir' || f.factoryId === 'no-command');
      return ours.length === 2 &&
        ours.every((f) => f.health === 'degraded' && f.descriptor.claiming === false)
        ? ours
        : null;
    });
    expect(factories).toHaveLength(2);
    expect(await Promise.race([noDir.proc.exited, Promise.resolve('running')])).toBe('running');
  });
});
