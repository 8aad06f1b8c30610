/**
 * The standalone server: Fleet's Fastify plugin on the configured store, behind bearer
 * tokens, with the supervisor running beside it.
 *
 * `buildServer(config)` assembles everything without listening (tests use
 * `app.inject()`); `listen(server)` binds and answers the URL; `server.close()` is the
 * graceful shutdown: stop accepting and finish in-flight requests (Fastify's `close`),
 * stop the supervisor (after its running sweep), let queued coordinator work drain,
 * then close the store. The CLI (`fleet serve`) wires signals to `close()`.
 *
 * Logs are Fastify's (pino on stdout): JSON lines, or human-readable lines (pino-pretty)
 * on a terminal or with `FLEET_LOG_FORMAT=pretty`; the coordinator and the supervisor
 * log through child loggers (`component: 'coordinator' | 'supervisor'`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import {
  type Clock,
  Coordinator,
  type DocumentStore,
  type Supervisor,
  type SupervisorEvent,
  startSupervisor,
  systemClock,
} from '../../runtime/index.js';
import { openCosmosStore } from '../store/cosmos/index.js';
import { createMemoryStore } from '../store/memory/index.js';
import { openSqliteStore } from '../store/sqlite/index.js';
import { actorKeyFor, tokenActor } from './actor-key.js';
import { FLEET_ROLES, type FleetConfig, type StoreConfig, type TokenGrant } from './config.js';
import { MAX_JOB_ID_LENGTH } from './http-schemas.js';
import {
  type Authenticate,
  type FleetAuth,
  FleetMetrics,
  fleetClientErrorHandler,
  fleetFrameworkErrors,
  fleetPlugin,
} from './index.js';

/** The product of the development token. */
export const DEV_PRODUCT = 'default';
/** The development token's file name, beside the database. */
export const DEV_TOKEN_FILE = 'dev-token.json';

/** A failure to start that the operator can fix; the CLI prints `message` alone. */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** The development token made when no token is configured. */
export interface DevToken {
  grant: TokenGrant;
  /** Where it is kept (`null` with the memory store: in memory only). */
  file: string | null;
  /** False when an earlier run's token was reused. */
  created: boolean;
}

export interface FleetServer {
  app: FastifyInstance;
  coordinator: Coordinator;
  supervisor: Supervisor;
  store: DocumentStore;
  metrics: FleetMetrics;
  config: FleetConfig;
  /** Set when no token was configured and a development token is in use. */
  devToken: DevToken | null;
  /** Graceful shutdown (idempotent): requests, then supervisor, then store. */
  close(): Promise<void>;
}

export interface BuildServerOptions {
  /** @defaultValue the system clock */
  clock?: Clock;
  /** Use this store instead of opening the configured one (it is closed with the server). */
  store?: DocumentStore;
  /**
   * Fastify's logger option; by default pino at `config.logLevel` on stdout.
   * Tests pass `false`.
   */
  logger?: boolean | { level: string };
}

/**
 * Opens the configured store. Throws `StartupError` when it cannot (a database held by
 * another process, a newer schema, a Cosmos DB account that cannot be reached or
 * refuses the key).
 */
export async function openStore(config: StoreConfig): Promise<DocumentStore> {
  const where =
    config.kind === 'sqlite'
      ? `the SQLite store ${config.path}`
      : config.kind === 'cosmos'
        ? `the Cosmos DB store (database ${config.database} at ${config.endpoint})`
        : 'the memory store';
  try {
    switch (config.kind) {
      case 'memory':
        return createMemoryStore();
      case 'sqlite':
        return openSqliteStore({ path: config.path });
      case 'cosmos':
        return await openCosmosStore({
          endpoint: config.endpoint,
          key: config.key,
          database: config.database,
          allowSelfSignedCertificate: config.allowSelfSignedCertificate,
        });
    }
  } catch (e) {
    let detail = (e as { detail?: string }).detail ?? (e as Error).message;
    // The detail comes from the driver; whatever it says, the account key is not printed.
    if (config.kind === 'cosmos' && config.key !== '') {
      detail = detail.replaceAll(config.key, '[COSMOS_KEY]');
    }
    throw new StartupError(`cannot open ${where}: ${detail}`, { cause: e });
  }
}

const devGrant = (token: string): TokenGrant => ({
  token,
  productId: DEV_PRODUCT,
  roles: [...FLEET_ROLES],
  subject: 'dev',
  // One product, one person: the development token may also back the database up.
  operator: true,
});

