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
