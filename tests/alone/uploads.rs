//! A thousand distinct plugin uploads previewed through the admin API: the
//! server keeps none of them on disk (only installed plugins are written to
//! the cache directory) and its memory does not grow with their number
//! (uploads never installed are kept compiled in memory only among the most
//! recent few).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::hostile::{Plugin, build};
use crate::support::{LmsServer, Resp, into_resp, shared_cache_dir};

/// Distinct uploads previewed.
const UPLOADS: u32 = 1000;
/// Uploads after which the baseline is taken: well past the 16 uploads the
/// server keeps compiled, so the baseline includes that whole set, its
/// allocator's high-water marks and the pool's touched memory.
const BASELINE_AFTER: u32 = 50;
/// Users of the tenant, so that each preview runs the plugin.
const USERS: usize = 3;
/// Most the resident memory may grow from the baseline to the end. Each
/// compiled upload the server keeps holds its code, its type information
/// and its pre-instantiated linker state: while the first 16 are all kept,
/// resident memory grows by some 450-600 KiB an upload (printed), so the
/// 950 uploads after the baseline, were they kept, would add over 400 MiB.
/// A bounded cache leaves the allocator's noise (a few MiB either way).
const GROWTH_BOUND_MIB: u64 = 64;

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"))
}

/// `bytes` with a custom section (id 0) named `variant` whose payload is
/// `n`: the same plugin, a different upload (another hash).
fn variant(bytes: &[u8], n: u32) -> Vec<u8> {
    let name = b"variant";
    let payload = n.to_le_bytes();
    let mut out = bytes.to_vec();
    out.push(0);
    // Both lengths are below 128: one LEB128 byte each.
    out.push((1 + name.len() + payload.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

/// The compiled plugins in a cache directory.
fn cached_plugins(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("plugin-") && n.ends_with(".cwasm"))
        .collect()
}

/// An admin request with a component as its body.
fn send_wasm(s: &LmsServer, method: &str, path: &str, body: Vec<u8>) -> Resp {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    into_resp(
        client
            .request(method.parse().expect("method"), s.admin_url(path))
            .bearer_auth(&s.admin_token)
            .header("content-type", "application/wasm")
            .body(body)
            .send()
            .expect("request"),
    )
}

#[test]
fn a_thousand_distinct_uploads_stay_off_disk_and_in_bounded_memory() {
    let cache = tempfile::tempdir().expect("temp dir");
    // The engine's compiled code from the shared cache, so that the server
    // does not compile the engine again; no plugin comes with it.
    if let Ok(entries) = std::fs::read_dir(shared_cache_dir()) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("engine-") && name.ends_with(".cwasm") {
                std::fs::copy(e.path(), cache.path().join(&*name)).expect("copy engine");
            }
        }
    }
    let cache_arg = cache.path().to_str().expect("utf-8 path");
    let s = LmsServer::start_with(&["--cache-dir", cache_arg]);
    for i in 0..USERS {
        s.create_user(&format!("user-{i}"));
    }
    assert!(cached_plugins(cache.path()).is_empty());
    let pid = s.pid();
    let teams = build(Plugin::Teams);

    let started = Instant::now();
    let at_start = rss_kib(pid);
    let mut after_first = 0;
    let mut after_first_16 = 0;
    let mut baseline = 0;
    let mut peak = at_start;
    for n in 0..UPLOADS {
        let r = send_wasm(&s, "POST", "/admin/v1/mapper/preview", variant(&teams, n));
        assert_eq!(r.status, 200, "upload {n}: {}", r.text);
        assert_eq!(r.json["users"], USERS, "upload {n}: {}", r.text);
        assert_eq!(r.json["failed"], 0, "upload {n}: {}", r.text);
        let rss = rss_kib(pid);
        peak = peak.max(rss);
        match n + 1 {
            1 => after_first = rss,
            16 => after_first_16 = rss,
            BASELINE_AFTER => baseline = rss,
            _ => {}
        }
        if (n + 1) % 100 == 0 {
            eprintln!(
                "{} uploads previewed in {:?}: resident {} MiB",
                n + 1,
                started.elapsed(),
                rss >> 10
            );
        }
    }
    let at_end = rss_kib(pid);
    // While the first 16 are all kept, each adds about this much.
    let per_upload_kib = after_first_16.saturating_sub(after_first) / 15;
    let growth_mib = at_end.saturating_sub(baseline) >> 10;
    let figures = format!(
        "resident memory: {} MiB at start, {} MiB after one upload, {} MiB after 16 \
         (about {per_upload_kib} KiB each while all are kept), {} MiB after \
         {BASELINE_AFTER}, {} MiB after {UPLOADS} (peak {} MiB): {growth_mib} MiB of \
         growth over the baseline, bound {GROWTH_BOUND_MIB} MiB",
        at_start >> 10,
        after_first >> 10,
        after_first_16 >> 10,
        baseline >> 10,
        at_end >> 10,
        peak >> 10
    );
    eprintln!("{figures}");

    // Nothing of the uploads was written to the cache directory.
    assert_eq!(
        cached_plugins(cache.path()),
        Vec::<String>::new(),
        "uploads never installed were written to disk"
    );
    assert!(growth_mib < GROWTH_BOUND_MIB, "{figures}");

    // One of them installed: its compiled code, alone, is written.
    let r = send_wasm(
        &s,
        "PUT",
        "/admin/v1/mapper?confirm=true",
        variant(&teams, UPLOADS / 2),
    );
    assert_eq!(r.status, 200, "install: {}", r.text);
    let cached = cached_plugins(cache.path());
    assert_eq!(cached.len(), 1, "{cached:?}");
}