/**
 * The development token: reused from `<folder of the database>/dev-token.json` when an
 * earlier run made one, else made and written there (mode 0600). With the memory store
 * it lives in memory only.
 */
export function devToken(store: StoreConfig): DevToken {
  const token = () => `fleet_dev_${randomBytes(24).toString('base64url')}`;
  if (store.kind !== 'sqlite') return { grant: devGrant(token()), file: null, created: true };
  const file = join(dirname(store.path), DEV_TOKEN_FILE);
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') {
      throw new StartupError(`cannot read the development token ${file}: ${(e as Error).message}`);
    }
  }
  if (text !== undefined) {
    let saved: unknown;
    try {
      saved = JSON.parse(text);
    } catch {
      saved = null;
    }
    const t = (saved as { token?: unknown } | null)?.token;
    if (typeof t !== 'string' || !/^[\x21-\x7e]+$/.test(t)) {
      throw new StartupError(
        `the development token file ${file} is unreadable; delete it to make a new one, or set FLEET_TOKENS`,
      );
    }
    chmodSync(file, 0o600);
    return { grant: devGrant(t), file, created: false };
  }
  const grant = devGrant(token());
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    // 'wx': two processes starting at once never overwrite each other's token.
    writeFileSync(
      file,
      `${JSON.stringify({ token: grant.token, productId: grant.productId, roles: grant.roles }, null, 2)}\n`,
      { mode: 0o600, flag: 'wx' },
    );
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') return devToken(store);
    throw new StartupError(`cannot write the development token ${file}: ${(e as Error).message}`);
  }
  return { grant, file, created: true };
}

const digest = (token: string): string => createHash('sha256').update(token).digest('hex');

/**
 * Bearer-token authentication over a fixed list. Tokens are looked up by their SHA-256,
 * so the lookup's timing says nothing about how much of a guessed token was right (the
 * digest stays in this map: it is never shown). The caller's `subject` (event actors,
 * logs) is the grant's own, else the token's keyed actor id under `actorKey`
 * (`actor-key.ts`), from which nothing about the token can be learned.
 */
export function tokenAuthenticator(grants: readonly TokenGrant[], actorKey: Buffer): Authenticate {
  const byDigest = new Map<string, FleetAuth>();
  for (const g of grants) {
    byDigest.set(digest(g.token), {
      productId: g.productId,
      roles: [...g.roles],
      subject: g.subject ?? tokenActor(actorKey, g.token),
      ...(g.factoryIds === undefined ? {} : { factoryIds: [...g.factoryIds] }),
      ...(g.operator === true ? { operator: true } : {}),
    });
  }
  return (request: FastifyRequest) => {
    const header = request.headers.authorization;
    if (typeof header !== 'string') return null;
    const m = /^Bearer +(\S+) *$/i.exec(header);
    return m ? (byDigest.get(digest(m[1]!)) ?? null) : null;
  };
}

/**
 * The server's timeouts (Fastify and Node options), so no client holds a connection
 * without end: a request must arrive whole within `requestTimeoutMs` (Node answers 408
 * and closes; its headers within the smaller of that and 60 s), and a connection that
 * carries nothing for `connectionTimeoutMs` is closed (over 30 s: a long-poll claim's
 * connection is quiet while it waits; the request timeout ends when the request has
 * arrived, so a long poll is never cut by it). Node checks the request timeout on an
 * interval (30 s by default); a quarter of the timeout, at most 5 s, keeps the cut
 * close to it.
 */
function timeouts(config: FleetConfig) {
  const requestTimeout = config.requestTimeoutMs;
  return {
    requestTimeout,
    connectionTimeout: config.connectionTimeoutMs,
    // An idle keep-alive connection is closed by whichever comes first.
    keepAliveTimeout: Math.min(72_000, config.connectionTimeoutMs),
    http: {
      requestTimeout,
      headersTimeout: Math.min(60_000, requestTimeout),
      connectionsCheckingInterval: Math.max(50, Math.min(5000, Math.floor(requestTimeout / 4))),
    },
  };
}

/** pino at the configured level: pretty lines on a terminal (or when asked), else JSON. */
async function loggerOptions(config: FleetConfig) {
  const tty = process.stdout.isTTY === true;
  if ((config.logFormat ?? (tty ? 'pretty' : 'json')) === 'json') return { level: config.logLevel };
  const { default: pretty } = await import('pino-pretty');
  const stream = pretty({
    colorize: tty,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    sync: true,
  });
  return { level: config.logLevel, stream };
}

