"""The reference LMS behind the WIT `lms` interface: learners, the catalogue
of roles, teams and learning paths, and assignments with their source, in
the host's SQLite database (ported from `host-harness/src/lms/mod.rs`). The
engine decides what each learner should hold; this module only stores it.
A vendor puts its own LMS behind the same functions.

Also the `plugin` interface, which this host answers with "no plugin": it
runs no admin-uploaded mapping plugins, so the rules (here: the default
mapping, `mapping()` is none) apply.
"""

from __future__ import annotations

import json
import sqlite3
from typing import List, Optional

from wasmtime.component import Record, Variant

from .db import Session, now
from .store import CHUNK, rec
from .synclog import LEARNER, Event

#: The most learners `holders` and `rename-grants` answer at once (WIT).
MAX_PER_CALL = 10_000

#: WIT `grant-kind` to the stored kind, and back.
KIND = {"role": "role", "team": "team", "learning-path": "learningPath"}
WIT_KIND = {v: k for k, v in KIND.items()}

#: `profile` fields and their columns, in order.
PROFILE = ["display-name", "given-name", "family-name", "email", "locale", "title",
           "department", "manager"]
COLUMNS = [p.replace("-", "_") for p in PROFILE]

#: Effects that read the learner's status or profile first.
READS = {"upsert", "suspend", "reactivate", "remove"}
GRANTS = {"set-role": "role", "join-team": "team", "assign-path": "learningPath"}
REVOKES = {"clear-role": "role", "leave-team": "team", "unassign-path": "learningPath"}


def via(source: str) -> str:
    """The group or attribute part of a source (`rule@via`); the whole
    source when it has none (`manual`)."""
    return source.split("@", 1)[1] if "@" in source else source


def jtext(v) -> Optional[str]:
    return None if v is None else json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def item_json(name: str, source: str) -> str:
    return json.dumps({"name": name, "source": source}, ensure_ascii=False, separators=(",", ":"))


def unavailable(fn):
    """An SQLite failure is the `lms-error` `unavailable(msg)`; that variant
    has one case, so wasmtime-py takes the bare string."""

    def call(s: Session, *args):
        try:
            return fn(s, *args)
        except sqlite3.Error as e:
            return f"the LMS database failed: {e}"

    call.__name__ = fn.__name__
    return call


def read_learners(conn, tenant: int, ids: List[str]) -> list:
    """[(scim_id, user_name, status, grants, withdrawn)], grants as
    (kind, name, source) with stored kinds, in id order."""
    out: list = []
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        rows = conn.execute(
            "SELECT l.scim_id, l.user_name, l.status, a.kind, a.name, a.source, a.withdrawn "
            "FROM learners l LEFT JOIN assignments a ON a.tenant = l.tenant AND a.scim_id = l.scim_id "
            f"WHERE l.tenant = ? AND l.scim_id IN ({', '.join('?' * len(chunk))}) "
            "ORDER BY l.scim_id, a.kind, a.name, a.source",
            [tenant, *chunk],
        )
        for sid, user_name, status, kind, name, source, withdrawn in rows:
            if not out or out[-1][0] != sid:
                out.append((sid, user_name, status, [], []))
            if kind in WIT_KIND:
                out[-1][4 if withdrawn else 3].append((kind, name, source))
    return out


@unavailable
def learners(s: Session, ids: List[str]):
    def grants(lst):
        return [rec(kind=WIT_KIND[k], name=n, source=src) for k, n, src in lst]

    return [
        rec(scim_id=sid, status=status, grants=grants(g), withdrawn=grants(w))
        for sid, _, status, g, w in read_learners(s.conn, s.tenant, ids)
    ]


@unavailable
def apply(s: Session, changes: List[Record]):
    at = now()
    # Learners whose changes grant without reading them (a re-mapping's):
    # whether they exist is asked for all at once.
    ask = [
        getattr(c.learner, "scim-id")
        for c in changes
        if any(e.tag in GRANTS for e in c.effects) and not any(e.tag in READS for e in c.effects)
    ]
    present = set()
    for i in range(0, len(ask), CHUNK):
        chunk = ask[i : i + CHUNK]
        present.update(r[0] for r in s.conn.execute(
            f"SELECT scim_id FROM learners WHERE tenant = ? AND scim_id IN ({', '.join('?' * len(chunk))})",
            [s.tenant, *chunk],
        ))
    for c in changes:
        event = apply_one(s, c, at, present)
        if event is not None:
            s.journal.learner_event(event)
    return None


