//! Large groups over HTTP against `scim-host` (release build, SQLite, one
//! keep-alive connection on loopback):
//!
//! - `GET /Groups/{id}` of a group of 10,000 members (every member rendered
//!   with `value`, `$ref`, `display` and `type`);
//! - a `PATCH` adding 100 members to a group of 8,000, each added member's
//!   team granted in the request (the default mapping: a group is a team),
//!   and the `PATCH` removing the same 100 again, so every add meets a group
//!   of the same size.
//!
//! Run: `cargo bench -p scim-host --bench groups`
//! Options (environment): `SCIM_GROUPS_ROUNDS` (default 3) rounds of each
//! row, each a median of its requests; `SCIM_BENCH_HOST=<binary>` serves
//! another build for a back-to-back comparison.
//!
//! The directory (12,000 users, the two groups) is built once through the
//! real engine component and kept under the target directory; each run
//! copies it so measurements start from the same state.

mod support;

use std::path::Path;
use std::time::Instant;

use serde_json::{Value, json};
use support::{Conn, Loader, data_dir, percentile_ms, serve, user};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const USERS: usize = 12_000;
/// Members of the group that is read.
const BIG: usize = 10_000;
/// Members of the group that the PATCHes change.
const PATCHED: usize = 8_000;
/// Members added (and removed) per PATCH.
const CHUNK: usize = 100;

fn add(ids: &[String]) -> String {
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": members}]})
        .to_string()
}

fn remove(ids: &[String]) -> String {
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    json!({"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members", "value": members}]})
        .to_string()
}

/// Builds the directory through the component, unless it exists already.
fn populate(path: &Path) {
    if path.exists() {
        return;
    }
    let started = Instant::now();
    let mut loader = Loader::new(path);
    let ids: Vec<String> = (0..USERS)
        .map(|i| {
            let id = loader.call("POST", "/Users", &user(i))["id"]
                .as_str()
                .unwrap()
                .to_string();
            if (i + 1) % 5000 == 0 {
                loader.commit();
            }
            id
        })
        .collect();
    for (name, size) in [("Everyone", BIG), ("Staff", PATCHED)] {
        let group = loader.call(
            "POST",
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}),
        );
        let gid = group["id"].as_str().unwrap().to_string();
        for chunk in ids[..size].chunks(2000) {
            let body: Value = serde_json::from_str(&add(chunk)).unwrap();
            loader.call("PATCH", &format!("/Groups/{gid}"), &body);
            loader.commit();
        }
    }
    loader.finish();
    eprintln!(
        "built {USERS} users and groups of {BIG} and {PATCHED} in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// Sends one request; returns its latency in µs and the response body.
fn timed(conn: &mut Conn, method: &str, path: &str, body: Option<&str>) -> (u64, Vec<u8>) {
    let started = Instant::now();
    let (status, resp) = conn.send(method, path, body);
    let us = started.elapsed().as_micros() as u64;
    assert!(
        status < 300,
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&resp)
    );
    (us, resp)
}

/// The server's CPU time so far (user and system), in ms: on a shared
/// machine a steadier figure than the latency.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime
    // are the 14th and 15th of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    // Linux reports clock ticks of 10 ms (USER_HZ 100).
    ticks as f64 * 10.0
}

fn median_ms(mut us: Vec<u64>) -> f64 {
    us.sort_unstable();
    percentile_ms(&us, 0.5)
}

fn main() {
    let dir = data_dir();
    let golden = dir.join("groups-10k.db");
    populate(&golden);
    let work = dir.join("groups-run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", work.display()));
    }
    std::fs::copy(&golden, &work).unwrap();
    let (users, groups) = {
        let conn = rusqlite::Connection::open(&work).unwrap();
        let ids = |kind: &str| -> Vec<String> {
            let mut stmt = conn
                .prepare("SELECT id FROM documents WHERE kind = ?1 ORDER BY seq")
                .unwrap();
            stmt.query_map([kind], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        (ids("User"), ids("Group"))
    };
    let (big, patched) = (
        format!("/Groups/{}", groups[0]),
        format!("/Groups/{}", groups[1]),
    );
    let spare = &users[BIG..];
    let rounds: usize = std::env::var("SCIM_GROUPS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);

    let server = serve(&work, &[]);
    let mut conn = Conn::open(&server.base);

    // The response is what a client gets, checked once.
    let (_, body) = timed(&mut conn, "GET", &big, None);
    let group: Value = serde_json::from_slice(&body).unwrap();
    let members = group["members"].as_array().unwrap();
    assert_eq!(members.len(), BIG);
    assert!(
        members
            .iter()
            .all(|m| m["$ref"].is_string() && m["display"].is_string() && m["type"] == "User")
    );

    let pid = server.pid();
    println!("| figure | round | p50 ms | max ms | server CPU ms per request |");
    println!("|---|---:|---:|---:|---:|");
    for round in 1..=rounds {
        let cpu = cpu_ms(pid);
        let us: Vec<u64> = (0..50)
            .map(|_| timed(&mut conn, "GET", &big, None).0)
            .collect();
        let cpu = (cpu_ms(pid) - cpu) / us.len() as f64;
        let max = *us.iter().max().unwrap() as f64 / 1000.0;
        println!(
            "| GET /Groups/{{id}}, {BIG} members | {round} | {:.2} | {max:.2} | {cpu:.2} |",
            median_ms(us)
        );

        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        let (mut add_cpu, mut remove_cpu) = (0.0, 0.0);
        for chunk in spare.chunks(CHUNK).take(20) {
            let cpu = cpu_ms(pid);
            adds.push(timed(&mut conn, "PATCH", &patched, Some(&add(chunk))).0);
            let mid = cpu_ms(pid);
            removes.push(timed(&mut conn, "PATCH", &patched, Some(&remove(chunk))).0);
            add_cpu += mid - cpu;
            remove_cpu += cpu_ms(pid) - mid;
        }
        let n = adds.len() as f64;
        let max = *adds.iter().max().unwrap() as f64 / 1000.0;
        println!(
            "| PATCH adding {CHUNK} members (and their team) to a group of {PATCHED} | {round} | {:.2} | {max:.2} | {:.2} |",
            median_ms(adds),
            add_cpu / n
        );
        let max = *removes.iter().max().unwrap() as f64 / 1000.0;
        println!(
            "| PATCH removing the same {CHUNK} | {round} | {:.2} | {max:.2} | {:.2} |",
            median_ms(removes),
            remove_cpu / n
        );
    }
    // The adds and removes cancel out.
    let (_, body) = timed(
        &mut conn,
        "GET",
        &format!("{patched}?attributes=members"),
        None,
    );
    let group: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(group["members"].as_array().unwrap().len(), PATCHED);
}
