//! Identity-provider traffic against the release `scim-host`, as Entra ID
//! sends it, from many concurrent clients (keep-alive HTTP/1.1 on loopback).
//!
//! 1. **Initial sync** (one tenant): for each of the users, Entra's
//!    existence check (`GET /Users?filter=userName eq "…"`) then `POST
//!    /Users`; for each group, its check (`GET /Groups?filter=displayName eq
//!    "…"&excludedAttributes=members`), `POST /Groups`, and its members
//!    added by `PATCH` in batches of 50 (each user is in two groups).
//! 2. **Incremental** traffic for a fixed time: attribute `Replace`s,
//!    deactivations and reactivations (`"value": "False"`, as Entra sends
//!    them), group member adds and removes, existence checks and reads,
//!    joiners (`POST`) and leavers (deactivated at once); half-way through,
//!    the tenant's admin installs mapping rules through the admin API, which
//!    re-maps every user in the background while the traffic goes on.
//! 3. **Tenants**: one client per tenant, each tenant with a small
//!    directory of its own, sending the incremental mix: the sum divided by
//!    25 requests/s (the Entra ID gallery's floor per tenant) is how many
//!    such tenants this instance holds.
//!
//! Every response must have the status its request expects; any other is
//! an error and is reported (the run's result says how many). The server's
//! resident memory and write-ahead log size are sampled every second and
//! printed over time.
//!
//! Run: `cargo bench -p scim-host --bench traffic` (60 s of incremental
//! traffic), or the soak: `SCIM_TRAFFIC_SOAK=1 cargo bench -p scim-host
//! --bench traffic` (30 minutes). Options (environment):
//! `SCIM_TRAFFIC_USERS` (10000), `SCIM_TRAFFIC_GROUPS` (500),
//! `SCIM_TRAFFIC_CLIENTS` (32), `SCIM_TRAFFIC_SECONDS` (60, or 1800 with
//! `SCIM_TRAFFIC_SOAK`), `SCIM_TRAFFIC_TENANTS` (32; 0 skips phase 3),
//! `SCIM_TRAFFIC_JSON` (a file to write the results to as JSON).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Conn, data_dir, enc, percentile_ms as pct, serve};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ADMIN: &str = "traffic-admin-token";
const TITLES: [&str; 4] = ["Engineer", "Manager", "Team lead", "Analyst"];

/// One request of the traffic: what kind it is (for the report), method,
/// path under `/scim/v2`, body, and the status it must get.
struct Request {
    kind: &'static str,
    method: &'static str,
    path: String,
    body: Option<String>,
    expect: &'static [u16],
}

/// Latencies (µs) per kind, and the errors, of one client or of a phase.
#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<u64>>,
    errors: usize,
    examples: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (k, mut v) in other.latencies {
            self.latencies.entry(k).or_default().append(&mut v);
        }
        self.errors += other.errors;
        for e in other.examples {
            if self.examples.len() < 5 {
                self.examples.push(e);
            }
        }
    }

    fn requests(&self) -> usize {
        self.latencies.values().map(Vec::len).sum()
    }

    fn all_sorted(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self.latencies.values().flatten().copied().collect();
        all.sort_unstable();
        all
    }
}

