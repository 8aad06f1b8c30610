/**
 * The standalone server's configuration: environment variables, validated once at boot
 * (zod). Every bad variable is reported, each on its own line with what was expected and
 * what was found, so an operator fixes them all in one go; the CLI prints them and exits
 * with status 1, without a stack trace.
 *
 * | variable | meaning | default |
 * |---|---|---|
 * | `HOST` | interface to listen on | `127.0.0.1` |
 * | `PORT` | TCP port; `0` picks a free one | `8080` |
 * | `FLEET_STORE` | `sqlite` \| `memory` \| `cosmos` | `sqlite` |
 * | `FLEET_DB` | the SQLite database file | `./data/fleet.db` |
 * | `FLEET_TOKENS` | JSON array of `{ "token", "productId", "roles", "subject"?, "factoryIds"? }` | — |
 * | `FLEET_TOKENS_FILE` | a file holding that JSON array | — |
 * | `FLEET_LEASE_MS` | lease length of a claim, ms (≥ 1000) | `60000` |
 * | `FLEET_REAPER_INTERVAL_MS` | mean wait between supervisor sweeps, ms (≥ 10) | `5000` |
 * | `FLEET_BODY_LIMIT` | largest request body, bytes (`512KiB`, `2MiB` accepted) | `1048576` |
 * | `FLEET_LOG_LEVEL` | `fatal` … `trace`, `silent` | `info` |
 * | `FLEET_LOG_FORMAT` | `json` (pino's JSON lines) \| `pretty` (human-readable) | `pretty` on a terminal, else `json` |
 * | `FLEET_CLAIM_SPREAD` | a claim picks at random among this many oldest jobs of the best priority (1 = strictly oldest first) | `1`; `4` with `cosmos` |
 * | `COSMOS_ENDPOINT`, `COSMOS_KEY`, `COSMOS_DATABASE` | the Cosmos DB account (`FLEET_STORE=cosmos`) | —, —, `fleet` |
 * | `COSMOS_ALLOW_SELF_SIGNED_CERT` | `true` accepts a self-signed certificate (a local emulator; loopback endpoints only) | `false` |
 * | `FLEET_REQUEST_TIMEOUT_MS` | a client must have sent its whole request (headers and body) within this, ms (else 408 and the connection is closed) | `45000` |
 * | `FLEET_CONNECTION_TIMEOUT_MS` | a connection with no traffic for this long is closed, ms; over 30 s, the longest long-poll claim | `60000` |
 * | `FLEET_MAX_PARKED_CLAIMS` | long-poll claims one token may have waiting at once; one more → 429 | `64` |
 * | `FLEET_LIST_PAGE_BYTES` | byte budget of a page of `GET /fleet/jobs` (`512KiB`, `8MiB` accepted) | `4194304` |
 * | `FLEET_ACTOR_KEY` | secret (16+ characters) keying the event actor of tokens without a `subject` (see `actor-key.ts`) | derived per store |
 * | `FLEET_RATE_LIMIT` | requests one token may make to the `/fleet` routes, e.g. `600/min`, `10/s`, `100/10s`; `off` | off |
 * | `FLEET_METRICS_TOKEN` | when set, `GET /metrics` needs `Authorization: Bearer <it>` (16–1000 printable characters; a secret) | — (open) |
 * | `FLEET_BACKUP_DIR` | where `GET /fleet/admin/backup` writes its copy of the database before sending it (created 0700) | the database's folder |
 * | `FLEET_RETENTION` | how long a `shipped` or `dead_letter` job is kept, with its runs, events and artifacts, before the supervisor deletes it: `30d`, `12h`, `1d12h`...; `0` keeps jobs forever | `30d` |
 *
 * With neither `FLEET_TOKENS` nor `FLEET_TOKENS_FILE`, the server makes a development
 * admin token (see `server.ts`). Setting both is an error. An empty variable counts as
 * unset. An unknown `FLEET_*` variable is a warning (a typo would otherwise be silent).
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import type { FleetRole } from './index.js';
import { parseRateLimit, type RateLimit } from './rate-limit.js';
import { DEFAULT_RETENTION_MS, parseRetention } from './retention.js';

/** Roles a token may carry. */
export const FLEET_ROLES = [
  'submitter',
  'factory',
  'admin',
] as const satisfies readonly FleetRole[];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** One bearer token: the product it acts for and what it may do. */
export interface TokenGrant {
  token: string;
  productId: string;
  roles: FleetRole[];
  /** Who holds it, for logs and event actors. @defaultValue a keyed id of the token (`actor-key.ts`) */
  subject?: string;
  /** The factory ids it may act as (claims, heartbeats, lease calls, moves). @defaultValue any */
  factoryIds?: string[];
  /**
   * May take server-wide actions across products (an online backup: it holds every
   * product's jobs); needs the `admin` role. @defaultValue false
   */
  operator?: boolean;
}

