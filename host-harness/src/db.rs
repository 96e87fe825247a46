//! The SQLite database: connection pool, schema, tenants and their tokens.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use r2d2_sqlite::SqliteConnectionManager;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;
pub type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

/// How long a writer waits for another writer's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Tables and indexes, created on first start.
///
/// `documents.seq` is AUTOINCREMENT so a sequence number is never reused:
/// paging positions stay valid when rows are deleted.
const SCHEMA: &str = r#"
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
];

/// Applies the migrations a database has not seen yet, each in its own
/// transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
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

/// Who moves the write-ahead log into the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoints {
    /// SQLite's default: the commit that crosses the WAL threshold does it,
    /// inside that request (fine for command-line tools).
    InCommit,
    /// A background thread does it ([`spawn_checkpointer`]), so no request
    /// waits for a checkpoint's writes and fsync.
    Background,
}

/// Opens (creating if needed) the database at `path`.
pub fn open(path: &Path, max_connections: u32, checkpoints: Checkpoints) -> Result<Pool> {
    {
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(SCHEMA).context("creating the schema")?;
        migrate(&mut conn)?;
    }
    let manager = SqliteConnectionManager::file(path).with_init(move |c| {
        c.busy_timeout(BUSY_TIMEOUT)?;
        c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;")?;
        if checkpoints == Checkpoints::Background {
            c.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        }
        Ok(())
    });
    r2d2::Pool::builder()
        .max_size(max_connections)
        // A checkout must not cost a query: connections only break with the
        // file, which every request notices anyway.
        .test_on_check_out(false)
        .build(manager)
        .context("creating the connection pool")
}

/// How often the background checkpointer looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Starts the thread that checkpoints the WAL of the database at `path` in
/// the background (PASSIVE: it never waits for, or blocks, readers and
/// writers). It stops when the process exits.
pub fn spawn_checkpointer(path: &Path) -> Result<()> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening database {} for checkpoints", path.display()))?;
    conn.busy_timeout(Duration::from_millis(50))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                    tracing::debug!(error = %e, "background checkpoint skipped");
                }
            }
        })?;
    Ok(())
}

/// A tenant as the host knows it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
    pub signing_key: Vec<u8>,
}

fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A new random bearer token.
pub fn new_token() -> String {
    format!("scim_{}", hex::encode(random_bytes::<24>()))
}

/// The tenant a bearer token belongs to. Only the token's SHA-256 is stored;
/// the final comparison runs in constant time.
pub fn authenticate(conn: &Connection, token: &str) -> Result<Option<Tenant>> {
    let hash = hash_token(token);
    let row = conn
        .prepare_cached(
            "SELECT id, name, signing_key, token_hash FROM tenants WHERE token_hash = ?1",
        )?
        .query_row([&hash[..]], |r| {
            Ok((
                Tenant {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    signing_key: r.get(2)?,
                },
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(tenant, stored)| bool::from(stored.ct_eq(&hash)).then_some(tenant)))
}

/// Creates a tenant with a new random token; returns the token (shown once).
pub fn add_tenant(conn: &Connection, name: &str) -> Result<String> {
    let token = new_token();
    conn.execute(
        "INSERT INTO tenants (name, token_hash, signing_key) VALUES (?1, ?2, ?3)",
        params![name, &hash_token(&token)[..], &random_bytes::<32>()[..]],
    )
    .with_context(|| format!("creating tenant '{name}' (does it exist already?)"))?;
    Ok(token)
}

/// Makes `token` the token of tenant `name`, creating the tenant if needed.
pub fn set_tenant_token(conn: &Connection, name: &str, token: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO tenants (name, token_hash, signing_key) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash",
        params![name, &hash_token(token)[..], &random_bytes::<32>()[..]],
    )?;
    Ok(())
}

/// Names of all tenants.
pub fn tenant_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM tenants ORDER BY id")?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}
