//! Tables, indexes and the migrations that evolve them.

use anyhow::{Context as _, Result};
use rusqlite::Connection;

/// Tables and indexes, created on first start.
///
/// `documents.seq` is AUTOINCREMENT so a sequence number is never reused:
/// paging positions stay valid when rows are deleted.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    token_hash  BLOB NOT NULL UNIQUE,
    signing_key BLOB NOT NULL,
    created     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS documents (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  INTEGER NOT NULL REFERENCES tenants(id),
    kind    TEXT NOT NULL,
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    label   TEXT,
    body    TEXT NOT NULL,
    -- Whether body is pure ASCII (for the body-contains pre-filter).
    ascii   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant, kind, id)
);
CREATE TABLE IF NOT EXISTS kind_counts (
    tenant INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind)
) WITHOUT ROWID;
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
"#;

/// Schema changes after the first release, in order; `PRAGMA user_version`
/// records how many have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: per term name, how many terms and how many documents carry one.
    // When the two are equal every document has at most one term of that
    // name, and a range's count is the total minus what lies outside it.
    r#"
CREATE TABLE term_stats (
    tenant INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    name   TEXT NOT NULL,
    terms  INTEGER NOT NULL,
    docs   INTEGER NOT NULL,
    PRIMARY KEY (tenant, kind, name)
) WITHOUT ROWID;
INSERT INTO term_stats (tenant, kind, name, terms, docs)
    SELECT tenant, kind, name, count(*), count(DISTINCT seq) FROM terms GROUP BY tenant, kind, name;
"#,
    // 2: the reference LMS (learners, the catalogue, assignments with their
    // source), the outbox of background re-mapping, the sync log, admin
    // tokens and the deprovisioning policy.
    r#"
ALTER TABLE tenants ADD COLUMN admin_token_hash BLOB;
ALTER TABLE tenants ADD COLUMN on_delete TEXT NOT NULL DEFAULT 'suspend';
CREATE UNIQUE INDEX tenants_by_admin_token ON tenants (admin_token_hash) WHERE admin_token_hash IS NOT NULL;
CREATE TABLE learners (
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
-- Roles, teams and learning paths that exist. Teams are added on demand.
CREATE TABLE catalogue (
    tenant INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    name   TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, name)
) WITHOUT ROWID;
INSERT INTO catalogue (tenant, kind, name) SELECT id, 'role', 'learner' FROM tenants;
-- One row per item and source; a learner holds an item while any row does.
-- `via` is the group or attribute part of the source, for re-mapping.
CREATE TABLE assignments (
    tenant  INTEGER NOT NULL,
    scim_id TEXT NOT NULL,
    kind    TEXT NOT NULL,
    name    TEXT NOT NULL,
    source  TEXT NOT NULL,
    via     TEXT NOT NULL,
    granted TEXT NOT NULL,
    PRIMARY KEY (tenant, scim_id, kind, name, source)
) WITHOUT ROWID;
CREATE INDEX assignments_by_via ON assignments (tenant, via, scim_id);
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant     INTEGER NOT NULL,
    change_id  TEXT NOT NULL,
    task       TEXT NOT NULL,
    cursor     TEXT,
    created    TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE events (
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
CREATE INDEX events_by_tenant ON events (tenant, id);
CREATE INDEX events_by_resource ON events (tenant, resource_id, id);
CREATE INDEX events_by_name ON events (tenant, resource_name, id);
"#,
    // 3: mapping rules (every version installed, the newest active unless
    // removed), drift, and the confirmation threshold for rules that take
    // things away.
    r#"
CREATE TABLE mappings (
    tenant       INTEGER NOT NULL,
    -- Numbered per tenant, from 1.
    version      INTEGER NOT NULL,
    document     TEXT,
    -- The engine's normalized form of the document, read for mapping.
    compiled     TEXT,
    sha256       TEXT,
    installed_at TEXT NOT NULL,
    installed_by TEXT NOT NULL,
    PRIMARY KEY (tenant, version)
) WITHOUT ROWID;
ALTER TABLE assignments ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN drift TEXT NOT NULL DEFAULT 'restore';
ALTER TABLE tenants ADD COLUMN confirm_threshold REAL NOT NULL DEFAULT 5;
"#,
    // 4: mapping plugins (every version installed, the newest in force
    // unless it removed the plugin or was disabled by failures), their
    // components by content hash, the inputs of recent failed calls for
    // replay, and the roles plugins may not grant.
    r#"
CREATE TABLE mapper_components (
    sha256    TEXT PRIMARY KEY,
    component BLOB NOT NULL
);
CREATE TABLE mappers (
    tenant          INTEGER NOT NULL,
    -- Numbered per tenant, from 1.
    version         INTEGER NOT NULL,
    -- NULL: this version removed the plugin (the rules apply).
    sha256          TEXT,
    size            INTEGER,
    settings        TEXT,
    fuel            INTEGER,
    memory_bytes    INTEGER,
    max_failures    INTEGER,
    installed_at    TEXT NOT NULL,
    installed_by    TEXT NOT NULL,
    -- Consecutive failed calls; at max_failures the plugin is disabled.
    failures        INTEGER NOT NULL DEFAULT 0,
    disabled_at     TEXT,
    disabled_reason TEXT,
    PRIMARY KEY (tenant, version)
) WITHOUT ROWID;
CREATE TABLE mapper_failures (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant   INTEGER NOT NULL,
    at       TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    -- The user as the plugin received it (JSON), and its settings.
    input    TEXT NOT NULL,
    settings TEXT NOT NULL,
    reason   TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX mapper_failures_by_tenant ON mapper_failures (tenant, id);
ALTER TABLE tenants ADD COLUMN plugin_denied_roles TEXT NOT NULL DEFAULT '[]';
"#,
    // 5: the names each resource was logged under, once per name, instead
    // of an index of every event by name. Events are written in id order,
    // but a re-mapping writes them in user-id order, which put each one at
    // a random place in that index: most of the pages a background batch
    // wrote. A learner shares its user's id and is named after it, so its
    // events need no names of their own.
    r#"
CREATE TABLE event_names (
    tenant        INTEGER NOT NULL,
    name          TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    PRIMARY KEY (tenant, name, resource_type, resource_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_names (tenant, name, resource_type, resource_id)
    SELECT tenant, resource_name, resource_type, resource_id FROM events
    WHERE resource_name IS NOT NULL AND resource_type <> 'Learner';
DROP INDEX events_by_name;
"#,
    // 6: each tenant's share of the server: requests at once and per
    // second (NULL: the server's defaults).
    r#"
ALTER TABLE tenants ADD COLUMN max_concurrent INTEGER;
ALTER TABLE tenants ADD COLUMN rate_per_sec REAL;
"#,
];

/// Applies the migrations a database has not seen yet, each in its own
/// transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let done: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)
            .with_context(|| format!("applying schema migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
