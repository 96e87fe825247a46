// The console's only way to the server: same-origin calls to /admin/v1 with
// the session cookie. The CSRF token of the session is kept in this
// module's memory only (never in storage, never in the page) and sent on
// every write.

const BASE = '/admin/v1';

let csrf = null;
let onUnauthorized = () => {};

/** Remembers the session's CSRF token (or forgets it with `null`). */
export function setSession(session) {
  csrf = session ? session.csrf : null;
}

/** Called when a request answers 401: the session ended or never began. */
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

/** A refused request: its status, the server's `detail`, and the whole body. */
export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

/**
 * Calls `/admin/v1${path}`. Options: `query` (object; empty values left
 * out), `json` (a body sent as JSON), `body` (sent as is, with
 * `contentType`), `session` (true for the session endpoint itself, whose
 * 401 is not an expired session). Answers the parsed JSON, text, or null.
 */
export async function api(method, path, options = {}) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await once(method, path, options);
    } catch (e) {
      // The tenant's previous mapping work (a preview, an install) is still
      // running: wait the short while the server asks, a few times, rather
      // than show the admin an error for someone else's click.
      const wait = e.status === 429 ? e.retryAfter : undefined;
      if (wait === undefined || wait > SHORT_WAIT_S || attempt >= RETRIES) throw e;
      await new Promise((resolve) => { setTimeout(resolve, wait * 1000); });
    }
  }
}

/** Waits for a busy tenant longer than this are the admin's to decide. */
const SHORT_WAIT_S = 5;
const RETRIES = 4;

async function once(method, path, options) {
  const url = BASE + path + queryString(options.query);
  const headers = { Accept: 'application/json' };
  let body;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.body !== undefined) {
    if (options.contentType) headers['Content-Type'] = options.contentType;
    body = options.body;
  }
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, `The server could not be reached (${e.message}). Check the connection and try again.`, null);
  }
  const data = await parse(response);
  if (response.ok) return data;
  const detail = (data && typeof data === 'object' && data.detail)
    || (typeof data === 'string' && data.trim())
    || `The server answered ${response.status} ${response.statusText}`;
  const error = new ApiError(response.status, detail, data);
  if (response.status === 401 && !options.session) {
    csrf = null;
    onUnauthorized(error);
  }
  if (response.status === 429 || response.status === 503) {
    const after = response.headers.get('Retry-After');
    if (after) error.retryAfter = Number(after);
  }
  throw error;
}

async function parse(response) {
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  const text = await response.text();
  if (type.includes('json')) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** `?a=1&b=x` from an object, leaving out null, undefined, '' and false. */
export function queryString(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === null || v === undefined || v === '' || v === false) continue;
    params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** The URL of a GET under /admin/v1, for links (CSV export). */
export function apiUrl(path, query) {
  return BASE + path + queryString(query);
}
