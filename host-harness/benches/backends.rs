//! SQLite and PostgreSQL side by side: the same requests against
//! `scim-host` on each, at several directory sizes, and the throughput of
//! mixed identity-provider traffic with one replica and with two on one
//! PostgreSQL database.
//!
//! Run: `cargo bench -p scim-host --bench backends`
//! Sizes: `SCIM_BENCH_SIZES=10000,100000,1000000` (default `10000,100000`).
//! Mixed traffic: `SCIM_BENCH_SECONDS` per row (default 15), 8 clients.
//!
//! PostgreSQL runs in a throwaway cluster under the target directory that
//! the bench starts and stops (fsync off, as for the tests: the figures
//! compare the hosts' work, not the disks). Each directory is filled
//! through the real engine component; a group holds every user but the
//! last 2,000, which the member PATCHes add 100 at a time.

mod support;

#[path = "../../tests/support/postgres.rs"]
mod cluster;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scim_host::db::Location;
use serde_json::{Value, json};
use support::{Conn, Loader, data_dir, enc, percentile_ms, serve_at, user};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Users kept out of the big group, for the member PATCHes to add.
const SPARE: usize = 2000;

/// Fills a directory of `users` users and one group of all but [`SPARE`];
/// returns the group's id and the user ids.
fn populate(mut loader: Loader, users: usize) -> (String, Vec<String>) {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(users);
    for i in 0..users {
        let created = loader.call("POST", "/Users", &user(i));
        ids.push(created["id"].as_str().unwrap().to_string());
        if (i + 1) % 5000 == 0 {
            loader.commit();
        }
    }
    let group = loader.call(
        "POST",
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"}),
    );
    let gid = group["id"].as_str().unwrap().to_string();
    for chunk in ids[..users - SPARE].chunks(5000) {
        let members: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        loader.call("PATCH", &format!("/Groups/{gid}"), &add_members(members));
        loader.commit();
    }
    loader.finish();
    eprintln!(
        "  filled {users} users and a {}-member group in {:.0} s",
        users - SPARE,
        started.elapsed().as_secs_f64()
    );
    (gid, ids)
}

fn add_members(members: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": members}]})
}

/// Median of `n` timed requests (after 3 to warm up).
fn median(
    conn: &mut Conn,
    n: usize,
    mut req: impl FnMut(usize) -> (String, String, Option<String>),
) -> f64 {
    let mut us = Vec::with_capacity(n);
    for k in 0..n + 3 {
        let (method, path, body) = req(k);
        let started = Instant::now();
        let (status, resp) = conn.send(&method, &path, body.as_deref());
        let took = started.elapsed().as_micros() as u64;
        assert!(
            status < 300,
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&resp)
        );
        if k >= 3 {
            us.push(took);
        }
    }
    us.sort_unstable();
    percentile_ms(&us, 0.5)
}

struct Row {
    eq: f64,
    index_page: f64,
    cursor_page: f64,
    add_100: f64,
}

fn measure(base: &str, users: usize, gid: &str, ids: &[String]) -> Row {
    let mut conn = Conn::open(base);
    let get = |path: String| (String::from("GET"), path, None);
    let eq = median(&mut conn, 300, |k| {
        let i = (k * 7919) % users;
        get(format!(
            "/Users?filter={}",
            enc(&format!("userName eq \"bench{i:07}\""))
        ))
    });
    let index_page = median(&mut conn, 100, |k| {
        get(format!(
            "/Users?startIndex={}&count=50",
            (k * 997) % (users - 50) + 1
        ))
    });
    let (_, first) = conn.send("GET", "/Users?cursor&count=50", None);
    let first: Value = serde_json::from_slice(&first).unwrap();
    let cursor = first["nextCursor"].as_str().expect("a cursor").to_string();
    let cursor_page = median(&mut conn, 100, |_| {
        get(format!("/Users?cursor={}&count=50", enc(&cursor)))
    });
    let spare = &ids[users - SPARE..];
    let add_100 = median(&mut conn, 17, |k| {
        let members: Vec<Value> = spare[k * 100..(k + 1) * 100]
            .iter()
            .map(|id| json!({"value": id}))
            .collect();
        (
            "PATCH".into(),
            format!("/Groups/{gid}"),
            Some(add_members(members).to_string()),
        )
    });
    Row {
        eq,
        index_page,
        cursor_page,
        add_100,
    }
}

