// The outbox (see wit/outbox.wit): background re-mapping the engine queues
// inside a request's transaction, so a task exists exactly when the
// request's changes do, and `drain`, which the vendor schedules to hand the
// tasks to the engine batch by batch, each batch in its own transaction
// together with the task's new cursor. A crash between batches loses
// nothing and applies nothing twice. Ported from the Rust reference host
// (host-harness/src/outbox.rs, src/worker.rs).
import { now, statements } from './db.js';

/** Failed attempts after which a task is set aside (it stays in the table). */
export const MAX_ATTEMPTS = 10;

/** A task's work as stored: the Rust host's JSON shapes. */
function workJson(w) {
  switch (w.tag) {
    case 'everyone': return JSON.stringify({ everyone: true });
    default: return JSON.stringify({ [w.tag]: w.val });
  }
}

function workOf(text) {
  const v = JSON.parse(text);
  if (v.everyone) return { tag: 'everyone' };
  for (const tag of ['source', 'members', 'renamed', 'users']) {
    if (v[tag] !== undefined) return { tag, val: v[tag] };
  }
  return { tag: 'users', val: [] };
}

/** The `outbox` import. A task that cannot be queued fails the request. */
export function createOutbox(db, state) {
  const q = statements(db);
  return {
    enqueue(task) {
      const { tenant, journal } = state();
      try {
        q('INSERT INTO outbox (tenant, change_id, task, cursor, created) VALUES (?, ?, ?, ?, ?)')
          .run(tenant, journal.changeId, workJson(task.work), task.cursor ?? null, now());
        journal.enqueued += 1;
      } catch (e) {
        journal.failed = `could not queue background work: ${e.message}`;
      }
    },
  };
}

/**
 * The task to try next: the oldest of those that failed least since they
 * last progressed, so a failing task backs off behind the others until it
 * stalls at MAX_ATTEMPTS.
 */
export function nextTask(db, tenant) {
  const r = db.prepare(`SELECT id, change_id, task, cursor FROM outbox
                        WHERE tenant = ? AND attempts < ? ORDER BY attempts, id LIMIT 1`).get(tenant, MAX_ATTEMPTS);
  return r && { id: r.id, changeId: r.change_id, task: { work: workOf(r.task), cursor: r.cursor ?? undefined } };
}

/** Stores how far a task got (in the batch's transaction). */
export const advance = (db, id, cursor) =>
  db.prepare('UPDATE outbox SET cursor = ?, attempts = 0, last_error = NULL WHERE id = ?').run(cursor, id);
/** Removes a finished task (in the batch's transaction). */
export const finish = (db, id) => db.prepare('DELETE FROM outbox WHERE id = ?').run(id);
/** Records a failed attempt (after the batch rolled back). */
export const failed = (db, id, error) =>
  db.prepare('UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?').run(error, id);
/** Tasks left for the tenant, stalled ones included. */
export const pending = (db, tenant) => db.prepare('SELECT count(*) AS n FROM outbox WHERE tenant = ?').get(tenant).n;

/**
 * Drains the host's outbox: runs batches of at most `batch` users, each in
 * its own transaction, until no task is left to try, a batch fails (it is
 * retried on a later call, behind the other tasks), or `maxBatches` ran.
 * Returns the number of batches that committed. Synchronous: schedule it,
 * for example every 200 ms (`setInterval(() => drain(host), 200)`).
 */
export function drain(host, { batch = 1000, maxBatches = Infinity } = {}) {
  let done = 0;
  while (done < maxBatches) {
    const queued = nextTask(host.db, host.tenant.id);
    if (!queued) break;
    if (!host.drainBatch(queued, batch)) break;
    done += 1;
  }
  return done;
}
