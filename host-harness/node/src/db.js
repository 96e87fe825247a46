// The SQLite database: schema, the tenant row (token hash and cursor
// signing key), and the small helpers every import module shares.
// Tables mirror the Rust reference host's (host-harness/src/db/schema.rs)
// minus what this host leaves out (admin tokens, mapping rules, plugins,
// counters kept only for speed).
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  BLOB NOT NULL,
    signing_key BLOB NOT NULL
);
-- seq is AUTOINCREMENT so a position is never reused: paging stays valid
-- across deletes.
CREATE TABLE IF NOT EXISTS documents (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    label   TEXT,
    body    TEXT NOT NULL,
    -- Whether body is pure ASCII (for the body-contains pre-filter).
    ascii   INTEGER NOT NULL,
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
CREATE UNIQUE INDEX IF NOT EXISTS terms_unique ON terms (tenant, kind, name, value) WHERE is_unique = 1;
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
-- Roles, teams and learning paths that exist; kind is the WIT grant-kind
-- (role, team, learning-path). Teams are added on demand.
CREATE TABLE IF NOT EXISTS catalogue (
    tenant INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    name   TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, name)
) WITHOUT ROWID;
-- One row per item and source; a learner holds an item while any row does.
-- via is the group or attribute part of the source, for re-mapping;
-- withdrawn marks a mapped grant removed by hand (drift).
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
`;

/** Opens (creating when new) the database at `path`, or takes an open one. */
export function openDatabase(db) {
  const conn = typeof db === 'string' ? new Database(db) : db;
  conn.pragma('journal_mode = WAL');
  conn.pragma('busy_timeout = 5000');
  conn.pragma('foreign_keys = OFF');
  conn.exec(SCHEMA);
  return conn;
}

export const hashToken = (token) => createHash('sha256').update(token, 'utf8').digest();

/**
 * The tenant named `name`, created with its catalogue (the role `learner`,
 * which the default mapping grants) and a random signing key when new. Its
 * token is set to `token` on every start.
 */
export function ensureTenant(db, name, token) {
  return db.transaction(() => {
    let row = db.prepare('SELECT id, name, signing_key FROM tenants WHERE name = ?').get(name);
    if (!row) {
      const info = db.prepare('INSERT INTO tenants (name, token_hash, signing_key) VALUES (?, ?, ?)')
        .run(name, hashToken(token), randomBytes(32));
      db.prepare("INSERT OR IGNORE INTO catalogue (tenant, kind, name) VALUES (?, 'role', 'learner')")
        .run(info.lastInsertRowid);
      row = db.prepare('SELECT id, name, signing_key FROM tenants WHERE name = ?').get(name);
    } else {
      db.prepare('UPDATE tenants SET token_hash = ? WHERE id = ?').run(hashToken(token), row.id);
    }
    return { id: row.id, name: row.name, signingKey: new Uint8Array(row.signing_key), tokenHash: hashToken(token) };
  }).immediate();
}

/** Now, as stored: fixed-width UTC so text order is time order. */
export const now = () => new Date().toISOString();

/** SQLite's unique-constraint failure. */
export const isUniqueViolation = (e) =>
  e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';

/** `null` (from SQLite) as `undefined` (a WIT `none` for jco). */
export const opt = (v) => (v === null ? undefined : v);

/**
 * `prepare` that compiles each SQL text once per connection: the import
 * functions run the same few statements on every request.
 */
export function statements(db) {
  const cache = new Map();
  return (sql) => {
    let stmt = cache.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      cache.set(sql, stmt);
    }
    return stmt;
  };
}
