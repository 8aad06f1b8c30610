/**
 * Admin moves: requeue (`dead_letter` or `failed` → `queued`, attempts and budget usage
 * reset) and cancel (any non-terminal stage → `dead_letter`, the holder fenced out).
 */
import { ZERO_USAGE } from './budget.js';
import type { Core } from './core.js';
import type { Stored } from './document-store.port.js';
import type { Result } from './errors.js';
import type { JobDoc } from './types.js';
import type { Conditional } from './worker-calls.js';

// -------------------------------------------------------------------------

/** `dead_letter` or `failed` → `queued` (or `blocked`), retry count and budgets reset. */
export async function requeue(
  c: Core,
  productId: string,
  jobId: string,
  actor: string | null = 'admin',
  options: Conditional = {},
): Promise<Result<Stored<JobDoc>>> {
  return c.act(productId, () =>
    c.writes.update(
      productId,
      jobId,
      actor,
      async (draft) => {
        const status = await c.deps.status(productId, draft.doc.deps, draft.doc.depsMode);
        const err = draft.send({ type: 'REQUEUE', depsMet: status.met });
        if (err) return err;
        draft.doc.usage = { ...ZERO_USAGE };
        draft.doc.lastError = null;
        return null;
      },
      options,
    ),
  );
}

/** Any non-terminal stage → `dead_letter` (reason `cancelled`); the holder is fenced out. */
export async function cancel(
  c: Core,
  productId: string,
  jobId: string,
  reason: string | null = null,
  actor: string | null = 'admin',
  options: Conditional = {},
): Promise<Result<Stored<JobDoc>>> {
  return c.act(productId, () =>
    c.writes.update(
      productId,
      jobId,
      actor,
      (draft) => draft.send({ type: 'CANCEL' }, { reason }),
      options,
    ),
  );
}
