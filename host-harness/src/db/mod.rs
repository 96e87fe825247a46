//! The SQLite database: connection pool, schema and migrations, tenants.

mod page_cache;
mod schema;
mod tenants;

pub use tenants::*;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;
pub type Conn = r2d2::PooledConnection<SqliteConnectionManager>;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// How long a writer waits for another writer's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
    page_cache::install();
    {
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch(schema::SCHEMA)
            .context("creating the schema")?;
        schema::migrate(&mut conn)?;
    }
    let manager = SqliteConnectionManager::file(path).with_init(move |c| {
        c.busy_timeout(BUSY_TIMEOUT)?;
        // Every statement a request, the LMS and the sync log use stays
        // prepared; rusqlite's default of 16 would re-parse SQL per call.
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
    page_cache::install();
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
