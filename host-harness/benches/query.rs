//! End-to-end query latency over HTTP against `scim-host` (release build,
//! SQLite), at several directory sizes.
//!
//! Run: `cargo bench -p scim-host --bench query`
//! Sizes: `SCIM_BENCH_SIZES=10000,100000,1000000` (default `10000,100000`).
//!
//! Each directory is populated once through the real engine component (POST
//! /Users in large transactions) and kept under the target directory, then a
//! fresh `scim-host` serves it and a keep-alive client measures each query
//! sequentially. Reported: p50 / p95 / max in milliseconds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scim_host::bindings::lms::scim::types::{HttpRequest, RequestContext};
use scim_host::db;
use scim_host::runtime::{Limits, RequestState, Runtime};
use scim_host::storage::SqlStore;
use serde_json::{Value, json};

const TOKEN: &str = "bench-token";
const BATCH: usize = 5000;

fn user(i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("user{i}@example.com"),
        "externalId": format!("ext-{i}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{}", i % 5000)},
        "displayName": format!("Given{i} Family{}", i % 5000),
        "nickName": format!("nick-{i}"),
        "title": format!("Title {}", i % 100),
        "active": !i.is_multiple_of(10),
        "emails": [
            {"value": format!("user{i}@work.example.com"), "type": "work", "primary": true},
            {"value": format!("user{i}@home.example.org"), "type": "home"}
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": format!("Dept {}", i % 40), "employeeNumber": format!("{i}")
        }
    })
}

