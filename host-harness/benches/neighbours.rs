//! What one tenant's load does to another tenant's latency, against the
//! release `scim-host`: tenant B (the bystander, 2,000 users) reads
//! `GET /Users/{id}` on one keep-alive connection, back to back, while
//! tenant A (the noisy neighbour) does one thing after another:
//!
//! - `idle`: nothing (the baseline);
//! - `broad-filters`: 8 connections of `GET /Users?filter=emails co
//!   "example"&count=10` over A's 20,000 users, every one of whom matches:
//!   `co` on `emails.value` is a substring test of every email term of the
//!   tenant (no index range narrows it), then a page;
//! - `scan-filters`: the same with `emails ew "example.com"`, which no index
//!   answers at all (`ew` has no index plan), so the engine reads and
//!   evaluates every user of A for each request;
//! - `bulk`: 2 connections of `POST /Bulk`, 1,000 user creations each;
//! - `unauthenticated-flood`: 8 connections of `POST /scim/v2/Users` with a
//!   bad bearer token and a small body;
//! - `previews`: 7 connections of `POST /admin/v1/mapper/preview` of a
//!   plugin that never returns (`loop br 0 end`, each call stopped by its
//!   fuel), over a tenant of 200 users (A's admin side): one runs at a
//!   time per tenant, the others get 429 and retry after `Retry-After`;
//! - `python-install`: `PUT /admin/v1/mapper` of the Python example plugin
//!   (18 MB, seconds to compile), on the same 200-user tenant, when
//!   `plugin/mappers/example-python/mapper.wasm` exists; B is measured until
//!   the install has answered.
//!
//! A's clients back off for `Retry-After` when they get 429 or 503.
//!
//! Each row gives B's requests, p50, p99 and max (ms), B's failures (any
//! answer but 200, or a broken connection), and what A got. The goal: B's
//! p99 at most twice its idle p99 plus 1 ms, and no failures.
//!
//! Run: `cargo bench -p scim-host --bench neighbours`
//! Options (environment): `SCIM_NEIGHBOURS_SECONDS` (B's measurement per
//! scenario, default 5), `SCIM_NEIGHBOURS_USERS` (A's users, default
//! 20000), `SCIM_NEIGHBOURS_ONLY` (comma-separated scenarios; `idle` always
//! runs, as the baseline). The server takes its own settings from the
//! environment too: `SCIM_WORKERS`, `SCIM_TENANT_CONCURRENCY`,
//! `SCIM_TENANT_RATE`; `SCIM_BENCH_HOST` and `SCIM_BENCH_LOG` as in
//! `support::serve`.

#[path = "../../tests/mappers/hostile.rs"]
mod hostile;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Conn, Loader, data_dir, enc, percentile_ms, serve, user};

/// Users of the bystander.
const B_USERS: usize = 2000;
/// Users of the tenant whose admin previews and installs plugins.
const PLUGIN_USERS: usize = 200;

const B_TENANT: &str = "bystander";
const B_TOKEN: &str = "bystander-scim-token";
const A_TENANT: &str = "noisy";
const A_TOKEN: &str = "noisy-scim-token";
const P_TENANT: &str = "noisy-plugins";
const P_TOKEN: &str = "noisy-plugins-scim-token";
const P_ADMIN: &str = "noisy-plugins-admin-token";

