//! `scim-host db backup FILE`: a consistent copy of a SQLite database,
//! taken while a server writes to it.
//!
//! `VACUUM INTO` copies the database as one read transaction sees it: every
//! transaction committed before it started, none after, whatever the server
//! writes meanwhile (readers never wait for the writer in write-ahead-log
//! mode). The online backup API would restart from the beginning each time
//! the server wrote, and might never finish under a steady load. The copy
//! is written next to FILE, flushed to disk, then renamed to FILE, so FILE
//! is either absent or a whole backup.
//!
//! Restoring: stop the server, copy the backup over the database file (and
//! delete any `-wal` and `-shm` files next to it), start the server.
//!
//! A PostgreSQL database is backed up with its own tool, `pg_dump`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use scim_host::db;

/// What a backup wrote.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    pub file: PathBuf,
    pub pages: i64,
    pub page_size: i64,
    pub bytes: u64,
    pub millis: u64,
}

/// Backs up the database at `location` into `file`; an existing `file` is
/// replaced only with `force`.
pub fn run(location: &db::Location, file: &Path, force: bool) -> Result<Written> {
    let source = match location {
        db::Location::File(path) => path,
        db::Location::Postgres(_) => bail!(
            "{location} is a PostgreSQL database: back it up with PostgreSQL's own tool, e.g. \
             `pg_dump --format=custom --file=FILE '<the --db URL>'` (restore with pg_restore)"
        ),
    };
    if !source.exists() {
        bail!("there is no database at {}", source.display());
    }
    if file.exists() && !force {
        bail!(
            "{} already exists; give another FILE, or --force to replace it",
            file.display()
        );
    }
    let started = Instant::now();
    let partial = partial_path(file);
    let _ = std::fs::remove_file(&partial);
    let copied = copy(source, &partial);
    if copied.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let (pages, page_size) = copied?;
    std::fs::rename(&partial, file)
        .with_context(|| format!("renaming {} to {}", partial.display(), file.display()))?;
    sync_directory(file)?;
    let bytes = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    Ok(Written {
        file: file.to_path_buf(),
        pages,
        page_size,
        bytes,
        millis: started.elapsed().as_millis() as u64,
    })
}

/// Where the copy is written before it is renamed to `file`.
fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    file.with_file_name(name)
}

/// `VACUUM INTO` `to`, then an fsync of `to`; returns its pages and page size.
fn copy(source: &Path, to: &Path) -> Result<(i64, i64)> {
    let conn = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", source.display()))?;
    // The server's writer holds its lock only while it commits.
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = to
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", to.display()))?;
    conn.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("copying {} into {}", source.display(), to.display()))?;
    drop(conn);
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flushing {} to disk", to.display()))?;
    let copy =
        rusqlite::Connection::open_with_flags(to, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening the copy {}", to.display()))?;
    let pages = copy.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size = copy.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok((pages, page_size))
}

/// Flushes the rename of `file` to disk.
fn sync_directory(file: &Path) -> Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("flushing the directory {} to disk", dir.display()))
}
