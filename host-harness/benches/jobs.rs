//! Previews and installs of rules on a large tenant, in the request and as
//! a background job (`Prefer: respond-async`), against the release
//! `scim-host`: how long the request takes to answer, and for a job how
//! long until a poll shows it done. Also a confirmation resting on a job's
//! preview (`?confirm=true&preview=<job id>`), which does not preview again.
//! Each row is run `SCIM_JOBS_ROUNDS` times, foreground and background
//! alternately, after the re-mapping of the previous install has drained.
//!
//! Run: `cargo bench -p scim-host --bench jobs`
//! Options (environment): `SCIM_JOBS_USERS` (default 100000),
//! `SCIM_JOBS_ROUNDS` (default 3), `SCIM_BENCH_HOST` (another build).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Loader, data_dir, serve, user};

const ADMIN: &str = "bench-admin-token";

/// Two rules documents that differ, so that each install is a change.
const RULES: [&str; 2] = [
    r#"
version = 1

[[rule]]
name = "onboarding"
when = { attribute = "name.familyName", glob = "F1*" }
grant.learning_paths = ["Onboarding"]

[[rule]]
name = "managers"
when = { attribute = "title", equals = "Manager" }
grant.learning_paths = ["Compliance"]
"#,
    r#"
version = 1

[[rule]]
name = "onboarding"
when = { attribute = "name.familyName", glob = "F2*" }
grant.learning_paths = ["Onboarding"]

[[rule]]
name = "engineers"
when = { attribute = "title", equals = "Engineer" }
grant.learning_paths = ["Compliance"]
"#,
];

fn populate(path: &Path, users: usize) {
    if path.exists() {
        return;
    }
    let started = Instant::now();
    let mut loader = Loader::new(path);
    for i in 0..users {
        loader.call("POST", "/Users", &user(i));
        if (i + 1) % 5000 == 0 {
            loader.commit();
        }
    }
    loader.finish();
    eprintln!(
        "populated {users} users in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `min–max` of some durations, in ms.
fn range(ds: &[Duration]) -> String {
    let min = ds.iter().min().map_or(0.0, |d| ms(*d));
    let max = ds.iter().max().map_or(0.0, |d| ms(*d));
    if ds.len() > 1 {
        format!("{min:.1}–{max:.1}")
    } else {
        format!("{min:.1}")
    }
}

fn main() {
    let users: usize = std::env::var("SCIM_JOBS_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds: usize = std::env::var("SCIM_JOBS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let db = data_dir().join(format!("jobs-{users}.db"));
    populate(&db, users);
    let copy = db.with_extension("run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", copy.display()));
    }
    std::fs::copy(&db, &copy).unwrap();
    let server = serve(&copy, &["--admin-token", ADMIN]);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let admin_base = server.base.replace("/scim/v2", "/admin/v1");
    let send = |method: Method, path: &str, body: &str, background: bool| -> (u16, Value) {
        let mut r = http
            .request(method, format!("{admin_base}{path}"))
            .bearer_auth(ADMIN)
            .body(body.to_string());
        if background {
            r = r.header("prefer", "respond-async");
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    for path in ["Onboarding", "Compliance"] {
        http.post(format!("{admin_base}/catalogue/learningPaths"))
            .bearer_auth(ADMIN)
            .json(&json!({"name": path}))
            .send()
            .unwrap();
    }
    // Until the re-mapping of every user that an install queued is done.
    let drained = || loop {
        let (_, sync) = send(Method::GET, "/sync", "", false);
        if sync["pending"] == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // A job's end, and the progress polls saw on the way.
    let finish = |id: &str| -> (Value, Vec<u64>) {
        let mut seen = Vec::new();
        loop {
            let (status, job) = send(Method::GET, &format!("/jobs/{id}"), "", false);
            assert_eq!(status, 200, "{job}");
            if job["state"] != "running" {
                return (job, seen);
            }
            let done = job["done"].as_u64().unwrap_or(0);
            if seen.last() != Some(&done) {
                seen.push(done);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let mut rows: Vec<(&str, Vec<Duration>, Vec<Duration>)> = Vec::new();
    let mut row = |name: &'static str, answer: Duration, end: Duration| match rows
        .iter_mut()
        .find(|r| r.0 == name)
    {
        Some(r) => {
            r.1.push(answer);
            r.2.push(end);
        }
        None => rows.push((name, vec![answer], vec![end])),
    };
    let mut progress = Vec::new();
    let mut version = 0;
    for round in 0..rounds {
        let rules = RULES[round % 2];
        // Preview: in the request, then as a job.
        let started = Instant::now();
        let (status, report) = send(Method::POST, "/mapping/preview?limit=0", rules, false);
        assert_eq!(status, 200, "{report}");
        let t = started.elapsed();
        assert_eq!(report["users"], users as u64, "{report}");
        row("preview, in the request", t, t);
        let started = Instant::now();
        let (status, job) = send(Method::POST, "/mapping/preview?limit=0", rules, true);
        assert_eq!(status, 202, "{job}");
        let answered = started.elapsed();
        let (job, seen) = finish(job["id"].as_str().unwrap());
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["result"]["users"], users as u64, "{job}");
        row("preview, as a job", answered, started.elapsed());
        progress = seen;

        // Install: in the request, then as a job (each previews first),
        // then resting on the preview job (no preview).
        for (name, background) in [
            ("install, in the request", false),
            ("install, as a job", true),
        ] {
            let rules = RULES[(round + usize::from(background)) % 2];
            drained();
            let started = Instant::now();
            let (status, body) = send(Method::PUT, "/mapping?confirm=true", rules, background);
            let answered = started.elapsed();
            let end = if background {
                assert_eq!(status, 202, "{body}");
                let (job, _) = finish(body["id"].as_str().unwrap());
                assert_eq!(job["state"], "done", "{job}");
                started.elapsed()
            } else {
                assert_eq!(status, 200, "{body}");
                answered
            };
            version += 1;
            row(name, answered, end);
        }
        // A preview of what is not in force now, confirmed by its job.
        let rules = RULES[round % 2];
        let (status, job) = send(Method::POST, "/mapping/preview?limit=0", rules, true);
        assert_eq!(status, 202, "{job}");
        let (job, _) = finish(job["id"].as_str().unwrap());
        assert_eq!(job["state"], "done", "{job}");
        drained();
        let started = Instant::now();
        let (status, body) = send(
            Method::PUT,
            &format!(
                "/mapping?confirm=true&preview={}",
                job["id"].as_str().unwrap()
            ),
            rules,
            false,
        );
        assert_eq!(status, 200, "{body}");
        version += 1;
        assert_eq!(body["installed"]["version"], version, "{body}");
        let t = started.elapsed();
        row("install confirming a preview job", t, t);
        drained();
    }

    println!("{users} users; {rounds} rounds (min–max)");
    println!("| request | answered in ms | done in ms |");
    println!("|---|---:|---:|");
    for (name, answered, end) in &rows {
        println!("| {name} | {} | {} |", range(answered), range(end));
    }
    println!(
        "progress a poll saw during the last preview job (users): {:?}",
        progress
    );
}