/**
 * Assembles the server: store, coordinator, metrics, supervisor (started) and the
 * Fastify app with the Fleet plugin (ready, not listening).
 *
 * @throws StartupError when the store cannot be opened or the development token cannot
 *   be kept; nothing is left open then.
 */
export async function buildServer(
  config: FleetConfig,
  options: BuildServerOptions = {},
): Promise<FleetServer> {
  const clock = options.clock ?? systemClock;
  const store = options.store ?? (await openStore(config.store));
  let supervisor: Supervisor | undefined;
  let app: FastifyInstance | undefined;
  try {
    const dev = config.tokens.source === 'dev' ? devToken(config.store) : null;
    const grants = config.tokens.source === 'dev' ? [dev!.grant] : config.tokens.grants;
    let actorKey: Buffer;
    try {
      actorKey = actorKeyFor(config);
    } catch (e) {
      throw new StartupError(`cannot keep the actor key: ${(e as Error).message}`, { cause: e });
    }

    app = Fastify({
      logger: options.logger ?? (await loggerOptions(config)),
      bodyLimit: config.bodyLimit,
      ...timeouts(config),
      // The router refuses exactly the ids the route schemas refuse (see MAX_JOB_ID_LENGTH).
      routerOptions: { maxParamLength: MAX_JOB_ID_LENGTH },
      // Malformed URLs and over-long params get problem documents too...
      frameworkErrors: fleetFrameworkErrors,
      // ...and so do requests Node's parser refuses (headers too large, bad framing).
      clientErrorHandler: fleetClientErrorHandler,
    });
    for (const w of config.warnings) app.log.warn(w);
    // Fastify's close() waits for every connection to end, but a keep-alive connection
    // that was busy when it began (a parked long-poll claim) turns idle afterwards and
    // would hold the shutdown until its keep-alive timeout (72 s). Once draining, every
    // response says `Connection: close`, so its connection ends with it.
    let draining = false;
    app.addHook('onSend', async (request, reply, payload) => {
      if (draining && request.raw.httpVersionMajor === 1) reply.header('connection', 'close');
      return payload;
    });
    const coordinator = new Coordinator({
      store,
      clock,
      leaseMs: config.leaseMs,
      claimSpread: config.claimSpread,
      logger: app.log.child({ component: 'coordinator' }),
      retentionMs: config.retentionMs,
    });
    const metrics = new FleetMetrics();
    supervisor = startSupervisor({
      coordinator,
      clock,
      intervalMs: config.reaperIntervalMs,
      logger: app.log.child({ component: 'supervisor' }),
      onReport: (e: SupervisorEvent) => {
        if (e.phase === 'succeeded') metrics.recordSweep('succeeded', e.durationMs, e.report);
        else if (e.phase === 'failed') metrics.recordSweep('failed', e.durationMs);
      },
    });
    // The plugin shares this coordinator (and so its mailboxes) with the supervisor.
    await app.register(fleetPlugin, {
      coordinator,
      authenticate: tokenAuthenticator(grants, actorKey),
      bodyLimit: config.bodyLimit,
      metrics,
      maxParkedClaims: config.maxParkedClaims,
      listPageBytes: config.listPageBytes,
      backupDir: config.backupDir,
      ...(config.rateLimit === null ? {} : { rateLimit: config.rateLimit }),
      ...(config.metricsToken === null ? {} : { metricsToken: config.metricsToken }),
    });
    // The standalone server's front door is the inspector (a host decides its own `/`).
    app.get('/', { schema: { hide: true } }, async (_request, reply) =>
      reply.redirect('/inspector', 302),
    );
    await app.ready();

    const started = supervisor;
    const fastify = app;
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        draining = true;
        try {
          await fastify.close();
        } finally {
          await started.stop();
          await coordinator.drain();
          await store.close();
        }
      })();
      return closing;
    };
    return { app, coordinator, supervisor, store, metrics, config, devToken: dev, close };
  } catch (e) {
    await supervisor?.stop();
    await app?.close().catch(() => {});
    await store.close().catch(() => {});
    throw e;
  }
}

/** The URL a client uses to reach `host:port` (IPv6 literals bracketed). */
export function urlOf(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Binds the configured host and port (0 = any free port); resolves with the URL. */
export async function listen(server: FleetServer): Promise<string> {
  await server.app.listen({ host: server.config.host, port: server.config.port });
  const address = server.app.server.address() as AddressInfo;
  return urlOf(server.config.host, address.port);
}