def apply_one(s: Session, change: Record, at: str, present: set) -> Optional[Event]:
    """Applies one learner's effects in order, idempotently; returns the
    event saying what changed (None when nothing did)."""
    conn, tenant = s.conn, s.tenant
    ref = change.learner
    sid, user_name, external_id = (getattr(ref, "scim-id"), getattr(ref, "user-name"),
                                    getattr(ref, "external-id"))
    needs_read = any(e.tag in READS for e in change.effects)
    status, profile = None, [None] * 8
    if needs_read:
        row = conn.execute(
            f"SELECT status, {', '.join(COLUMNS)} FROM learners WHERE tenant = ? AND scim_id = ?",
            (tenant, sid),
        ).fetchone()
        if row:
            status, profile = row[0], list(row[1:])
    exists = status is not None if needs_read else sid in present
    changes: list = []
    action = None
    for e in change.effects:
        tag = e.tag
        if tag == "upsert":
            new = [getattr(e.payload, f) for f in PROFILE]
            if status is None:
                conn.execute(
                    f"INSERT INTO learners (tenant, scim_id, user_name, external_id, status, "
                    f"{', '.join(COLUMNS)}, updated) VALUES (?, ?, ?, ?, 'active', {', '.join('?' * 8)}, ?)",
                    (tenant, sid, user_name, external_id, *new, at),
                )
                status, exists, action, profile = "active", True, "create", new
                present.add(sid)
                changes += [(c, None, jtext(v)) for c, v in zip(COLUMNS, new) if v is not None]
                continue
            differs = False
            for col, o, n in zip(COLUMNS, profile, new):
                if o != n:
                    differs = True
                    changes.append((col, jtext(o), jtext(n)))
            profile = new
            # The ids may change too (a userName rename).
            conn.execute(
                f"UPDATE learners SET user_name = ?, external_id = ?, "
                f"{', '.join(c + ' = ?' for c in COLUMNS)}, updated = ? "
                "WHERE tenant = ? AND scim_id = ? AND (user_name IS NOT ? OR external_id IS NOT ? OR ?)",
                (user_name, external_id, *new, at, tenant, sid, user_name, external_id, differs),
            )
        elif tag in ("suspend", "reactivate"):
            to = "suspended" if tag == "suspend" else "active"
            if status is not None and status != to:
                conn.execute(
                    "UPDATE learners SET status = ?, updated = ? WHERE tenant = ? AND scim_id = ?",
                    (to, at, tenant, sid),
                )
                changes.append(("status", jtext(status), jtext(to)))
                status, action = to, tag
        elif tag == "remove":
            if status is not None and status != "removed":
                conn.execute(
                    "UPDATE learners SET status = 'removed', user_name = '', external_id = NULL, "
                    f"{', '.join(c + ' = NULL' for c in COLUMNS)}, updated = ? "
                    "WHERE tenant = ? AND scim_id = ?",
                    (at, tenant, sid),
                )
                conn.execute("DELETE FROM assignments WHERE tenant = ? AND scim_id = ?", (tenant, sid))
                changes.append(("status", jtext(status), jtext("removed")))
                status, profile, action = "removed", [None] * 8, "remove"
        elif tag in GRANTS:
            if not exists:
                continue  # no learner, nothing to grant to
            kind, item = GRANTS[tag], e.payload
            if kind == "team":
                ensure_team(conn, tenant, item.name)
            grant(conn, tenant, sid, kind, item.name, item.source, at, changes)
        elif tag in REVOKES:
            kind, item = REVOKES[tag], e.payload
            n = conn.execute(
                "DELETE FROM assignments WHERE tenant = ? AND scim_id = ? AND kind = ? AND name = ? "
                "AND source = ?",
                (tenant, sid, kind, item.name, item.source),
            ).rowcount
            if n:
                changes.append((kind, item_json(item.name, item.source), None))
    if not changes:
        return None
    return Event(action or "update", LEARNER, sid, user_name or None, "success", changes=changes)


def ensure_team(conn, tenant: int, name: str) -> None:
    conn.execute("INSERT OR IGNORE INTO catalogue (tenant, kind, name) VALUES (?, 'team', ?)",
                 (tenant, name))


