// Shared by every inspector page: the base path, the bearer token (asked once, kept in
// sessionStorage, never in a URL), JSON API calls that ask again on 401, a Server-Sent
// Events reader over fetch (so the token travels in a header) with reconnects that
// resume from the last event id, the live indicator, small DOM helpers that only ever
// write text (never HTML), and formatting.
import { createParser } from './vendor/eventsource-parser.js';

/** The plugin's prefix ('' on the standalone server). */
export const base =
  document.querySelector('meta[name="fleet-base"]')?.getAttribute('content') ?? '';
/** A path of this Fleet server. */
export const url = (path) => `${base}${path}`;

const TOKEN_KEY = 'fleet.token';

/** Creates an element: `props` are properties (`className`, `href`, `dataset`...), children are nodes or text. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'attrs')
      for (const [a, av] of Object.entries(v)) node.setAttribute(a, String(av));
    else node[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** Shows a problem at the top of the page (text only); `null` hides it. */
export function notify(message) {
  const box = document.getElementById('page-error');
  if (!box) return;
  box.hidden = message === null;
  fill(box, message ?? '');
}

/** The text of a failure: a problem's detail, or the error's message. */
export const problemText = (e) => e?.problem?.detail ?? e?.message ?? String(e);

/** Replaces the children of `node` with `children`. */
export function fill(node, ...children) {
  node.replaceChildren(
    ...children.flat().filter((c) => c !== null && c !== undefined && c !== false),
  );
}

/** A stage badge. */
export const stageBadge = (stage) =>
  el('span', { className: `stage stage-${stage}` }, stage ?? '—');

/** A link to an inspector page. */
export const pageLink = (path, text, props = {}) => el('a', { href: url(path), ...props }, text);
export const jobLink = (id, text = id) =>
  pageLink(`/inspector/jobs/${encodeURIComponent(id)}`, text, { className: 'mono' });

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString([], { hour12: false });
}
export function fmtDateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString([], { hour12: false });
}
export function fmtAge(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}
export const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString() : '—');
export const fmtUsd = (n) => (typeof n === 'number' ? `$${n.toFixed(n < 1 ? 4 : 2)}` : '—');
export const move = (from, to) => (from && to ? (from === to ? from : `${from} → ${to}`) : '');

/** Runs `fn` at most once per `ms`, trailing (coalesces bursts of updates). */
export function debounce(fn, ms) {
  let timer = null;
  return () => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

// --- token ---------------------------------------------------------------------------

let waiting = null;
let me = null;

/** The stored token, or null. */
export const storedToken = () => sessionStorage.getItem(TOKEN_KEY);

function setWho(me) {
  const who = document.getElementById('who');
  if (!who) return;
  fill(
    who,
    me ? `${me.subject ?? 'token'} · ${me.productId} · ${me.roles.join(', ') || 'no roles'}` : '',
  );
}

/**
 * Shows the token dialog until a token the server accepts is entered; resolves with it.
 * Concurrent callers share one dialog.
 */
export function askToken(message) {
  if (waiting) return waiting;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  if (message) {
    error.hidden = false;
    fill(error, message);
  } else error.hidden = true;
  input.value = '';
  waiting = new Promise((resolve) => {
    const onSubmit = async (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (token === '') return;
      const res = await fetch(url('/fleet/me'), {
        headers: { Authorization: `Bearer ${token}` },
        cache: 'no-store',
      }).catch(() => null);
      if (!res || res.status === 401) {
        error.hidden = false;
        fill(error, res ? 'That token was refused.' : 'The server did not answer; try again.');
        input.select();
        return;
      }
      sessionStorage.setItem(TOKEN_KEY, token);
      if (res.ok) {
        me = await res.json();
        setWho(me);
      }
      form.removeEventListener('submit', onSubmit);
      dialog.close();
      waiting = null;
      resolve(token);
    };
    form.addEventListener('submit', onSubmit);
    // Escape must not leave the page without a token.
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return waiting;
}

document.getElementById('change-token')?.addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  askToken().then(() => location.reload());
});

/** An API failure: `status` and the problem document (if the server sent one). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** fetch with the token; a 401 forgets it, asks for another and tries again. */
async function authorizedFetch(path, init = {}) {
  for (;;) {
    const token = storedToken() ?? (await askToken());
    const headers = { ...init.headers, Authorization: `Bearer ${token}` };
    const res = await fetch(url(path), { cache: 'no-store', ...init, headers });
    if (res.status !== 401) return res;
    sessionStorage.removeItem(TOKEN_KEY);
    await askToken('The server refused the token (401). Enter a valid one.');
  }
}

/** Calls the JSON API with the token; a 401 asks for a token and tries again. */
export async function api(path, { method = 'GET', body, headers = {}, raw = false } = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['content-type'] = 'application/json';
  }
  const res = await authorizedFetch(path, init);
  if (!res.ok) {
    const problem = await res.json().catch(() => null);
    throw new ApiError(res.status, problem);
  }
  if (raw) return res;
  return res.status === 204 ? null : res.json();
}

