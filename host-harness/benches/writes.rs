//! Write paths over HTTP against `scim-host` (release build, SQLite):
//! membership changes on a 100,000-member group, filling a 10,000-member
//! group in PATCHes of 100, and Bulk creation of 10,000 users.
//!
//! Run: `cargo bench -p scim-host --bench writes`
//!
//! The directory (110,000 users, one group holding 100,000 of them) is built
//! once through the real engine component and kept under the target
//! directory; each run copies it so measurements start from the same state.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Loader, TOKEN, data_dir, serve};
const USERS: usize = 110_000;
const BIG_GROUP: usize = 100_000;

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn add_members(ids: &[String]) -> Value {
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    patch(json!([{"op": "add", "path": "members", "value": members}]))
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
            let body = json!({"userName": format!("member{i}@example.com"), "displayName": format!("Member {i}")});
            loader.call("POST", "/Users", &body)["id"].as_str().unwrap().to_string()
        })
        .collect();
    let group = loader.call("POST", "/Groups", &json!({"displayName": "Everyone"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    for chunk in ids[..BIG_GROUP].chunks(1000) {
        loader.call("PATCH", &format!("/Groups/{group}"), &add_members(chunk));
    }
    loader.finish();
    eprintln!(
        "built {USERS} users and a {BIG_GROUP}-member group in {:.0}s",
        started.elapsed().as_secs_f64()
    );
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
    let dir = data_dir();
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
    let server = serve(&work, &["--max-body-bytes", "4194304"]);
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