/// Creates the directory through the component, unless it exists already.
fn populate(path: &Path, users: usize) {
    if path.exists() {
        return;
    }
    let tmp = path.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let started = Instant::now();
    let pool = db::open(&tmp, 2).unwrap();
    db::set_tenant_token(&pool.get().unwrap(), "default", TOKEN).unwrap();
    let tenant = db::authenticate(&pool.get().unwrap(), TOKEN)
        .unwrap()
        .unwrap();
    let limits = Limits {
        timeout: Duration::from_secs(60),
        memory_bytes: 256 << 20,
        instances: 4,
    };
    let runtime = Runtime::new(scim_host::ENGINE_WASM, limits.clone(), None).unwrap();
    let context = RequestContext {
        tenant: tenant.name.clone(),
        base_url: "http://localhost/scim/v2".into(),
        request_id: "populate".into(),
        subject: None,
        max_payload_bytes: 1 << 20,
        signing_key: tenant.signing_key.clone(),
    };
    let mut i = 0;
    while i < users {
        let conn = pool.get().unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut state = RequestState::new(SqlStore::new(conn, tenant.id), &limits);
        for _ in 0..BATCH.min(users - i) {
            let req = HttpRequest {
                method: "POST".into(),
                path: "/Users".into(),
                query: String::new(),
                headers: Vec::new(),
                body: user(i).to_string().into_bytes(),
                context: context.clone(),
            };
            let (resp, back) = runtime.handle(state, &req);
            assert_eq!(resp.unwrap().status, 201);
            state = back;
            i += 1;
        }
        let conn = state.store.into_conn().unwrap();
        conn.execute_batch("COMMIT").unwrap();
        if i % 100_000 == 0 {
            eprintln!(
                "  populated {i} users ({:.0}s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(pool);
    std::fs::rename(&tmp, path).unwrap();
    for ext in ["partial-wal", "partial-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
    eprintln!(
        "populated {users} users in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token",
            TOKEN,
            "--request-timeout-ms",
            "120000",
        ])
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Stats {
    p50: f64,
    p95: f64,
    max: f64,
}

fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.5),
        p95: at(0.95),
        max: *ms.last().unwrap(),
    }
}

/// Times `n` requests; `url(k)` gives the k-th path and `check` the body.
fn measure(
    client: &reqwest::blocking::Client,
    base: &str,
    n: usize,
    url: impl Fn(usize) -> String,
    check: impl Fn(&Value),
) -> Stats {
    let mut ms = Vec::with_capacity(n);
    for k in 0..n + 3 {
        let started = Instant::now();
        let r = client
            .get(format!("{base}{}", url(k)))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        let status = r.status();
        let body: Value = r.json().unwrap();
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert!(status.is_success(), "{status} {body}");
        check(&body);
        if k >= 3 {
            ms.push(elapsed); // the first requests warm caches
        }
    }
    stats(ms)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SCIM_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    println!("| users | query | p50 ms | p95 ms | max ms |");
    println!("|---:|---|---:|---:|---:|");
    for &n in &sizes {
        let db = dir.join(format!("users-{n}.db"));
        populate(&db, n);
        let server = serve(&db);
        let base = server.base.as_str();
        let pick = |k: usize| (k * 7919 + 13) % n;
        let one = |b: &Value| assert_eq!(b["totalResults"], 1, "{b}");
        let row = |name: &str, s: Stats| {
            println!(
                "| {n} | {name} | {:.2} | {:.2} | {:.2} |",
                s.p50, s.p95, s.max
            );
        };
        row(
            "userName eq",
            measure(
                &client,
                base,
                300,
                |k| {
                    format!(
                        "/Users?filter={}",
                        enc(&format!("userName eq \"USER{}@example.com\"", pick(k)))
                    )
                },
                one,
            ),
        );
        row(
            "externalId eq",
            measure(
                &client,
                base,
                300,
                |k| {
                    format!(
                        "/Users?filter={}",
                        enc(&format!("externalId eq \"ext-{}\"", pick(k)))
                    )
                },
                one,
            ),
        );
        row(
            "emails[type eq \"work\"].value eq",
            measure(
                &client,
                base,
                300,
                |k| {
                    format!(
                        "/Users?filter={}",
                        enc(&format!(
                            "emails[type eq \"work\"].value eq \"user{}@work.example.com\"",
                            pick(k)
                        ))
                    )
                },
                one,
            ),
        );
        if n <= 100_000 {
            row(
                "nickName co (unindexed)",
                measure(
                    &client,
                    base,
                    20,
                    |k| {
                        format!(
                            "/Users?filter={}",
                            enc(&format!("nickName co \"k-{}\"", pick(k)))
                        )
                    },
                    |_| {},
                ),
            );
            row(
                "title co \"Title 42\" (unindexed, 1% match)",
                measure(
                    &client,
                    base,
                    10,
                    |_| format!("/Users?filter={}&count=100", enc("title co \"Title 42\"")),
                    |_| {},
                ),
            );
        }
        let pages = n / 100;
        row(
            "index page of 100 (any page)",
            measure(
                &client,
                base,
                100,
                |k| {
                    format!(
                        "/Users?startIndex={}&count=100",
                        (pick(k) % pages) * 100 + 1
                    )
                },
                |b| assert_eq!(b["itemsPerPage"], 100),
            ),
        );
        row(
            "index page of 100 (last page)",
            measure(
                &client,
                base,
                50,
                |_| format!("/Users?startIndex={}&count=100", n - 99),
                |b| assert_eq!(b["itemsPerPage"], 100),
            ),
        );
        // Cursor: walk the whole directory, timing each page.
        if n <= 100_000 {
            let mut ms = Vec::new();
            let mut url = "/Users?cursor&count=100".to_string();
            loop {
                let started = Instant::now();
                let body: Value = client
                    .get(format!("{base}{url}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
                match body["nextCursor"].as_str() {
                    Some(c) => url = format!("/Users?cursor={c}&count=100"),
                    None => break,
                }
            }
            assert_eq!(ms.len(), pages);
            let last = *ms.last().unwrap();
            row("cursor page of 100 (every page)", stats(ms));
            println!("| {n} | cursor page of 100 (last page) | {last:.2} | | |");
        }
    }
}