/// Builds the three tenants, unless the database exists already.
fn populate(path: &Path, a_users: usize) {
    if path.exists() {
        return;
    }
    let started = Instant::now();
    let mut loader = Loader::new(path);
    for (name, token, users) in [
        (B_TENANT, B_TOKEN, B_USERS),
        (A_TENANT, A_TOKEN, a_users),
        (P_TENANT, P_TOKEN, PLUGIN_USERS),
    ] {
        loader.switch_tenant(name, token);
        for i in 0..users {
            loader.call("POST", "/Users", &user(i));
            if (i + 1) % 5000 == 0 {
                loader.commit();
            }
        }
        if name == P_TENANT {
            loader.set_admin_token(P_ADMIN);
        }
    }
    loader.finish();
    eprintln!(
        "populated {B_USERS} + {a_users} + {PLUGIN_USERS} users in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// A request of the noisy neighbour.
struct Req {
    method: &'static str,
    target: String,
    token: &'static str,
    body: Option<(&'static str, Arc<Vec<u8>>)>,
}

/// Client `c`'s requests; `k` counts them.
type Next = Box<dyn FnMut(usize) -> Req + Send>;

/// What a side got: answers by status, broken connections, latencies.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    broken: usize,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.broken += other.broken;
        self.latencies_us.extend(other.latencies_us);
    }

    fn requests(&self) -> usize {
        self.statuses.values().sum::<usize>() + self.broken
    }

    fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    fn statuses(&self) -> String {
        let mut s: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        if self.broken > 0 {
            s.push(format!("broken×{}", self.broken));
        }
        s.join(", ")
    }
}

/// Sends `req` on `conn` (reconnecting after the server closed it) and
/// records the answer.
fn send(conn: &mut Option<Conn>, base: &str, req: &Req, tally: &mut Tally) {
    if conn.as_ref().is_none_or(|c| c.closed) {
        *conn = Conn::try_open(base).ok();
    }
    let Some(c) = conn.as_mut() else {
        tally.broken += 1;
        std::thread::sleep(Duration::from_millis(10));
        return;
    };
    let body = req.body.as_ref().map(|(t, b)| (*t, b.as_slice()));
    let t = Instant::now();
    match c.request(req.method, &req.target, Some(req.token), body) {
        Ok((status, _)) => {
            tally.latencies_us.push(t.elapsed().as_micros() as u64);
            *tally.statuses.entry(status).or_default() += 1;
            // A client that backs off when told to, as identity providers
            // and admin tools do (a client that does not is a flood, which
            // `unauthenticated-flood` measures).
            if let Some(secs) = c.retry_after.filter(|_| status == 429 || status == 503) {
                std::thread::sleep(Duration::from_secs(secs.min(5)));
            }
        }
        Err(_) => {
            tally.broken += 1;
            *conn = None;
        }
    }
}

/// A noisy scenario: A's connections, each making at most `limit`
/// requests (then B is measured until they are done), or requests until B
/// is done.
struct Scenario {
    name: &'static str,
    connections: usize,
    limit: Option<usize>,
    /// The status A's requests should get (429 is counted apart).
    expect: u16,
    make: Box<dyn Fn(usize) -> Next>,
}

struct Row {
    name: &'static str,
    b: Tally,
    a: Tally,
    expect: u16,
    seconds: f64,
}

impl Row {
    fn b_failures(&self) -> usize {
        self.b.requests() - self.b.count(200)
    }

    fn p99(&self) -> f64 {
        percentile_ms(&self.b.latencies_us, 0.99)
    }
}

/// Runs A's scenario and measures B meanwhile.
fn measure(base: &str, b_ids: &Arc<Vec<String>>, seconds: f64, s: &Scenario) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let noisy: Vec<_> = (0..s.connections)
        .map(|c| {
            let mut next = (s.make)(c);
            let (base, stop, done, limit) = (base.to_string(), stop.clone(), done.clone(), s.limit);
            std::thread::spawn(move || {
                let mut conn = Conn::try_open(&base).ok();
                let mut tally = Tally::default();
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| k < l) {
                    send(&mut conn, &base, &next(k), &mut tally);
                    k += 1;
                }
                done.fetch_add(1, Ordering::Relaxed);
                tally
            })
        })
        .collect();
    // A's load under way before B's first request.
    if s.connections > 0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    let mut b = Tally::default();
    let mut conn = Conn::try_open(base).ok();
    let mut k = 0usize;
    let window = Duration::from_secs_f64(seconds);
    while started.elapsed() < window
        || (s.limit.is_some() && done.load(Ordering::Relaxed) < s.connections)
    {
        let id = &b_ids[(k * 7919) % b_ids.len()];
        let req = Req {
            method: "GET",
            target: format!("/scim/v2/Users/{id}"),
            token: B_TOKEN,
            body: None,
        };
        send(&mut conn, base, &req, &mut b);
        k += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut a = Tally::default();
    for t in noisy {
        a.add(t.join().unwrap());
    }
    b.latencies_us.sort_unstable();
    a.latencies_us.sort_unstable();
    Row {
        name: s.name,
        b,
        a,
        expect: s.expect,
        seconds,
    }
}

