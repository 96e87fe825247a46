//! A commit reaches the write-ahead log in one `pwrite` instead of two per
//! page.
//!
//! SQLite writes each frame of the log with two calls, its 24-byte header
//! and then its page; a `POST /Users` commits about 33 pages, so 66 system
//! calls, each through the file system's per-page write path (the frames
//! are 4,120 bytes, so a page's write straddles two of the kernel's pages):
//! a fifth of the server's CPU in a profile. This wrapper around the
//! default VFS keeps a transaction's frames, as SQLite writes them one
//! after another, in a buffer and writes them at once when the commit frame
//! is complete: the same bytes, at the same offsets, before SQLite goes on
//! to publish the commit in the shared-memory index (which it does only
//! after writing the last frame, so no reader and no checkpoint can look
//! for a frame still in the buffer). A commit is thus in the operating
//! system's hands when `COMMIT` returns, as before: it survives `kill -9`.
//!
//! Only the log is wrapped; the database file, journals and the shared
//! memory go straight to the default VFS. Anything else done to the log
//! (a read, a sync, a truncation, a write out of sequence, closing it)
//! first writes out what is buffered, so SQLite never sees a difference.
//! Frames written before the commit (a transaction too large for the page
//! cache spills some) wait in the buffer for the commit, which SQLite does
//! not publish before it either; a header SQLite rewrites after reading the
//! log back (the checksums of a transaction that wrote one page twice) is
//! written through at once.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use rusqlite::ffi;

/// The wrapper's name among SQLite's VFSes.
const NAME: &std::ffi::CStr = c"unix-wal-batched";

/// Bytes of buffered frames past which they are written out even before
/// the commit (a transaction that spills many pages).
const MAX_BUFFER: usize = 4 << 20;

/// Buffer capacity kept between transactions (a `POST /Users` commits
/// about 135 KB).
const KEEP_BUFFER: usize = 512 << 10;

/// Largest single write: the default VFS writes at most 128 KiB less a
/// byte per call (and reports a disk full beyond that).
const MAX_WRITE: usize = 124 << 10;

/// A frame header's size in the log.
const FRAME_HEADER: usize = 24;

/// An open log: the default VFS's file follows this header in the memory
/// SQLite allocated (`szOsFile` covers both).
#[repr(C)]
struct LogFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    pending: *mut Pending,
}

/// Frames written but not yet passed on.
#[derive(Default)]
struct Pending {
    /// Log offset of `bytes[0]`.
    start: i64,
    bytes: Vec<u8>,
    /// The last frame header seen: its offset, and whether it ends a
    /// transaction (its "database size after commit" field is set).
    header: Option<(i64, bool)>,
    /// The last call was a read: a header written now is a rewrite.
    after_read: bool,
}

/// The default VFS this one wraps, set once by [`install`].
static BASE: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// Size of [`LogFile`] rounded up to 8, where the real file starts.
const HEADER_SIZE: usize = std::mem::size_of::<LogFile>().next_multiple_of(8);