export type StoreConfig =
  | { kind: 'sqlite'; path: string }
  | { kind: 'memory' }
  | {
      kind: 'cosmos';
      endpoint: string;
      key: string;
      database: string;
      /** Accept a self-signed TLS certificate (loopback endpoints only). */
      allowSelfSignedCertificate: boolean;
    };

export type TokensConfig =
  | { source: 'env'; grants: TokenGrant[] }
  | { source: 'file'; file: string; grants: TokenGrant[] }
  /** Neither variable set: a development admin token is made at boot. */
  | { source: 'dev' };

export interface FleetConfig {
  host: string;
  /** 0 = any free port. */
  port: number;
  store: StoreConfig;
  tokens: TokensConfig;
  /** @defaultValue 60000 */
  leaseMs: number;
  /** @defaultValue 5000 */
  reaperIntervalMs: number;
  /** @defaultValue 1048576 (1 MiB) */
  bodyLimit: number;
  /** @defaultValue 'info' */
  logLevel: LogLevel;
  /** Log lines as JSON or for people; undefined: `pretty` when stdout is a terminal. */
  logFormat?: 'json' | 'pretty';
  /** Claims pick among this many oldest jobs of the best priority. @defaultValue 1; 4 with Cosmos DB */
  claimSpread: number;
  /** Time a client has to send a whole request (headers and body), ms. @defaultValue 45000 */
  requestTimeoutMs: number;
  /**
   * A connection idle this long is closed, ms; longer than the longest long-poll claim
   * (30 s), whose connection is idle while it waits. @defaultValue 60000
   */
  connectionTimeoutMs: number;
  /** Long-poll claims one token may have waiting at once. @defaultValue 64 */
  maxParkedClaims: number;
  /** Byte budget of a page of `GET /fleet/jobs`. @defaultValue 4194304 (4 MiB) */
  listPageBytes: number;
  /** `FLEET_METRICS_TOKEN`: the bearer token `GET /metrics` requires. @defaultValue null (open) */
  metricsToken: string | null;
  /** Requests one token may make per window to the `/fleet` routes. @defaultValue null (no limit) */
  rateLimit: RateLimit | null;
  /**
   * Folder where an online backup is written before it is sent (needs room for a copy
   * of the database). @defaultValue the database's folder (SQLite); the OS's temporary folder otherwise
   */
  backupDir: string;
  /**
   * `FLEET_ACTOR_KEY`: keys the actor ids of tokens without a subject.
   * @defaultValue null: derived from the store (see `actor-key.ts`)
   */
  actorKey: string | null;
  /** Non-fatal findings (unknown `FLEET_*` variables), for the log. */
  warnings: string[];
  /** `FLEET_RETENTION`: how long finished jobs are kept, ms; 0: forever. @defaultValue 30 days */
  retentionMs: number;
}

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  db: './data/fleet.db',
  leaseMs: 60_000,
  reaperIntervalMs: 5000,
  bodyLimit: 1024 * 1024,
  logLevel: 'info',
  cosmosDatabase: 'fleet',
  claimSpread: 1,
  requestTimeoutMs: 45_000,
  connectionTimeoutMs: 60_000,
  maxParkedClaims: 64,
  listPageBytes: 4 * 1024 * 1024,
  /** Several processes share a Cosmos DB database: spread their claims (see bench/cosmos). */
  cosmosClaimSpread: 4,
} as const;