/** Who the token belongs to (`GET /fleet/me`), cached for the page. */
export async function whoAmI() {
  if (me === null) {
    me = await api('/fleet/me');
    setWho(me);
  }
  return me;
}

// --- live indicator and streams --------------------------------------------------------

const LIVE_TEXT = {
  live: 'live',
  paused: 'paused',
  reconnecting: 'reconnecting…',
  idle: 'not connected',
};

/** Shows `state` (`live`, `paused`, `reconnecting`, `idle`) in the header. */
export function setLive(state) {
  const node = document.getElementById('live');
  if (!node) return;
  node.dataset.state = state;
  fill(node.querySelector('.text'), LIVE_TEXT[state] ?? state);
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

/**
 * Reads a Server-Sent Events stream of the API with fetch (the token goes in the
 * Authorization header). Reconnects with backoff, sending `Last-Event-ID` so the server
 * resumes after the last event received. `onEvent(type, data, id)` gets every event.
 */
export class LiveStream {
  constructor(path, { onEvent, onError } = {}) {
    this.path = path;
    this.onEvent = onEvent ?? (() => {});
    this.onError = onError ?? (() => {});
    this.lastId = null;
    this.running = false;
    this.ctrl = null;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.ctrl = new AbortController();
    void this.#run(this.ctrl.signal);
  }

  /** Stops reading (the indicator shows `paused` unless `quiet`). */
  stop(quiet = false) {
    this.running = false;
    this.ctrl?.abort();
    if (!quiet) setLive('paused');
  }

  async #run(signal) {
    let failures = 0;
    while (!signal.aborted) {
      try {
        const headers = { Accept: 'text/event-stream' };
        if (this.lastId !== null) headers['Last-Event-ID'] = this.lastId;
        const res = await authorizedFetch(this.path, { headers, signal });
        if (!res.ok) {
          const problem = await res.json().catch(() => null);
          this.onError(new ApiError(res.status, problem));
          if (res.status === 404 || res.status === 400) {
            setLive('idle');
            return;
          }
          throw new ApiError(res.status, problem);
        }
        setLive('live');
        failures = 0;
        const parser = createParser({
          onEvent: (ev) => {
            if (ev.id !== undefined && ev.id !== '') this.lastId = ev.id;
            let data = null;
            try {
              data = JSON.parse(ev.data);
            } catch {
              data = ev.data;
            }
            this.onEvent(ev.event ?? 'message', data, ev.id ?? null);
          },
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
      } catch {
        // fall through to the reconnect below
      }
      if (signal.aborted) return;
      setLive('reconnecting');
      failures++;
      await sleep(Math.min(500 * 2 ** Math.min(failures, 4), 8000), signal);
    }
  }
}

// --- confirmation --------------------------------------------------------------------

/** Asks a yes/no question in a dialog; resolves true for yes. */
export function confirmAction(title, text, ok = 'Yes') {
  const dialog = document.getElementById('confirm-dialog');
  fill(document.getElementById('confirm-title'), title);
  fill(document.getElementById('confirm-text'), text);
  fill(document.getElementById('confirm-ok'), ok);
  return new Promise((resolve) => {
    const form = document.getElementById('confirm-form');
    const cancel = document.getElementById('confirm-cancel');
    const done = (answer) => {
      form.removeEventListener('submit', onOk);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onOk = (e) => {
      e.preventDefault();
      done(true);
    };
    const onCancel = () => done(false);
    const onClose = () => done(false);
    form.addEventListener('submit', onOk);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
  });
}