/// Registers the wrapper as SQLite's default VFS. Called once, after the
/// `sqlite3_config` calls (registering initialises SQLite); if there is no
/// default VFS to wrap, nothing changes.
pub(crate) fn install() {
    // SAFETY: runs once (under `configure_sqlite`'s `Once`) before any
    // connection opens; the registered struct is leaked, so it outlives
    // every connection, and `BASE` is set before it is registered.
    unsafe {
        let base = ffi::sqlite3_vfs_find(ptr::null());
        if base.is_null() {
            tracing::debug!("SQLite has no default VFS; log writes are not batched");
            return;
        }
        let Some(size) = usize::try_from((*base).szOsFile)
            .ok()
            .and_then(|s| c_int::try_from(s + HEADER_SIZE).ok())
        else {
            return;
        };
        BASE.store(base, Ordering::Release);
        let mut vfs: ffi::sqlite3_vfs = *base;
        vfs.szOsFile = size;
        vfs.zName = NAME.as_ptr();
        vfs.pNext = ptr::null_mut();
        vfs.xOpen = Some(open);
        let vfs = Box::leak(Box::new(vfs));
        let rc = ffi::sqlite3_vfs_register(vfs, 1);
        if rc != ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "registering the batching VFS failed; log writes are not batched"
            );
        }
    }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: `BASE` was set before this VFS was registered; `file` points
    // to `szOsFile` bytes, enough for the base VFS's file at its start (any
    // file but the log) or after a `LogFile` (the log).
    unsafe {
        let base = BASE.load(Ordering::Acquire);
        let Some(base_open) = (*base).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            return base_open(base, name, file, flags, out_flags);
        }
        let log = file.cast::<LogFile>();
        let real = file
            .cast::<u8>()
            .add(HEADER_SIZE)
            .cast::<ffi::sqlite3_file>();
        (*log).base.pMethods = ptr::null();
        (*real).pMethods = ptr::null();
        let rc = base_open(base, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // SQLite calls no method of a file whose `pMethods` is null, so
            // a real file the failed open left half set up is closed here.
            if let Some(close) = (*real).pMethods.as_ref().and_then(|m| m.xClose) {
                close(real);
            }
            return rc;
        }
        (*log).real = real;
        (*log).pending = Box::into_raw(Box::default());
        (*log).base.pMethods = &METHODS;
        ffi::SQLITE_OK
    }
}

/// The real file's methods.
///
/// # Safety
/// `f` is a [`LogFile`] [`open`] set up.
unsafe fn real(
    f: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: per the contract, `real` is an open file of the base VFS,
    // whose methods table is static.
    unsafe {
        let real = (*f.cast::<LogFile>()).real;
        (real, &*(*real).pMethods)
    }
}

/// # Safety
/// As [`real`]; SQLite calls a file's methods from one thread at a time.
unsafe fn pending<'a>(f: *mut ffi::sqlite3_file) -> &'a mut Pending {
    // SAFETY: `pending` lives from `open` to `close`.
    unsafe { &mut *(*f.cast::<LogFile>()).pending }
}

/// Writes out what is buffered.
///
/// # Safety
/// As [`real`].
unsafe fn flush(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: per the contract.
    unsafe {
        let p = pending(f);
        if p.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let (real, m) = real(f);
        let Some(write) = m.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut rc = ffi::SQLITE_OK;
        let mut at = p.start;
        for chunk in p.bytes.chunks(MAX_WRITE) {
            // `chunk.len()` is at most `MAX_WRITE`, well within `c_int`.
            rc = write(real, chunk.as_ptr().cast(), chunk.len() as c_int, at);
            if rc != ffi::SQLITE_OK {
                break;
            }
            at += chunk.len() as i64;
        }
        p.bytes.clear();
        // A large transaction's buffer is not kept by every connection.
        if p.bytes.capacity() > KEEP_BUFFER {
            p.bytes.shrink_to(KEEP_BUFFER);
        }
        rc
    }
}

