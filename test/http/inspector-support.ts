/**
 * The inspector's routes as the OpenAPI document lists them, and a Server-Sent Events
 * reader over a real socket for the stream tests.
 */
import { request } from 'undici';

/** Every inspector route (method and OpenAPI path). */
export const INSPECTOR_ROUTES = [
  'GET /fleet/overview',
  'GET /fleet/me',
  'GET /fleet/stream',
  'GET /inspector',
  'GET /inspector/jobs',
  'GET /inspector/jobs/{id}',
  'GET /inspector/machines/{name}',
  'GET /inspector/assets/{*}',
];

/** The OpenAPI components the inspector's routes add. */
export const INSPECTOR_COMPONENTS = ['ActivityEvent', 'Caller', 'Overview'];

/** One parsed SSE message. */
export interface SseMessage {
  event: string;
  id: string | null;
  data: unknown;
}

/** An open event stream: messages so far, and a way to wait for more. */
export interface SseReader {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  messages: SseMessage[];
  comments: number;
  /** Resolves once `predicate` holds for the messages received (bounded by `timeoutMs`). */
  until(predicate: (messages: SseMessage[]) => boolean, timeoutMs?: number): Promise<SseMessage[]>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

/** Opens `url` as an event stream with `headers` and parses messages as they arrive. */
export async function openSse(url: string, headers: Record<string, string>): Promise<SseReader> {
  const ac = new AbortController();
  const res = await request(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: ac.signal,
  });
  const messages: SseMessage[] = [];
  let comments = 0;
  const waiters = new Set<() => void>();
  let buffer = '';
  const parse = (block: string): void => {
    let event = 'message';
    let id: string | null = null;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        comments++;
        continue;
      }
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0) messages.push({ event, id, data: JSON.parse(data.join('\n')) });
  };
  const ended = (async () => {
    try {
      for await (const chunk of res.body) {
        buffer += (chunk as Buffer).toString('utf8');
        let cut = buffer.indexOf('\n\n');
        while (cut >= 0) {
          parse(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          cut = buffer.indexOf('\n\n');
        }
        for (const w of waiters) w();
      }
    } catch {
      // aborted by close()
    } finally {
      for (const w of waiters) w();
    }
  })();
  let done = false;
  void ended.then(() => {
    done = true;
  });
  return {
    status: res.statusCode,
    headers: res.headers,
    messages,
    get comments() {
      return comments;
    },
    until(predicate, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (predicate(messages)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(messages);
          } else if (done) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`stream ended first; got ${JSON.stringify(messages).slice(0, 500)}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out; got ${JSON.stringify(messages).slice(0, 500)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    ended,
    close() {
      ac.abort();
    },
  };
}
