// One engine, one database, one tenant: opens the database, instantiates
// the engine with this host's imports, and runs each SCIM request (and
// each outbox batch) in one transaction, as wit/world.wit requires: BEGIN
// before the engine runs, COMMIT when it answers below 400, ROLLBACK
// otherwise, on a trap, and when an import could not do its part.
import { randomBytes } from 'node:crypto';
import { ensureTenant, openDatabase } from './db.js';
import { isComponentError, loadEngine } from './engine.js';
import { createLms } from './lms.js';
import { advance, createOutbox, failed, finish } from './outbox.js';
import { createStore } from './store.js';
import { Journal, createSyncLog, insertEvents, recordFailure } from './synclog.js';

export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** No mapping plugins in this host: none is ever active. */
const plugin = {
  active: () => undefined,
  assign: () => ({ tag: 'err', val: { reason: 'plugin-unavailable', detail: 'this host runs no mapping plugins' } }),
  rejected: () => {},
};

export const requestId = () => randomBytes(8).toString('hex');

/**
 * Opens the host. `db`: a file path or an open better-sqlite3 Database;
 * `token`: the tenant's SCIM bearer token; `component`: the directory jco
 * wrote the engine to (generated/engine); `tenant`: the tenant's name;
 * `onQueued`: called after a request that queued background work commits
 * (for example to drain at once rather than at the next tick).
 */
export async function createHost({
  db, token, component, tenant = 'default', maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES, onQueued,
}) {
  const conn = openDatabase(db);
  const row = ensureTenant(conn, tenant, token);
  // The request or batch running now; imports reach it through `state()`.
  let current;
  const state = () => {
    if (!current) throw new Error('the engine called the host outside a request');
    return current;
  };
  const engine = await loadEngine(component, {
    store: createStore(conn, state),
    lms: createLms(conn, state),
    outbox: createOutbox(conn, state),
    'sync-log': createSyncLog(state),
    plugin,
    types: {},
  });

  const rollback = () => {
    if (conn.inTransaction) conn.exec('ROLLBACK');
  };
  /** Runs `fn` with `journal` as the current request's state. */
  const run = (journal, fn) => {
    current = { tenant: row.id, savepoints: 0, journal };
    try {
      return engine.call(fn);
    } finally {
      current = undefined;
    }
  };

  const host = {
    db: conn,
    tenant: row,
    maxPayloadBytes,

    /** The request context for a request with this id and SCIM base URL. */
    context(baseUrl, id = requestId()) {
      return {
        tenant: row.name, baseUrl, requestId: id, subject: row.name,
        maxPayloadBytes: BigInt(maxPayloadBytes), signingKey: row.signingKey,
      };
    },

    /** A SCIM Error rendered by the engine; plain JSON should even that fail. */
    errorResponse(context, status, detail) {
      try {
        return engine.call((e) => e.handler.errorResponse(context, status, detail));
      } catch (e) {
        console.error(`the engine could not render an error: ${e?.stack ?? e}`);
        const body = JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: String(status), detail });
        return { status, headers: [['content-type', 'application/scim+json']], body: Buffer.from(body), log: [] };
      }
    },

    /**
     * Handles one authenticated SCIM request (WIT `http-request`) in one
     * transaction. Never throws, and never leaves the transaction open: an
     * unexpected exception rolls back and answers a SCIM 500.
     */
    execute(request) {
      try {
        return execute(request);
      } catch (e) {
        rollback();
        console.error(`request ${request.context.requestId}: unexpected error; rolled back: ${e?.stack ?? e}`);
        return host.errorResponse(request.context, 500,
          `The request failed inside the server; nothing was changed (request id ${request.context.requestId})`);
      }
    },

    /**
     * Runs one batch of an outbox task (`{id, changeId, task}`) in its own
     * transaction with the task's new cursor. Returns whether it committed;
     * a failed batch is rolled back and counted as an attempt.
     */
    drainBatch,

    close() {
      conn.close();
    },
  };

  function execute(request) {
    const started = performance.now();
    const { method, context } = request;
    const stamp = { requestId: context.requestId, changeId: context.requestId, started };
    const readOnly = method === 'GET' || method === 'HEAD';
    try {
      conn.exec(readOnly ? 'BEGIN DEFERRED' : 'BEGIN IMMEDIATE');
    } catch (e) {
      console.error(`could not begin a transaction: ${e.message}`);
      return host.errorResponse(context, 503, 'The database is busy; retry later');
    }
    const journal = new Journal(context.requestId);
    let response;
    try {
      response = run(journal, (e) => e.handler.handle(request));
    } catch (e) {
      rollback();
      console.error(`request ${context.requestId}: the engine trapped; rolled back: ${e?.stack ?? e}`);
      response = host.errorResponse(context, 500,
        `The request failed inside the engine; nothing was changed (request id ${context.requestId})`);
      response.log = [...response.log, ['trap', 'trap']];
      recordFailure(conn, row.id, method, response, stamp);
      return response;
    }
    if (response.status < 400 && journal.failed === undefined) {
      try {
        insertEvents(conn, row.id, stamp, journal.events);
        conn.exec('COMMIT');
        if (journal.enqueued > 0) onQueued?.();
        return response;
      } catch (e) {
        rollback();
        console.error(`commit failed: ${e.message}`);
        return host.errorResponse(context, 503, 'The change could not be saved; nothing was changed, retry later');
      }
    }
    rollback();
    if (journal.failed !== undefined) {
      console.error(`a host import failed; rolled back: ${journal.failed}`);
      response = host.errorResponse(context, 503, `${journal.failed}; nothing was changed, retry later`);
    }
    if (!readOnly || response.status >= 500) recordFailure(conn, row.id, method, response, stamp);
    return response;
  }

  function drainBatch(queued, batch) {
    const started = performance.now();
    const id = requestId();
    let error;
    try {
      conn.exec('BEGIN IMMEDIATE');
    } catch (e) {
      console.error(`background: database busy: ${e.message}`);
      return false;
    }
    const journal = new Journal(queued.changeId);
    try {
      const step = run(journal, (e) => e.handler.drain(host.context('', id), queued.task, batch));
      if (journal.failed !== undefined) throw new Error(journal.failed);
      insertEvents(conn, row.id, { requestId: id, changeId: queued.changeId, started }, journal.events);
      if (step.tag === 'done') finish(conn, queued.id);
      else advance(conn, queued.id, step.val);
      conn.exec('COMMIT');
      return true;
    } catch (e) {
      if (typeof e === 'string') error = e;
      else if (isComponentError(e)) error = String(e.payload);
      else error = `the engine trapped: ${e?.message ?? e}`;
    }
    rollback();
    console.error(`background batch of task ${queued.id} failed; will retry: ${error}`);
    try {
      failed(conn, queued.id, error);
    } catch (e) {
      console.error(`background: cannot record the failure: ${e.message}`);
    }
    return false;
  }

  return host;
}
