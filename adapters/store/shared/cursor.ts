/**
 * Opaque list cursors, shared by the stores that page by key (SQLite, Cosmos DB): the
 * base64url of a JSON array `[tag, ...key parts]`. A cursor of another list, or one
 * this store did not issue, fails with an `invalid` fault (`VALIDATION`).
 */
import { parseJson, StoreFault } from './store-fault.js';

export type CursorPart = 'string' | 'number';
export type CursorKey = readonly (string | number)[];

/** Converts between a position in a list and the opaque cursor of that list. */
export interface CursorCodec {
  encode(key: CursorKey): string;
  decode(cursor: string): CursorKey;
}

export function cursorCodec(tag: string, parts: readonly CursorPart[]): CursorCodec {
  return {
    encode: (key) => Buffer.from(JSON.stringify([tag, ...key]), 'utf8').toString('base64url'),
    decode: (cursor) => {
      const value = parseJson(
        typeof cursor === 'string' ? Buffer.from(cursor, 'base64url').toString('utf8') : '',
      );
      if (
        !Array.isArray(value) ||
        value.length !== parts.length + 1 ||
        value[0] !== tag ||
        !parts.every((t, i) =>
          t === 'number' ? Number.isFinite(value[i + 1]) : typeof value[i + 1] === 'string',
        )
      ) {
        throw new StoreFault('invalid', 'bad cursor');
      }
      return value.slice(1) as CursorKey;
    },
  };
}
