/**
 * The HTTP adapter's parts on their own: the long-poll registry (no lost wake-ups, no
 * leaked waiters), entity-tag parsing, the one error mapping, and role admission.
 */
import { describe, expect, it } from 'vitest';
import { entityTags, noneMatch } from '../../adapters/http/conditional.js';
import { admits, ClaimWaiters, toProblem } from '../../adapters/http/index.js';
import { ERROR_CODES, FleetError } from '../../runtime/index.js';

describe('ClaimWaiters', () => {
  it('a notify between reading the generation and parking is not lost', async () => {
    const w = new ClaimWaiters();
    const since = w.generation('p');
    w.notify('p'); // arrives while the claimer is still trying
    expect(await w.wait('p', since, 60_000, new AbortController().signal)).toBe('notified');
    expect(w.size).toBe(0);
  });

  it('wakes every waiter of the product, and only that product', async () => {
    const w = new ClaimWaiters();
    const signal = new AbortController().signal;
    const a = w.wait('p', w.generation('p'), 60_000, signal);
    const b = w.wait('p', w.generation('p'), 60_000, signal);
    const other = w.wait('q', w.generation('q'), 20, signal);
    expect(w.size).toBe(3);
    w.notify('p');
    expect(await Promise.all([a, b])).toEqual(['notified', 'notified']);
    expect(await other).toBe('recheck');
    expect(w.size).toBe(0);
  });

  it('an abort or a close ends the wait and leaves nothing behind', async () => {
    const w = new ClaimWaiters();
    const ac = new AbortController();
    const aborted = w.wait('p', 0, 60_000, ac.signal);
    const closing = w.wait('p', 0, 60_000, new AbortController().signal);
    ac.abort();
    expect(await aborted).toBe('aborted');
    expect(await w.wait('p', 0, 60_000, ac.signal)).toBe('aborted');
    w.close();
    expect(await closing).toBe('closed');
    expect(await w.wait('p', 0, 60_000, new AbortController().signal)).toBe('closed');
    expect(w.size).toBe(0);
    expect(w.closed).toBe(true);
  });
});

describe('entity tags', () => {
  it('parses lists, * and weak tags', () => {
    expect(entityTags('"a"')).toEqual(['"a"']);
    expect(entityTags(' "a" , W/"b",,"c" ')).toEqual(['"a"', 'W/"b"', '"c"']);
    expect(entityTags('"a", *')).toBe('*');
    expect(noneMatch('W/"x"', '"x"')).toBe(true);
    expect(noneMatch('"y", "x"', '"x"')).toBe(true);
    expect(noneMatch('*', '"x"')).toBe(true);
    expect(noneMatch('"y"', '"x"')).toBe(false);
    expect(noneMatch(undefined, '"x"')).toBe(false);
  });
});

describe('toProblem: the one mapping', () => {
  it('maps every FleetError code to its status; 5xx details are generic', () => {
    for (const code of Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[]) {
      const { problem, log } = toProblem(
        new FleetError(code, `secret ${code}`, { extra: { code: 'x', cycle: ['a'] } }),
      );
      expect(problem.code).toBe(code);
      expect(problem.status).toBe(ERROR_CODES[code].status);
      expect(problem.title).toBe(ERROR_CODES[code].title);
      if (problem.status >= 500) {
        expect(problem.detail).not.toContain('secret');
        expect(log).toBe('error');
      } else {
        expect(problem.detail).toBe(`secret ${code}`);
        expect(problem.cycle).toEqual(['a']); // extras are members, reserved ones are not overridden
        expect(log).toBe('none');
      }
    }
  });

  it('maps Fastify request errors and unknown throws', () => {
    const fst = (code: string, statusCode: number, message = 'm') =>
      Object.assign(new Error(message), { code, statusCode });
    expect(
      toProblem(fst('FST_ERR_CTP_BODY_TOO_LARGE', 413), { bodyLimit: 10 }).problem,
    ).toMatchObject({
      code: 'PAYLOAD_TOO_LARGE',
      status: 413,
      limitBytes: 10,
    });
    expect(toProblem(fst('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415)).problem).toMatchObject({
      code: 'VALIDATION',
      status: 400,
    });
    expect(toProblem(fst('FST_ERR_CTP_INVALID_JSON_BODY', 400)).problem.detail).toBe(
      'the body is not valid JSON',
    );
    expect(toProblem(fst('FST_ERR_RATE', 429, 'slow down')).problem).toMatchObject({
      code: 'RATE_LIMITED',
      status: 429,
    });
    expect(toProblem(fst('HOST_THING', 418, 'internal words')).problem).toMatchObject({
      code: 'VALIDATION',
      detail: 'Invalid request',
    });
    for (const thrown of [new Error('boom'), 'a string', null, undefined, { statusCode: 'x' }]) {
      const { problem, log } = toProblem(thrown);
      expect(problem).toMatchObject({
        code: 'INTERNAL',
        status: 500,
        detail: 'an internal error occurred',
      });
      expect(log).toBe('error');
    }
    const unauth = toProblem(new FleetError('UNAUTHENTICATED', 'no'));
    expect(unauth.headers['www-authenticate']).toMatch(/^Bearer/);
  });
});

describe('admits', () => {
  it('admin may do everything; any needs some role', () => {
    expect(admits(['admin'], ['factory'])).toBe(true);
    expect(admits(['submitter'], ['factory'])).toBe(false);
    expect(admits(['factory'], ['factory'])).toBe(true);
    expect(admits(['submitter'], 'any')).toBe(true);
    expect(admits([], 'any')).toBe(false);
  });
});
