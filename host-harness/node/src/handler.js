// SCIM over Node's `http` module (or Express, Connect, ...): a request
// handler serving `/scim/v2/...` relative to where it is mounted, and the
// test API under `/test/v1` when asked. It authenticates the bearer token,
// limits the body, builds the WIT request (headers lower case without
// credentials, the path below the SCIM base still percent-encoded) and
// writes the engine's response back unchanged.
import { createHash, timingSafeEqual } from 'node:crypto';
import { requestId } from './host.js';
import { serveTestApi } from './testapi.js';

export const SCIM_BASE = '/scim/v2';
const TEST_BASE = '/test/v1';
const HIDDEN_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/** Whether the `Authorization` header carries the tenant's token (constant time). */
export function authorized(host, header) {
  const m = /^\s*bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m) return false;
  return timingSafeEqual(createHash('sha256').update(m[1], 'utf8').digest(), host.tenant.tokenHash);
}

/** The request body, or `undefined` when it is larger than `limit` bytes. */
async function readBody(req, limit) {
  // A body parser mounted before this handler already read it.
  if (req.readableEnded && req.body !== undefined) {
    const b = Buffer.isBuffer(req.body) ? req.body : Buffer.from(typeof req.body === 'string' ? req.body : JSON.stringify(req.body));
    return b.length > limit ? undefined : b;
  }
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    req.resume();
    return undefined;
  }
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) tooLarge = true; // keep reading to the end, dropping it
    else chunks.push(chunk);
  }
  return tooLarge ? undefined : Buffer.concat(chunks);
}

/** Writes a WIT `http-response` (or `{status, headers, body}`) to `res`. */
export function send(res, response, id) {
  const headers = {};
  for (const [name, value] of response.headers) (headers[name] ??= []).push(value);
  for (const [name, values] of Object.entries(headers)) res.setHeader(name, values.length === 1 ? values[0] : values);
  if (id) res.setHeader('x-request-id', id);
  res.statusCode = response.status;
  const b = response.body;
  res.end(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * A `(req, res, next?)` handler for `host` (see createHost). Options:
 * `testApi` serves the test API; `publicUrl` is the SCIM base URL to
 * advertise (default: from the Host header and the mount point). Requests
 * outside `/scim/v2` (and `/test/v1`, and `/healthz`, which answers `ok`)
 * go to `next` when given, else get a SCIM 404.
 */
export function createScimHandler(host, { testApi = false, publicUrl } = {}) {
  async function serve(req, res, next) {
    const started = performance.now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const fullPath = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    const id = requestId();
    const mount = req.baseUrl ?? '';
    const baseUrl = publicUrl ?? `http://${req.headers.host ?? 'localhost'}${mount}${SCIM_BASE}`;
    const context = host.context(baseUrl, id);
    const log = (status) => console.error(`${req.method} ${mount}${fullPath} ${status} ${Math.round((performance.now() - started) * 1000)}us request_id=${id}`);
    const reply = (response) => {
      send(res, response, id);
      log(response.status);
    };

    // The SCIM 401, for SCIM and the test API alike.
    const unauthorized = () => {
      req.resume();
      const response = host.errorResponse(context, 401, "Authentication required: send 'Authorization: Bearer <token>'");
      response.headers = [...response.headers, ['www-authenticate', 'Bearer realm="scim"']];
      return reply(response);
    };
    // For load balancers, as scim-host and the Python host answer it.
    if (fullPath === '/healthz') {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      return res.end('ok');
    }
    if (testApi && (fullPath === TEST_BASE || fullPath.startsWith(`${TEST_BASE}/`))) {
      if (!authorized(host, req.headers.authorization)) return unauthorized();
      return reply(await serveTestApi(host, req.method, fullPath.slice(TEST_BASE.length)));
    }
    let path;
    if (fullPath === SCIM_BASE) path = '/';
    else if (fullPath.startsWith(`${SCIM_BASE}/`)) path = fullPath.slice(SCIM_BASE.length);
    else if (next) return next();
    else {
      req.resume();
      return reply(host.errorResponse(context, 404, `Not found: SCIM is served under ${SCIM_BASE}`));
    }
    if (!authorized(host, req.headers.authorization)) return unauthorized();
    const body = await readBody(req, host.maxPayloadBytes);
    if (body === undefined) {
      return reply(host.errorResponse(context, 413, `The request body is larger than the limit of ${host.maxPayloadBytes} bytes`));
    }
    const headers = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i].toLowerCase();
      if (!HIDDEN_HEADERS.has(name)) headers.push([name, req.rawHeaders[i + 1]]);
    }
    const response = host.execute({ method: req.method.toUpperCase(), path, query, headers, body: new Uint8Array(body), context });
    reply(response);
  }

  // No exception may end the server: an unexpected one answers 500.
  return async (req, res, next) => {
    try {
      await serve(req, res, next);
    } catch (e) {
      console.error(`unexpected error: ${e?.stack ?? e}`);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.setHeader('content-type', 'application/scim+json');
        res.end(JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '500', detail: 'Internal server error' }));
      } else {
        res.destroy();
      }
    }
  };
}