/** Variables this build reads (anything else named `FLEET_*` is a warning). */
export const KNOWN_VARIABLES = [
  'FLEET_STORE',
  'FLEET_DB',
  'FLEET_TOKENS',
  'FLEET_TOKENS_FILE',
  'FLEET_LEASE_MS',
  'FLEET_REAPER_INTERVAL_MS',
  'FLEET_BODY_LIMIT',
  'FLEET_LOG_LEVEL',
  'FLEET_CLAIM_SPREAD',
  'FLEET_ACTOR_KEY',
  'FLEET_REQUEST_TIMEOUT_MS',
  'FLEET_CONNECTION_TIMEOUT_MS',
  'FLEET_MAX_PARKED_CLAIMS',
  'FLEET_LIST_PAGE_BYTES',
  'FLEET_LOG_FORMAT',
  // read by the client commands and the agent (`fleet agent`), not by the server
  'FLEET_URL',
  'FLEET_TOKEN',
  'FLEET_BACKUP_DIR',
  'FLEET_RATE_LIMIT',
  'FLEET_METRICS_TOKEN',
  'FLEET_RETENTION',
] as const;

/** The configuration is invalid; `problems` has one line per bad variable. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** What was found, quoted and shortened (a token list is long and secret-ish). */
function got(value: string): string {
  const v = value.length > 40 ? `${value.slice(0, 37)}...` : value;
  return JSON.stringify(v);
}

/**
 * Why `endpoint` is not a usable account URL, or null. A value that is not a URL is not
 * quoted: the likeliest mistake is the account key pasted into the wrong variable.
 */
function endpointProblem(endpoint: string): string | null {
  const example = 'e.g. https://myaccount.documents.azure.com:443/';
  if (!URL.canParse(endpoint)) {
    return `must be an http(s) URL, ${example} (the value is not shown: it is not a URL, and may be a secret)`;
  }
  const url = new URL(endpoint);
  if (!/^https?:$/.test(url.protocol)) {
    return `must be an http(s) URL, ${example} (got a ${url.protocol} URL)`;
  }
  if (url.username !== '' || url.password !== '') {
    return 'must not carry a user name or password (the account key goes in COSMOS_KEY)';
  }
  return null;
}

/** An optional variable: undefined (or empty) → `fallback`, else parsed by `parse`. */
function variable<T>(parse: (raw: string) => T | { error: string }, fallback: T) {
  return z
    .string()
    .optional()
    .transform((raw, ctx): T => {
      if (raw === undefined || raw.trim() === '') return fallback;
      const r = parse(raw.trim());
      if (r !== null && typeof r === 'object' && 'error' in r) {
        ctx.addIssue({ code: 'custom', message: `${r.error} (got ${got(raw)})` });
        return z.NEVER;
      }
      return r as T;
    });
}

function integer(min: number, max: number, unit = '') {
  return (raw: string): number | { error: string } => {
    const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    return Number.isSafeInteger(n) && n >= min && n <= max
      ? n
      : { error: `must be a whole number from ${min} to ${max}${unit}` };
  };
}

const UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, kb: 1000, mib: 1024 ** 2, mb: 1e6 };

function byteSize(raw: string): number | { error: string } {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(raw);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  const n = m && unit !== undefined ? Number(m[1]) * unit : Number.NaN;
  return Number.isSafeInteger(n) && n >= 1 && n <= 1024 ** 3
    ? n
    : { error: 'must be a size in bytes from 1 to 1 GiB (a number, optionally with KiB or MiB)' };
}

function oneOf<const T extends readonly string[]>(values: T) {
  return (raw: string): T[number] | { error: string } =>
    (values as readonly string[]).includes(raw)
      ? (raw as T[number])
      : { error: `must be one of ${values.join(', ')}` };
}

