//! SQLite allocates through mimalloc, like the rest of the process.
//!
//! SQLite's default allocator is glibc's `malloc`. On the worker threads
//! that run requests and background batches it serves them from per-thread
//! arenas, which grow and shrink their heap around every b-tree rebalance's
//! few-KiB scratch buffer: an `mprotect` per rebalance, some 13,000 in a
//! re-mapping of 100,000 learners. mimalloc keeps freed pages for reuse
//! instead and needs no lock on the thread that freed them.

use std::ffi::{c_int, c_void};

use rusqlite::ffi;

/// Installs mimalloc as SQLite's allocator. Like every `sqlite3_config`
/// call it must run before SQLite initialises; if it was too late, SQLite
/// keeps its default, which is only slower.
pub(crate) fn install() {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(malloc),
        xFree: Some(free),
        xRealloc: Some(realloc),
        xSize: Some(size),
        xRoundup: Some(roundup),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLite copies the methods struct before returning; the
    // functions below meet its contract (8-byte aligned blocks, `xSize` at
    // least the requested size, `xRealloc`/`xFree` accept what `xMalloc`
    // returned).
    let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods) };
    if rc != ffi::SQLITE_OK {
        tracing::debug!("SQLite already initialised; it keeps the system allocator");
    }
}

unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
    match usize::try_from(n) {
        // SAFETY: plain allocation; mimalloc aligns to at least 16 bytes.
        Ok(n) => unsafe { libmimalloc_sys::mi_malloc(n) },
        Err(_) => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: SQLite frees only blocks `malloc`/`realloc` returned.
    unsafe { libmimalloc_sys::mi_free(p) }
}

unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    match usize::try_from(n) {
        // SAFETY: `p` came from `malloc`/`realloc`, as SQLite guarantees.
        Ok(n) => unsafe { libmimalloc_sys::mi_realloc(p, n) },
        Err(_) => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn size(p: *mut c_void) -> c_int {
    // SAFETY: `p` came from `malloc`/`realloc`; SQLite's blocks are far
    // below `c_int::MAX` (it refuses larger requests itself).
    let n = unsafe { libmimalloc_sys::mi_usable_size(p) };
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// SQLite asks how large a block of `n` bytes would really be, to use the
/// slack; 8-byte rounding is what its own allocator promises.
unsafe extern "C" fn roundup(n: c_int) -> c_int {
    n.saturating_add(7) & !7
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    /// Once a database is open, SQLite's allocations are mimalloc's: a
    /// block from the system allocator is not in mimalloc's heap.
    #[test]
    fn sqlite_allocates_through_mimalloc() {
        let (_dir, _pool) = super::super::scratch();
        // SAFETY: a 100-byte block, checked and freed right away.
        unsafe {
            let p = rusqlite::ffi::sqlite3_malloc(100);
            assert!(!p.is_null());
            let owned = libmimalloc_sys::mi_is_in_heap_region(p);
            rusqlite::ffi::sqlite3_free(p);
            assert!(owned, "SQLite allocated outside mimalloc");
        }
    }
}
