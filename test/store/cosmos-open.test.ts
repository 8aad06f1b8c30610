/**
 * Opening the Cosmos DB store on an existing database: several processes (here, stores)
 * open the same database at any time and nothing is lost; containers made without
 * Fleet's composite indexes get them.
 */
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { CosmosClient } from '@azure/cosmos';
import { afterAll, describe, expect, inject, it } from 'vitest';
import {
  COSMOS_CONTAINERS,
  type CosmosStore,
  openCosmosStore,
} from '../../adapters/store/cosmos/index.js';
import { TEST_COSMOS_KEY } from '../support/cosmos-server.js';
import { makeJob } from '../support/docs.js';

const endpoint = inject('cosmosEndpoint');
const opened: CosmosStore[] = [];
const open = async (database: string): Promise<CosmosStore> => {
  const store = await openCosmosStore({
    endpoint,
    key: TEST_COSMOS_KEY,
    database,
    allowSelfSignedCertificate: true,
  });
  opened.push(store);
  return store;
};
const fresh = () => `fleet_open_${randomBytes(5).toString('hex')}`;

afterAll(async () => {
  for (const s of opened) await s.close();
});

describe('openCosmosStore on an existing database', () => {
  it('a second (and third) open keeps every document, and each store sees the others’ writes', async () => {
    const database = fresh();
    const a = await open(database);
    const job = makeJob({ productId: 'p1' });
    const created = await a.jobs.create(job);
    const b = await open(database);
    expect(await b.jobs.read('p1', job.id)).toEqual(created);
    expect(await a.jobs.read('p1', job.id)).toEqual(created);
    const replaced = await b.jobs.replace({ ...created, priority: 'high' }, created._etag);
    const c = await open(database);
    expect(await c.jobs.read('p1', job.id)).toEqual(replaced);
    await expect(a.jobs.replace(created, created._etag)).rejects.toMatchObject({
      code: 'PRECONDITION_FAILED',
    });
    expect(
      (
        await c.jobs.claimCandidates({
          productId: 'p1',
          capabilities: [],
          now: job.createdAt,
          limit: 5,
        })
      ).map((j) => j.id),
    ).toEqual([job.id]);
    await a.dropDatabase();
  });

  it('adds Fleet’s composite indexes to a container made without them, and refuses another partition key', async () => {
    const client = new CosmosClient({
      endpoint,
      key: TEST_COSMOS_KEY,
      agent: new https.Agent({ rejectUnauthorized: false }),
      connectionPolicy: { enableEndpointDiscovery: false },
    });
    try {
      const database = fresh();
      const { database: db } = await client.databases.createIfNotExists({ id: database });
      const jobs = COSMOS_CONTAINERS.jobs;
      await db.containers.createIfNotExists({
        id: jobs.name,
        partitionKey: { paths: [jobs.partitionKeyPath] },
      });
      const store = await open(database);
      const { resource } = await db.container(jobs.name).read();
      const composites = (resource?.indexingPolicy?.compositeIndexes ?? []).map((ix) =>
        ix.map((p) => `${p.path}:${p.order}`).join(','),
      );
      expect(composites).toContain(
        '/stage:ascending,/fleetRank:ascending,/seq:ascending,/id:ascending',
      );
      expect(composites).toContain('/dueAt:ascending,/id:ascending');
      // The claim query (a four-field ORDER BY) is now served.
      await expect(
        store.jobs.claimCandidates({
          productId: 'p',
          capabilities: [],
          now: '2026-01-01T00:00:00.000Z',
          limit: 1,
        }),
      ).resolves.toEqual([]);

      const other = fresh();
      const { database: db2 } = await client.databases.createIfNotExists({ id: other });
      await db2.containers.createIfNotExists({ id: jobs.name, partitionKey: { paths: ['/id'] } });
      await expect(open(other)).rejects.toMatchObject({
        code: 'STORE_UNAVAILABLE',
        detail: expect.stringContaining(`container ${jobs.name} exists with partition key /id`),
      });
      await db.delete();
      await db2.delete();
    } finally {
      client.dispose();
    }
  });
});
