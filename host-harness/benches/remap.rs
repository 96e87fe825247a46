//! Background re-mapping throughput: how fast the worker moves every member
//! of a renamed (then deleted) group to its new team (then out of it), and
//! re-maps every user after a rules change, measured from the request until
//! `GET /admin/v1/sync` reports an empty outbox, against the release
//! `scim-host`. Also times `POST /admin/v1/mapping/preview` of those rules
//! over every user, and the preview and install of the example mapping
//! plugins (Rust, and Python, whose `build.sh` the bench runs when its
//! `mapper.wasm` is missing or older than its sources).
//!
//! Run: `cargo bench -p scim-host --bench remap`
//! Options (environment): `SCIM_REMAP_USERS` (group size, default 100000),
//! `SCIM_REMAP_BATCH` (users per background batch, default the server's).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    Loader, TOKEN, data_dir, enc, example_settings, python_example, rust_example, serve,
};

const ADMIN: &str = "bench-admin-token";

fn populate(path: &Path, users: usize) {
    if path.exists() {
        return;
    }
    let started = Instant::now();
    let mut loader = Loader::new(path);
    let mut ids = Vec::with_capacity(users);
    for i in 0..users {
        let user = json!({"userName": format!("remap{i:07}"), "name": {"givenName": "R", "familyName": format!("F{i}")}});
        ids.push(
            loader.call("POST", "/Users", &user)["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        if (i + 1) % 5000 == 0 {
            loader.commit();
        }
    }
    let group = loader.call("POST", "/Groups", &json!({"displayName": "Remap Old"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    // In chunks the engine maps inside the request, so every member holds
    // the team before the benchmark starts.
    for chunk in ids.chunks(1000) {
        let members: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let op = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "path": "members", "value": members}]});
        loader.call("PATCH", &format!("/Groups/{group}"), &op);
        loader.commit();
    }
    loader.finish();
    eprintln!(
        "populated {users} members in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let users: usize = std::env::var("SCIM_REMAP_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // Built first when missing (componentize-py from PyPI), so the build
    // does not run beside a measurement; when it cannot be built, the
    // reason is printed before the table and its row says so.
    let python = python_example();
    let db = data_dir().join(format!("remap-{users}.db"));
    populate(&db, users);
    let copy = db.with_extension("run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", copy.display()));
    }
    std::fs::copy(&db, &copy).unwrap();
    let batch = std::env::var("SCIM_REMAP_BATCH").ok();
    let mut extra = vec!["--admin-token", ADMIN];
    if let Some(b) = &batch {
        extra.extend(["--drain-batch", b.as_str()]);
    }
    let server = serve(&copy, &extra);
    let http = reqwest::blocking::Client::new();
    let scim = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{}{path}", server.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        r.send().unwrap()
    };
    let admin_base = server.base.replace("/scim/v2", "/admin/v1");
    let admin = |path: &str| -> Value {
        http.get(format!("{admin_base}{path}"))
            .bearer_auth(ADMIN)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let groups: Value = scim(reqwest::Method::GET, "/Groups?attributes=id", None)
        .json()
        .unwrap();
    let group = groups["Resources"][0]["id"].as_str().unwrap().to_string();
    let members: Value = scim(reqwest::Method::GET, "/Users?count=3&attributes=id", None)
        .json()
        .unwrap();
    let sample: Vec<String> = members["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let teams = |id: &str| -> Vec<String> {
        admin(&format!("/learners/{id}"))["teams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    let wait = |started: Instant| -> Duration {
        loop {
            if admin("/sync")["pending"] == 0 {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    println!(
        "{users} group members; background batch {}",
        batch.as_deref().unwrap_or("default")
    );
    println!("| change | request ms | until synced s | users/s |");
    println!("|---|---:|---:|---:|");
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Remap New"}]});
    let started = Instant::now();
    let r = scim(
        reqwest::Method::PATCH,
        &format!("/Groups/{group}"),
        Some(patch),
    );
    assert_eq!(r.status(), 204);
    let request = started.elapsed();
    let synced = wait(started);
    println!(
        "| rename | {:.1} | {:.2} | {:.0} |",
        request.as_secs_f64() * 1000.0,
        synced.as_secs_f64(),
        users as f64 / synced.as_secs_f64()
    );
    for id in &sample {
        assert_eq!(teams(id), ["Remap New"], "{id}");
    }

    let started = Instant::now();
    let r = scim(reqwest::Method::DELETE, &format!("/Groups/{group}"), None);
    assert_eq!(r.status(), 204);
    let request = started.elapsed();
    let synced = wait(started);
    println!(
        "| delete | {:.1} | {:.2} | {:.0} |",
        request.as_secs_f64() * 1000.0,
        synced.as_secs_f64(),
        users as f64 / synced.as_secs_f64()
    );
    for id in &sample {
        assert!(teams(id).is_empty(), "{id}");
    }

    // A rules change: preview it over every user, then install it.
    let send = |method: reqwest::Method, path: &str, body: String| -> (u16, Value) {
        let r = http
            .request(method, format!("{admin_base}{path}"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    for path in ["Onboarding", "Compliance"] {
        send(
            reqwest::Method::POST,
            "/catalogue/learningPaths",
            json!({"name": path}).to_string(),
        );
    }
    let started = Instant::now();
    let (status, preview) = send(
        reqwest::Method::POST,
        "/mapping/preview?limit=0",
        RULES.to_string(),
    );
    assert_eq!(status, 200, "{preview}");
    let previewed = started.elapsed();
    println!(
        "| preview rules | {:.1} | - | {:.0} |",
        previewed.as_secs_f64() * 1000.0,
        users as f64 / previewed.as_secs_f64()
    );
    let started = Instant::now();
    let (status, body) = send(
        reqwest::Method::PUT,
        "/mapping?confirm=true",
        RULES.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let request = started.elapsed();
    let synced = wait(started);
    // The install request previews first; the drain is what follows it.
    let drain = synced - request;
    println!(
        "| install rules | {:.1} | {:.2} | {:.0} |",
        request.as_secs_f64() * 1000.0,
        synced.as_secs_f64(),
        users as f64 / drain.as_secs_f64()
    );
    // The example mapping plugins: preview over every user, then install
    // (the request previews too; the drain re-maps everyone through it).
    let settings = enc(&example_settings());
    let mut plugins = vec![("Rust", rust_example(), "")];
    match python {
        Some(python) => plugins.push(("Python", python, "&memoryMib=64")),
        None => {
            println!("| Python plugin | not measured: it could not be built (see above) | - | - |")
        }
    }
    for (name, wasm, extra) in plugins {
        let send_wasm = |method: reqwest::Method, path: &str| -> (u16, Value) {
            let r = http
                .request(
                    method,
                    format!("{admin_base}{path}&settings={settings}{extra}"),
                )
                .bearer_auth(ADMIN)
                .header("content-type", "application/wasm")
                .body(wasm.clone())
                .send()
                .unwrap();
            (r.status().as_u16(), r.json().unwrap_or(Value::Null))
        };
        let started = Instant::now();
        let (status, preview) = send_wasm(reqwest::Method::POST, "/mapper/preview?limit=0");
        assert_eq!(status, 200, "{preview}");
        let previewed = started.elapsed();
        assert_eq!(
            preview["failed"], 0,
            "{name} plugin failed users in preview: {}",
            preview["failures"]
        );
        println!(
            "| preview {name} plugin | {:.1} | - | {:.0} |",
            previewed.as_secs_f64() * 1000.0,
            users as f64 / previewed.as_secs_f64()
        );
        let started = Instant::now();
        let (status, body) = send_wasm(reqwest::Method::PUT, "/mapper?confirm=true");
        assert_eq!(status, 200, "{body}");
        let request = started.elapsed();
        let synced = wait(started);
        println!(
            "| install {name} plugin | {:.1} | {:.2} | {:.0} |",
            request.as_secs_f64() * 1000.0,
            synced.as_secs_f64(),
            users as f64 / (synced - request).as_secs_f64()
        );
    }
    println!(
        "rules preview: {} of {} users change; install: users/s counts the background re-mapping after the request",
        preview["changed"], preview["users"]
    );
}

/// Rules like an organisation's: a group, titles, a family-name range (a
/// tenth of the users) and a default role.
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
when.any = [{ group = "Team Leads" }, { attribute = "title", glob = "*lead*" }]
grant.role = "learner"

[[rule]]
name = "germany"
when.all = [
  { attribute = "country", equals = "DE" },
  { not = { attribute = "userType", equals_ignore_case = "contractor" } },
]
grant.learning_paths = ["Compliance"]

[[rule]]
name = "departments"
when = { attribute = "department", present = true }
grant.teams = ["Dept {department}"]
"#;
