/**
 * Out-of-range and extreme values for the simulator's generators (issue 10, item 1: a
 * wall budget of 10^8 days once stopped the supervisor of every product). Each value is
 * labelled with what the schemas must do with it:
 *
 * - `valid`: at or near a documented limit; it must be accepted, and whatever it leads
 *   to (a deadline a year away, a retry a week away, 64 levels of JSON) must never
 *   break the supervisor or another job;
 * - `invalid`: past a limit, or not a finite number; it must be refused with a clear
 *   `VALIDATION` naming the field (`field`), and nothing written;
 * - `either`: valid alone but may push a total past its bound (usage increments): it
 *   is accepted or refused with `VALIDATION`, never anything else.
 *
 * `STORED_EXTREMES` are values no Fleet build writes any more but that a document
 * written before the schemas bounded them (or edited by hand) may still hold.
 */
import { MAX_JSON_DEPTH } from '../../runtime/json-depth.js';
import type { Budget, ProgressInput, SubmitInput } from '../../runtime/types.js';

export type Validity = 'valid' | 'invalid' | 'either';

export interface Extreme<T> {
  label: string;
  validity: Validity;
  /** What a refusal's detail must name. */
  field: RegExp;
  value: T;
}

/** An object nested `levels` levels deep (the value itself is level 1). */
export function nestedJson(levels: number): Record<string, unknown> {
  let v: Record<string, unknown> = { leaf: true };
  for (let i = 1; i < levels; i++) v = { a: v };
  return v;
}

const DAY = 86_400_000;
const BUDGET = /budget/;

/** Submit fields (merged over the generated input). */
export const SUBMIT_EXTREMES: ReadonlyArray<Extreme<Partial<SubmitInput>>> = [
  {
    label: 'wall P365D (the maximum)',
    validity: 'valid',
    field: BUDGET,
    value: { budget: { wall: 'P365D' } },
  },
  {
    label: 'every budget at its maximum',
    validity: 'valid',
    field: BUDGET,
    value: { budget: { wall: 'P365D', usd: 1_000_000, tokens: 1_000_000_000_000 } },
  },
  { label: 'wall PT0S', validity: 'valid', field: BUDGET, value: { budget: { wall: 'PT0S' } } },
  { label: 'tokens 0', validity: 'valid', field: BUDGET, value: { budget: { tokens: 0, usd: 0 } } },
  {
    label: 'retry: 100 retries, backoff up to a week',
    validity: 'valid',
    field: /retry/,
    value: {
      retry: {
        max: 100,
        backoff: 'exponential',
        delayMs: DAY,
        maxDelayMs: 7 * DAY,
        on: ['transient'],
      },
    },
  },
  {
    label: `manifestSnapshot ${MAX_JSON_DEPTH} levels deep`,
    validity: 'valid',
    field: /manifestSnapshot/,
    value: { manifestSnapshot: nestedJson(MAX_JSON_DEPTH) },
  },
  {
    label: 'wall P100000000D',
    validity: 'invalid',
    field: BUDGET,
    value: { budget: { wall: 'P100000000D' } },
  },
  { label: 'wall P366D', validity: 'invalid', field: BUDGET, value: { budget: { wall: 'P366D' } } },
  {
    label: 'wall PT100000000H',
    validity: 'invalid',
    field: BUDGET,
    value: { budget: { wall: 'PT100000000H' } },
  },
  { label: 'usd 1e308', validity: 'invalid', field: BUDGET, value: { budget: { usd: 1e308 } } },
  {
    label: 'usd Infinity',
    validity: 'invalid',
    field: BUDGET,
    value: { budget: { usd: Number.POSITIVE_INFINITY } },
  },
  { label: 'usd NaN', validity: 'invalid', field: BUDGET, value: { budget: { usd: Number.NaN } } },
  {
    label: 'tokens 2^60',
    validity: 'invalid',
    field: BUDGET,
    value: { budget: { tokens: 2 ** 60 } },
  },
  { label: 'tokens -1', validity: 'invalid', field: BUDGET, value: { budget: { tokens: -1 } } },
  {
    label: `manifestSnapshot ${MAX_JSON_DEPTH + 1} levels deep`,
    validity: 'invalid',
    field: /manifestSnapshot/,
    value: { manifestSnapshot: nestedJson(MAX_JSON_DEPTH + 1) },
  },
  {
    label: 'manifestSnapshot 3000 levels deep',
    validity: 'invalid',
    field: /manifestSnapshot/,
    value: { manifestSnapshot: nestedJson(3000) },
  },
];

