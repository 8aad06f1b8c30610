import { it, expect } from 'vitest';
import { openCosmosStore } from '../../adapters/store/cosmos/index.js';
import { startFaultyCosmos, documentWrites } from '../support/cosmos-fault-proxy.js';
import { makeProfile } from '../support/docs.js';

it('exp', async () => {
  const fc = await startFaultyCosmos();
  const store = await openCosmosStore({ endpoint: fc.endpoint, key: 'k', database: 'dbx', requestTimeoutMs: 2000 });
  const p = makeProfile();
  const c = await store.profiles.create(p);
  console.log(c);
  const q = await store.profiles.list(p.productId, { limit: 10 });
  console.log(q.items.length);
  for (const r of fc.proxy.requests) console.log(r.method, r.path, r.isQuery, r.upstreamStatus, JSON.stringify(r.headers).slice(0,0));
  console.log(fc.proxy.requests.at(-1)?.headers);
  fc.proxy.inject(documentWrites('dbx'), { kind: 'drop' });
  const t = performance.now();
  try { await store.profiles.replace({ ...p, version: 2 }, c._etag); } catch (e) { console.log('ERR', e); }
  console.log('took', performance.now() - t, store.stats());
  for (const r of fc.proxy.requests.slice(-4)) console.log(r.method, r.path, r.fault, r.upstreamStatus);
  await store.dropDatabase();
  await fc.close();
});
