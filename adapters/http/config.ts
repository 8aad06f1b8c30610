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
 * | `FLEET_TOKENS` | JSON array of `{ "token", "productId", "roles", "subject"? }` | — |
 * | `FLEET_TOKENS_FILE` | a file holding that JSON array | — |
 * | `FLEET_LEASE_MS` | lease length of a claim, ms (≥ 1000) | `60000` |
 * | `FLEET_REAPER_INTERVAL_MS` | mean wait between supervisor sweeps, ms (≥ 10) | `5000` |
 * | `FLEET_BODY_LIMIT` | largest request body, bytes (`512KiB`, `2MiB` accepted) | `1048576` |
 * | `FLEET_LOG_LEVEL` | `fatal` … `trace`, `silent` | `info` |
 * | `FLEET_LOG_FORMAT` | `json` (pino's JSON lines) \| `pretty` (human-readable) | `pretty` on a terminal, else `json` |
 * | `FLEET_CLAIM_SPREAD` | a claim picks at random among this many oldest jobs of the best priority (1 = strictly oldest first) | `1`; `4` with `cosmos` |
 * | `COSMOS_ENDPOINT`, `COSMOS_KEY`, `COSMOS_DATABASE` | the Cosmos DB account (`FLEET_STORE=cosmos`) | —, —, `fleet` |
 * | `COSMOS_ALLOW_SELF_SIGNED_CERT` | `true` accepts a self-signed certificate (a local emulator; loopback endpoints only) | `false` |
 *
 * With neither `FLEET_TOKENS` nor `FLEET_TOKENS_FILE`, the server makes a development
 * admin token (see `server.ts`). Setting both is an error. An empty variable counts as
 * unset. An unknown `FLEET_*` variable is a warning (a typo would otherwise be silent).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import type { FleetRole } from './index.js';

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
  /** Who holds it, for logs and event actors. @defaultValue derived from the token's hash */
  subject?: string;
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
  /** Non-fatal findings (unknown `FLEET_*` variables), for the log. */
  warnings: string[];
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
  'FLEET_LOG_FORMAT',
  // read by the client commands and the agent (`fleet agent`), not by the server
  'FLEET_URL',
  'FLEET_TOKEN',
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
  FLEET_LEASE_MS: variable(integer(1000, 86_400_000, ' (ms)'), DEFAULTS.leaseMs),
  FLEET_REAPER_INTERVAL_MS: variable(integer(10, 3_600_000, ' (ms)'), DEFAULTS.reaperIntervalMs),
  FLEET_BODY_LIMIT: variable(byteSize, DEFAULTS.bodyLimit),
  FLEET_LOG_LEVEL: variable(oneOf(LOG_LEVELS), DEFAULTS.logLevel as LogLevel),
  FLEET_CLAIM_SPREAD: variable(integer(1, 256), undefined as number | undefined),
  FLEET_LOG_FORMAT: variable(oneOf(['json', 'pretty'] as const), undefined),
  COSMOS_ALLOW_SELF_SIGNED_CERT: variable(oneOf(['true', 'false', '1', '0'] as const), 'false'),
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

/** Parses a token list; problems are prefixed with `name` (the variable). */
function parseTokens(name: string, text: string, problems: string[]): TokenGrant[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    problems.push(`${name}: is not valid JSON (${(e as Error).message})`);
    return [];
  }
  const r = TokensSchema.safeParse(json);
  if (!r.success) {
    for (const issue of r.error.issues.slice(0, 10)) {
      problems.push(`${name}${issuePath(issue.path)}: ${issue.message}`);
    }
    return [];
  }
  if (r.data.length === 0) {
    problems.push(`${name}: lists no token; every request would be refused`);
  }
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
      } else if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
        problems.push(`COSMOS_ENDPOINT: must be an http(s) URL (got ${got(endpoint)})`);
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
    warnings,
  };
}
