/**
 * The baseline of `bench/http.bench.ts`: a bare Fastify hello-world (`GET /` →
 * `{ hello: 'world' }`, logger off), run in its own process so the load generator and
 * the server never share an event loop.
 *
 *   node --import tsx bench/support/hello-server.ts     (HOST, PORT: 127.0.0.1, 0)
 *
 * Prints `hello listening on http://host:port` once bound. Exits on SIGTERM/SIGINT, and
 * when its stdin ends (the parent bench went away without killing it).
 */
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));

const host = process.env.HOST || '127.0.0.1';
await app.listen({ host, port: Number(process.env.PORT || 0) });
const { port } = app.server.address() as AddressInfo;
process.stdout.write(`hello listening on http://${host}:${port}\n`);

const stop = (): void => {
  void app.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
