"""The SQLite database: schema, tenants, and one request's view of it.

The schema follows the Rust reference host (`host-harness/src/db/schema.rs`)
minus what this host leaves out (admin tokens, mapping rules, plugins,
per-tenant shares). Transactions are explicit: the connection runs in
autocommit mode (``isolation_level=None``) and the host issues ``BEGIN``,
``COMMIT`` and ``ROLLBACK`` itself, one transaction per SCIM request or
background batch, as the WIT world requires.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import sqlite3
from dataclasses import dataclass
from typing import Any, Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  BLOB NOT NULL,
    signing_key BLOB NOT NULL,
    on_delete   TEXT NOT NULL DEFAULT 'suspend',
    drift       TEXT NOT NULL DEFAULT 'restore',
    plugin_denied_roles TEXT NOT NULL DEFAULT '[]'
);
-- seq is AUTOINCREMENT so a position is never reused: paging cursors stay
-- valid when documents are deleted.
CREATE TABLE IF NOT EXISTS documents (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    label   TEXT,
    body    TEXT NOT NULL,
    ascii   INTEGER NOT NULL,  -- body is pure ASCII (body-contains pre-filter)
    UNIQUE (tenant, kind, id)
);
CREATE INDEX IF NOT EXISTS documents_by_kind ON documents (tenant, kind, seq);
CREATE INDEX IF NOT EXISTS documents_by_id ON documents (tenant, id);
CREATE TABLE IF NOT EXISTS terms (
    tenant    INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    value     TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    is_unique INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS terms_lookup ON terms (tenant, kind, name, value, seq);
CREATE UNIQUE INDEX IF NOT EXISTS terms_unique ON terms (tenant, kind, name, value)
    WHERE is_unique = 1;
CREATE INDEX IF NOT EXISTS terms_by_doc ON terms (seq);
CREATE TABLE IF NOT EXISTS members (
    group_seq  INTEGER NOT NULL,
    member_seq INTEGER NOT NULL,
    PRIMARY KEY (group_seq, member_seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_member ON members (member_seq, group_seq);
CREATE TABLE IF NOT EXISTS learners (
    tenant       INTEGER NOT NULL,
    scim_id      TEXT NOT NULL,
    user_name    TEXT NOT NULL,
    external_id  TEXT,
    status       TEXT NOT NULL,
    display_name TEXT,
    given_name   TEXT,
    family_name  TEXT,
    email        TEXT,
    locale       TEXT,
    title        TEXT,
    department   TEXT,
    manager      TEXT,
    updated      TEXT NOT NULL,
    PRIMARY KEY (tenant, scim_id)
) WITHOUT ROWID;
-- Roles, teams and learning paths that exist; teams are added on demand.
CREATE TABLE IF NOT EXISTS catalogue (
    tenant INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    name   TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, name)
) WITHOUT ROWID;
-- One row per item and source; `via` is the source's part after '@'.
CREATE TABLE IF NOT EXISTS assignments (
    tenant    INTEGER NOT NULL,
    scim_id   TEXT NOT NULL,
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    source    TEXT NOT NULL,
    via       TEXT NOT NULL,
    granted   TEXT NOT NULL,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, scim_id, kind, name, source)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS assignments_by_via ON assignments (tenant, via, scim_id);
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant     INTEGER NOT NULL,
    change_id  TEXT NOT NULL,
    task       TEXT NOT NULL,
    cursor     TEXT,
    created    TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant        INTEGER NOT NULL,
    at            TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    change_id     TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_name TEXT,
    status        TEXT NOT NULL,
    reason        TEXT,
    detail        TEXT,
    changes       TEXT NOT NULL,
    duration_us   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_tenant ON events (tenant, id);
"""

#: The tenant the launcher's ``--token`` belongs to, as in scim-host.
DEFAULT_TENANT = "default"


def connect(path: str) -> sqlite3.Connection:
    """Opens (creating if needed) the database at `path`."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(SCHEMA)
    return conn


def now() -> str:
    """UTC now, fixed width so text order is time order."""
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Tenant:
    id: int
    name: str
    signing_key: bytes


def ensure_tenant(conn: sqlite3.Connection, name: str, token: Optional[str]) -> None:
    """Creates the tenant (random signing key, catalogue with the role
    `learner`, which the default mapping grants) and sets its token."""
    with_tx(conn, lambda: _ensure_tenant(conn, name, token))


def _ensure_tenant(conn: sqlite3.Connection, name: str, token: Optional[str]) -> None:
    row = conn.execute("SELECT id FROM tenants WHERE name = ?", (name,)).fetchone()
    if row is None:
        # Without a token nobody can authenticate until one is set.
        seed = hash_token(token) if token else os.urandom(32)
        cur = conn.execute(
            "INSERT INTO tenants (name, token_hash, signing_key) VALUES (?, ?, ?)",
            (name, seed, os.urandom(32)),
        )
        conn.execute(
            "INSERT OR IGNORE INTO catalogue (tenant, kind, name) VALUES (?, 'role', 'learner')",
            (cur.lastrowid,),
        )
    elif token:
        conn.execute("UPDATE tenants SET token_hash = ? WHERE id = ?", (hash_token(token), row[0]))


def with_tx(conn: sqlite3.Connection, fn):
    """Runs `fn` in a write transaction of its own."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        out = fn()
        conn.execute("COMMIT")
        return out
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def authenticate(conn: sqlite3.Connection, token: str) -> Optional[Tenant]:
    """The tenant whose SCIM token this is, comparing hashes in constant
    time (every tenant's, so the answer's timing says nothing)."""
    digest = hash_token(token)
    found = None
    for tid, name, key, stored in conn.execute(
        "SELECT id, name, signing_key, token_hash FROM tenants"
    ):
        if hmac.compare_digest(digest, bytes(stored)) and found is None:
            found = Tenant(tid, name, bytes(key))
    return found


def tenant_by_id(conn: sqlite3.Connection, tid: int) -> Optional[Tenant]:
    row = conn.execute("SELECT id, name, signing_key FROM tenants WHERE id = ?", (tid,)).fetchone()
    return Tenant(row[0], row[1], bytes(row[2])) if row else None


@dataclass
class Session:
    """One request's (or background batch's) view of the database: the
    connection inside its transaction, the tenant every import call is
    scoped to, and what the engine recorded, kept until commit."""

    conn: sqlite3.Connection
    tenant: int
    #: Shared by everything one request caused, its background work included.
    change_id: str
    #: Sync-log events (see `synclog.Journal`).
    journal: Any = None
    #: Savepoints opened by the engine (`store.savepoint`).
    savepoints: int = 0
    #: Set when an import could not do its part; the host must roll back.
    failed: Optional[str] = None
    #: Outbox tasks queued (so the host can wake its drain).
    tasks_queued: int = 0
