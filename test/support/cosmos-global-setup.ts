/**
 * vitest global setup: one Cosmos DB test server (cosmosdb-server, in the vitest main
 * process, on 127.0.0.1) for every test file; each store a test opens gets its own
 * database on it. Also says, once, whether the suites also run on a real account.
 */
import type { TestProject } from 'vitest/node';
import { startCosmosServer } from './cosmos-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    cosmosEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startCosmosServer();
  project.provide('cosmosEndpoint', server.endpoint);
  if (process.env.COSMOS_ENDPOINT) {
    console.log(
      `[cosmos] COSMOS_ENDPOINT is set: the Cosmos suites also run against ${process.env.COSMOS_ENDPOINT}`,
    );
  } else {
    console.log(
      '[cosmos] COSMOS_ENDPOINT is not set: the Cosmos suites run on the in-process cosmosdb-server only (set COSMOS_ENDPOINT and COSMOS_KEY to also run them against a real account)',
    );
  }
  return () => server.close();
}
