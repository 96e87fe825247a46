// The reference LMS behind the WIT `lms` interface (see wit/lms.wit):
// learners, the catalogue of roles, teams and learning paths, and
// assignments with their source, in the host's SQLite database. The engine
// decides what each learner should hold; this module stores it and records
// what actually changed as one sync-log event per learner. A vendor puts
// its own LMS behind the same interface. Ported from the Rust reference
// host (host-harness/src/lms/mod.rs, src/imports/lms.rs).
import { guard } from './wit.js';
import { now, statements } from './db.js';

/** The most learners `holders` and `rename-grants` answer at once (WIT). */
const MAX_LEARNERS = 10_000;

/** Profile fields (WIT names) and their columns, in `profile` order. */
const PROFILE = [
  ['displayName', 'display_name'], ['givenName', 'given_name'], ['familyName', 'family_name'],
  ['email', 'email'], ['locale', 'locale'], ['title', 'title'], ['department', 'department'],
  ['manager', 'manager'],
];
const GRANTS = { 'set-role': 'role', 'join-team': 'team', 'assign-path': 'learning-path' };
const REVOKES = { 'clear-role': 'role', 'leave-team': 'team', 'unassign-path': 'learning-path' };
const READS_LEARNER = new Set(['upsert', 'suspend', 'reactivate', 'remove']);

/** The group or attribute part of a source (`rule@via`); the whole source without `@`. */
export const via = (source) => {
  const at = source.indexOf('@');
  return at < 0 ? source : source.slice(at + 1);
};
const jsonText = (v) => (v === undefined || v === null ? undefined : JSON.stringify(v));
const itemJson = (i) => JSON.stringify({ name: i.name, source: i.source });

/**
 * The `lms` import. `state()` is the current request's state: `tenant` and
 * the `journal` its learner events go to.
 */
