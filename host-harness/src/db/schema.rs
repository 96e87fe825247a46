//! Tables, indexes and the migrations that evolve them.

use anyhow::{Context as _, Result};

use super::sql::{Connection, Dialect, OptionalExtension as _};

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
    // 7: the admin console's sessions; alert webhooks and their durable
    // delivery queue; the sync log by request and change.
    r#"
CREATE TABLE admin_sessions (
    -- SHA-256 of the cookie's value: a database read leaks no session.
    id_hash  BLOB PRIMARY KEY,
    tenant   INTEGER NOT NULL,
    -- The token every write of the session must echo (X-CSRF-Token).
    csrf     TEXT NOT NULL,
    created  TEXT NOT NULL,
    expires  TEXT NOT NULL
);
CREATE INDEX admin_sessions_by_tenant ON admin_sessions (tenant);
CREATE TABLE alert_hooks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          INTEGER NOT NULL,
    url             TEXT NOT NULL,
    -- The HMAC-SHA256 key of the signature header.
    secret          TEXT NOT NULL,
    -- JSON array of the alert kinds sent here.
    kinds           TEXT NOT NULL,
    -- `json`, or `slack` (a Slack-compatible payload).
    format          TEXT NOT NULL DEFAULT 'json',
    backlog_minutes INTEGER NOT NULL DEFAULT 15,
    created         TEXT NOT NULL
);
CREATE INDEX alert_hooks_by_tenant ON alert_hooks (tenant, id);
CREATE TABLE alert_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       INTEGER NOT NULL,
    hook         INTEGER NOT NULL,
    -- Stable across retries: receivers de-duplicate by it.
    event_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    body         TEXT NOT NULL,
    created      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      TEXT NOT NULL,
    -- `pending`, `delivered` or `failed` (retries exhausted).
    state        TEXT NOT NULL DEFAULT 'pending',
    last_status  INTEGER,
    last_error   TEXT,
    delivered_at TEXT,
    UNIQUE (hook, event_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_at);
CREATE INDEX alert_deliveries_by_tenant ON alert_deliveries (tenant, id);
-- The events of one request or change (the console's event detail). Ids
-- begin with their time (`events::new_id`), so both grow at their end.
CREATE INDEX events_by_request ON events (tenant, request_id, id);
CREATE INDEX events_by_change ON events (tenant, change_id, id);
"#,
    // 8: admin jobs (a preview or an install over every user, run in the
    // background for a client that polls), so that any replica answers
    // the poll.
    r#"
CREATE TABLE jobs (
    id        TEXT PRIMARY KEY,
    tenant    INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    -- `running`, `applying` (its change is being recorded; shown as
    -- running), `done`, `failed`, `needs-confirmation`, `cancelled`,
    -- `interrupted`.
    state     TEXT NOT NULL,
    done      INTEGER NOT NULL DEFAULT 0,
    total     INTEGER NOT NULL DEFAULT 0,
    created   TEXT NOT NULL,
    finished  TEXT,
    -- The process that runs it, and when it last said it still does.
    owner     TEXT NOT NULL,
    heartbeat TEXT NOT NULL,
    -- JSON: what the synchronous request would have answered.
    result    TEXT,
    error     TEXT,
    -- JSON: what a confirmation resting on its preview must still find.
    basis     TEXT
);
CREATE INDEX jobs_by_tenant ON jobs (tenant, created);
CREATE INDEX jobs_running ON jobs (state, heartbeat);
"#,
];

/// Migrations after PostgreSQL's first release (schema version 6), in
/// PostgreSQL's types: (the version each brings the schema to, its SQL).
/// A new database runs [`POSTGRES_SCHEMA`] and then every one of them.
const POSTGRES_MIGRATIONS: &[(usize, &str)] = &[(7, POSTGRES_7), (8, POSTGRES_8)];

