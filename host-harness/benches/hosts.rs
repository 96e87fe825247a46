//! The same requests through every reference host that loads the engine
//! component: `scim-host` (Rust, wasmtime), `host-harness/python` (wasmtime-py
//! on `sqlite3`) and `host-harness/node` (jco on better-sqlite3). Each host
//! starts on a fresh database through its `serve` launcher; one keep-alive
//! connection sends, back to back:
//!
//! - `POST /Users`: the directory's users, one request each (10,000);
//! - `GET /Users/{id}`: 2,000 reads of random users;
//! - `userName eq`: 2,000 `GET /Users?filter=userName eq "…"` of random
//!   users among the 10,000;
//! - `+100 members`: 20 `PATCH /Groups/{id}` adding 100 users to a group of
//!   1,000 (each added member's team granted in the request).
//!
//! It prints p50 (ms) and requests/s (one connection: 1 / mean latency) per
//! host and request. The launchers install what they need on first use
//! (pip, npm), which is not measured.
//!
//! Run: `cargo bench -p scim-host --bench hosts`
//! Options (environment): `SCIM_HOSTS_USERS` (default 10000),
//! `SCIM_HOSTS_ONLY` (comma-separated: `scim-host`, `python`, `node`).

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};
use support::{Conn, TOKEN, enc, percentile_ms, root, user};

/// A host under measurement, killed when dropped.
struct Host {
    child: Child,
    base: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts host `name` with its launcher on a fresh database.
fn start(name: &str, dir: &std::path::Path) -> Host {
    let launcher: PathBuf = match name {
        "scim-host" => env!("CARGO_BIN_EXE_scim-host").into(),
        other => root().join("host-harness").join(other).join("serve"),
    };
    let db = dir.join(format!("{name}.db"));
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut cmd = Command::new(&launcher);
    // `serve` is a subcommand of `scim-host`; the other launchers only serve.
    if name == "scim-host" {
        cmd.arg("serve");
    }
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--db"])
        .arg(&db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", launcher.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let Some(Ok(line)) = lines.next() else {
            let why = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            panic!("{name} exited before listening: {why}");
        };
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Host { child, base }
}

/// One row of the table: the request, its p50 (ms) and requests/s.
type Row = (&'static str, f64, f64);

/// Latencies of one request kind, in microseconds.
struct Series(Vec<u64>);

impl Series {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.0.push(t.elapsed().as_micros() as u64);
        out
    }

    fn row(&mut self) -> (f64, f64) {
        self.0.sort_unstable();
        let mean_us = self.0.iter().sum::<u64>() as f64 / self.0.len().max(1) as f64;
        (percentile_ms(&self.0, 0.5), 1e6 / mean_us)
    }
}

fn expect(status: u16, want: u16, body: &[u8], what: &str) {
    assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(body));
}

/// A tiny deterministic generator, so that every host reads the same users.
fn next(state: &mut u64) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state as usize
}

fn measure(name: &str, users: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let host = start(name, dir.path());
    let mut c = Conn::open(&host.base);

    let mut post = Series(Vec::new());
    let mut ids = Vec::with_capacity(users);
    for i in 0..users {
        let body = user(i).to_string();
        let (status, out) = post.time(|| c.send("POST", "/Users", Some(&body)));
        expect(status, 201, &out, "POST /Users");
        let v: Value = serde_json::from_slice(&out).unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }

    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut get = Series(Vec::new());
    for _ in 0..2_000 {
        let id = &ids[next(&mut rng) % users];
        let (status, out) = get.time(|| c.send("GET", &format!("/Users/{id}"), None));
        expect(status, 200, &out, "GET /Users/{id}");
    }

    let mut filter = Series(Vec::new());
    for _ in 0..2_000 {
        let i = next(&mut rng) % users;
        let q = enc(&format!("userName eq \"bench{i:07}\""));
        let (status, out) = filter.time(|| c.send("GET", &format!("/Users?filter={q}"), None));
        expect(status, 200, &out, "userName eq");
        let found: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(found["totalResults"], 1, "userName eq bench{i:07}");
    }

    // Groups of 1,000 members, each then given 100 more.
    let mut members = Series(Vec::new());
    let rounds = 20.min(users / 1_100);
    for g in 0..rounds {
        let base = g * 1_100;
        let initial: Vec<Value> = ids[base..base + 1_000]
            .iter()
            .map(|id| json!({"value": id}))
            .collect();
        let group = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": format!("bench-group-{g}"),
            "members": initial,
        });
        let (status, out) = c.send("POST", "/Groups", Some(&group.to_string()));
        expect(status, 201, &out, "POST /Groups");
        let gid = serde_json::from_slice::<Value>(&out).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let added: Vec<Value> = ids[base + 1_000..base + 1_100]
            .iter()
            .map(|id| json!({"value": id}))
            .collect();
        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": added}],
        })
        .to_string();
        let (status, out) =
            members.time(|| c.send("PATCH", &format!("/Groups/{gid}"), Some(&patch)));
        assert!(
            status == 200 || status == 204,
            "PATCH /Groups: {status} {}",
            String::from_utf8_lossy(&out)
        );
    }

    let mut rows = Vec::new();
    for (what, series) in [
        ("POST /Users", &mut post),
        ("GET /Users/{id}", &mut get),
        ("userName eq", &mut filter),
        ("+100 members", &mut members),
    ] {
        let (p50, rate) = series.row();
        rows.push((what, p50, rate));
    }
    rows
}

fn main() {
    // `cargo bench` passes `--bench`; this bench takes its options from the
    // environment only.
    let users: usize = std::env::var("SCIM_HOSTS_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let only = std::env::var("SCIM_HOSTS_ONLY").unwrap_or_default();
    let hosts: Vec<&str> = ["scim-host", "python", "node"]
        .into_iter()
        .filter(|h| only.is_empty() || only.split(',').any(|o| o.trim() == *h))
        .collect();
    let mut table: Vec<(&str, Vec<Row>)> = Vec::new();
    for host in &hosts {
        eprintln!("hosts: measuring {host} at {users} users");
        table.push((host, measure(host, users)));
    }
    println!("| request | host | p50 ms | requests/s |");
    println!("|---|---|---|---|");
    for i in 0..4 {
        for (host, rows) in &table {
            let (what, p50, rate) = rows[i];
            println!("| {what} | {host} | {p50:.2} | {rate:.0} |");
        }
    }
}