export function createLms(db, state) {
  const q = statements(db);

  const grant = (tenant, id, kind, item, at, changes) => {
    const n = q(`INSERT INTO assignments (tenant, scim_id, kind, name, source, via, granted)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT DO UPDATE SET withdrawn = 0, granted = excluded.granted WHERE withdrawn = 1`)
      .run(tenant, id, kind, item.name, item.source, via(item.source), at).changes;
    if (n > 0) changes.push([kind, undefined, itemJson(item)]);
  };
  const revoke = (tenant, id, kind, item, changes) => {
    const n = q(`DELETE FROM assignments WHERE tenant = ? AND scim_id = ? AND kind = ? AND name = ? AND source = ?`)
      .run(tenant, id, kind, item.name, item.source).changes;
    if (n > 0) changes.push([kind, itemJson(item), undefined]);
  };
  const ensureTeam = (tenant, name) =>
    q("INSERT OR IGNORE INTO catalogue (tenant, kind, name) VALUES (?, 'team', ?)").run(tenant, name);
  const setStatus = (tenant, id, to, at) =>
    q('UPDATE learners SET status = ?, updated = ? WHERE tenant = ? AND scim_id = ?').run(to, at, tenant, id);

  /** Applies one learner's effects in order; returns its event, or none when nothing changed. */
  function applyChange(tenant, change, at) {
    const r = change.learner;
    const id = r.scimId;
    const changes = [];
    let action;
    const current = q(`SELECT status, ${PROFILE.map(([, c]) => c).join(', ')}
                       FROM learners WHERE tenant = ? AND scim_id = ?`).get(tenant, id);
    let status = current?.status;
    let profile = PROFILE.map(([, c]) => current?.[c] ?? undefined);
    for (const effect of change.effects) {
      const t = effect.tag;
      if (t === 'upsert') {
        const next = PROFILE.map(([f]) => effect.val[f] ?? undefined);
        if (status === undefined) {
          q(`INSERT INTO learners (tenant, scim_id, user_name, external_id, status, display_name, given_name,
               family_name, email, locale, title, department, manager, updated)
             VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
            .run(tenant, id, r.userName, r.externalId ?? null, ...next.map((v) => v ?? null), at);
          status = 'active';
          action = 'create';
          profile = next;
          PROFILE.forEach(([, col], i) => {
            if (next[i] !== undefined) changes.push([col, undefined, jsonText(next[i])]);
          });
          continue;
        }
        let differs = false;
        PROFILE.forEach(([, col], i) => {
          if (profile[i] !== next[i]) {
            differs = true;
            changes.push([col, jsonText(profile[i]), jsonText(next[i])]);
          }
        });
        profile = next;
        // The ids may change too (a userName rename).
        q(`UPDATE learners SET user_name = ?, external_id = ?, display_name = ?, given_name = ?, family_name = ?,
             email = ?, locale = ?, title = ?, department = ?, manager = ?, updated = ?
           WHERE tenant = ? AND scim_id = ? AND (user_name IS NOT ? OR external_id IS NOT ? OR ?)`)
          .run(r.userName, r.externalId ?? null, ...next.map((v) => v ?? null), at, tenant, id,
            r.userName, r.externalId ?? null, differs ? 1 : 0);
      } else if (t === 'suspend' || t === 'reactivate') {
        const to = t === 'suspend' ? 'suspended' : 'active';
        if (status !== undefined && status !== to) {
          setStatus(tenant, id, to, at);
          changes.push(['status', jsonText(status), jsonText(to)]);
          status = to;
          action = t;
        }
      } else if (t === 'remove') {
        if (status !== undefined && status !== 'removed') {
          q(`UPDATE learners SET status = 'removed', user_name = '', external_id = NULL, display_name = NULL,
               given_name = NULL, family_name = NULL, email = NULL, locale = NULL, title = NULL,
               department = NULL, manager = NULL, updated = ? WHERE tenant = ? AND scim_id = ?`).run(at, tenant, id);
          q('DELETE FROM assignments WHERE tenant = ? AND scim_id = ?').run(tenant, id);
          changes.push(['status', jsonText(status), jsonText('removed')]);
          status = 'removed';
          profile = PROFILE.map(() => undefined);
          action = 'remove';
        }
      } else if (GRANTS[t]) {
        // No learner, nothing to grant to.
        if (status === undefined) continue;
        if (t === 'join-team') ensureTeam(tenant, effect.val.name);
        grant(tenant, id, GRANTS[t], effect.val, at, changes);
      } else if (REVOKES[t]) {
        revoke(tenant, id, REVOKES[t], effect.val, changes);
      } else {
        throw new TypeError(`unknown effect ${t}`);
      }
    }
    if (changes.length === 0) return undefined;
    return learnerEvent(action ?? 'update', id, r.userName, changes);
  }

  const learnerEvent = (action, id, userName, changes) => ({
    action, resourceType: 'Learner', resourceId: id, resourceName: userName || undefined,
    status: 'success', changes,
  });

  return guard({
    learners(ids) {
      const rows = q(`SELECT l.scim_id, l.status, a.kind, a.name, a.source, a.withdrawn
                      FROM learners l LEFT JOIN assignments a ON a.tenant = l.tenant AND a.scim_id = l.scim_id
                      WHERE l.tenant = ? AND l.scim_id IN (SELECT value FROM json_each(?))
                      ORDER BY l.scim_id, a.kind, a.name, a.source`).all(state().tenant, JSON.stringify(ids));
      const out = [];
      for (const r of rows) {
        if (out.at(-1)?.scimId !== r.scim_id) {
          out.push({ scimId: r.scim_id, status: r.status, grants: [], withdrawn: [] });
        }
        if (r.kind !== null) {
          const g = { kind: r.kind, name: r.name, source: r.source };
          (r.withdrawn ? out.at(-1).withdrawn : out.at(-1).grants).push(g);
        }
      }
      return out;
    },
    apply(changes) {
      const { tenant, journal } = state();
      const at = now();
      for (const change of changes) {
        const event = applyChange(tenant, change, at);
        if (event) journal.learnerEvent(event);
      }
    },
    known(kind, names) {
      const stmt = q('SELECT 1 FROM catalogue WHERE tenant = ? AND kind = ? AND name = ?');
      return names.filter((n) => stmt.get(state().tenant, kind, n) !== undefined);
    },
    /** The defaults: suspend on delete, restore drift, no role denied to plugins. */
    policy() {
      return { onDelete: 'suspend', drift: 'restore', pluginDeniedRoles: [] };
    },
    /** No mapping rules in this host: the engine's default mapping applies. */
    mapping() {
      return undefined;
    },
    holders(viaName, after, limit) {
      return q(`SELECT DISTINCT scim_id FROM assignments WHERE tenant = ? AND via = ? AND scim_id > ?
                ORDER BY scim_id LIMIT ?`)
        .all(state().tenant, viaName, after ?? '', Math.min(limit, MAX_LEARNERS)).map((r) => r.scim_id);
    },
    renameGrants(kind, source, to, after, limit) {
      const { tenant, journal } = state();
      const v = via(source);
      const from = after ?? '';
      const toName = to ?? null;
      const rows = q(`SELECT a.scim_id, a.name, l.user_name FROM assignments a
                        JOIN learners l ON l.tenant = a.tenant AND l.scim_id = a.scim_id
                      WHERE a.tenant = ? AND a.via = ? AND a.scim_id > ? AND a.kind = ? AND a.source = ?
                        AND a.name IS NOT ?
                      ORDER BY a.scim_id LIMIT ?`)
        .all(tenant, v, from, kind, source, toName, Math.min(limit, MAX_LEARNERS));
      const events = [];
      for (const r of rows) {
        if (events.at(-1)?.resourceId !== r.scim_id) events.push(learnerEvent('update', r.scim_id, r.user_name, []));
        events.at(-1).changes.push([kind, itemJson({ name: r.name, source }), undefined]);
      }
      if (events.length === 0) return [];
      const range = [tenant, v, from, events.at(-1).resourceId, kind, source, toName];
      const where = `WHERE tenant = ? AND via = ? AND scim_id > ? AND scim_id <= ? AND kind = ?
                     AND source = ? AND name IS NOT ?`;
      if (to !== undefined) {
        if (kind === 'team') ensureTeam(tenant, to);
        // A learner already holding the new name from this source keeps one row of it.
        q(`UPDATE OR REPLACE assignments SET name = ? ${where}`).run(to, ...range);
        for (const e of events) e.changes.push([kind, undefined, itemJson({ name: to, source })]);
      } else {
        q(`DELETE FROM assignments ${where}`).run(...range);
      }
      for (const e of events) journal.learnerEvent(e);
      return events.map((e) => e.resourceId);
    },
  });
}

/** A learner as the test API shows it (tests/hosts/README.md), or undefined. */
export function learnerView(db, tenant, id) {
  const l = db.prepare('SELECT * FROM learners WHERE tenant = ? AND scim_id = ?').get(tenant, id);
  if (!l) return undefined;
  const rows = db.prepare(`SELECT kind, name, source FROM assignments
                           WHERE tenant = ? AND scim_id = ? AND withdrawn = 0 ORDER BY kind, name, source`)
    .all(tenant, id);
  const items = (kind) => {
    const byName = new Map();
    for (const r of rows.filter((r) => r.kind === kind)) {
      byName.set(r.name, [...(byName.get(r.name) ?? []), r.source]);
    }
    return [...byName].map(([name, sources]) => ({ name, sources: sources.sort() }));
  };
  return {
    id,
    userName: l.user_name,
    status: l.status,
    profile: Object.fromEntries(PROFILE.map(([f, c]) => [f, l[c] ?? null])),
    roles: items('role'),
    teams: items('team'),
    learningPaths: items('learning-path'),
  };
}
