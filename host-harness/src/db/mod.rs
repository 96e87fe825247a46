//! The SQLite database: connection pool, schema and migrations, tenants.

mod page_cache;
pub mod plugins;
pub mod rules;
mod schema;
mod sqlite_malloc;
mod tenants;

pub use tenants::*;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub type Pool = r2d2::Pool<Manager>;
pub type Conn = r2d2::PooledConnection<Manager>;

/// The pool's connection manager: SQLite's, except that a connection that
/// comes back to the pool inside a transaction counts as broken, so r2d2
/// closes it (SQLite rolls the transaction back) instead of handing it out
/// again. Only a panic returns one so (every path that returns rolls back
/// or commits); without this, that connection's open `BEGIN` refused every
/// later transaction on it ("cannot start a transaction within a
/// transaction").
pub struct Manager(SqliteConnectionManager);

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        self.0.connect()
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), rusqlite::Error> {
        self.0.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        // A request's deadline ends with the request.
        conn.progress_handler(0, None::<fn() -> bool>);
        if !conn.is_autocommit() {
            tracing::warn!("a database connection came back inside a transaction; closed");
            return true;
        }
        self.0.has_broken(conn)
    }
}

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
    /// The server does it in the background with a [`Checkpointer`], so no
    /// request waits for a checkpoint's writes and fsync.
    Background,
}

/// A statement's undo journal (the pages it changed, kept until it ends)
/// stays in memory: -1 means it never spills to a temporary file. SQLite's
/// default spills at 64 KiB, which every user insert (its filter terms)
/// crossed; creating, writing and deleting that file was 15% of the CPU of
/// `POST /Users`. A positive threshold is also the size of the journal's
/// memory chunks, so the 16 MiB used before made each journalled statement
/// allocate 16 MiB: glibc mapped and unmapped a fresh heap for it, a third
/// of a re-mapping's kernel time. With -1 the chunks are about 1 KiB. The
/// journal holds only pages the statement changed, so it stays small.
const STATEMENT_JOURNAL_IN_MEMORY: i32 = -1;

/// Process-wide SQLite settings; they must be made before the first
/// connection, and later calls do nothing.
fn configure_sqlite() {
    static CONFIGURE: std::sync::Once = std::sync::Once::new();
    CONFIGURE.call_once(|| {
        // SAFETY: sqlite3_config with this option takes one int and only
        // sets a global; SQLite refuses (SQLITE_MISUSE) once initialised.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_config(
                rusqlite::ffi::SQLITE_CONFIG_STMTJRNL_SPILL,
                STATEMENT_JOURNAL_IN_MEMORY,
            )
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!("SQLite already initialised; statement journals spill at 64 KiB");
        }
        page_cache::install();
        sqlite_malloc::install();
    });
}

/// Ids bound per `IN (...)` list: one statement per chunk of this many,
/// well under SQLite's parameter limit.
pub const IN_LIST_CHUNK: usize = 500;

