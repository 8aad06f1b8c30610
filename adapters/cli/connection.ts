/**
 * Where a client command connects and with which token: `--url` or `FLEET_URL`
 * (default `http://127.0.0.1:8080`), and `--token-file` or `FLEET_TOKEN`. A token file
 * holds the token alone, or JSON with a `token` member (like the development server's
 * `data/dev-token.json`).
 */
import { readFileSync } from 'node:fs';
import { createFleetClient, type FleetClient } from '../client/index.js';
import { CliError } from './output.js';

/** The server a command talks to when nothing else is said. */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** Options every client command takes. */
export interface ConnectionOptions {
  url?: string;
  tokenFile?: string;
}

/** Reads a token from `file` (plain text, or JSON `{ "token" }`). */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new CliError(
      `cannot read the token file ${file}: ${(e as { code?: string }).code ?? (e as Error).message}`,
    );
  }
  if (text.startsWith('{')) {
    try {
      const token = (JSON.parse(text) as { token?: unknown }).token;
      if (typeof token === 'string' && token !== '') return token;
    } catch {
      // fall through
    }
    throw new CliError(`the token file ${file} is JSON without a "token" string`);
  }
  if (text === '' || /\s/.test(text))
    throw new CliError(`the token file ${file} does not hold one token`);
  return text;
}

/** The server URL and token for a command, or a clear error. */
export function connection(
  options: ConnectionOptions,
  env: NodeJS.ProcessEnv = process.env,
): { url: string; token: string } {
  const url = options.url ?? (env.FLEET_URL?.trim() || DEFAULT_URL);
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    throw new CliError(`not an http(s) URL: ${url} (--url or FLEET_URL)`, 2);
  }
  const token = options.tokenFile ? readTokenFile(options.tokenFile) : env.FLEET_TOKEN?.trim();
  if (!token) {
    throw new CliError(
      'no token: set FLEET_TOKEN or pass --token-file FILE (the development server keeps one in data/dev-token.json)',
      2,
    );
  }
  return { url, token };
}

/** A client for a command's connection options. */
export function clientFor(options: ConnectionOptions): FleetClient {
  const { url, token } = connection(options);
  return createFleetClient({ baseUrl: url, token });
}
