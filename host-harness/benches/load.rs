//! Concurrent load against the release `scim-host`: throughput and latency
//! percentiles of the requests identity providers make, at 1 and 8
//! connections (keep-alive HTTP/1.1 on loopback, one client thread each).
//!
//! Run: `cargo bench -p scim-host --bench load`
//! Options (environment): `SCIM_LOAD_USERS` (directory size, default 10000),
//! `SCIM_LOAD_SECONDS` (per scenario, default 5), `SCIM_LOAD_CONNECTIONS`
//! (default `1,8`), `SCIM_LOAD_ONLY` (comma-separated scenario names),
//! `SCIM_LOAD_MAPPER` (a mapping plugin to install first, with the settings
//! file `SCIM_LOAD_MAPPER_SETTINGS`), `SCIM_LOAD_RULES` (a rules file to
//! install first).
//!
//! Scenarios:
//! - `get`: `GET /Users/{id}` of random users;
//! - `post`: `POST /Users` of new users;
//! - `patch-user`: `PATCH /Users/{id}` replacing a user's `title` (the LMS
//!   learner's profile follows);
//! - `patch-active`: `PATCH /Users/{id}` setting `active` false, then true
//!   (the learner is suspended, then reactivated with its roles and teams);
//! - `patch-group`: `PATCH /Groups/{id}` adding then removing one member of a
//!   1,000-member group (one group per connection);
//! - `broad-page`: `GET /Users?filter=userName sw "bench0"&count=50`, which
//!   every user matches;
//! - `compound`: `title eq "Manager" and (name.familyName eq "F7" or active
//!   eq false)`, half the users being managers;
//! - `compound-half`: `title eq "Manager" and (name.familyName eq "F7" or
//!   title eq "Manager")`, which half the users match: the count of 5,000
//!   matches and a page of 50.
//!
//! The client is the minimal HTTP/1.1 client of `support` ([`Conn`]) so
//! that the generator costs little next to the server on the same two cores.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Conn, Loader, data_dir, enc, percentile_ms as pct, serve, user};

