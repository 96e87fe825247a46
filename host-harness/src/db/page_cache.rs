//! SQLite's own page cache, with one key moved so that a b-tree balance does
//! not make the next commit walk the whole cache.
//!
//! When `balance_nonroot` swaps two pages' numbers it parks one of them at a
//! temporary key, the lock-byte page (`PENDING_BYTE / page_size + 1`: 262,145
//! for 4 KiB pages). The default cache remembers that key as its largest, so
//! the commit's truncate to the database size scans every hash slot instead
//! of the few past the end of the file. In a load of single-row inserts that
//! walk was 10–13% of all CPU. The lock-byte page never holds data, so this
//! wrapper files it under key 0, which no real page uses, and hands every
//! call on to the default cache unchanged.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

use rusqlite::ffi;

/// SQLite's `PENDING_BYTE`: the lock-byte page holds this offset.
const PENDING_BYTE: c_uint = 0x4000_0000;

/// Installs the wrapper. It must run before SQLite initialises, i.e. before
/// the process's first connection; later calls do nothing. If SQLite was
/// already initialised, the default cache stays, which is only slower.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: sqlite3_config with these options only reads and writes the
        // methods struct; SQLite refuses (SQLITE_MISUSE) once initialised.
        unsafe {
            let mut default: ffi::sqlite3_pcache_methods2 = std::mem::zeroed();
            if ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, &mut default) != ffi::SQLITE_OK {
                tracing::debug!("SQLite already initialised; default page cache kept");
                return;
            }
            let default = DEFAULT.get_or_init(|| Methods(default));
            let wrapped = ffi::sqlite3_pcache_methods2 {
                iVersion: default.0.iVersion,
                pArg: std::ptr::null_mut(),
                xInit: Some(init),
                xShutdown: Some(shutdown),
                xCreate: Some(create),
                xCachesize: Some(cachesize),
                xPagecount: Some(pagecount),
                xFetch: Some(fetch),
                xUnpin: Some(unpin),
                xRekey: Some(rekey),
                xTruncate: Some(truncate),
                xDestroy: Some(destroy),
                xShrink: Some(shrink),
            };
            if ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &wrapped) != ffi::SQLITE_OK {
                tracing::debug!("SQLite refused the page cache; default kept");
            }
        }
    });
}

/// How many times a page was parked at the lock-byte key: evidence for a
/// test that the wrapper is installed and SQLite still parks pages there.
pub(crate) static PARKED: AtomicU64 = AtomicU64::new(0);

/// The default cache's methods, as SQLite handed them out.
struct Methods(ffi::sqlite3_pcache_methods2);
// SAFETY: the struct holds function pointers and SQLite's own `pArg`, which
// the default cache accepts from any thread (it locks internally).
unsafe impl Send for Methods {}
unsafe impl Sync for Methods {}

static DEFAULT: OnceLock<Methods> = OnceLock::new();

fn default() -> &'static ffi::sqlite3_pcache_methods2 {
    // Only reachable after `install` stored it: SQLite calls these methods.
    &DEFAULT.get().expect("page cache installed").0
}

/// One cache: the default cache's handle and this page size's parking key.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    parked: c_uint,
}

impl Cache {
    /// Swaps the parking key and key 0; every other key is itself.
    fn key(&self, key: c_uint) -> c_uint {
        if key == self.parked {
            0
        } else if key == 0 {
            self.parked
        } else {
            key
        }
    }
}

/// SAFETY (for all below): SQLite passes back the pointer `create` returned.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a Cache {
    unsafe { &*(p as *const Cache) }
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let d = default();
    unsafe { d.xInit.map_or(ffi::SQLITE_OK, |f| f(d.pArg)) }
}

unsafe extern "C" fn shutdown(_: *mut c_void) {
    let d = default();
    if let Some(f) = d.xShutdown {
        unsafe { f(d.pArg) }
    }
}

unsafe extern "C" fn create(
    sz_page: c_int,
    sz_extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let inner = unsafe { (default().xCreate.expect("xCreate"))(sz_page, sz_extra, purgeable) };
    if inner.is_null() {
        return inner;
    }
    let parked = PENDING_BYTE / (sz_page.max(1) as c_uint) + 1;
    Box::into_raw(Box::new(Cache { inner, parked })) as *mut ffi::sqlite3_pcache
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, n: c_int) {
    unsafe { (default().xCachesize.expect("xCachesize"))(cache(p).inner, n) }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    unsafe { (default().xPagecount.expect("xPagecount"))(cache(p).inner) }
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let c = unsafe { cache(p) };
    unsafe { (default().xFetch.expect("xFetch"))(c.inner, c.key(key), create) }
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    unsafe { (default().xUnpin.expect("xUnpin"))(cache(p).inner, page, discard) }
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let c = unsafe { cache(p) };
    if new == c.parked {
        PARKED.fetch_add(1, Ordering::Relaxed);
    }
    unsafe { (default().xRekey.expect("xRekey"))(c.inner, page, c.key(old), c.key(new)) }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    unsafe { (default().xTruncate.expect("xTruncate"))(cache(p).inner, limit) }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    let c = unsafe { Box::from_raw(p as *mut Cache) };
    unsafe { (default().xDestroy.expect("xDestroy"))(c.inner) }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    if let Some(f) = default().xShrink {
        unsafe { f(cache(p).inner) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random-order inserts split and balance pages; the parked key must be
    /// used (else the wrapper is inert) and the file must stay sound.
    #[test]
    fn balances_park_pages_and_the_database_stays_sound() {
        let (_dir, pool) = super::super::scratch();
        let before = PARKED.load(Ordering::Relaxed);
        let mut pooled = pool.get().unwrap();
        let super::super::Connection::Sqlite(conn) = &mut *pooled else {
            unreachable!("scratch databases are SQLite")
        };
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;")
            .unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for batch in 0..40 {
            let tx = conn.transaction().unwrap();
            for i in 0..250 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                tx.execute(
                    "INSERT INTO t VALUES (?1, ?2)",
                    (
                        format!("{x:016x}"),
                        format!("{batch}-{i}-{}", "v".repeat(100)),
                    ),
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        assert!(
            PARKED.load(Ordering::Relaxed) > before,
            "no page was parked"
        );
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 10_000);
    }
}
