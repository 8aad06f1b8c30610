/**
 * What every store adapter shares before its own `mapError`: the internal failure
 * kinds, their Fleet error codes, and the argument checks of the port's methods. Each
 * adapter still maps its native failures (SQLite result codes, Cosmos statuses) in its
 * own single `mapError`; `StoreFault`s map the same way everywhere.
 */
import type { ErrorCode } from '../../../runtime/index.js';

/** What went wrong inside a store, before it is given a Fleet error code. */
export type FaultKind = 'exists' | 'stale' | 'missing' | 'invalid' | 'closed';

/** An internal failure; the adapter's `mapError` turns it into a `FleetError`. */
export class StoreFault extends Error {
  readonly kind: FaultKind;
  constructor(kind: FaultKind, message: string) {
    super(message);
    this.name = 'StoreFault';
    this.kind = kind;
  }
}

/** The Fleet code of each fault kind, identical in every store. */
export const FAULT_CODES: Readonly<Record<FaultKind, ErrorCode>> = {
  exists: 'ALREADY_EXISTS',
  stale: 'PRECONDITION_FAILED',
  missing: 'NOT_FOUND',
  invalid: 'VALIDATION',
  closed: 'STORE_UNAVAILABLE',
};

/** A page size: an integer ≥ `min`, else an `invalid` fault. */
export function requireLimit(limit: unknown, min: number): number {
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < min) {
    throw new StoreFault('invalid', `limit must be an integer >= ${min}`);
  }
  return limit;
}

/** A non-empty string, else an `invalid` fault naming `what`. */
export function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new StoreFault('invalid', `${what} must be a non-empty string`);
  }
  return value;
}

/** A string or null (undefined reads as null), else an `invalid` fault. */
export function nullableString(value: unknown, what: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string')
    throw new StoreFault('invalid', `${what} must be a string or null`);
  return value;
}

/** A finite number, else an `invalid` fault. */
export function requireNumber(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new StoreFault('invalid', `${what} must be a finite number`);
  }
  return value;
}

/** An array of strings, else an `invalid` fault. */
export function stringArray(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw new StoreFault('invalid', `${what} must be an array of strings`);
  }
  return value as string[];
}

/** The parsed value of `text`, or undefined when it is not JSON. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