def grant(conn, tenant: int, sid: str, kind: str, name: str, source: str, at: str,
          changes: list) -> None:
    """Adds an assignment or restores a withdrawn one; a no-op when held."""
    n = conn.execute(
        "INSERT INTO assignments (tenant, scim_id, kind, name, source, via, granted) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO UPDATE SET withdrawn = 0, granted = excluded.granted WHERE withdrawn = 1",
        (tenant, sid, kind, name, source, via(source), at),
    ).rowcount
    if n > 0:
        changes.append((kind, None, item_json(name, source)))


@unavailable
def known(s: Session, kind: str, names: List[str]):
    sql = "SELECT 1 FROM catalogue WHERE tenant = ? AND kind = ? AND name = ?"
    return [n for n in names if s.conn.execute(sql, (s.tenant, KIND[kind], n)).fetchone()]


@unavailable
def policy(s: Session):
    on_delete, drift, denied = s.conn.execute(
        "SELECT on_delete, drift, plugin_denied_roles FROM tenants WHERE id = ?", (s.tenant,)
    ).fetchone()
    return rec(on_delete="remove" if on_delete == "remove" else "suspend",
               drift="report" if drift == "report" else "restore",
               plugin_denied_roles=list(json.loads(denied or "[]")))


def mapping(s: Session):
    # No rules admin here: the default mapping. `result<option<string>, _>`
    # is a tagged variant in wasmtime-py (both cases may hold a string).
    return Variant("ok", None)


@unavailable
def holders(s: Session, v: str, after: Optional[str], limit: int):
    rows = s.conn.execute(
        "SELECT DISTINCT scim_id FROM assignments WHERE tenant = ? AND via = ? AND scim_id > ? "
        "ORDER BY scim_id LIMIT ?",
        (s.tenant, v, after or "", min(limit, MAX_PER_CALL)),
    )
    return [r[0] for r in rows]


@unavailable
def rename_grants(s: Session, kind: str, source: str, to: Optional[str], after: Optional[str],
                  limit: int):
    """Renames (or with `to` None revokes) the grants of `kind` from `source`
    held under another name, for at most `limit` learners after `after`."""
    conn, tenant, kind, v, after = s.conn, s.tenant, KIND[kind], via(source), after or ""
    rows = conn.execute(
        "SELECT a.scim_id, a.name, l.user_name FROM assignments a "
        "JOIN learners l ON l.tenant = a.tenant AND l.scim_id = a.scim_id "
        "WHERE a.tenant = ? AND a.via = ? AND a.scim_id > ? AND a.kind = ? AND a.source = ? "
        "AND a.name IS NOT ? ORDER BY a.scim_id LIMIT ?",
        (tenant, v, after, kind, source, to, min(limit, MAX_PER_CALL)),
    ).fetchall()
    events: List[Event] = []
    for sid, name, user_name in rows:
        if not events or events[-1].resource_id != sid:
            events.append(Event("update", LEARNER, sid, user_name or None, "success"))
        events[-1].changes.append((kind, item_json(name, source), None))
    if not events:
        return []
    last = events[-1].resource_id
    scope = "WHERE tenant = ? AND via = ? AND scim_id > ? AND scim_id <= ? AND kind = ? AND source = ? AND name IS NOT ?"
    args = (tenant, v, after, last, kind, source, to)
    if to is not None:
        if kind == "team":
            ensure_team(conn, tenant, to)
        # A learner already holding the new name from this source keeps one row.
        conn.execute(f"UPDATE OR REPLACE assignments SET name = ? {scope}", (to, *args))
        for e in events:
            e.changes.append((kind, None, item_json(to, source)))
    else:
        conn.execute(f"DELETE FROM assignments {scope}", args)
    for e in events:
        s.journal.learner_event(e)
    return [e.resource_id for e in events]


IMPORTS = {
    "learners": learners,
    "apply": apply,
    "known": known,
    "policy": policy,
    "mapping": mapping,
    "holders": holders,
    "rename-grants": rename_grants,
}

# --- plugin: this host runs no mapping plugins ----------------------------

PLUGIN_IMPORTS = {
    "active": lambda s: None,
    "assign": lambda s, user: rec(
        reason="plugin-unavailable", detail="this host runs no mapping plugins"
    ),
    "rejected": lambda s, user, failure: None,
}