/// One client: sends `req`, times it and checks its status. Returns the
/// body when the status was expected.
fn send(
    conn: &mut Conn,
    token: &str,
    req: &Request,
    tally: &mut Tally,
    sent: &AtomicUsize,
) -> Option<Value> {
    let started = Instant::now();
    let result = conn.request(
        req.method,
        &format!("/scim/v2{}", req.path),
        Some(token),
        req.body
            .as_deref()
            .map(|b| ("application/scim+json", b.as_bytes())),
    );
    let us = started.elapsed().as_micros() as u64;
    sent.fetch_add(1, Ordering::Relaxed);
    tally.latencies.entry(req.kind).or_default().push(us);
    match result {
        Ok((status, body)) if req.expect.contains(&status) => {
            Some(serde_json::from_slice(&body).unwrap_or(Value::Null))
        }
        Ok((status, body)) => {
            tally.errors += 1;
            if tally.examples.len() < 5 {
                tally.examples.push(format!(
                    "{} {} -> {status}: {}",
                    req.method,
                    req.path,
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
            }
            None
        }
        Err(e) => {
            tally.errors += 1;
            if tally.examples.len() < 5 {
                tally
                    .examples
                    .push(format!("{} {}: {e}", req.method, req.path));
            }
            *conn = Conn::open(&conn_base(conn));
            None
        }
    }
}

/// The base URL a connection was opened with (to reconnect after an error).
fn conn_base(conn: &Conn) -> String {
    format!("http://{}", conn.host())
}

fn user_body(tenant: &str, i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("{tenant}.user{i:06}@contoso.example"),
        "externalId": format!("{tenant}-{i}"),
        "active": true,
        "displayName": format!("User {i}"),
        "name": {"givenName": format!("G{i}"), "familyName": format!("F{}", i % 100)},
        "title": TITLES[i % 4],
        "emails": [{"value": format!("user{i}@contoso.example"), "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": format!("Dept {}", i % 40), "employeeNumber": format!("{i}")
        }
    })
}

fn filter(attr: &str, value: &str) -> String {
    enc(&format!("{attr} eq \"{value}\""))
}

fn patch(ops: Value) -> Option<String> {
    Some(json!({"schemas": [PATCH_OP], "Operations": ops}).to_string())
}

/// One client of the initial sync: where it sends, and which share of the
/// users and groups (every `clients`th from `client`) it syncs.
struct Client {
    base: String,
    token: String,
    client: usize,
    clients: usize,
    sent: Arc<AtomicUsize>,
}

/// Phase 1 for one client: its share of the users.
fn sync_users(c: &Client, users: usize, user_ids: &Mutex<Vec<Option<String>>>) -> Tally {
    let (token, sent) = (c.token.as_str(), c.sent.as_ref());
    let mut conn = Conn::open(&c.base);
    let mut tally = Tally::default();
    for i in (c.client..users).step_by(c.clients) {
        let body = user_body("t", i);
        let name = body["userName"].as_str().unwrap_or_default().to_string();
        let check = Request {
            kind: "sync: GET /Users?filter=userName eq",
            method: "GET",
            path: format!("/Users?filter={}", filter("userName", &name)),
            body: None,
            expect: &[200],
        };
        send(&mut conn, token, &check, &mut tally, sent);
        let post = Request {
            kind: "sync: POST /Users",
            method: "POST",
            path: "/Users".into(),
            body: Some(body.to_string()),
            expect: &[201],
        };
        if let Some(v) = send(&mut conn, token, &post, &mut tally, sent) {
            user_ids.lock().unwrap()[i] = v["id"].as_str().map(str::to_string);
        }
    }
    tally
}

/// Members of group `g`: every user `i` with `i % groups == g` or
/// `(i / groups) % groups == g` (each user is in two groups).
fn members_of(g: usize, groups: usize, ids: &[Option<String>]) -> Vec<String> {
    ids.iter()
        .enumerate()
        .filter(|(i, _)| i % groups == g || (i / groups) % groups == g)
        .filter_map(|(_, id)| id.clone())
        .collect()
}

/// Phase 1 for one client, once every user exists: its share of the groups.
fn sync_groups(
    c: &Client,
    groups: usize,
    ids: &[Option<String>],
    group_ids: &Mutex<Vec<Option<String>>>,
) -> Tally {
    let (token, sent) = (c.token.as_str(), c.sent.as_ref());
    let mut conn = Conn::open(&c.base);
    let mut tally = Tally::default();
    for g in (c.client..groups).step_by(c.clients) {
        let name = format!("Group {g:03}");
        let check = Request {
            kind: "sync: GET /Groups?filter=displayName eq",
            method: "GET",
            path: format!(
                "/Groups?filter={}&excludedAttributes=members",
                filter("displayName", &name)
            ),
            body: None,
            expect: &[200],
        };
        send(&mut conn, token, &check, &mut tally, sent);
        let post = Request {
            kind: "sync: POST /Groups",
            method: "POST",
            path: "/Groups".into(),
            body: Some(json!({"displayName": name, "externalId": format!("g{g}")}).to_string()),
            expect: &[201],
        };
        let Some(id) = send(&mut conn, token, &post, &mut tally, sent)
            .and_then(|v| v["id"].as_str().map(str::to_string))
        else {
            continue;
        };
        for chunk in members_of(g, groups, ids).chunks(50) {
            let value: Vec<Value> = chunk.iter().map(|m| json!({"value": m})).collect();
            let add = Request {
                kind: "sync: PATCH /Groups add 50 members",
                method: "PATCH",
                path: format!("/Groups/{id}"),
                body: patch(json!([{"op": "Add", "path": "members", "value": value}])),
                expect: &[200, 204],
            };
            send(&mut conn, token, &add, &mut tally, sent);
        }
        group_ids.lock().unwrap()[g] = Some(id);
    }
    tally
}

/// The incremental mix: the `k`th request of client `client`. `ids` are the
/// tenant's users, `groups` its groups; client `c` adds and removes user
/// `c`-owned members so that no two clients race on one membership.
fn incremental(
    tenant: &str,
    client: usize,
    k: usize,
    ids: &[String],
    groups: &[String],
    joined: &AtomicUsize,
) -> Request {
    let pick = |salt: usize| &ids[(k.wrapping_mul(7919) + client * 104_729 + salt) % ids.len()];
    match k % 20 {
        0..=6 => Request {
            kind: "PATCH /Users Replace title, department",
            method: "PATCH",
            path: format!("/Users/{}", pick(0)),
            body: patch(json!([
                {"op": "Replace", "path": "title", "value": TITLES[k % 4]},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": format!("Dept {}", k % 40)},
            ])),
            expect: &[200, 204],
        },
        7 | 8 => {
            // Suspended, then back, on the same user.
            let user = &ids[(client * 31 + k / 20) % ids.len()];
            Request {
                kind: "PATCH /Users active False/True",
                method: "PATCH",
                path: format!("/Users/{user}"),
                body: patch(
                    json!([{"op": "Replace", "path": "active", "value": if k % 20 == 7 { "False" } else { "True" }}]),
                ),
                expect: &[200, 204],
            }
        }
        9..=13 => {
            // Client-owned membership: add, then remove, the same pair.
            let round = k / 20;
            let group = &groups[(client + round * 7) % groups.len()];
            let member = &ids[(client * 97 + round) % ids.len()];
            let op = if k % 20 < 12 {
                json!([{"op": "Add", "path": "members", "value": [{"value": member}]}])
            } else {
                json!([{"op": "Remove", "path": "members", "value": [{"value": member}]}])
            };
            Request {
                kind: "PATCH /Groups add/remove 1 member",
                method: "PATCH",
                path: format!("/Groups/{group}"),
                body: patch(op),
                expect: &[200, 204],
            }
        }
        14..=16 => {
            let i = (k.wrapping_mul(7919) + client) % ids.len();
            Request {
                kind: "GET /Users?filter=userName eq",
                method: "GET",
                path: format!(
                    "/Users?filter={}",
                    filter("userName", &format!("{tenant}.user{i:06}@contoso.example"))
                ),
                body: None,
                expect: &[200],
            }
        }
        17 | 18 => Request {
            kind: "GET /Users/{id}",
            method: "GET",
            path: format!("/Users/{}", pick(3)),
            body: None,
            expect: &[200],
        },
        _ => {
            // A joiner, who leaves at once on odd rounds: created inactive.
            let n = joined.fetch_add(1, Ordering::Relaxed);
            let mut body = user_body(&format!("{tenant}-joiner"), n);
            body["active"] = json!((k / 20).is_multiple_of(2));
            Request {
                kind: "POST /Users (joiner or leaver)",
                method: "POST",
                path: "/Users".into(),
                body: Some(body.to_string()),
                expect: &[201],
            }
        }
    }
}

/// Server resources over time, sampled every second.
struct Sample {
    t: f64,
    requests: usize,
    rss_mib: f64,
    wal_mib: f64,
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn wal_mib(db: &Path) -> f64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64)
}

