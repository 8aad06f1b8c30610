/**
 * The CLI's output: aligned tables for people, JSON for scripts, and the one error type
 * commands throw (`fleet: <message>` on stderr, then the exit status).
 */

/** A failure the command reports as `fleet: <message>` and exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Writes one line to stdout. */
export const print = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/** Writes one line to stderr. */
export const printErr = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** A cell: `null`/`undefined` show as `-`. */
export type Cell = string | number | boolean | null | undefined;

const text = (c: Cell): string => (c === null || c === undefined || c === '' ? '-' : String(c));

/** Rows under upper-case headers, columns padded to their widest cell (the last one is not). */
export function table(headers: string[], rows: Cell[][]): string[] {
  const cells = [headers, ...rows.map((r) => r.map(text))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** `2026-01-01T10:00:00.000Z` → `2026-01-01 10:00:00`. */
export const time = (iso: string | null | undefined): string =>
  iso
    ? iso
        .replace('T', ' ')
        .replace(/\.\d+Z$/, '')
        .replace(/Z$/, '')
    : '-';

/** A dollar amount with up to 4 decimals. */
export const usd = (n: number): string => `$${n.toFixed(n !== 0 && Math.abs(n) < 0.01 ? 4 : 2)}`;

/** Prints `value` as one line of JSON. */
export const printJson = (value: unknown): void => print(JSON.stringify(value));
