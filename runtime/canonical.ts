/**
 * Canonical JSON: object keys sorted at every depth, no whitespace. Two values that
 * differ only in key order have the same canonical form (idempotent submission
 * compares content this way).
 */
import { createHash } from 'node:crypto';

/** One open array or object of the walk: what is left to write, and how to close it. */
interface Frame {
  readonly items: ReadonlyArray<readonly [string | null, unknown]>;
  i: number;
  readonly close: string;
}

/**
 * Canonical JSON text of a JSON-compatible value (`undefined` members are dropped;
 * `undefined` array items are written as `null`, like `JSON.stringify`). Iterative: a
 * value nested however deep costs heap, never stack.
 */
export function canonicalJson(value: unknown): string {
  const out: string[] = [];
  const stack: Frame[] = [];
  const open = (v: unknown): void => {
    if (v === null || typeof v !== 'object') {
      out.push(JSON.stringify(v) ?? 'null');
      return;
    }
    if (Array.isArray(v)) {
      out.push('[');
      stack.push({ items: v.map((x) => [null, x ?? null] as const), i: 0, close: ']' });
      return;
    }
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    out.push('{');
    stack.push({ items: entries, i: 0, close: '}' });
  };
  open(value);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.i === frame.items.length) {
      out.push(frame.close);
      stack.pop();
      continue;
    }
    const [key, item] = frame.items[frame.i]!;
    if (frame.i > 0) out.push(',');
    frame.i++;
    if (key !== null) out.push(`${JSON.stringify(key)}:`);
    open(item);
  }
  return out.join('');
}

/** sha256 (hex) of the canonical JSON of `value`. */
export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/**
 * The job id for an idempotency key: deterministic, so two concurrent submissions of
 * the same key (in one process or many) race on one `create` and exactly one wins.
 */
export function jobIdFor(productId: string, idempotencyKey: string): string {
  const digest = createHash('sha256').update(`${productId}\u0000${idempotencyKey}`).digest();
  return `job_${digest.subarray(0, 16).toString('base64url')}`;
}
