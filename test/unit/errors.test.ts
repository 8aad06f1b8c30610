/**
 * The error table: every code has the HTTP status API.md gives, FleetError and the
 * Result helpers carry it, and every code is documented in the README.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ERROR_CODES,
  type ErrorCode,
  FleetError,
  fail,
  isFleetError,
  ok,
  unwrap,
} from '../../runtime/errors.js';

/** The codes and statuses of the API.md table. */
const API_STATUS: Record<string, number> = {
  VALIDATION: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  FENCED: 409,
  INVALID_TRANSITION: 409,
  IDEMPOTENCY_CONFLICT: 409,
  DEPENDENCY_CYCLE: 422,
  UNKNOWN_DEPENDENCY: 422,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
};

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

describe('ERROR_CODES', () => {
  it.each(Object.entries(API_STATUS))('%s is %i, as API.md says', (code, status) => {
    expect(code in ERROR_CODES).toBe(true);
    expect(ERROR_CODES[code as ErrorCode].status).toBe(status);
    expect(new FleetError(code as ErrorCode, 'x').status).toBe(status);
  });

  it('every code has an HTTP error status and a non-empty title', () => {
    for (const code of CODES) {
      const { status, title } = ERROR_CODES[code];
      expect(Number.isInteger(status), code).toBe(true);
      expect(status >= 400 && status <= 599, code).toBe(true);
      expect(title.length, code).toBeGreaterThan(0);
    }
  });

  it('codes outside API.md are server-side (never 2xx/3xx), internal ones 5xx', () => {
    expect(ERROR_CODES.SNAPSHOT_VERSION.status).toBeGreaterThanOrEqual(500);
    expect(ERROR_CODES.STORE_UNAVAILABLE.status).toBe(503);
    expect(ERROR_CODES.INTERNAL.status).toBe(500);
  });
});

describe('FleetError and Result helpers', () => {
  it('a FleetError carries code, status, detail and extra', () => {
    const cause = new Error('db');
    const e = new FleetError('UNKNOWN_DEPENDENCY', 'no job x', {
      extra: { unknown: ['x'] },
      cause,
    });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('FleetError');
    expect(e.code).toBe('UNKNOWN_DEPENDENCY');
    expect(e.status).toBe(422);
    expect(e.detail).toBe('no job x');
    expect(e.message).toContain('UNKNOWN_DEPENDENCY');
    expect(e.extra).toEqual({ unknown: ['x'] });
    expect(e.cause).toBe(cause);
    expect(new FleetError('FENCED', 'x').extra).toEqual({});
  });

  it('isFleetError narrows by code', () => {
    const e = new FleetError('FENCED', 'x');
    expect(isFleetError(e)).toBe(true);
    expect(isFleetError(e, 'FENCED')).toBe(true);
    expect(isFleetError(e, 'NOT_FOUND', 'FENCED')).toBe(true);
    expect(isFleetError(e, 'NOT_FOUND')).toBe(false);
    expect(isFleetError(new Error('FENCED'))).toBe(false);
    expect(isFleetError({ code: 'FENCED' })).toBe(false);
  });

  it('ok / fail / unwrap', () => {
    expect(unwrap(ok(5))).toBe(5);
    const r = fail('DEPENDENCY_CYCLE', 'a → b → a', { cycle: ['a', 'b', 'a'] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.status).toBe(422);
    expect(r.error.extra).toEqual({ cycle: ['a', 'b', 'a'] });
    expect(() => unwrap(r)).toThrow(FleetError);
  });
});

describe('README', () => {
  const readme = (): string => {
    const url = new URL('../../README.md', import.meta.url);
    try {
      return readFileSync(url, 'utf8');
    } catch (e) {
      throw new Error(`README.md not found at ${url.pathname}: ${String(e)}`);
    }
  };

  it.each(CODES)('documents `%s`', (code) => {
    expect(readme()).toContain(`\`${code}\``);
  });

  it('every code in the README error table has the status of ERROR_CODES', () => {
    const rows = [...readme().matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)];
    expect(rows.length).toBeGreaterThanOrEqual(Object.keys(API_STATUS).length);
    for (const [, code, status] of rows) {
      expect(code && code in ERROR_CODES, `README lists unknown code ${code}`).toBe(true);
      expect(Number(status), String(code)).toBe(ERROR_CODES[code as ErrorCode].status);
    }
  });
});