const EnvSchema = z.object({
  HOST: variable(
    (raw) => (/\s/.test(raw) ? { error: 'must be a host name or address' } : raw),
    DEFAULTS.host,
  ),
  PORT: variable(integer(0, 65_535), DEFAULTS.port),
  FLEET_STORE: variable(oneOf(['sqlite', 'memory', 'cosmos'] as const), 'sqlite'),
  FLEET_DB: variable((raw) => raw, DEFAULTS.db),
  FLEET_BACKUP_DIR: variable((raw) => raw, undefined as string | undefined),
  FLEET_RATE_LIMIT: variable(parseRateLimit, null as RateLimit | null),
  FLEET_LEASE_MS: variable(integer(1000, 86_400_000, ' (ms)'), DEFAULTS.leaseMs),
  FLEET_REAPER_INTERVAL_MS: variable(integer(10, 3_600_000, ' (ms)'), DEFAULTS.reaperIntervalMs),
  FLEET_BODY_LIMIT: variable(byteSize, DEFAULTS.bodyLimit),
  FLEET_LOG_LEVEL: variable(oneOf(LOG_LEVELS), DEFAULTS.logLevel as LogLevel),
  FLEET_CLAIM_SPREAD: variable(integer(1, 256), undefined as number | undefined),
  FLEET_REQUEST_TIMEOUT_MS: variable(integer(1000, 3_600_000, ' (ms)'), DEFAULTS.requestTimeoutMs),
  // Over 30 s: a long-poll claim's connection is idle for up to 30 s while it waits.
  FLEET_CONNECTION_TIMEOUT_MS: variable(
    integer(31_000, 3_600_000, ' (ms; over 30000, the longest long-poll claim)'),
    DEFAULTS.connectionTimeoutMs,
  ),
  FLEET_MAX_PARKED_CLAIMS: variable(integer(1, 100_000), DEFAULTS.maxParkedClaims),
  FLEET_LIST_PAGE_BYTES: variable((raw) => {
    const n = byteSize(raw);
    return typeof n === 'number' && n < 1024 ? { error: 'must be at least 1 KiB' } : n;
  }, DEFAULTS.listPageBytes),
  FLEET_LOG_FORMAT: variable(oneOf(['json', 'pretty'] as const), undefined),
  COSMOS_ALLOW_SELF_SIGNED_CERT: variable(oneOf(['true', 'false', '1', '0'] as const), 'false'),
  FLEET_RETENTION: variable(parseRetention, DEFAULT_RETENTION_MS),
});

const TokenSchema = z.strictObject({
  token: z
    .string({ error: 'must be a string' })
    .min(1, 'must not be empty')
    .max(1000)
    .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces (it travels in a header)'),
  productId: z.string({ error: 'must be a string' }).min(1, 'must not be empty').max(200),
  roles: z
    .array(z.enum(FLEET_ROLES, { error: `must be one of ${FLEET_ROLES.join(', ')}` }), {
      error: 'must be an array of roles',
    })
    .min(1, 'must name at least one role'),
  subject: z.string().min(1).max(200).optional(),
  factoryIds: z
    .array(z.string().min(1, 'must not be empty').max(200), {
      error: 'must be an array of factory ids',
    })
    .min(1, 'must name at least one factory (leave it out for any)')
    .max(10_000)
    .optional(),
  operator: z.boolean({ error: 'must be true or false' }).optional(),
});

const TokensSchema = z
  .array(TokenSchema, { error: 'must be a JSON array of { "token", "productId", "roles" }' })
  .superRefine((grants, ctx) => {
    const seen = new Set<string>();
    grants.forEach((g, i) => {
      if (seen.has(g.token)) {
        ctx.addIssue({ code: 'custom', path: [i, 'token'], message: 'is listed twice' });
      }
      seen.add(g.token);
    });
  });

function issuePath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
}

/**
 * Where a JSON text stops being JSON, as "line L, column C", when the parser's message
 * names a position; never any of the text itself (a token list is all secrets).
 */
function jsonErrorPlace(text: string, error: unknown): string {
  const m = /position (\d+)/.exec(error instanceof Error ? error.message : '');
  if (m === null) return '';
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return ` at line ${line}, column ${column}`;
}

