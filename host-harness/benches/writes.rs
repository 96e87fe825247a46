//! Write paths over HTTP against `scim-host` (release build, SQLite):
//! membership changes on a 100,000-member group, filling a 10,000-member
//! group in PATCHes of 100, and Bulk creation of 10,000 users.
//!
//! Run: `cargo bench -p scim-host --bench writes`
//!
//! The directory (110,000 users, one group holding 100,000 of them) is built
//! once through the real engine component and kept under the target
//! directory; each run copies it so measurements start from the same state.

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
const USERS: usize = 110_000;
const BIG_GROUP: usize = 100_000;

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn add_members(ids: &[String]) -> Value {
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    patch(json!([{"op": "add", "path": "members", "value": members}]))
}

/// Builds the directory through the component in large transactions.
fn populate(path: &Path) {
    if path.exists() {
        return;
    }
    let started = Instant::now();
    let tmp = path.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let pool = db::open(&tmp, 2).unwrap();
    db::set_tenant_token(&pool.get().unwrap(), "default", TOKEN).unwrap();
    let tenant = db::authenticate(&pool.get().unwrap(), TOKEN)
        .unwrap()
        .unwrap();
    let limits = Limits {
        timeout: Duration::from_secs(120),
        memory_bytes: 512 << 20,
        instances: 4,
    };
    let runtime = Runtime::new(scim_host::ENGINE_WASM, limits.clone(), None).unwrap();
    let context = RequestContext {
        tenant: tenant.name.clone(),
        base_url: "http://localhost/scim/v2".into(),
        request_id: "populate".into(),
        subject: None,
        max_payload_bytes: 64 << 20,
        signing_key: tenant.signing_key.clone(),
    };
    let call = |state: RequestState, method: &str, path: &str, body: Value| {
        let req = HttpRequest {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
            context: context.clone(),
        };
        let (resp, state) = runtime.handle(state, &req);
        let resp = resp.unwrap();
        assert!(
            resp.status < 300,
            "{method} {path}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        (resp, state)
    };
    let conn = pool.get().unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut state = RequestState::new(SqlStore::new(conn, tenant.id), &limits);
    let mut ids = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let (resp, s) = call(
            state,
            "POST",
            "/Users",
            json!({"userName": format!("member{i}@example.com"), "displayName": format!("Member {i}")}),
        );
        state = s;
        let v: Value = serde_json::from_slice(&resp.body).unwrap();
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let (resp, s) = call(state, "POST", "/Groups", json!({"displayName": "Everyone"}));
    state = s;
    let group = serde_json::from_slice::<Value>(&resp.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for chunk in ids[..BIG_GROUP].chunks(1000) {
        let (_, s) = call(
            state,
            "PATCH",
            &format!("/Groups/{group}"),
            add_members(chunk),
        );
        state = s;
    }
    state
        .store
        .into_conn()
        .unwrap()
        .execute_batch("COMMIT")
        .unwrap();
    drop(pool);
    std::fs::rename(&tmp, path).unwrap();
    for ext in ["partial-wal", "partial-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
    eprintln!(
        "built {USERS} users and a {BIG_GROUP}-member group in {:.0}s",
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
            "--max-body-bytes",
            "4194304",
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

struct Client {
    http: reqwest::blocking::Client,
    base: String,
}

impl Client {
    /// Sends a request and returns its latency in ms and the parsed body.
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (f64, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let started = Instant::now();
        let resp = req.send().unwrap();
        let status = resp.status();
        let text = resp.text().unwrap();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        (ms, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn p50(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (ms[ms.len() / 2], *ms.last().unwrap())
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let golden = dir.join("members-100k.db");
    populate(&golden);
    let work = dir.join("members-run.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", work.display()));
    }
    std::fs::copy(&golden, &work).unwrap();
    let ids: Vec<String> = {
        let conn = rusqlite::Connection::open(&work).unwrap();
        let mut stmt = conn
            .prepare("SELECT id FROM documents WHERE kind = 'User' ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let group: String = rusqlite::Connection::open(&work)
        .unwrap()
        .query_row("SELECT id FROM documents WHERE kind = 'Group'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let server = serve(&work);
    let c = Client {
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .unwrap(),
        base: server.base.clone(),
    };
    let gpath = format!("/Groups/{group}");
    println!("| figure | p50 ms | max ms |");
    println!("|---|---:|---:|");

    // GET the big group without members.
    let ms: Vec<f64> = (0..200)
        .map(|_| {
            let (ms, body) = c.send("GET", &format!("{gpath}?excludedAttributes=members"), None);
            assert!(body.get("members").is_none());
            ms
        })
        .collect();
    let (p, max) = p50(ms);
    println!("| GET 100k-member group, excludedAttributes=members | {p:.2} | {max:.2} |");

    // Add 100 new members at a time (from the users outside the group).
    let spare = &ids[BIG_GROUP..];
    let ms: Vec<f64> = spare[..5000]
        .chunks(100)
        .map(|chunk| c.send("PATCH", &gpath, Some(&add_members(chunk))).0)
        .collect();
    let (p, max) = p50(ms);
    println!("| PATCH add 100 members to a 100k-member group | {p:.2} | {max:.2} |");

    // Remove one member by filter, and by Entra's value list.
    let ms: Vec<f64> = ids[..100]
        .iter()
        .map(|id| {
            c.send(
                "PATCH",
                &gpath,
                Some(&patch(
                    json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
                )),
            )
            .0
        })
        .collect();
    let (p, max) = p50(ms);
    println!("| PATCH remove 1 member by members[value eq] | {p:.2} | {max:.2} |");
    let ms: Vec<f64> = ids[100..200]
        .iter()
        .map(|id| c.send("PATCH", &gpath, Some(&patch(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id}]}])))).0)
        .collect();
    let (p, max) = p50(ms);
    println!("| PATCH remove 1 member by value list (Entra) | {p:.2} | {max:.2} |");

    // Fill a new group with 10,000 members in 100 PATCHes of 100.
    let (_, g) = c.send("POST", "/Groups", Some(&json!({"displayName": "Fill"})));
    let fill = format!("/Groups/{}", g["id"].as_str().unwrap());
    let started = Instant::now();
    let ms: Vec<f64> = ids[..10_000]
        .chunks(100)
        .map(|chunk| c.send("PATCH", &fill, Some(&add_members(chunk))).0)
        .collect();
    let total = started.elapsed().as_secs_f64();
    let (_, filled) = c.send("GET", &fill, None);
    assert_eq!(filled["members"].as_array().unwrap().len(), 10_000);
    let (_, big) = c.send("GET", &gpath, None);
    assert_eq!(
        big["members"].as_array().unwrap().len(),
        BIG_GROUP + 5000 - 200
    );
    let (first, last) = (ms[0], ms[ms.len() - 1]);
    let (p, max) = p50(ms);
    println!(
        "| fill a 10,000-member group with 100 PATCHes of 100: total {total:.2} s, first {first:.2} ms, last {last:.2} ms | {p:.2} | {max:.2} |"
    );

    // Bulk-create 10,000 users in requests of 1,000 operations.
    let started = Instant::now();
    let mut ms = Vec::new();
    for r in 0..10 {
        let ops: Vec<Value> = (0..1000)
            .map(|i| {
                let n = r * 1000 + i;
                json!({"method": "POST", "path": "/Users", "bulkId": format!("u{n}"), "data": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("bulk{n}@example.com"),
                    "name": {"givenName": "Bulk", "familyName": format!("User{n}")},
                    "emails": [{"value": format!("bulk{n}@example.com"), "type": "work", "primary": true}],
                    "active": true
                }})
            })
            .collect();
        let (t, body) = c.send("POST", "/Bulk", Some(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})));
        assert!(
            body["Operations"]
                .as_array()
                .unwrap()
                .iter()
                .all(|o| o["status"] == "201")
        );
        ms.push(t);
    }
    let total = started.elapsed().as_secs_f64();
    let (p, max) = p50(ms);
    println!(
        "| Bulk create 10,000 users, 10 requests of 1,000 (total {total:.2} s) | {p:.2} | {max:.2} |"
    );
}