/// Ids of a tenant's users, read through the API.
fn user_ids(base: &str, token: &str, users: usize) -> Vec<String> {
    let mut conn = Conn::open(base);
    (0..users.div_ceil(100))
        .flat_map(|p| {
            let target = format!(
                "/scim/v2/Users?startIndex={}&count=100&attributes=id",
                p * 100 + 1
            );
            let (status, body) = conn.request("GET", &target, Some(token), None).unwrap();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let v: Value = serde_json::from_slice(&body).unwrap();
            v["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A's filter requests, every one the same.
fn filter(filter: &'static str) -> Box<dyn Fn(usize) -> Next> {
    Box::new(move |_| {
        let target = format!("/scim/v2/Users?filter={}&count=10", enc(filter));
        Box::new(move |_| Req {
            method: "GET",
            target: target.clone(),
            token: A_TOKEN,
            body: None,
        })
    })
}

fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let seconds: f64 = env("SCIM_NEIGHBOURS_SECONDS", "5").parse().unwrap();
    let a_users: usize = env("SCIM_NEIGHBOURS_USERS", "20000").parse().unwrap();
    let only = env("SCIM_NEIGHBOURS_ONLY", "");
    let wanted =
        |name: &str| name == "idle" || only.is_empty() || only.split(',').any(|o| o.trim() == name);
    let began = Instant::now();

    let db = data_dir().join(format!("neighbours-{a_users}-v1.db"));
    populate(&db, a_users);
    // Scenarios write: serve a copy so every run starts from the same data.
    let copy = db.with_extension("run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", copy.display()));
    }
    std::fs::copy(&db, &copy).unwrap();
    // The engine's compiled code is kept between runs, but no plugin's, so
    // that the install compiles the plugin as a first install does.
    let cache = data_dir().join("neighbours-cache");
    std::fs::create_dir_all(&cache).unwrap();
    for f in std::fs::read_dir(&cache).unwrap().flatten() {
        if f.file_name().to_string_lossy().starts_with("plugin-") {
            let _ = std::fs::remove_file(f.path());
        }
    }
    let server = serve(
        &copy,
        &[
            "--cache-dir",
            cache.to_str().unwrap(),
            "--max-body-bytes",
            "4194304",
        ],
    );
    let base = server.base.clone();
    let b_ids = Arc::new(user_ids(&base, B_TOKEN, B_USERS));
    assert_eq!(b_ids.len(), B_USERS);

    let looping = Arc::new(hostile::build(hostile::Plugin::InfiniteLoop));
    let python = if wanted("python-install") {
        support::python_example().map(Arc::new)
    } else {
        None
    };
    let settings = enc(&support::example_settings());
    let bulk_made = Arc::new(AtomicUsize::new(0));

    let mut scenarios = vec![
        Scenario {
            name: "idle",
            connections: 0,
            limit: None,
            expect: 200,
            make: Box::new(|_| unreachable!()),
        },
        Scenario {
            name: "broad-filters",
            connections: 8,
            limit: None,
            expect: 200,
            make: filter("emails co \"example\""),
        },
        Scenario {
            name: "scan-filters",
            connections: 8,
            limit: None,
            expect: 200,
            make: filter("emails ew \"example.com\""),
        },
        Scenario {
            name: "bulk",
            connections: 2,
            limit: None,
            expect: 200,
            make: Box::new(move |_| {
                let made = bulk_made.clone();
                Box::new(move |_| {
                    let first = made.fetch_add(1000, Ordering::Relaxed);
                    let ops: Vec<Value> = (first..first + 1000)
                        .map(|n| {
                            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"), "data": {
                                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                "userName": format!("bulk{n}@example.com"),
                                "name": {"givenName": "Bulk", "familyName": format!("User{n}")},
                                "emails": [{"value": format!("bulk{n}@example.com"), "type": "work", "primary": true}],
                                "active": true
                            }})
                        })
                        .collect();
                    let body = json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                        "Operations": ops
                    });
                    Req {
                        method: "POST",
                        target: "/scim/v2/Bulk".into(),
                        token: A_TOKEN,
                        body: Some((
                            "application/scim+json",
                            Arc::new(body.to_string().into_bytes()),
                        )),
                    }
                })
            }),
        },
        Scenario {
            name: "unauthenticated-flood",
            connections: 8,
            limit: None,
            expect: 401,
            make: Box::new(|_| {
                let body = Arc::new(
                    json!({"userName": "intruder@example.com"})
                        .to_string()
                        .into_bytes(),
                );
                Box::new(move |_| Req {
                    method: "POST",
                    target: "/scim/v2/Users".into(),
                    token: "not-a-token",
                    body: Some(("application/scim+json", body.clone())),
                })
            }),
        },
        Scenario {
            name: "previews",
            connections: 7,
            limit: None,
            expect: 200,
            make: Box::new(move |_| {
                let looping = looping.clone();
                Box::new(move |_| Req {
                    method: "POST",
                    target: "/admin/v1/mapper/preview?limit=10".into(),
                    token: P_ADMIN,
                    body: Some(("application/wasm", looping.clone())),
                })
            }),
        },
    ];
    if let Some(python) = python {
        scenarios.push(Scenario {
            name: "python-install",
            connections: 1,
            limit: Some(1),
            expect: 200,
            make: Box::new(move |_| {
                let (python, settings) = (python.clone(), settings.clone());
                Box::new(move |_| Req {
                    method: "PUT",
                    target: format!(
                        "/admin/v1/mapper?confirm=true&memoryMib=32&settings={settings}"
                    ),
                    token: P_ADMIN,
                    body: Some(("application/wasm", python.clone())),
                })
            }),
        });
    }

    // Warm B's path (and the engine's instances) before the baseline.
    let warm = Scenario {
        name: "warm-up",
        connections: 0,
        limit: None,
        expect: 200,
        make: Box::new(|_| unreachable!()),
    };
    measure(&base, &b_ids, 1.0, &warm);

    let mut rows: Vec<Row> = Vec::new();
    for s in scenarios.iter().filter(|s| wanted(s.name)) {
        rows.push(measure(&base, &b_ids, seconds, s));
        // Let what A left behind (commits, checkpoints) settle.
        std::thread::sleep(Duration::from_millis(500));
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let idle_p99 = rows[0].p99();
    let goal = 2.0 * idle_p99 + 1.0;
    println!(
        "B ({B_USERS} users): GET /Users/{{id}} on one connection; A: {a_users} users \
         (previews and install: a tenant of {PLUGIN_USERS}); {seconds} s per scenario; {cores} cores; \
         latencies in ms"
    );
    println!(
        "| scenario | B requests | p50 | p99 | max | B failures | A requests | A 429 | A other errors | A p50 | goal |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        let l = &r.b.latencies_us;
        let met = r.p99() <= goal && r.b_failures() == 0;
        let (a_req, a_429) = (r.a.requests(), r.a.count(429));
        let a_other = a_req - a_429 - r.a.count(r.expect);
        let a_p50 = if r.a.latencies_us.is_empty() {
            "-".to_string()
        } else {
            format!("{:.1}", percentile_ms(&r.a.latencies_us, 0.5))
        };
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.1} | {} | {a_req} | {a_429} | {a_other} | {a_p50} | {} |",
            r.name,
            r.b.requests(),
            percentile_ms(l, 0.5),
            r.p99(),
            *l.last().unwrap_or(&0) as f64 / 1000.0,
            r.b_failures(),
            if met { "met" } else { "missed" },
        );
    }
    println!();
    println!("Goal: B's p99 ≤ 2 × idle p99 + 1 ms = {goal:.3} ms, and no B failures.");
    for r in &rows {
        if r.a.requests() > 0 || r.b_failures() > 0 {
            println!(
                "- {}: A got {}{}; B measured {:.1} s{}",
                r.name,
                r.a.statuses(),
                if r.a.latencies_us.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (max {:.1} ms)",
                        *r.a.latencies_us.last().unwrap() as f64 / 1000.0
                    )
                },
                r.seconds,
                if r.b_failures() > 0 {
                    format!("; B got {}", r.b.statuses())
                } else {
                    String::new()
                }
            );
        }
    }
    eprintln!("ran in {:.0} s", began.elapsed().as_secs_f64());
}