const TOKEN_MEMBERS = Object.keys(TokenSchema.shape).join(', ');

/**
 * The message of a token-list issue. Built from the schema alone: it never quotes the
 * input, so no part of a token reaches the console. zod names the unknown keys of a
 * strict object, and a key may be a token pasted in the wrong place: those are not named.
 */
function tokenIssueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return `has a member other than ${TOKEN_MEMBERS} (not named here: it may be a secret)`;
  }
  return issue.message;
}

/** Combinations the schema cannot express: an operator grant must be an admin one. */
function grantProblems(name: string, grants: readonly TokenGrant[], problems: string[]): void {
  grants.forEach((g, i) => {
    if (g.operator === true && !g.roles.includes('admin')) {
      problems.push(`${name}[${i}].operator: needs the role admin in the same grant`);
    }
  });
}

/**
 * Parses a token list; problems are prefixed with `name` (the variable). No problem
 * quotes the text: it is made of secrets (see {@link tokenIssueMessage}).
 */
function parseTokens(name: string, text: string, problems: string[]): TokenGrant[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    problems.push(
      `${name}: is not valid JSON${jsonErrorPlace(text, e)}; expected a JSON array of { "token", "productId", "roles" } (the value is not shown: it holds tokens)`,
    );
    return [];
  }
  const r = TokensSchema.safeParse(json);
  if (!r.success) {
    for (const issue of r.error.issues.slice(0, 10)) {
      problems.push(`${name}${issuePath(issue.path)}: ${tokenIssueMessage(issue)}`);
    }
    return [];
  }
  if (r.data.length === 0) {
    problems.push(`${name}: lists no token; every request would be refused`);
  }
  grantProblems(name, r.data, problems);
  return r.data.map((g) => ({ ...g, roles: [...new Set(g.roles)] }));
}

export interface LoadConfigOptions {
  /** Reads `FLEET_TOKENS_FILE`. @defaultValue fs.readFileSync(path, 'utf8') */
  readFile?: (path: string) => string;
  /** Relative paths resolve against this folder. @defaultValue process.cwd() */
  cwd?: string;
}