unsafe extern "C" fn write(
    f: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite passes this file and `amount` readable bytes.
    unsafe {
        let p = pending(f);
        let Ok(len) = usize::try_from(amount) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
        let end = p.start + p.bytes.len() as i64;
        let follows = p.bytes.is_empty() || offset == end;
        let after_read = std::mem::take(&mut p.after_read);
        if len == FRAME_HEADER && !after_read {
            // A frame's header, its page to come.
            let commit = bytes[4..8] != [0; 4];
            if !follows {
                let rc = flush(f);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            if p.bytes.is_empty() {
                p.start = offset;
            }
            p.bytes.extend_from_slice(bytes);
            p.header = Some((offset, commit));
            return ffi::SQLITE_OK;
        }
        if let Some((at, commit)) = p.header
            && offset == at + FRAME_HEADER as i64
            && follows
        {
            // The page of the header before it.
            if p.bytes.is_empty() {
                p.start = offset;
            }
            p.bytes.extend_from_slice(bytes);
            p.header = None;
            if commit || p.bytes.len() >= MAX_BUFFER {
                return flush(f);
            }
            return ffi::SQLITE_OK;
        }
        // Anything else (the log's own header, a page rewritten in place, a
        // header rewritten after a read) is written through, in order.
        let rc = flush(f);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        p.header = (len == FRAME_HEADER).then(|| (offset, bytes[4..8] != [0; 4]));
        let (real, m) = real(f);
        match m.xWrite {
            Some(write) => write(real, data, amount, offset),
            None => ffi::SQLITE_IOERR_WRITE,
        }
    }
}

unsafe extern "C" fn read(
    f: *mut ffi::sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite passes this file and `amount` writable bytes.
    unsafe {
        let rc = flush(f);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        pending(f).after_read = true;
        let (real, m) = real(f);
        match m.xRead {
            Some(read) => read(real, data, amount, offset),
            None => ffi::SQLITE_IOERR_READ,
        }
    }
}

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a file once; `pending` is freed here only.
    unsafe {
        let flushed = flush(f);
        let (real, m) = real(f);
        let closed = m.xClose.map_or(ffi::SQLITE_OK, |close| close(real));
        let log = f.cast::<LogFile>();
        drop(Box::from_raw((*log).pending));
        (*log).pending = ptr::null_mut();
        (*log).base.pMethods = ptr::null();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

/// The methods that write out what is buffered first, then pass the call on.
macro_rules! flush_then {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite passes this file and the arguments its method
            // takes.
            unsafe {
                let rc = flush(f);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let (real, m) = real(f);
                match m.$method {
                    Some(method) => method(real $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

/// A method that gives something up (a lock, the shared memory): called
/// even when the flush before it failed, since SQLite ignores what an
/// unlock returns and a lock left held would stop every other writer; the
/// flush's error is still returned.
macro_rules! flush_and_release {
    ($name:ident, $method:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite passes this file and the arguments its method
            // takes.
            unsafe { release(f, |real, m| m.$method.map_or(ffi::SQLITE_OK, |method| method(real $(, $arg)*))) }
        }
    };
}

/// Flushes, then runs `call` on the real file whatever the flush gave;
/// the flush's error first, else `call`'s code.
unsafe fn release(
    f: *mut ffi::sqlite3_file,
    call: impl FnOnce(*mut ffi::sqlite3_file, &ffi::sqlite3_io_methods) -> c_int,
) -> c_int {
    // SAFETY: per the contract of the method calling it.
    unsafe {
        let flushed = flush(f);
        let (real, m) = real(f);
        let rc = call(real, m);
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            rc
        }
    }
}

flush_then!(truncate, xTruncate, (size: ffi::sqlite3_int64), ffi::SQLITE_IOERR_TRUNCATE);
flush_then!(sync, xSync, (flags: c_int), ffi::SQLITE_IOERR_FSYNC);
flush_then!(file_size, xFileSize, (size: *mut ffi::sqlite3_int64), ffi::SQLITE_IOERR_FSTAT);
flush_then!(file_control, xFileControl, (op: c_int, arg: *mut c_void), ffi::SQLITE_NOTFOUND);
flush_then!(lock, xLock, (level: c_int), ffi::SQLITE_OK);
flush_and_release!(unlock, xUnlock, (level: c_int));
flush_then!(check_reserved_lock, xCheckReservedLock, (out: *mut c_int), ffi::SQLITE_OK);
flush_then!(fetch, xFetch, (offset: ffi::sqlite3_int64, amount: c_int, out: *mut *mut c_void), {
    // No memory map: SQLite reads instead.
    *out = ptr::null_mut();
    ffi::SQLITE_OK
});
flush_then!(unfetch, xUnfetch, (offset: ffi::sqlite3_int64, p: *mut c_void), ffi::SQLITE_OK);
flush_then!(shm_map, xShmMap, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void), ffi::SQLITE_IOERR_SHMMAP);
flush_then!(shm_take, xShmLock, (offset: c_int, n: c_int, flags: c_int), ffi::SQLITE_IOERR_SHMLOCK);
flush_and_release!(shm_unmap, xShmUnmap, (delete: c_int));

unsafe extern "C" fn shm_lock(
    f: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: SQLite passes this file and the arguments its method takes.
    unsafe {
        if flags & ffi::SQLITE_SHM_UNLOCK != 0 {
            release(f, |real, m| {
                m.xShmLock.map_or(ffi::SQLITE_IOERR_SHMLOCK, |lock| {
                    lock(real, offset, n, flags)
                })
            })
        } else {
            shm_take(f, offset, n, flags)
        }
    }
}

unsafe extern "C" fn sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite passes this file.
    unsafe {
        let (real, m) = real(f);
        m.xSectorSize.map_or(4096, |s| s(real))
    }
}

unsafe extern "C" fn device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite passes this file.
    unsafe {
        let (real, m) = real(f);
        m.xDeviceCharacteristics.map_or(0, |d| d(real))
    }
}

unsafe extern "C" fn shm_barrier(f: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite passes this file.
    unsafe {
        let (real, m) = real(f);
        if let Some(barrier) = m.xShmBarrier {
            barrier(real);
        }
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Checkpoints, open_file};

    /// What a `kill -9` right after each commit leaves on disk: the
    /// database and its log, copied as they are, open with every committed
    /// row and nothing of a rolled-back transaction, also for transactions
    /// that spill pages before their commit and rewrite a spilled page.
    #[test]
    fn each_commit_is_in_the_log_file_when_it_returns() {
        super::super::configure_sqlite();
        // SAFETY: reads the name of the registered default VFS.
        let default =
            unsafe { std::ffi::CStr::from_ptr((*ffi::sqlite3_vfs_find(ptr::null())).zName) };
        assert_eq!(default, NAME);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let pool = open_file(&path, 2, Checkpoints::Background).unwrap();
        let conn = pool.get().unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        let reader = pool.get().unwrap();
        let copy = dir.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        let mut expected = 0i64;
        for round in 0..12i64 {
            let rows = if round % 3 == 0 { 1500 } else { 3 };
            // A small page cache on odd rounds: those spill frames early;
            // the others commit hundreds of kilobytes of frames at once.
            let cache = if round % 2 == 1 { 8 } else { 2000 };
            conn.execute_batch(&format!("PRAGMA cache_size = {cache}; BEGIN IMMEDIATE"))
                .unwrap();
            for i in 0..rows {
                conn.execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    crate::db::sql::params![round * 10_000 + i, "x".repeat(300)],
                )
                .unwrap();
            }
            // Rewrites pages spilled earlier in the transaction.
            conn.execute("UPDATE t SET v = 'y' WHERE k % 7 = 0", [])
                .unwrap();
            if round % 4 == 3 {
                conn.execute_batch("ROLLBACK").unwrap();
            } else {
                conn.execute_batch("COMMIT").unwrap();
                expected += rows;
            }
            let seen: i64 = reader
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(seen, expected, "round {round}: another connection");
            for ext in ["", "-wal"] {
                std::fs::copy(
                    format!("{}{ext}", path.display()),
                    format!("{}/w.db{ext}", copy.display()),
                )
                .unwrap();
            }
            let c = rusqlite::Connection::open(copy.join("w.db")).unwrap();
            let (n, ys): (i64, i64) = c
                .query_row("SELECT count(*), sum(v = 'y') FROM t", [], |r| {
                    Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
                })
                .unwrap();
            assert_eq!(n, expected, "round {round}: the files on disk");
            let want: i64 = c
                .query_row("SELECT count(*) FROM t WHERE k % 7 = 0", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ys, want, "round {round}");
            let check: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
            drop(c);
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}/w.db{ext}", copy.display()));
            }
        }
    }
}