/// Creates the directory, unless it exists already: `users` users and 8
/// groups of 1,000 members.
fn populate(path: &Path, users: usize) {
    if path.exists() {
        return;
    }
    let started = Instant::now();
    let mut loader = Loader::new(path);
    let mut ids = Vec::with_capacity(users);
    for i in 0..users {
        ids.push(
            loader.call("POST", "/Users", &user(i))["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        if (i + 1) % 5000 == 0 {
            loader.commit();
        }
    }
    for g in 0..8 {
        let members: Vec<Value> = ids
            .iter()
            .skip(g * 1000)
            .take(1000.min(users))
            .map(|id| json!({"value": id}))
            .collect();
        loader.call(
            "POST",
            "/Groups",
            &json!({"displayName": format!("load-group-{g}"), "members": members}),
        );
    }
    loader.finish();
    eprintln!(
        "populated {users} users in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// A request a scenario makes: method, path, body.
type Next = Box<dyn FnMut(usize) -> (&'static str, String, Option<String>) + Send>;

struct Result {
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
}

/// Runs `connections` clients for `seconds`; `make(c)` gives client `c` its
/// request generator.
fn run(
    base: &str,
    connections: usize,
    seconds: f64,
    make: &dyn Fn(usize) -> Next,
    expect: u16,
) -> Result {
    let stop = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let mut next = make(c);
            let base = base.to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(&base);
                let mut lat = Vec::new();
                let mut k = 0;
                while stop.load(Ordering::Relaxed) == 0 {
                    let (method, path, body) = next(k);
                    let t = Instant::now();
                    let (status, resp) = conn.send(method, &path, body.as_deref());
                    lat.push(t.elapsed().as_micros() as u64);
                    assert_eq!(
                        status,
                        expect,
                        "{method} {path}: {}",
                        String::from_utf8_lossy(&resp)
                    );
                    k += 1;
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(1, Ordering::Relaxed);
    let mut latencies_us: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    Result {
        requests: latencies_us.len(),
        seconds,
        latencies_us,
    }
}

/// Waits until the server has re-mapped everyone after an install.
fn wait_for_outbox(db: &Path) {
    let started = Instant::now();
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim-host"))
            .args(["sync", "status", "--json", "--db"])
            .arg(db)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if v["pending"].as_u64() == Some(0) {
            eprintln!("re-mapped in {:.1}s", started.elapsed().as_secs_f64());
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the re-mapping did not finish"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Installs the rules or plugin the environment names, before serving;
/// returns whether anything was installed.
fn install_mapping(db: &Path) -> bool {
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim-host"))
            .args(args)
            .arg("--db")
            .arg(db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if let Ok(rules) = std::env::var("SCIM_LOAD_RULES") {
        cli(&["mapping", "set", "--tenant", "default", &rules, "--confirm"]);
        eprintln!("rules installed: {rules}");
    }
    if let Ok(plugin) = std::env::var("SCIM_LOAD_MAPPER") {
        let mut args = vec![
            "mapper",
            "install",
            "--tenant",
            "default",
            &plugin,
            "--confirm",
        ];
        let settings = std::env::var("SCIM_LOAD_MAPPER_SETTINGS").unwrap_or_default();
        if !settings.is_empty() {
            args.extend(["--settings", &settings]);
        }
        cli(&args);
        eprintln!("plugin installed: {plugin}");
    }
    std::env::var_os("SCIM_LOAD_RULES").is_some() || std::env::var_os("SCIM_LOAD_MAPPER").is_some()
}

fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let users: usize = env("SCIM_LOAD_USERS", "10000").parse().unwrap();
    let seconds: f64 = env("SCIM_LOAD_SECONDS", "5").parse().unwrap();
    let connections: Vec<usize> = env("SCIM_LOAD_CONNECTIONS", "1,8")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let only = env("SCIM_LOAD_ONLY", "");
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);

    // `v2`: populated by an engine that provisions learners.
    let db = data_dir().join(format!("load-{users}-v2.db"));
    populate(&db, users);
    // Each run writes: serve a copy so every run starts from the same data.
    let copy = db.with_extension("run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", copy.display()));
    }
    std::fs::copy(&db, &copy).unwrap();
    let remap = install_mapping(&copy);
    let server = serve(&copy, &["--request-timeout-ms", "120000"]);
    if remap {
        wait_for_outbox(&copy);
    }
    let base = server.base.clone();

    let mut setup = Conn::open(&base);
    let list = |conn: &mut Conn, path: &str| -> Value {
        let (status, body) = conn.send("GET", path, None);
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    };
    let ids: Arc<Vec<String>> = Arc::new(
        (0..users.min(2000) / 100)
            .flat_map(|p| {
                list(
                    &mut setup,
                    &format!("/Users?startIndex={}&count=100&attributes=id", p * 100 + 1),
                )["Resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    let groups: Arc<Vec<String>> = Arc::new(
        list(&mut setup, "/Groups?attributes=id&count=8")["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect(),
    );
    // Users outside every group, to add and remove.
    let outsiders: Arc<Vec<String>> = Arc::new(
        list(
            &mut setup,
            &format!(
                "/Users?startIndex={}&count=16&attributes=id",
                users - 16 + 1
            ),
        )["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect(),
    );

    println!("{users} users; {seconds} s per scenario; latencies in ms");
    println!("| scenario | connections | requests/s | p50 | p90 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let patch_op = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    let posted = Arc::new(AtomicUsize::new(0));
    type Make = Box<dyn Fn(usize) -> Next>;
    let scenarios: Vec<(&str, u16, Make)> = vec![
        ("get", 200, {
            let ids = ids.clone();
            Box::new(move |c| {
                let ids = ids.clone();
                Box::new(move |k| {
                    let id = &ids[(k * 7919 + c * 104_729) % ids.len()];
                    ("GET", format!("/Users/{id}"), None)
                })
            })
        }),
        ("post", 201, {
            let posted = posted.clone();
            Box::new(move |_| {
                let posted = posted.clone();
                Box::new(move |_| {
                    let n = posted.fetch_add(1, Ordering::Relaxed);
                    let body = json!({"userName": format!("load-post-{n}-{}", std::process::id()),
                        "name": {"givenName": "Load", "familyName": "Post"},
                        "emails": [{"value": format!("load{n}@example.com"), "type": "work"}]});
                    ("POST", "/Users".to_string(), Some(body.to_string()))
                })
            })
        }),
        ("patch-user", 200, {
            let ids = ids.clone();
            Box::new(move |c| {
                let ids = ids.clone();
                Box::new(move |k| {
                    let id = &ids[(k * 7919 + c * 104_729) % ids.len()];
                    let op = json!({"op": "replace", "path": "title", "value": format!("Title {}", k % 7)});
                    let body = json!({"schemas": [patch_op], "Operations": [op]});
                    (
                        "PATCH",
                        format!("/Users/{id}?attributes=id"),
                        Some(body.to_string()),
                    )
                })
            })
        }),
        ("patch-active", 200, {
            let ids = ids.clone();
            Box::new(move |c| {
                let ids = ids.clone();
                Box::new(move |k| {
                    // Each user is suspended, then reactivated.
                    let id = &ids[(k / 2 * 7919 + c * 104_729) % ids.len()];
                    let op = json!({"op": "replace", "path": "active", "value": k % 2 == 1});
                    let body = json!({"schemas": [patch_op], "Operations": [op]});
                    (
                        "PATCH",
                        format!("/Users/{id}?attributes=id"),
                        Some(body.to_string()),
                    )
                })
            })
        }),
        ("patch-group", 204, {
            let (groups, outsiders) = (groups.clone(), outsiders.clone());
            Box::new(move |c| {
                let group = groups[c % groups.len()].clone();
                let member = outsiders[c % outsiders.len()].clone();
                Box::new(move |k| {
                    let op = if k % 2 == 0 {
                        json!({"op": "add", "path": "members", "value": [{"value": member}]})
                    } else {
                        json!({"op": "remove", "path": format!("members[value eq \"{member}\"]")})
                    };
                    let body = json!({"schemas": [patch_op], "Operations": [op]});
                    ("PATCH", format!("/Groups/{group}"), Some(body.to_string()))
                })
            })
        }),
        ("broad-page", 200, {
            Box::new(move |_| {
                Box::new(move |_| {
                    let f = enc("userName sw \"bench0\"");
                    ("GET", format!("/Users?filter={f}&count=50"), None)
                })
            })
        }),
        ("compound", 200, {
            Box::new(move |_| {
                Box::new(move |_| {
                    let f = enc(
                        "title eq \"Manager\" and (name.familyName eq \"F7\" or active eq false)",
                    );
                    ("GET", format!("/Users?filter={f}&count=50"), None)
                })
            })
        }),
        ("compound-half", 200, {
            Box::new(move |_| {
                Box::new(move |_| {
                    let f = enc(
                        "title eq \"Manager\" and (name.familyName eq \"F7\" or title eq \"Manager\")",
                    );
                    ("GET", format!("/Users?filter={f}&count=50"), None)
                })
            })
        }),
    ];
    for (name, expect, make) in &scenarios {
        if !wanted(name) {
            continue;
        }
        for &c in &connections {
            // Warm up caches and the connection pool.
            run(&base, c, 0.5, make.as_ref(), *expect);
            let r = run(&base, c, seconds, make.as_ref(), *expect);
            let l = &r.latencies_us;
            println!(
                "| {name} | {c} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} |",
                r.requests as f64 / r.seconds,
                pct(l, 0.5),
                pct(l, 0.9),
                pct(l, 0.99),
                *l.last().unwrap() as f64 / 1000.0
            );
        }
    }
}
