/**
 * Long-poll claims: a parked claim is woken by a submit (not by a timer), gives up with
 * 204 after `waitMs`, finds jobs queued by another process through its safety
 * re-check, ends with 204 when the server closes, and is dropped when its client
 * disconnects (a real socket: listen on 127.0.0.1, undici, abort). Tests wait on the
 * metrics' park/end announcements, never on sleeps; waits are short and bounded.
 */
import type { AddressInfo, Socket } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator, type DocumentStore } from '../../runtime/index.js';
import { STORES } from '../support/stores.js';
import { buildTestApp, claimJob, PRODUCT, SpyMetrics, submitJob, type TestApp } from './support.js';

/** Long enough never to fire during a test: a wake-up must come from an event. */
const NO_RECHECK = 60_000;

describe.each(STORES)('long-poll claim on $name', (factory) => {
  let t: TestApp | undefined;
  let metrics: SpyMetrics;
  afterEach(async () => {
    if (t) {
      await t.app.close();
      await t.coordinator.drain();
      await t.store.close();
      t = undefined;
    }
  });

  const build = async (claimRecheckMs = NO_RECHECK, store?: DocumentStore) => {
    metrics = new SpyMetrics();
    t = await buildTestApp({ store: store ?? (await factory.open()), metrics, claimRecheckMs });
    return t;
  };

  const parkClaim = (app: TestApp, waitMs: number, factoryId = 'f1') =>
    app.call('POST', '/fleet/claim', { token: 'factory', body: { factoryId, waitMs } });

  it('a parked claim is woken by a submit within the wait', async () => {
    const app = await build();
    const parked = metrics.next('started');
    const claim = parkClaim(app, 20_000);
    await parked;
    expect(await metrics.render()).toMatch(/^fleet_claim_waiting 1$/m);
    const ended = metrics.next('ended');
    const job = await submitJob(app);
    const res = await claim;
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().job).toMatchObject({ id: job.id, stage: 'assigned', holderFactoryId: 'f1' });
    expect(await ended).toBe('claimed');
    expect(await metrics.render()).toMatch(/^fleet_claim_waits_total\{outcome="claimed"\} 1$/m);
  });

  it('two parked claims and one job: one gets it, the other waits out its time (204)', async () => {
    const app = await build();
    const firstParked = metrics.next('started');
    const a = parkClaim(app, 400, 'fa');
    await firstParked;
    const secondParked = metrics.next('started');
    const b = parkClaim(app, 400, 'fb');
    await secondParked;
    const job = await submitJob(app);
    const [ra, rb] = await Promise.all([a, b]);
    expect([ra.statusCode, rb.statusCode].sort()).toEqual([200, 204]);
    const winner = ra.statusCode === 200 ? ra : rb;
    expect(winner.json().job.id).toBe(job.id);
  });

  it('with nothing to claim, answers 204 once waitMs has passed', async () => {
    const app = await build();
    let parked = false;
    metrics.events.once('started', () => {
      parked = true;
    });
    const ended = metrics.next('ended');
    const started = performance.now();
    const res = await parkClaim(app, 150);
    const elapsed = performance.now() - started;
    expect(res.statusCode).toBe(204);
    // Never before waitMs; how long after depends on the machine's load, so the only
    // upper bound is the test's own timeout. A claim parks only if its first attempt
    // left time to wait (on a loaded machine a Cosmos DB attempt can outlast 150 ms);
    // when it parked, what ended the wait is its timer.
    expect(elapsed).toBeGreaterThanOrEqual(140);
    if (parked) expect(await ended).toBe('timeout');
  });

  it('finds a job queued by another process through its safety re-check', async () => {
    const store = await factory.open();
    const app = await build(50, store);
    // Another coordinator on the same store: its events never reach this plugin.
    const elsewhere = new Coordinator({ store, clock: app.clock });
    const parked = metrics.next('started');
    const claim = parkClaim(app, 20_000);
    await parked;
    const submitted = await elsewhere.submit(PRODUCT, { idempotencyKey: 'other', bodyMd: 'x' });
    expect(submitted.ok).toBe(true);
    const res = await claim;
    expect(res.statusCode).toBe(200);
    expect(res.json().job.idempotencyKey).toBe('other');
  });

  it('a parked claim ends with 204 when the app closes', async () => {
    const app = await build();
    const parked = metrics.next('started');
    const claim = parkClaim(app, 20_000);
    await parked;
    const ended = metrics.next('ended');
    await app.app.close();
    const res = await claim;
    expect(res.statusCode).toBe(204);
    expect(res.headers.connection).toBe('close');
    expect(await ended).toBe('closed');
  });

  describe('over a real socket', () => {
    const listen = async (app: TestApp) => {
      await app.app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = app.app.server.address() as AddressInfo;
      return `http://127.0.0.1:${port}`;
    };
    const claimOverHttp = (base: string, body: unknown, signal: AbortSignal) =>
      request(`${base}/fleet/claim`, {
        method: 'POST',
        headers: { authorization: 'Bearer factory', 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });

    it('a disconnected client’s parked claim is dropped and takes no job', async () => {
      const app = await build();
      const base = await listen(app);
      const client = new AbortController();
      const parked = metrics.next('started');
      const pending = claimOverHttp(
        base,
        { factoryId: 'gone', waitMs: 20_000 },
        client.signal,
      ).then(
        () => 'answered',
        (e: Error) => e.name,
      );
      await parked;
      const ended = metrics.next('ended');
      client.abort();
      expect(await ended).toBe('disconnected');
      expect(await pending).toBe('AbortError');
      expect(await metrics.render()).toMatch(/^fleet_claim_waiting 0$/m);
      // The job submitted afterwards is still there for a live factory.
      const job = await submitJob(app);
      expect((await app.call('GET', `/fleet/jobs/${job.id}`)).json().stage).toBe('queued');
      expect((await claimJob(app, 'alive')).job.id).toBe(job.id);
    });

    it('a claim that succeeds as its client disconnects is released again', async () => {
      const store = await factory.open();
      // Hold the claim's store read until the client is gone.
      let gate: (() => void) | undefined;
      let reached: (() => void) | undefined;
      const atGate = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const claimCandidates = store.jobs.claimCandidates.bind(store.jobs);
      store.jobs.claimCandidates = async (q) => {
        if (q.productId === PRODUCT && reached) {
          reached();
          reached = undefined;
          await new Promise<void>((resolve) => {
            gate = resolve;
          });
        }
        return claimCandidates(q);
      };
      const app = await build(NO_RECHECK, store);
      const job = await submitJob(app);
      const base = await listen(app);
      const socketClosed = new Promise<void>((resolve) => {
        app.app.server.once('connection', (socket: Socket) =>
          socket.once('close', () => resolve()),
        );
      });
      const client = new AbortController();
      const pending = claimOverHttp(base, { factoryId: 'gone' }, client.signal).catch(
        (e: Error) => e.name,
      );
      await atGate;
      const released = new Promise<unknown>((resolve) => {
        app.coordinator.subscribe((event) => {
          if (event.type === 'released') resolve(event.data);
        });
      });
      client.abort();
      await socketClosed;
      // The server saw the close (the response's close listeners ran with the socket's).
      await new Promise((resolve) => setImmediate(resolve));
      gate!();
      expect(await pending).toBe('AbortError');
      expect(await released).toMatchObject({ reason: 'client_disconnected', factoryId: 'gone' });
      const events = (await app.call('GET', `/fleet/jobs/${job.id}/events`)).json();
      const types = events.items.map((ev: { type: string }) => ev.type);
      expect(types).toEqual(['submitted', 'claimed', 'released']);
      expect(events.items[2].data).toMatchObject({ reason: 'client_disconnected' });
      const after = (await app.call('GET', `/fleet/jobs/${job.id}`)).json();
      expect(after).toMatchObject({ stage: 'queued', leaseEpoch: 2, holderFactoryId: null });
    });
  });
});