const USAGE = /insights|tokens|cost|usage/i;

/** Usage increments of a progress report (`insights`). */
export const INSIGHT_EXTREMES: ReadonlyArray<Extreme<ProgressInput['insights']>> = [
  {
    label: 'tokensIn 2^53-1',
    validity: 'either',
    field: USAGE,
    value: { tokensIn: Number.MAX_SAFE_INTEGER },
  },
  {
    label: 'costUsd 1e9 (the maximum increment)',
    validity: 'either',
    field: USAGE,
    value: { costUsd: 1e9 },
  },
  {
    label: 'tokensOut 2^52',
    validity: 'either',
    field: USAGE,
    value: { tokensOut: 2 ** 52, turns: 2 ** 52 },
  },
  { label: 'costUsd 1e308', validity: 'invalid', field: USAGE, value: { costUsd: 1e308 } },
  { label: 'costUsd NaN', validity: 'invalid', field: USAGE, value: { costUsd: Number.NaN } },
  { label: 'tokensIn -1', validity: 'invalid', field: USAGE, value: { tokensIn: -1 } },
  { label: 'tokensIn 1.5', validity: 'invalid', field: USAGE, value: { tokensIn: 1.5 } },
  { label: 'tokensIn 2^60', validity: 'invalid', field: USAGE, value: { tokensIn: 2 ** 60 } },
];

/** `extendMs` of a renewal. */
export const EXTEND_EXTREMES: ReadonlyArray<Extreme<number>> = [
  { label: 'extendMs 1000 (the minimum)', validity: 'valid', field: /extendMs/, value: 1000 },
  {
    label: 'extendMs 3600000 (the maximum)',
    validity: 'valid',
    field: /extendMs/,
    value: 3_600_000,
  },
  { label: 'extendMs 999', validity: 'invalid', field: /extendMs/, value: 999 },
  { label: 'extendMs 3600001', validity: 'invalid', field: /extendMs/, value: 3_600_001 },
  { label: 'extendMs 1e15', validity: 'invalid', field: /extendMs/, value: 1e15 },
  { label: 'extendMs NaN', validity: 'invalid', field: /extendMs/, value: Number.NaN },
];

/** A heartbeat's descriptor and seat limit. */
export const HEARTBEAT_EXTREMES: ReadonlyArray<
  Extreme<{ descriptor?: Record<string, unknown>; seatLimit?: number }>
> = [
  {
    label: `descriptor ${MAX_JSON_DEPTH} levels deep`,
    validity: 'valid',
    field: /descriptor/,
    value: { descriptor: nestedJson(MAX_JSON_DEPTH) },
  },
  {
    label: 'seatLimit 10000 (the maximum)',
    validity: 'valid',
    field: /seatLimit/,
    value: { seatLimit: 10_000 },
  },
  {
    label: 'descriptor 3000 levels deep',
    validity: 'invalid',
    field: /descriptor/,
    value: { descriptor: nestedJson(3000) },
  },
  { label: 'seatLimit -1', validity: 'invalid', field: /seatLimit/, value: { seatLimit: -1 } },
  {
    label: 'seatLimit 10001',
    validity: 'invalid',
    field: /seatLimit/,
    value: { seatLimit: 10_001 },
  },
];

/** Budgets a stored document may hold from before the schemas bounded them. */
export const STORED_EXTREMES: ReadonlyArray<{ label: string; budget: Budget }> = [
  { label: 'wall P100000000D', budget: { wall: 'P100000000D' } },
  { label: 'wall PT100000000H', budget: { wall: 'PT100000000H' } },
  { label: 'usd 1e308', budget: { usd: 1e308 } },
  { label: 'tokens 2^60', budget: { tokens: 2 ** 60 } },
  { label: 'wall P100000000D, usd 1e308', budget: { wall: 'P100000000D', usd: 1e308 } },
];