/// Migration 7 on PostgreSQL (see [`MIGRATIONS`]).
const POSTGRES_7: &str = r#"
CREATE TABLE admin_sessions (
    id_hash  BYTEA PRIMARY KEY,
    tenant   BIGINT NOT NULL,
    csrf     TEXT COLLATE "C" NOT NULL,
    created  TEXT COLLATE "C" NOT NULL,
    expires  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX admin_sessions_by_tenant ON admin_sessions (tenant);
CREATE TABLE alert_hooks (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant          BIGINT NOT NULL,
    url             TEXT COLLATE "C" NOT NULL,
    secret          TEXT COLLATE "C" NOT NULL,
    kinds           TEXT COLLATE "C" NOT NULL,
    format          TEXT COLLATE "C" NOT NULL DEFAULT 'json',
    backlog_minutes BIGINT NOT NULL DEFAULT 15,
    created         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX alert_hooks_by_tenant ON alert_hooks (tenant, id);
CREATE TABLE alert_deliveries (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant       BIGINT NOT NULL,
    hook         BIGINT NOT NULL,
    event_id     TEXT COLLATE "C" NOT NULL,
    kind         TEXT COLLATE "C" NOT NULL,
    body         TEXT COLLATE "C" NOT NULL,
    created      TEXT COLLATE "C" NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_at      TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL DEFAULT 'pending',
    last_status  BIGINT,
    last_error   TEXT COLLATE "C",
    delivered_at TEXT COLLATE "C",
    UNIQUE (hook, event_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_at);
CREATE INDEX alert_deliveries_by_tenant ON alert_deliveries (tenant, id);
-- The events of one request or change (the console's event detail). Ids
-- begin with their time (`events::new_id`), so both grow at their end.
CREATE INDEX events_by_request ON events (tenant, request_id, id);
CREATE INDEX events_by_change ON events (tenant, change_id, id);
"#;

/// Migration 8 on PostgreSQL (see [`MIGRATIONS`]).
const POSTGRES_8: &str = r#"
CREATE TABLE jobs (
    id        TEXT COLLATE "C" PRIMARY KEY,
    tenant    BIGINT NOT NULL,
    kind      TEXT COLLATE "C" NOT NULL,
    state     TEXT COLLATE "C" NOT NULL,
    done      BIGINT NOT NULL DEFAULT 0,
    total     BIGINT NOT NULL DEFAULT 0,
    created   TEXT COLLATE "C" NOT NULL,
    finished  TEXT COLLATE "C",
    owner     TEXT COLLATE "C" NOT NULL,
    heartbeat TEXT COLLATE "C" NOT NULL,
    result    TEXT COLLATE "C",
    error     TEXT COLLATE "C",
    basis     TEXT COLLATE "C"
);
CREATE INDEX jobs_by_tenant ON jobs (tenant, created);
CREATE INDEX jobs_running ON jobs (state, heartbeat);
"#;

/// The schema on PostgreSQL at its first release: the tables and indexes
/// of SQLite's [`SCHEMA`] after the first six [`MIGRATIONS`], in
/// PostgreSQL's types ([`POSTGRES_MIGRATIONS`] follow it). Text compares byte by byte (`COLLATE "C"`)
/// as in SQLite, which index-term ranges and paging rely on. `terms` has
/// an explicit `rowid`, the column SQLite gives every table.
const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE tenants (
    id                  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name                TEXT COLLATE "C" NOT NULL UNIQUE,
    token_hash          BYTEA NOT NULL UNIQUE,
    signing_key         BYTEA NOT NULL,
    created             TEXT COLLATE "C" NOT NULL
                        DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    admin_token_hash    BYTEA,
    on_delete           TEXT COLLATE "C" NOT NULL DEFAULT 'suspend',
    drift               TEXT COLLATE "C" NOT NULL DEFAULT 'restore',
    confirm_threshold   DOUBLE PRECISION NOT NULL DEFAULT 5,
    plugin_denied_roles TEXT COLLATE "C" NOT NULL DEFAULT '[]',
    max_concurrent      BIGINT,
    rate_per_sec        DOUBLE PRECISION
);
CREATE UNIQUE INDEX tenants_by_admin_token ON tenants (admin_token_hash) WHERE admin_token_hash IS NOT NULL;
CREATE TABLE documents (
    seq     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant  BIGINT NOT NULL REFERENCES tenants(id),
    kind    TEXT COLLATE "C" NOT NULL,
    id      TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    label   TEXT COLLATE "C",
    body    TEXT COLLATE "C" NOT NULL,
    ascii   BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant, kind, id)
);
CREATE TABLE kind_counts (
    tenant BIGINT NOT NULL,
    kind   TEXT COLLATE "C" NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind)
);
CREATE INDEX documents_by_kind ON documents (tenant, kind, seq);
CREATE INDEX documents_by_id ON documents (tenant, id);
CREATE TABLE terms (
    rowid     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant    BIGINT NOT NULL,
    kind      TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    value     TEXT COLLATE "C" NOT NULL,
    seq       BIGINT NOT NULL,
    is_unique BIGINT NOT NULL
);
CREATE INDEX terms_lookup ON terms (tenant, kind, name, value, seq);
CREATE UNIQUE INDEX terms_unique ON terms (tenant, kind, name, value) WHERE is_unique = 1;
CREATE INDEX terms_by_doc ON terms (seq);
CREATE TABLE members (
    group_seq  BIGINT NOT NULL,
    member_seq BIGINT NOT NULL,
    PRIMARY KEY (group_seq, member_seq)
);
CREATE INDEX members_by_member ON members (member_seq, group_seq);
CREATE TABLE term_stats (
    tenant BIGINT NOT NULL,
    kind   TEXT COLLATE "C" NOT NULL,
    name   TEXT COLLATE "C" NOT NULL,
    terms  BIGINT NOT NULL,
    docs   BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, name)
);
CREATE TABLE learners (
    tenant       BIGINT NOT NULL,
    scim_id      TEXT COLLATE "C" NOT NULL,
    user_name    TEXT COLLATE "C" NOT NULL,
    external_id  TEXT COLLATE "C",
    status       TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C",
    given_name   TEXT COLLATE "C",
    family_name  TEXT COLLATE "C",
    email        TEXT COLLATE "C",
    locale       TEXT COLLATE "C",
    title        TEXT COLLATE "C",
    department   TEXT COLLATE "C",
    manager      TEXT COLLATE "C",
    updated      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, scim_id)
);
CREATE TABLE catalogue (
    tenant BIGINT NOT NULL,
    kind   TEXT COLLATE "C" NOT NULL,
    name   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, kind, name)
);
CREATE TABLE assignments (
    tenant    BIGINT NOT NULL,
    scim_id   TEXT COLLATE "C" NOT NULL,
    kind      TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    source    TEXT COLLATE "C" NOT NULL,
    via       TEXT COLLATE "C" NOT NULL,
    granted   TEXT COLLATE "C" NOT NULL,
    withdrawn BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, scim_id, kind, name, source)
);
CREATE INDEX assignments_by_via ON assignments (tenant, via, scim_id);
CREATE TABLE outbox (
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant     BIGINT NOT NULL,
    change_id  TEXT COLLATE "C" NOT NULL,
    task       TEXT COLLATE "C" NOT NULL,
    cursor     TEXT COLLATE "C",
    created    TEXT COLLATE "C" NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    last_error TEXT COLLATE "C"
);
CREATE TABLE events (
    id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant        BIGINT NOT NULL,
    at            TEXT COLLATE "C" NOT NULL,
    request_id    TEXT COLLATE "C" NOT NULL,
    change_id     TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    resource_id   TEXT COLLATE "C" NOT NULL,
    resource_name TEXT COLLATE "C",
    status        TEXT COLLATE "C" NOT NULL,
    reason        TEXT COLLATE "C",
    detail        TEXT COLLATE "C",
    changes       TEXT COLLATE "C" NOT NULL,
    duration_us   BIGINT NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant, id);