/// Mixed identity-provider traffic from 8 clients for `secs` seconds,
/// spread over `bases` (replicas): 20% creates, 30% user PATCHes, 10%
/// group member changes (one of 20 groups), 40% GETs. Returns requests per
/// second and how many failed.
fn mixed(bases: &[String], ids: &[String], groups: &[String], secs: u64) -> (f64, u64) {
    let stop = AtomicBool::new(false);
    let (done, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..8usize {
            let (stop, done, failed) = (&stop, &done, &failed);
            let base = &bases[t % bases.len()];
            scope.spawn(move || {
                let mut conn = Conn::open(base);
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut k = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = &ids[(x as usize / 16) % ids.len()];
                    let (method, path, body) = match x % 10 {
                        0 | 1 => {
                            k += 1;
                            let mut u = user(10_000_000 + t * 1_000_000 + k);
                            u["userName"] = json!(format!("mixed-{t}-{k}-{}", started.elapsed().as_nanos()));
                            ("POST", "/Users".to_string(), Some(u.to_string()))
                        }
                        2..=4 => (
                            "PATCH",
                            format!("/Users/{id}"),
                            Some(json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "displayName", "value": format!("n{x}")}]}).to_string()),
                        ),
                        5 => {
                            let g = &groups[(x as usize / 7) % groups.len()];
                            let op = if (x / 3).is_multiple_of(2) { "add" } else { "remove" };
                            let body = if op == "add" {
                                json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]})
                            } else {
                                json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]})
                            };
                            ("PATCH", format!("/Groups/{g}"), Some(body.to_string()))
                        }
                        _ => ("GET", format!("/Users/{id}"), None),
                    };
                    let (status, _) = conn.send(method, &path, body.as_deref());
                    if status >= 300 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
    });
    let n = done.load(Ordering::Relaxed) as f64;
    (
        n / started.elapsed().as_secs_f64(),
        failed.load(Ordering::Relaxed),
    )
}

/// 20 small groups for the mixed traffic's member changes.
fn small_groups(base: &str) -> Vec<String> {
    let mut conn = Conn::open(base);
    (0..20)
        .map(|i| {
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("mixed-{i}")});
            let (status, resp) = conn.send("POST", "/Groups", Some(&body.to_string()));
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&resp));
            serde_json::from_slice::<Value>(&resp).unwrap()["id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> = std::env::var("SCIM_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: u64 = std::env::var("SCIM_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir_in(data_dir()).unwrap();
    // PostgreSQL's own user must reach its cluster inside.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("pg")).unwrap();
    let pg = cluster::Cluster::start(&dir.path().join("pg"));

    println!(
        "| users | database | userName eq p50 | index page p50 | cursor page p50 | +100 members p50 |"
    );
    println!("|---|---|---|---|---|---|");
    let mut mixed_ids = None;
    for &users in &sizes {
        let file = dir.path().join(format!("backends-{users}.db"));
        let sqlite = Location::File(file.clone());
        let postgres = Location::Postgres(pg.create_database());
        for (name, location) in [("SQLite", sqlite), ("PostgreSQL", postgres)] {
            eprintln!("{name}, {users} users:");
            let loader = match &location {
                Location::File(path) => Loader::new(path),
                Location::Postgres(_) => Loader::at(&location),
            };
            let (gid, ids) = populate(loader, users);
            let db = match &location {
                Location::File(p) => p.display().to_string(),
                Location::Postgres(url) => url.clone(),
            };
            let log = dir.path().join(format!("{name}-{users}.log"));
            let server = serve_at(&db, &log.display().to_string(), &[]);
            let r = measure(&server.base, users, &gid, &ids);
            println!(
                "| {users} | {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                r.eq, r.index_page, r.cursor_page, r.add_100
            );
            if users == sizes[0] && name == "PostgreSQL" {
                mixed_ids = Some((db, ids));
            }
        }
    }

    // Mixed traffic on the smallest PostgreSQL directory, one replica then two.
    let (db, ids) = mixed_ids.expect("a size");
    let log = dir.path().join("mixed.log").display().to_string();
    let a = serve_at(&db, &log, &[]);
    let groups = small_groups(&a.base);
    println!();
    println!("| mixed traffic, 8 clients, {secs} s | requests/s | failed |");
    println!("|---|---|---|");
    let (rate, failed) = mixed(std::slice::from_ref(&a.base), &ids, &groups, secs);
    println!("| PostgreSQL, one replica | {rate:.0} | {failed} |");
    let b = serve_at(&db, &log, &[]);
    let (rate, failed) = mixed(&[a.base.clone(), b.base.clone()], &ids, &groups, secs);
    println!("| PostgreSQL, two replicas | {rate:.0} | {failed} |");
    drop((a, b));
    let file = dir.path().join(format!("backends-{}.db", sizes[0]));
    let s = serve_at(&file.display().to_string(), &log, &[]);
    let groups = small_groups(&s.base);
    let ids: Vec<String> = {
        let mut conn = Conn::open(&s.base);
        let (_, body) = conn.send("GET", "/Users?count=1000&attributes=id", None);
        let v: Value = serde_json::from_slice(&body).unwrap();
        v["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (rate, failed) = mixed(std::slice::from_ref(&s.base), &ids, &groups, secs);
    println!("| SQLite, one process | {rate:.0} | {failed} |");
}
