// The test API of tests/hosts/README.md, so the host test suite can read
// the LMS state: a learner, the sync log, and a drain that returns once the
// outbox is empty. Served only when asked for (`--test-api`).
import { learnerView } from './lms.js';
import { drain, pending } from './outbox.js';
import { listEvents } from './synclog.js';

const DRAIN_TIMEOUT_MS = 30_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const json = (status, value) => ({
  status, headers: [['content-type', 'application/json']], body: Buffer.from(JSON.stringify(value)), log: [],
});

/** Answers `method` on `path` (below /test/v1) as `{status, headers, body}`. */
export async function serveTestApi(host, method, path) {
  const { db, tenant } = host;
  const learner = /^\/learners\/([^/]+)$/.exec(path);
  if (method === 'GET' && learner) {
    const id = decodeURIComponent(learner[1]);
    const view = learnerView(db, tenant.id, id);
    return view ? json(200, view) : json(404, { detail: `No learner with SCIM id '${id}'` });
  }
  if (method === 'GET' && path === '/events') return json(200, { events: listEvents(db, tenant.id) });
  if (method === 'POST' && path === '/drain') {
    const deadline = Date.now() + DRAIN_TIMEOUT_MS;
    for (;;) {
      drain(host);
      const left = pending(db, tenant.id);
      if (left === 0) return json(200, { pending: 0 });
      if (Date.now() >= deadline) return json(503, { pending: left });
      await sleep(50);
    }
  }
  return json(404, { detail: 'No test endpoint here' });
}