CREATE INDEX events_by_resource ON events (tenant, resource_id, id);
CREATE TABLE mappings (
    tenant       BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    document     TEXT COLLATE "C",
    compiled     TEXT COLLATE "C",
    sha256       TEXT COLLATE "C",
    installed_at TEXT COLLATE "C" NOT NULL,
    installed_by TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, version)
);
CREATE TABLE mapper_components (
    sha256    TEXT COLLATE "C" PRIMARY KEY,
    component BYTEA NOT NULL
);
CREATE TABLE mappers (
    tenant          BIGINT NOT NULL,
    version         BIGINT NOT NULL,
    sha256          TEXT COLLATE "C",
    size            BIGINT,
    settings        TEXT COLLATE "C",
    fuel            BIGINT,
    memory_bytes    BIGINT,
    max_failures    BIGINT,
    installed_at    TEXT COLLATE "C" NOT NULL,
    installed_by    TEXT COLLATE "C" NOT NULL,
    failures        BIGINT NOT NULL DEFAULT 0,
    disabled_at     TEXT COLLATE "C",
    disabled_reason TEXT COLLATE "C",
    PRIMARY KEY (tenant, version)
);
CREATE TABLE mapper_failures (
    id       BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant   BIGINT NOT NULL,
    at       TEXT COLLATE "C" NOT NULL,
    sha256   TEXT COLLATE "C" NOT NULL,
    input    TEXT COLLATE "C" NOT NULL,
    settings TEXT COLLATE "C" NOT NULL,
    reason   TEXT COLLATE "C" NOT NULL,
    detail   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX mapper_failures_by_tenant ON mapper_failures (tenant, id);
CREATE TABLE event_names (
    tenant        BIGINT NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    resource_type TEXT COLLATE "C" NOT NULL,
    resource_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, name, resource_type, resource_id)
);
"#;

/// The advisory lock (class, key) held while one replica creates or
/// migrates the PostgreSQL schema; the others wait for it.
const MIGRATION_LOCK: (i32, i32) = (0x5c1a, -1);

