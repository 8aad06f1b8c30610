/**
 * Drives Fleet over HTTP the way factories and submitters do, for the browser tests and
 * the README screenshot: submit, claim, move, release, progress, heartbeat, admin calls.
 * Every call checks its status, so a scenario that goes wrong fails loudly.
 */
export interface Caller {
  /** The server's URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly token: string;
}

export async function call<T = Record<string, unknown>>(
  c: Caller,
  method: string,
  path: string,
  body?: unknown,
  expectStatus: number[] = [200, 201],
): Promise<T> {
  const res = await fetch(`${c.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${c.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!expectStatus.includes(res.status)) {
    throw new Error(`${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
  }
  return (text === '' ? null : JSON.parse(text)) as T;
}

export interface JobRef {
  id: string;
  stage: string;
  leaseEpoch: number;
}

export const submit = (c: Caller, key: string, extra: Record<string, unknown> = {}) =>
  call<JobRef>(c, 'POST', '/fleet/jobs', { idempotencyKey: key, bodyMd: `# ${key}`, ...extra });

/** Claims the next job as `factoryId`; returns the grant (fails on 204). */
export async function claim(c: Caller, factoryId: string, capabilities?: string[]) {
  const grant = await call<{ job: JobRef; lease: { leaseEpoch: number } }>(
    c,
    'POST',
    '/fleet/claim',
    {
      factoryId,
      ...(capabilities ? { capabilities } : {}),
    },
  );
  if (grant === null) throw new Error(`nothing to claim for ${factoryId}`);
  return { factoryId, jobId: grant.job.id, leaseEpoch: grant.lease.leaseEpoch };
}

export type Lease = Awaited<ReturnType<typeof claim>>;

export const moveTo = (c: Caller, l: Lease, to: string, extra: Record<string, unknown> = {}) =>
  call<JobRef>(c, 'PATCH', `/fleet/jobs/${encodeURIComponent(l.jobId)}`, {
    factoryId: l.factoryId,
    leaseEpoch: l.leaseEpoch,
    to,
    ...extra,
  });

export const release = (c: Caller, l: Lease) =>
  call<JobRef>(c, 'POST', `/fleet/jobs/${encodeURIComponent(l.jobId)}/lease/release`, {
    factoryId: l.factoryId,
    leaseEpoch: l.leaseEpoch,
  });

export const progress = (c: Caller, l: Lease, body: Record<string, unknown>) =>
  call(c, 'POST', `/fleet/jobs/${encodeURIComponent(l.jobId)}/progress`, {
    factoryId: l.factoryId,
    leaseEpoch: l.leaseEpoch,
    ...body,
  });

export const heartbeat = (c: Caller, factoryId: string, extra: Record<string, unknown> = {}) =>
  call(c, 'POST', '/fleet/factories/heartbeat', {
    factoryId,
    capabilities: ['node'],
    health: 'ok',
    ...extra,
  });

/**
 * A product with some history, for screenshots and overview checks: factories beating,
 * jobs in most stages, and one job (returned) that went round the machine: built,
 * sent back from review, released, claimed again by another factory, and now in testing
 * with insights, a checkpoint and an artifact.
 */
export async function populate(c: Caller): Promise<{ showcase: string }> {
  await heartbeat(c, 'factory-alpha', { load: 0.6, seatLimit: 4 });
  await heartbeat(c, 'factory-beta', { load: 0.3, seatLimit: 2 });
  const showcase = await submit(c, 'fix-flaky-login-test', {
    bodyMd:
      '# Fix the flaky login test\n\n`auth/login.spec.ts` fails one run in twenty on CI.\nFind the race, fix it, keep the test.',
    priority: 'high',
    capabilities: ['node'],
    budget: { usd: 5, tokens: 2_000_000, wall: 'PT2H' },
  });
  const a = await claim(c, 'factory-alpha', ['node']);
  await moveTo(c, a, 'building');
  await progress(c, a, {
    insights: { tokensIn: 48_000, tokensOut: 9_000, costUsd: 0.41, turns: 12 },
  });
  await moveTo(c, a, 'review');
  await moveTo(c, a, 'building');
  await moveTo(c, a, 'review');
  await moveTo(c, a, 'testing');
  await release(c, a);
  const b = await claim(c, 'factory-beta', ['node']);
  await moveTo(c, b, 'building', {
    checkpoint: { wipBranch: 'wip/fix-flaky-login', wipCommit: '9f3c2ab' },
  });
  await progress(c, b, {
    insights: { tokensIn: 61_000, tokensOut: 12_500, costUsd: 0.58, turns: 17, filesChanged: 3 },
    artifacts: [
      {
        name: 'test-report.html',
        uri: 'blob://reports/login-42.html',
        contentType: 'text/html',
        bytes: 18_432,
      },
    ],
  });
  await moveTo(c, b, 'review');
  await moveTo(c, b, 'testing');

  const base = await submit(c, 'upgrade-node-22', { capabilities: ['gpu'] });
  await submit(c, 'migrate-ci-cache', { deps: [base.id] });
  for (const k of ['docs-typos', 'bump-eslint', 'retry-webhooks', 'split-billing-module'])
    await submit(c, k);
  const d = await claim(c, 'factory-alpha');
  await moveTo(c, d, 'building');
  await moveTo(c, d, 'review');
  await moveTo(c, d, 'testing');
  await moveTo(c, d, 'shipped', {
    insights: { tokensIn: 20_000, tokensOut: 4_000, costUsd: 0.12 },
  });
  const f = await claim(c, 'factory-alpha');
  await moveTo(c, f, 'building');
  await moveTo(c, f, 'failed', { error: { class: 'compile', message: 'tsc: 3 errors' } });
  const g = await claim(c, 'factory-beta');
  await moveTo(c, g, 'building');
  return { showcase: showcase.id };
}
