/**
 * Canonical JSON: object keys sorted at every depth, no whitespace. Two values that
 * differ only in key order have the same canonical form (idempotent submission
 * compares content this way).
 */
import { createHash } from 'node:crypto';

/** Canonical JSON text of a JSON-compatible value (`undefined` members are dropped). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
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