/// Where a database's schema stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SchemaStatus {
    pub backend: &'static str,
    /// Migrations applied (0: no schema yet).
    pub version: usize,
    /// Migrations this build knows.
    pub latest: usize,
}

/// The schema version recorded in the database (0: none yet).
fn version(conn: &Connection) -> Result<usize> {
    Ok(match conn.dialect() {
        Dialect::Sqlite => {
            let c = conn.sqlite().expect("a SQLite connection");
            c.pragma_query_value(None, "user_version", |r| r.get(0))?
        }
        Dialect::Postgres => {
            let exists: bool =
                conn.query_row("SELECT to_regclass('scim_schema') IS NOT NULL", [], |r| {
                    r.get(0)
                })?;
            if !exists {
                0
            } else {
                conn.query_row("SELECT version FROM scim_schema", [], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0)
            }
        }
    })
}

/// Where the database's schema stands, without changing it.
pub fn schema_status(conn: &Connection) -> Result<SchemaStatus> {
    Ok(SchemaStatus {
        backend: match conn.dialect() {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        },
        version: version(conn)?,
        latest: MIGRATIONS.len(),
    })
}

/// `scim-host db migrate`: the same as every start does, reported.
pub fn migrate_explicitly(conn: &Connection) -> Result<(SchemaStatus, SchemaStatus)> {
    let before = schema_status(conn)?;
    create_and_migrate(conn)?;
    Ok((before, schema_status(conn)?))
}

/// Creates the schema of a new database and applies the migrations an
/// older one has not seen. A database newer than this build is refused.
pub(super) fn create_and_migrate(conn: &Connection) -> Result<()> {
    match conn.dialect() {
        Dialect::Sqlite => {
            conn.execute_batch(SCHEMA).context("creating the schema")?;
            migrate_sqlite(conn)
        }
        Dialect::Postgres => {
            // Replicas starting at once take turns; the first creates.
            conn.query_row(
                "SELECT pg_advisory_lock(?1, ?2)",
                super::sql::params![MIGRATION_LOCK.0, MIGRATION_LOCK.1],
                |_| Ok(()),
            )?;
            let done = create_postgres(conn);
            let _ = conn.query_row(
                "SELECT pg_advisory_unlock(?1, ?2)",
                super::sql::params![MIGRATION_LOCK.0, MIGRATION_LOCK.1],
                |_| Ok(()),
            );
            done
        }
    }
}

fn create_postgres(conn: &Connection) -> Result<()> {
    let at = version(conn)?;
    if at > MIGRATIONS.len() {
        anyhow::bail!(
            "the database's schema is at version {at}, newer than this scim-host knows ({}); run a newer scim-host",
            MIGRATIONS.len()
        );
    }
    if at == 0 {
        let tx = conn.transaction(super::Begin::Write(None))?;
        tx.execute_batch(POSTGRES_SCHEMA)
            .context("creating the schema on PostgreSQL")?;
        for (to, sql) in POSTGRES_MIGRATIONS {
            tx.execute_batch(sql)
                .with_context(|| format!("creating the schema on PostgreSQL (part {to})"))?;
        }
        tx.execute_batch(&format!(
            "CREATE TABLE scim_schema (version BIGINT NOT NULL); INSERT INTO scim_schema VALUES ({})",
            MIGRATIONS.len()
        ))?;
        tx.commit()?;
        return Ok(());
    }
    for (to, sql) in POSTGRES_MIGRATIONS.iter().filter(|(to, _)| *to > at) {
        let tx = conn.transaction(super::Begin::Write(None))?;
        tx.execute_batch(sql)
            .with_context(|| format!("applying schema migration {to} on PostgreSQL"))?;
        tx.execute_batch(&format!("UPDATE scim_schema SET version = {to}"))?;
        tx.commit()?;
    }
    Ok(())
}

/// Applies the migrations a SQLite database has not seen yet, each in its
/// own transaction.
fn migrate_sqlite(conn: &Connection) -> Result<()> {
    let done = version(conn)?;
    if done > MIGRATIONS.len() {
        anyhow::bail!(
            "the database's schema is at version {done}, newer than this scim-host knows ({}); run a newer scim-host",
            MIGRATIONS.len()
        );
    }
    let c = conn.sqlite().expect("a SQLite connection");
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        c.execute_batch("BEGIN IMMEDIATE")?;
        let applied = c
            .execute_batch(sql)
            .with_context(|| format!("applying schema migration {}", i + 1))
            .and_then(|_| Ok(c.pragma_update(None, "user_version", i + 1)?))
            .and_then(|_| Ok(c.execute_batch("COMMIT")?));
        if applied.is_err() {
            let _ = c.execute_batch("ROLLBACK");
        }
        applied?;
    }
    Ok(())
}
