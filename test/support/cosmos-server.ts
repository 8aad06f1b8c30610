/**
 * A Cosmos DB server for tests: `@vercel/cosmosdb-server` on 127.0.0.1 (HTTPS with its
 * self-signed certificate, keep-alive), in this process. It keeps data in memory and
 * stops with `close()` (or with the process: its handle is unref'd).
 *
 * Its quirks, which the adapter copes with: it ignores `partitionKey` on queries (the
 * adapter filters by the key in SQL too), has no TTL, change feed or atomic batch,
 * rejects `OFFSET/LIMIT`, `GROUP BY`, `DISTINCT` and `LIKE`, and refuses a two-field
 * `ORDER BY` without a matching composite index.
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createHttpsServer } from '@vercel/cosmosdb-server';

export interface CosmosTestServer {
  /** `https://127.0.0.1:<port>` */
  endpoint: string;
  close(): Promise<void>;
}

/** Any key is accepted by the test server. */
export const TEST_COSMOS_KEY = 'fleet-test-key';

export async function startCosmosServer(port = 0): Promise<CosmosTestServer> {
  linearEmulatorQueries();
  const server = createHttpsServer({ keepAlive: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  server.unref();
  const { port: bound } = server.address() as AddressInfo;
  return {
    endpoint: `https://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The emulator's query engine (`@zeit/cosmosdb-query`, under cosmosdb-server) compiles
 * `FROM c` into `collection.reduce(($, c) => [...$, { c }], [])`, which copies the
 * accumulator once per document: every query costs O(n²) in the size of the container
 * (an events query over 20,000 events takes seconds, and times out under load). This
 * swaps that one generated expression for the linear `filter().map()` with the same
 * result, in the process that runs the emulator. Query semantics are unchanged;
 * only FROM over the whole collection is rewritten, never a JOIN or subquery.
 */
let patched = false;

export function linearEmulatorQueries(): void {
  if (patched) return;
  patched = true;
  const require = createRequire(import.meta.url);
  const path = require.resolve('@zeit/cosmosdb-query', {
    paths: [require.resolve('@vercel/cosmosdb-server')],
  });
  const compile = require(path).default as (sql: string) => object;
  const proto = Object.getPrototypeOf(compile('SELECT * FROM c')) as object;
  const original = Object.getOwnPropertyDescriptor(proto, 'code');
  if (original?.get === undefined) throw new Error('@zeit/cosmosdb-query changed: no code getter');
  const from =
    /\$c\.reduce\(\(\$, ([A-Za-z_]\w*)\) => typeof \1 !== "undefined" \? \[\.\.\.\$, \{\s*\1: \1\s*\}\] : \$, \[\]\)/g;
  const get = original.get;
  Object.defineProperty(proto, 'code', {
    configurable: true,
    get(this: object): string {
      const code = get.call(this) as string;
      return code.replace(
        from,
        (_m, a: string) =>
          `$c.filter((${a}) => typeof ${a} !== "undefined").map((${a}) => ({ ${a}: ${a} }))`,
      );
    },
  });
  const probe = compile('SELECT * FROM c') as { code: string };
  if (probe.code.includes('[...$'))
    throw new Error('@zeit/cosmosdb-query changed: FROM not rewritten');
}
