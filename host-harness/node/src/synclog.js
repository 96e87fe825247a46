// The tenant's sync log (see wit/sync-log.wit). Events the engine appends
// and the learner events the LMS produces are kept in the request's
// Journal and written just before its commit, stamped with the time, the
// request id, the change id and the duration, so a request that rolls back
// leaves none; the host then records the failure itself.
import { now } from './db.js';

/** How telling a learner event's action is: create, then a status change, then update. */
const RANK = { create: 3, suspend: 2, reactivate: 2, remove: 2 };

/** What one request or background batch recorded, until it commits. */
export class Journal {
  constructor(changeId) {
    this.changeId = changeId;
    this.events = [];
    /** Index in `events` of each learner's event: one event per learner. */
    this.learners = new Map();
    /** Outbox tasks queued. */
    this.enqueued = 0;
    /** Set when an import could not do its part: the host must roll back. */
    this.failed = undefined;
  }

  /** Merges what a change did to a learner into that learner's event. */
  learnerEvent(event) {
    const i = this.learners.get(event.resourceId);
    if (i === undefined) {
      this.learners.set(event.resourceId, this.events.length);
      this.events.push(event);
      return;
    }
    const e = this.events[i];
    if ((RANK[event.action] ?? 1) > (RANK[e.action] ?? 1)) e.action = event.action;
    e.resourceName ??= event.resourceName;
    e.changes.push(...event.changes);
  }
}

/** The `sync-log` import. */
export function createSyncLog(state) {
  return {
    append(events) {
      const { journal } = state();
      for (const e of events) {
        journal.events.push({ ...e, changes: e.changes.map((c) => [c.name, c.old, c.new]) });
      }
    },
  };
}

/**
 * Stores events inside the caller's transaction. `stamp` is
 * `{requestId, changeId, started}` (`started` from performance.now()).
 */
export function insertEvents(db, tenant, stamp, events) {
  if (events.length === 0) return;
  const stmt = db.prepare(`INSERT INTO events (tenant, at, request_id, change_id, action, resource_type, resource_id,
      resource_name, status, reason, detail, changes, duration_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const at = now();
  const duration = Math.round((performance.now() - stamp.started) * 1000);
  for (const e of events) {
    const changes = JSON.stringify(e.changes.map(([name, old, neu]) => ({ name, old: old ?? null, new: neu ?? null })));
    stmt.run(tenant, at, stamp.requestId, stamp.changeId, e.action, e.resourceType, e.resourceId,
      e.resourceName ?? null, e.status, e.reason ?? null, e.detail ?? null, changes, duration);
  }
}

/** The sync-log action of a failed request's method. */
const ACTION = { POST: 'create', PUT: 'replace', PATCH: 'update', DELETE: 'delete' };

/**
 * Records a failed request after its rollback, in a transaction of its
 * own, from what the engine's log line says about it.
 */
export function recordFailure(db, tenant, method, response, stamp) {
  const log = new Map(response.log ?? []);
  const event = {
    action: ACTION[method] ?? 'read',
    resourceType: log.get('resource') ?? '-',
    resourceId: log.get('resource_id') ?? '',
    status: 'failure',
    reason: log.get('error') ?? log.get('trap') ?? `http-${response.status}`,
    detail: log.get('detail'),
    changes: [],
  };
  try {
    db.transaction(() => insertEvents(db, tenant, stamp, [event])).immediate();
  } catch (e) {
    console.error(`could not record a failed request in the sync log: ${e.message}`);
  }
}

/** The tenant's events, oldest first, as the test API shows them. */
export function listEvents(db, tenant) {
  return db.prepare(`SELECT action, resource_type, resource_id, resource_name, status, reason, request_id, change_id
                     FROM events WHERE tenant = ? ORDER BY id`).all(tenant)
    .map((r) => ({
      action: r.action, resourceType: r.resource_type, resourceId: r.resource_id,
      resourceName: r.resource_name, status: r.status, reason: r.reason,
      requestId: r.request_id, changeId: r.change_id,
    }));
}