/**
 * Reads and validates the configuration from `env`.
 *
 * @throws ConfigError listing every invalid variable (never a partial configuration).
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: LoadConfigOptions = {},
): FleetConfig {
  const cwd = options.cwd ?? process.cwd();
  const readFile = options.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const problems: string[] = [];
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${String(issue.path[0] ?? 'environment')}: ${issue.message}`);
    }
  }

  const set = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v;
  };

  let tokens: TokensConfig = { source: 'dev' };
  const inline = set('FLEET_TOKENS');
  const file = set('FLEET_TOKENS_FILE');
  if (inline !== undefined && file !== undefined) {
    problems.push('FLEET_TOKENS, FLEET_TOKENS_FILE: set one of them, not both');
  } else if (inline !== undefined) {
    tokens = { source: 'env', grants: parseTokens('FLEET_TOKENS', inline, problems) };
  } else if (file !== undefined && /^\s*[[{]/.test(file)) {
    // A token list pasted into the file variable: naming "the file" would print it.
    problems.push(
      'FLEET_TOKENS_FILE: names a file, but holds what looks like a JSON token list (not shown); put the list in FLEET_TOKENS, or its file name here',
    );
  } else if (file !== undefined) {
    const path = resolve(cwd, file.trim());
    let text: string | undefined;
    try {
      text = readFile(path);
    } catch (e) {
      const code = (e as { code?: string }).code;
      problems.push(`FLEET_TOKENS_FILE: cannot read ${path} (${code ?? (e as Error).message})`);
    }
    if (text !== undefined) {
      tokens = {
        source: 'file',
        file: path,
        grants: parseTokens('FLEET_TOKENS_FILE', text, problems),
      };
    }
  }

  const actorKey = set('FLEET_ACTOR_KEY') ?? null;
  if (actorKey !== null && !/^[\x21-\x7e]{16,1000}$/.test(actorKey)) {
    problems.push(
      'FLEET_ACTOR_KEY: must be 16 to 1000 printable ASCII characters without spaces (the value is not shown: it is a secret)',
    );
  }

  const metricsToken = set('FLEET_METRICS_TOKEN')?.trim() ?? null;
  if (metricsToken !== null && !/^[\x21-\x7e]{16,1000}$/.test(metricsToken)) {
    problems.push(
      'FLEET_METRICS_TOKEN: must be 16 to 1000 printable ASCII characters without spaces (the value is not shown: it is a secret)',
    );
  }

  let store: StoreConfig | undefined;
  if (parsed.success) {
    const kind = parsed.data.FLEET_STORE;
    if (kind === 'sqlite') store = { kind, path: resolve(cwd, parsed.data.FLEET_DB) };
    else if (kind === 'memory') store = { kind };
    else {
      const endpoint = set('COSMOS_ENDPOINT');
      const key = set('COSMOS_KEY');
      if (endpoint === undefined) {
        problems.push('COSMOS_ENDPOINT: is required with FLEET_STORE=cosmos (the account URL)');
      } else {
        const problem = endpointProblem(endpoint);
        if (problem !== null) problems.push(`COSMOS_ENDPOINT: ${problem}`);
      }
      if (key === undefined) {
        problems.push('COSMOS_KEY: is required with FLEET_STORE=cosmos (the account key)');
      }
      const allowSelfSigned = ['true', '1'].includes(parsed.data.COSMOS_ALLOW_SELF_SIGNED_CERT);
      if (allowSelfSigned && endpoint !== undefined && URL.canParse(endpoint)) {
        const host = new URL(endpoint).hostname;
        if (!['localhost', '[::1]'].includes(host) && !/^127\./.test(host)) {
          problems.push(
            `COSMOS_ALLOW_SELF_SIGNED_CERT: is for a local emulator; the endpoint must be on the loopback interface (got ${got(host)})`,
          );
        }
      }
      store = {
        kind,
        endpoint: endpoint ?? '',
        key: key ?? '',
        database: set('COSMOS_DATABASE') ?? DEFAULTS.cosmosDatabase,
        allowSelfSignedCertificate: allowSelfSigned,
      };
    }
  }

  if (problems.length > 0 || !parsed.success || store === undefined) {
    throw new ConfigError(problems);
  }
  const known = new Set<string>(KNOWN_VARIABLES);
  const warnings = Object.keys(env)
    .filter((name) => name.startsWith('FLEET_') && !known.has(name))
    .sort()
    .map((name) => `${name}: unknown variable, ignored (known: ${KNOWN_VARIABLES.join(', ')})`);
  const e = parsed.data;
  return {
    host: e.HOST,
    port: e.PORT,
    store,
    tokens,
    leaseMs: e.FLEET_LEASE_MS,
    reaperIntervalMs: e.FLEET_REAPER_INTERVAL_MS,
    bodyLimit: e.FLEET_BODY_LIMIT,
    logLevel: e.FLEET_LOG_LEVEL,
    ...(e.FLEET_LOG_FORMAT ? { logFormat: e.FLEET_LOG_FORMAT } : {}),
    claimSpread:
      e.FLEET_CLAIM_SPREAD ??
      (store.kind === 'cosmos' ? DEFAULTS.cosmosClaimSpread : DEFAULTS.claimSpread),
    requestTimeoutMs: e.FLEET_REQUEST_TIMEOUT_MS,
    connectionTimeoutMs: e.FLEET_CONNECTION_TIMEOUT_MS,
    maxParkedClaims: e.FLEET_MAX_PARKED_CLAIMS,
    listPageBytes: e.FLEET_LIST_PAGE_BYTES,
    metricsToken,
    rateLimit: e.FLEET_RATE_LIMIT,
    backupDir:
      e.FLEET_BACKUP_DIR === undefined
        ? store.kind === 'sqlite'
          ? dirname(store.path)
          : tmpdir()
        : resolve(cwd, e.FLEET_BACKUP_DIR),
    actorKey,
    warnings,
    retentionMs: e.FLEET_RETENTION,
  };
}