/// Runs a transaction statement, prepared once per connection.
pub fn run(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// `?, ?, ...` for an `IN` list of `n` values.
pub fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// A one-connection database in a new temporary directory, for tests; the
/// directory is deleted when the returned guard is dropped.
#[cfg(test)]
pub fn scratch() -> (tempfile::TempDir, Pool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = open(&dir.path().join("test.db"), 1, Checkpoints::InCommit).unwrap();
    (dir, pool)
}

/// Opens (creating if needed) the database at `path`.
pub fn open(path: &Path, max_connections: u32, checkpoints: Checkpoints) -> Result<Pool> {
    configure_sqlite();
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
        // file, which every request notices anyway (or in a transaction,
        // which `Manager` sees when they come back).
        .test_on_check_out(false)
        // Every holder of a connection is bounded (requests by the server's
        // concurrency, mapping work by its slots), so a wait means trouble:
        // answer 503 soon rather than hold a worker for r2d2's 30 s.
        .connection_timeout(std::time::Duration::from_secs(5))
        .build(Manager(manager))
        .context("creating the connection pool")
}

/// Held while a server serves a database. A second `serve` on the same file
/// would drain the outbox and move the log alongside the first, so it is
/// refused. The operating system releases the lock when the process ends,
/// even by `kill -9`; command-line tools do not take it.
pub struct Serving {
    _file: std::fs::File,
}

/// Takes the serving lock of the database at `path` (`<path>.lock`).
pub fn lock_for_serving(path: &Path) -> Result<Serving> {
    use std::io::{Read as _, Seek as _, Write as _};
    let lock = std::path::PathBuf::from(format!("{}.lock", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .with_context(|| format!("opening {}", lock.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            anyhow::bail!(
                "another scim-host (pid {}) is already serving {}; stop it first, or give this one its own --db",
                pid.trim(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", lock.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(Serving { _file: file })
}

/// The connection that moves the write-ahead log into the database file in
/// the background; `checkpoints::run` decides when.
pub struct Checkpointer {
    conn: std::sync::Mutex<Connection>,
    page_size: u64,
    wal: std::path::PathBuf,
    /// `PRAGMA data_version` when the log was last flushed.
    log_version: std::sync::Mutex<Option<i64>>,
}

/// The write-ahead log as a checkpoint left it, in frames (pages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalState {
    /// Frames in the log.
    pub frames: i64,
    /// Frames of those now in the database file.
    pub copied: i64,
}

impl WalState {
    /// Frames a later checkpoint still has to copy.
    pub fn behind(&self) -> i64 {
        (self.frames - self.copied).max(0)
    }
}

impl Checkpointer {
    pub fn open(path: &Path) -> Result<Self> {
        configure_sqlite();
        let conn = Connection::open(path)
            .with_context(|| format!("opening database {} for checkpoints", path.display()))?;
        conn.busy_timeout(Duration::from_millis(50))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let page_size: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(Checkpointer {
            conn: std::sync::Mutex::new(conn),
            page_size: page_size.max(512),
            wal: wal.into(),
            log_version: std::sync::Mutex::new(None),
        })
    }

    /// The log's salts (header bytes 16..24), which change each time a
    /// writer starts the log over; `None` while there is no log.
    pub fn log_generation(&self) -> Option<[u8; 8]> {
        use std::io::Read as _;
        let mut header = [0u8; 24];
        std::fs::File::open(&self.wal)
            .and_then(|mut f| f.read_exact(&mut header))
            .ok()?;
        header[16..24].try_into().ok()
    }

    /// Flushes the database file to disk through SQLite's own handle
    /// (closing another handle to the file would drop the process's locks
    /// on it). SQLite syncs the file only in a checkpoint that reaches the
    /// end of the log; syncing earlier, alongside writers, leaves that one
    /// little to flush while it holds them back.
    pub fn sync_database(&self) -> Result<()> {
        self.sync(rusqlite::ffi::SQLITE_FCNTL_FILE_POINTER, "database file")
    }

    /// Flushes the write-ahead log to disk if anything was committed since
    /// the last call; says whether it did.
    ///
    /// Under `synchronous = NORMAL` a commit only writes the log, and the
    /// log reached the disk only in checkpoints: a fifth of a second of
    /// writes at once, and appends to the log stalled for 12–20 ms while
    /// the kernel wrote it back. Flushed every few milliseconds, each
    /// writeback is small, and a commit is on disk within that time.
    pub fn flush_log(&self) -> Result<bool> {
        let version: i64 = {
            let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.pragma_query_value(None, "data_version", |r| r.get(0))?
        };
        let mut last = self.log_version.lock().unwrap_or_else(|p| p.into_inner());
        if *last == Some(version) {
            return Ok(false);
        }
        self.sync(
            rusqlite::ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            "write-ahead log",
        )?;
        *last = Some(version);
        Ok(true)
    }

    /// Syncs one of the connection's files (`op` says which) with SQLite's
    /// own `xSync`.
    fn sync(&self, op: std::ffi::c_int, what: &str) -> Result<()> {
        use rusqlite::ffi;
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: the handle is this open connection's, used under its
        // mutex; the FILE_POINTER and JOURNAL_POINTER controls write a
        // `sqlite3_file` the connection owns (or null, or one without
        // methods while the file is not open), and its methods are SQLite's.
        let rc = unsafe {
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                op,
                (&raw mut file).cast(),
            );
            match (rc, file.as_ref().and_then(|f| f.pMethods.as_ref())) {
                (ffi::SQLITE_OK, Some(methods)) => match methods.xSync {
                    Some(sync) => sync(file, ffi::SQLITE_SYNC_NORMAL),
                    None => ffi::SQLITE_OK,
                },
                (ffi::SQLITE_OK, None) => ffi::SQLITE_OK,
                (rc, _) => rc,
            }
        };
        anyhow::ensure!(
            rc == ffi::SQLITE_OK,
            "syncing the {what} failed (SQLite code {rc})"
        );
        Ok(())
    }

    /// Bytes per page, and so per frame of the log.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// A PASSIVE checkpoint: copies what no reader still needs from the log,
    /// never waiting for (or blocking) readers and writers.
    pub fn passive(&self) -> Result<WalState> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let (frames, copied) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })?;
        Ok(WalState { frames, copied })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new database in write-ahead-log mode, with a one-connection pool
    /// and its checkpointer (the directory lives as long as the first).
    fn logged_database() -> (tempfile::TempDir, Pool, Checkpointer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let pool = open(&path, 1, Checkpoints::Background).unwrap();
        let checkpointer = Checkpointer::open(&path).unwrap();
        (dir, pool, checkpointer)
    }

    /// A connection dropped inside a transaction (a panic unwinding past
    /// its `ROLLBACK`) is closed, not handed out again: the next one is in
    /// autocommit mode and the transaction's writes are gone. A connection
    /// that comes back cleanly is reused.
    #[test]
    fn a_connection_dropped_inside_a_transaction_is_not_handed_out_again() {
        let (_dir, pool) = scratch();
        // A temporary table lives as long as its connection: it tells
        // whether `get` handed out the same one.
        let same_connection = |c: &Connection| {
            c.query_row(
                "SELECT count(*) FROM temp.sqlite_master WHERE name = 'marker'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                == 1
        };
        let conn = pool.get().unwrap();
        conn.execute_batch("CREATE TEMP TABLE marker (x); CREATE TABLE t (v TEXT);")
            .unwrap();
        drop(conn);
        let conn = pool.get().unwrap();
        assert!(same_connection(&conn), "a clean connection is reused");

        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES ('lost');")
            .unwrap();
        assert!(!conn.is_autocommit());
        drop(conn);

        let conn = pool.get().unwrap();
        assert!(conn.is_autocommit(), "handed out inside a transaction");
        assert!(!same_connection(&conn), "the connection was reused");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "the abandoned transaction's write stayed");
        // It can begin a transaction, as every request does.
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES ('kept'); COMMIT;")
            .unwrap();
    }

    /// The log restarts only for a writer that begins after a checkpoint
    /// reached its end; `checkpoints::run` relies on that.
    #[test]
    fn a_writer_after_a_complete_checkpoint_restarts_the_log() {
        let (_dir, pool, checkpointer) = logged_database();
        let conn = pool.get().unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT)").unwrap();
        let write = || {
            conn.execute("INSERT INTO t VALUES (?1)", ["x".repeat(5000)])
                .unwrap()
        };
        for _ in 0..20 {
            write();
        }
        let full = checkpointer.passive().unwrap();
        assert!(full.frames >= 20, "{full:?}");
        assert_eq!(full.behind(), 0);
        write();
        let after = checkpointer.passive().unwrap();
        assert!(after.frames < full.frames, "log not restarted: {after:?}");
    }

    /// The database file and the log sync through SQLite's handles; the
    /// log only when something was committed since it last did.
    #[test]
    fn the_database_file_and_the_log_sync_through_sqlites_handles() {
        let (_dir, pool, checkpointer) = logged_database();
        let conn = pool.get().unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('a');")
            .unwrap();
        checkpointer.passive().unwrap();
        checkpointer.sync_database().unwrap();
        conn.execute("INSERT INTO t VALUES ('b')", []).unwrap();
        let full = checkpointer.passive().unwrap();
        assert_eq!(full.behind(), 0, "{full:?}");
        checkpointer.sync_database().unwrap();
        assert!(checkpointer.flush_log().unwrap(), "first flush");
        assert!(
            !checkpointer.flush_log().unwrap(),
            "nothing committed since"
        );
        conn.execute("INSERT INTO t VALUES ('c')", []).unwrap();
        assert!(checkpointer.flush_log().unwrap(), "a commit since");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }
}
