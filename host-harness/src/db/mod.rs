//! The database: SQLite in one file (the default) or PostgreSQL shared by
//! several replicas; the connection pool, schema and migrations, tenants.

mod clock;
mod page_cache;
pub mod plugins;
pub mod rules;
mod schema;
pub mod sql;
mod sqlite_malloc;
mod tenants;
mod wal_writes;

pub use clock::{now, timestamp};
pub use schema::{SchemaStatus, migrate_explicitly, schema_status};
pub use sql::{Begin, Connection, Dialect};
pub use tenants::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use r2d2_sqlite::SqliteConnectionManager;

pub type Pool = r2d2::Pool<Manager>;
pub type Conn = r2d2::PooledConnection<Manager>;

/// Where the data lives: `--db` (or `SCIM_DB`) is a file path for SQLite
/// or a `postgres://` (`postgresql://`) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Postgres(String),
}

impl std::str::FromStr for Location {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(
            if s.starts_with("postgres://") || s.starts_with("postgresql://") {
                Location::Postgres(s.to_string())
            } else {
                Location::File(PathBuf::from(s))
            },
        )
    }
}

impl std::fmt::Display for Location {
    /// The file, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let user = &url[scheme + 3..at];
                    let user = user.split(':').next().unwrap_or("");
                    write!(f, "{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
                }
                _ => write!(f, "{url}"),
            },
        }
    }
}

/// The pool's connection manager.
///
/// A connection that comes back to the pool inside a transaction counts as
/// broken, so r2d2 closes it (the database rolls the transaction back)
/// instead of handing it out again. Only a panic returns one so (every
/// path that returns rolls back or commits); without this, that
/// connection's open `BEGIN` refused every later transaction on it. A
/// PostgreSQL connection the server closed (a restart, a failover) is
/// broken too: the pool connects anew, so service resumes on its own.
pub struct Manager(Backend);

enum Backend {
    Sqlite(Box<SqliteConnectionManager>),
    Postgres(Box<postgres::Config>),
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = sql::Error;

    fn connect(&self) -> Result<Connection, sql::Error> {
        match &self.0 {
            Backend::Sqlite(m) => Ok(Connection::Sqlite(m.connect()?)),
            Backend::Postgres(config) => {
                Ok(Connection::Postgres(sql::PgConnection::connect(config)?))
            }
        }
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), sql::Error> {
        match (&self.0, conn) {
            (Backend::Sqlite(m), Connection::Sqlite(c)) => Ok(m.is_valid(c)?),
            (_, c) => c.execute_batch("SELECT 1"),
        }
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        if let Connection::Sqlite(c) = conn {
            // A request's deadline ends with the request.
            c.progress_handler(0, None::<fn() -> bool>);
        }
        if !conn.is_autocommit() {
            tracing::warn!("a database connection came back inside a transaction; closed");
            return true;
        }
        match (&self.0, conn) {
            (Backend::Sqlite(m), Connection::Sqlite(c)) => m.has_broken(c),
            (_, Connection::Postgres(c)) => c.is_closed(),
            _ => true,
        }
    }
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

/// How long a writer waits for another writer's transaction.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

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
/// connection, and later calls do nothing: every SQLite connection the
/// process opens (tests included) goes through here first.
pub(crate) fn configure_sqlite() {
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
        // Last: registering a VFS initialises SQLite. `SCIM_WAL_BATCHING=off`
        // leaves SQLite's own log writes, should an operator ever want to
        // rule the wrapper out.
        if std::env::var("SCIM_WAL_BATCHING").as_deref() != Ok("off") {
            wal_writes::install();
        }
    });
}

/// Ids bound per `IN (...)` list: one statement per chunk of this many,
/// well under SQLite's parameter limit.
pub const IN_LIST_CHUNK: usize = 500;

/// Runs a statement without parameters or results (`BEGIN`, `COMMIT`...).
pub fn run(conn: &Connection, sql: &str) -> sql::Result<()> {
    match conn {
        Connection::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute([]).map(|_| ())?),
        Connection::Postgres(_) => conn.execute_batch(sql),
    }
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
    let pool = open_file(&dir.path().join("test.db"), 1, Checkpoints::InCommit).unwrap();
    (dir, pool)
}

/// How long a request waits for a connection before it is answered 503:
/// every holder of a connection is bounded (requests by the server's
/// concurrency, mapping work by its slots), so a wait means trouble (or an
/// unreachable PostgreSQL), and r2d2's 30 s would hold a worker.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection attempt to PostgreSQL may take.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens the database at `location`, creating and migrating its schema.
pub fn open(location: &Location, max_connections: u32, checkpoints: Checkpoints) -> Result<Pool> {
    match location {
        Location::File(path) => open_file(path, max_connections, checkpoints),
        Location::Postgres(url) => open_postgres(url, max_connections),
    }
}

/// Connects to PostgreSQL at `url`, creating or migrating the schema (one
/// replica at a time: see `schema::migrate_postgres`).
fn open_postgres(url: &str, max_connections: u32) -> Result<Pool> {
    let mut config: postgres::Config = url
        .parse()
        .with_context(|| format!("{} is not a PostgreSQL URL", Location::Postgres(url.into())))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(PG_CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("scim-host");
    }
    let manager = Manager(Backend::Postgres(Box::new(config)));
    let pool = r2d2::Pool::builder()
        .max_size(max_connections)
        .min_idle(Some(0))
        .test_on_check_out(false)
        .connection_timeout(CONNECTION_TIMEOUT)
        .build_unchecked(manager);
    let conn = pool.get().with_context(|| {
        format!(
            "connecting to {}: is PostgreSQL running, and may this user connect?",
            Location::Postgres(url.into())
        )
    })?;
    schema::create_and_migrate(&conn)?;
    drop(conn);
    Ok(pool)
}

/// Where the schema of the database at `location` stands, changing nothing
/// (a SQLite file that does not exist is not created).
pub fn status(location: &Location) -> Result<SchemaStatus> {
    let conn = match location {
        Location::File(path) => {
            anyhow::ensure!(path.exists(), "{} does not exist", path.display());
            configure_sqlite();
            Connection::Sqlite(rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )?)
        }
        Location::Postgres(url) => {
            let config: postgres::Config = url
                .parse()
                .with_context(|| format!("{location} is not a PostgreSQL URL"))?;
            Connection::Postgres(
                sql::PgConnection::connect(&config)
                    .with_context(|| format!("connecting to {location}"))?,
            )
        }
    };
    schema_status(&conn)
}

/// Opens (creating if needed) the SQLite database at `path`.
pub fn open_file(path: &Path, max_connections: u32, checkpoints: Checkpoints) -> Result<Pool> {
    configure_sqlite();
    {
        let conn = rusqlite::Connection::open(path)
            .with_context(|| format!("opening database {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        schema::create_and_migrate(&Connection::Sqlite(conn))?;
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
        .connection_timeout(CONNECTION_TIMEOUT)
        .build(Manager(Backend::Sqlite(Box::new(manager))))
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
    conn: std::sync::Mutex<rusqlite::Connection>,
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
        let conn = rusqlite::Connection::open(path)
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
        let pool = open_file(&path, 1, Checkpoints::Background).unwrap();
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