/// Samples until `stop`, from `started`.
fn sampler(
    pid: u32,
    db: PathBuf,
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    started: Instant,
) -> std::thread::JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            samples.push(Sample {
                t: started.elapsed().as_secs_f64(),
                requests: sent.load(Ordering::Relaxed),
                rss_mib: rss_mib(pid),
                wal_mib: wal_mib(&db),
            });
            std::thread::sleep(Duration::from_secs(1));
        }
        samples
    })
}

fn print_phase(name: &str, seconds: f64, tally: &Tally) -> Value {
    let all = tally.all_sorted();
    println!(
        "\n### {name}: {} requests in {seconds:.1} s, {:.0} requests/s, {} errors\n",
        all.len(),
        all.len() as f64 / seconds,
        tally.errors
    );
    println!("| request | count | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut kinds = serde_json::Map::new();
    for (kind, lat) in &tally.latencies {
        let mut l = lat.clone();
        l.sort_unstable();
        let max = *l.last().unwrap_or(&0) as f64 / 1000.0;
        println!(
            "| {kind} | {} | {:.3} | {:.3} | {max:.2} |",
            l.len(),
            pct(&l, 0.5),
            pct(&l, 0.99)
        );
        kinds.insert(
            kind.to_string(),
            json!({"count": l.len(), "p50_ms": pct(&l, 0.5), "p99_ms": pct(&l, 0.99), "max_ms": max}),
        );
    }
    let max = *all.last().unwrap_or(&0) as f64 / 1000.0;
    println!(
        "| **all** | {} | {:.3} | {:.3} | {max:.2} |",
        all.len(),
        pct(&all, 0.5),
        pct(&all, 0.99)
    );
    for e in &tally.examples {
        println!("error: {e}");
    }
    json!({
        "phase": name, "seconds": seconds, "requests": all.len(),
        "requests_per_second": all.len() as f64 / seconds, "errors": tally.errors,
        "p50_ms": pct(&all, 0.5), "p99_ms": pct(&all, 0.99), "max_ms": max, "kinds": kinds,
    })
}

/// Runs `clients` threads, each sending `next(client, k)` for `seconds`.
fn timed(
    base: &str,
    tokens: &[String],
    clients: usize,
    seconds: f64,
    sent: &Arc<AtomicUsize>,
    next: Arc<dyn Fn(usize, usize) -> Request + Send + Sync>,
) -> Tally {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (base, token) = (base.to_string(), tokens[c % tokens.len()].clone());
            let (stop, sent, next) = (stop.clone(), sent.clone(), next.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(&base);
                let mut tally = Tally::default();
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    send(&mut conn, &token, &next(c, k), &mut tally, &sent);
                    k += 1;
                }
                tally
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for t in threads {
        tally.merge(t.join().unwrap());
    }
    tally
}

fn main() {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let soak = std::env::var_os("SCIM_TRAFFIC_SOAK").is_some();
    let users: usize = env("SCIM_TRAFFIC_USERS", "10000").parse().unwrap();
    let groups: usize = env("SCIM_TRAFFIC_GROUPS", "500").parse().unwrap();
    let clients: usize = env("SCIM_TRAFFIC_CLIENTS", "32").parse().unwrap();
    let seconds: f64 = env("SCIM_TRAFFIC_SECONDS", if soak { "1800" } else { "60" })
        .parse()
        .unwrap();
    let tenants: usize = env("SCIM_TRAFFIC_TENANTS", "32").parse().unwrap();

    let db = data_dir().join("traffic.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
    }
    // Tenants of phase 3, made before the server starts.
    let scim_host = env!("CARGO_BIN_EXE_scim-host");
    let tenant_tokens: Vec<(String, String)> = (0..tenants)
        .map(|t| {
            let name = format!("tenant{t:02}");
            let out = std::process::Command::new(scim_host)
                .args(["tenant", "add", &name, "--json", "--db"])
                .arg(&db)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            (name, v["scimToken"].as_str().unwrap().to_string())
        })
        .collect();
    let server = serve(&db, &["--admin-token", ADMIN]);
    let base = server.base.clone();
    let root = base.trim_end_matches("/scim/v2").to_string();
    let pid = server.pid();
    let token = support::TOKEN.to_string();

    println!(
        "# Identity-provider traffic: {users} users, {groups} groups, {clients} clients, {seconds:.0} s incremental"
    );
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let samples = sampler(pid, db.clone(), sent.clone(), stop.clone(), started);
    let mut results = Vec::new();

    // Phase 1: the initial sync.
    let sync_started = Instant::now();
    let user_ids = Arc::new(Mutex::new(vec![None; users]));
    let mut tally = Tally::default();
    let client = |c: usize| Client {
        base: base.clone(),
        token: token.clone(),
        client: c,
        clients,
        sent: sent.clone(),
    };
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (me, ids) = (client(c), user_ids.clone());
            std::thread::spawn(move || sync_users(&me, users, &ids))
        })
        .collect();
    for t in threads {
        tally.merge(t.join().unwrap());
    }
    let ids: Arc<Vec<Option<String>>> = Arc::new(user_ids.lock().unwrap().clone());
    let group_ids = Arc::new(Mutex::new(vec![None; groups]));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (me, ids, gids) = (client(c), ids.clone(), group_ids.clone());
            std::thread::spawn(move || sync_groups(&me, groups, &ids, &gids))
        })
        .collect();
    for t in threads {
        tally.merge(t.join().unwrap());
    }
    results.push(print_phase(
        "initial sync",
        sync_started.elapsed().as_secs_f64(),
        &tally,
    ));

    // Phase 2: incremental traffic, with a rules install half-way.
    let ids: Arc<Vec<String>> = Arc::new(ids.iter().flatten().cloned().collect());
    let gids: Arc<Vec<String>> = Arc::new(
        group_ids
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect(),
    );
    assert!(
        !ids.is_empty() && !gids.is_empty(),
        "the initial sync created nothing"
    );
    let joined = Arc::new(AtomicUsize::new(0));
    let rules = {
        let root = root.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(seconds / 2.0));
            let http = reqwest::blocking::Client::new();
            for path in ["Onboarding", "Compliance"] {
                let _ = http
                    .post(format!("{root}/admin/v1/catalogue/learningPaths"))
                    .bearer_auth(ADMIN)
                    .json(&json!({"name": path}))
                    .send();
            }
            let t = Instant::now();
            let r = http
                .put(format!("{root}/admin/v1/mapping?confirm=true"))
                .bearer_auth(ADMIN)
                .header("content-type", "application/json")
                .body(RULES)
                .timeout(Duration::from_secs(600))
                .send()
                .unwrap();
            (r.status().as_u16(), t.elapsed().as_secs_f64() * 1000.0)
        })
    };
    let inc_started = Instant::now();
    let next = {
        let (ids, gids, joined) = (ids.clone(), gids.clone(), joined.clone());
        Arc::new(move |c: usize, k: usize| incremental("t", c, k, &ids, &gids, &joined))
    };
    let tally = timed(
        &base,
        std::slice::from_ref(&token),
        clients,
        seconds,
        &sent,
        next,
    );
    let inc_seconds = inc_started.elapsed().as_secs_f64();
    let (rules_status, rules_ms) = rules.join().unwrap();
    let mut inc = print_phase("incremental", inc_seconds, &tally);
    println!("\nrules install (admin API, half-way): {rules_status} in {rules_ms:.0} ms");
    inc["rules_install"] = json!({"status": rules_status, "ms": rules_ms});
    if rules_status != 200 {
        inc["errors"] = json!(tally.errors + 1);
    }
    results.push(inc);

    // Phase 3: many tenants, one client each.
    if tenants > 0 {
        let per_tenant = 200;
        let tokens: Vec<String> = tenant_tokens.iter().map(|(_, t)| t.clone()).collect();
        let mut dirs = Vec::new();
        for (name, tok) in &tenant_tokens {
            let mut conn = Conn::open(&base);
            let mut t = Tally::default();
            let mut uids = Vec::new();
            for i in 0..per_tenant {
                let post = Request {
                    kind: "setup",
                    method: "POST",
                    path: "/Users".into(),
                    body: Some(user_body(name, i).to_string()),
                    expect: &[201],
                };
                if let Some(v) = send(&mut conn, tok, &post, &mut t, &sent) {
                    uids.push(v["id"].as_str().unwrap_or_default().to_string());
                }
            }
            let post = Request {
                kind: "setup",
                method: "POST",
                path: "/Groups".into(),
                body: Some(json!({"displayName": format!("{name} all")}).to_string()),
                expect: &[201],
            };
            let gid = send(&mut conn, tok, &post, &mut t, &sent)
                .and_then(|v| v["id"].as_str().map(str::to_string))
                .unwrap_or_default();
            assert_eq!(t.errors, 0, "{:?}", t.examples);
            dirs.push((name.clone(), Arc::new(uids), Arc::new(vec![gid])));
        }
        let dirs = Arc::new(dirs);
        let next = {
            let (dirs, joined) = (dirs.clone(), joined.clone());
            Arc::new(move |c: usize, k: usize| {
                let (name, ids, gids) = &dirs[c % dirs.len()];
                incremental(name, c / dirs.len(), k, ids, gids, &joined)
            })
        };
        let phase_seconds = (seconds / 3.0).clamp(10.0, 60.0);
        let t0 = Instant::now();
        let tally = timed(&base, &tokens, tenants, phase_seconds, &sent, next);
        let secs = t0.elapsed().as_secs_f64();
        let mut r = print_phase(&format!("{tenants} tenants, one client each"), secs, &tally);
        let rate = tally.requests() as f64 / secs;
        println!(
            "\n{tenants} tenants together: {rate:.0} requests/s; at Entra's 25 requests/s per tenant, this instance holds about {:.0} such tenants",
            rate / 25.0
        );
        r["tenants_at_25_per_second"] = json!((rate / 25.0).floor());
        results.push(r);
    }

    stop.store(true, Ordering::Relaxed);
    let samples = samples.join().unwrap();
    println!("\n### Server over time\n");
    println!("| s | requests/s | RSS MiB | WAL MiB |");
    println!("|---:|---:|---:|---:|");
    let every = if seconds > 300.0 { 60 } else { 5 };
    let mut last = (0.0, 0);
    let mut series = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if i % every == 0 || i + 1 == samples.len() {
            let rate = (s.requests - last.1) as f64 / (s.t - last.0).max(1e-9);
            println!(
                "| {:.0} | {rate:.0} | {:.1} | {:.1} |",
                s.t, s.rss_mib, s.wal_mib
            );
            series.push(json!({"t": s.t, "requests_per_second": rate, "rss_mib": s.rss_mib, "wal_mib": s.wal_mib}));
            last = (s.t, s.requests);
        }
    }
    let errors: u64 = results.iter().filter_map(|r| r["errors"].as_u64()).sum();
    println!("\nerrors in all: {errors}");
    if let Ok(path) = std::env::var("SCIM_TRAFFIC_JSON") {
        let out = json!({"users": users, "groups": groups, "clients": clients, "seconds": seconds,
            "phases": results, "server": series, "errors": errors});
        std::fs::write(path, serde_json::to_vec_pretty(&out).unwrap()).unwrap();
    }
    drop(server);
    assert_eq!(errors, 0, "the traffic met errors (see above)");
}

/// The rules the tenant's admin installs half-way: departments as teams,
/// two learning paths, a role.
const RULES: &str = r#"
version = 1
groups_as_teams = true

[[rule]]
name = "onboarding"
when = { attribute = "name.familyName", glob = "F1*" }
grant.learning_paths = ["Onboarding"]

[[rule]]
name = "leads"
priority = 10
when.any = [{ group = "Group 001" }, { attribute = "title", glob = "*lead*" }]
grant.role = "learner"

[[rule]]
name = "departments"
when = { attribute = "department", present = true }
grant.teams = ["Dept {department}"]
"#;
