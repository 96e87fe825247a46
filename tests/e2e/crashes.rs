//! `kill -9` in the middle of work: a Bulk load, a group filled by
//! concurrent PATCHes, and the re-mapping a rules install starts. After a
//! restart every acknowledged write is there, no request is half-applied,
//! the LMS holds exactly what the SCIM state implies (nothing lost, nothing
//! twice), the outbox drains and the server serves. (A kill during a group
//! rename's drain is `lms::background_remapping_survives_kill_9`.)

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::lms::{bulk_users, from_group, patch_ops, touches, user_events, wait_synced};
use crate::support::{GROUP_SCHEMA, LmsServer, USER_SCHEMA, encode, grants, item, learner};

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// A SCIM client of its own, so requests can run on other threads while
/// the test kills the server.
#[derive(Clone)]
struct Client {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Client {
    fn of(s: &LmsServer) -> Self {
        Client {
            base: s.base.clone(),
            token: s.token.clone(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    /// The status and body, or `None` when the server did not answer.
    fn send(&self, method: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
        let r = self
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .ok()?;
        let status = r.status().as_u16();
        let text = r.text().ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// Waits (60 s at most) until `done` holds.
#[track_caller]
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every user's id, paging through `/Users`.
fn all_users(s: &LmsServer, filter: &str) -> Vec<String> {
    let r = s
        .get(&format!(
            "/Users?filter={}&count=1000&attributes=id",
            encode(filter)
        ))
        .expect(200);
    r.json["Resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|u| u["id"].as_str().expect("id").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A group's member ids.
fn members(s: &LmsServer, gid: &str) -> BTreeSet<String> {
    let r = s.get(&format!("/Groups/{gid}")).expect(200);
    r.json["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| m["value"].as_str().expect("value").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One Bulk request of the load: `PER` users and a group holding them.
const PER: usize = 40;

fn load_bulk(k: usize) -> Value {
    let mut ops: Vec<Value> = (0..PER)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                   "data": {"schemas": [USER_SCHEMA], "userName": format!("load{k:03}-{i:02}")}})
        })
        .collect();
    let refs: Vec<Value> = (0..PER)
        .map(|i| json!({"value": format!("bulkId:u{i}")}))
        .collect();
    ops.push(json!({"method": "POST", "path": "/Groups", "bulkId": "g",
                    "data": {"schemas": [GROUP_SCHEMA], "displayName": format!("Load {k:03}"), "members": refs}}));
    json!({"schemas": [BULK], "Operations": ops})
}

#[test]
fn kill_9_during_a_bulk_load_loses_no_acknowledged_bulk_and_halves_none() {
    let mut s = LmsServer::start();
    let client = Client::of(&s);
    let acknowledged: Arc<Mutex<Vec<(usize, Value)>>> = Arc::default();
    let sent = Arc::new(AtomicUsize::new(0));
    let loader = {
        let (acknowledged, sent) = (acknowledged.clone(), sent.clone());
        std::thread::spawn(move || {
            for k in 0..1000 {
                sent.store(k + 1, Ordering::SeqCst);
                match client.send("POST", "/Bulk", &load_bulk(k)) {
                    Some((200, body)) => acknowledged.lock().expect("lock").push((k, body)),
                    Some((status, body)) => panic!("Bulk {k}: {status} {body}"),
                    None => return,
                }
            }
        })
    };
    wait_for("three acknowledged Bulk requests", || {
        acknowledged.lock().expect("lock").len() >= 3
    });
    s.kill9();
    loader.join().expect("the loader");
    let sent = sent.load(Ordering::SeqCst);
    let acknowledged = acknowledged.lock().expect("lock").clone();

    s.restart();
    for (k, body) in &acknowledged {
        let ops = body["Operations"].as_array().expect("Operations");
        assert_eq!(ops.len(), PER + 1, "Bulk {k}: {body}");
        for op in ops {
            assert_eq!(op["status"], "201", "Bulk {k}: {op}");
            let location = op["location"].as_str().expect("location");
            let path = &location[location
                .find("/Users/")
                .or(location.find("/Groups/"))
                .expect("path")..];
            s.get(path).expect(200);
        }
    }
    // Each Bulk is one transaction: all of it or none of it.
    let mut groups = Vec::new();
    for k in 0..sent {
        let users = all_users(&s, &format!("userName sw \"load{k:03}-\""));
        let group = s.count("/Groups", &format!("displayName eq \"Load {k:03}\""));
        let whole = (users.len(), group);
        assert!(
            whole == (PER, 1) || whole == (0, 0),
            "Bulk {k} half-applied: {} users, {group} groups",
            users.len()
        );
        if k < acknowledged.len() {
            assert_eq!(whole, (PER, 1), "acknowledged Bulk {k} lost");
        }
        if group == 1 {
            groups.push((k, users));
        }
    }
    assert!(groups.len() >= 3);

    // The LMS: every user a learner in exactly its group's team, once.
    wait_synced(&s);
    for (k, users) in &groups {
        let r = s
            .get(&format!(
                "/Groups?filter={}",
                encode(&format!("displayName eq \"Load {k:03}\""))
            ))
            .expect(200);
        let gid = r.json["Resources"][0]["id"].as_str().expect("group id");
        assert_eq!(
            members(&s, gid),
            users.iter().cloned().collect::<BTreeSet<_>>()
        );
        for id in users {
            let l = learner(&s, id);
            assert_eq!(l["status"], "active", "{l}");
            assert_eq!(
                grants(&l, "teams"),
                [item(&format!("Load {k:03}"), &[&from_group(gid)])],
                "{l}"
            );
        }
    }
    // And the server serves.
    s.post("/Bulk", &load_bulk(999)).expect(200);
}

#[test]
fn kill_9_during_a_group_fill_keeps_acknowledged_members_and_the_lms_in_step() {
    const USERS: usize = 240;
    const CHUNK: usize = 5;
    const THREADS: usize = 6;
    let mut s = LmsServer::start();
    let ids = bulk_users(&s, USERS);
    let gid = s.create_group("Fill", &[]);
    wait_synced(&s);

    let chunks: Vec<Vec<String>> = ids.chunks(CHUNK).map(|c| c.to_vec()).collect();
    let chunks = Arc::new(chunks);
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged: Arc<Mutex<Vec<usize>>> = Arc::default();
    let down = Arc::new(AtomicBool::new(false));
    let client = Client::of(&s);
    let fillers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (chunks, next, acknowledged, down, client, gid) = (
                chunks.clone(),
                next.clone(),
                acknowledged.clone(),
                down.clone(),
                client.clone(),
                gid.clone(),
            );
            std::thread::spawn(move || {
                loop {
                    let c = next.fetch_add(1, Ordering::SeqCst);
                    if c >= chunks.len() || down.load(Ordering::SeqCst) {
                        return;
                    }
                    let value: Vec<Value> =
                        chunks[c].iter().map(|id| json!({"value": id})).collect();
                    let body = patch_ops(json!([{"op": "add", "path": "members", "value": value}]));
                    match client.send("PATCH", &format!("/Groups/{gid}"), &body) {
                        Some((200 | 204, _)) => acknowledged.lock().expect("lock").push(c),
                        Some((status, body)) => panic!("chunk {c}: {status} {body}"),
                        None => {
                            down.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    wait_for("a dozen acknowledged member additions", || {
        acknowledged.lock().expect("lock").len() >= 12
    });
    s.kill9();
    for f in fillers {
        f.join().expect("a filler");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() < chunks.len(),
        "the fill finished before the kill, so the crash was not exercised"
    );

    s.restart();
    let present = members(&s, &gid);
    for (c, chunk) in chunks.iter().enumerate() {
        let held = chunk.iter().filter(|id| present.contains(*id)).count();
        assert!(
            held == 0 || held == CHUNK,
            "PATCH {c} half-applied: {held} of {CHUNK}"
        );
        if acknowledged.contains(&c) {
            assert_eq!(held, CHUNK, "acknowledged PATCH {c} lost");
        }
    }
    wait_synced(&s);
    let team = item("Fill", &[&from_group(&gid)]);
    for id in &ids {
        let l = learner(&s, id);
        let expected = if present.contains(id) {
            vec![team.clone()]
        } else {
            Vec::new()
        };
        assert_eq!(grants(&l, "teams"), expected, "{l}");
    }

    // The server serves: the rest of the fill, and the LMS follows.
    let rest: Vec<Value> = ids
        .iter()
        .filter(|id| !present.contains(*id))
        .map(|id| json!({"value": id}))
        .collect();
    if !rest.is_empty() {
        s.patch(
            &format!("/Groups/{gid}"),
            &patch_ops(json!([{"op": "add", "path": "members", "value": rest}])),
        )
        .expect(204);
    }
    wait_synced(&s);
    assert_eq!(members(&s, &gid).len(), USERS);
    for id in &ids {
        assert_eq!(
            grants(&learner(&s, id), "teams"),
            std::slice::from_ref(&team)
        );
    }
}

const RULES: &str = r#"version = 1
groups_as_teams = true

[[rule]]
name = "compliance"
grant = { learning_paths = ["Compliance 101"] }
"#;

#[test]
fn kill_9_during_a_rules_install_remapping_applies_each_learner_once() {
    const USERS: usize = 300;
    let mut s = LmsServer::start_with(&["--drain-batch", "10", "--drain-delay-ms", "20"]);
    let ids = bulk_users(&s, USERS);
    s.admin(
        "POST",
        "/admin/v1/catalogue/learningPaths",
        Some(&json!({"name": "Compliance 101"})),
    )
    .expect(201);
    wait_synced(&s);

    let r = Client::of(&s)
        .http
        .put(s.admin_url("/admin/v1/mapping"))
        .bearer_auth(&s.admin_token)
        .header("content-type", "application/toml")
        .body(RULES)
        .send()
        .expect("PUT /admin/v1/mapping");
    let status = r.status();
    assert_eq!(status, 200, "{}", r.text().unwrap_or_default());
    // Let the first batch commit, so that the kill lands between batches.
    wait_for("a re-mapping batch", || {
        let sync = s.admin_get("/admin/v1/sync").expect(200).json;
        sync["tasks"][0]["work"]["done"]
            .as_u64()
            .is_some_and(|done| done > 0)
    });
    s.kill9();
    let status = s.cli_json(&["sync", "status", "--json"]);
    assert!(
        status["pending"].as_u64().is_some_and(|p| p > 0),
        "the re-mapping finished before the kill, so the crash was not exercised: {status}"
    );

    s.restart();
    wait_synced(&s);
    for id in &ids {
        let l = learner(&s, id);
        assert_eq!(
            grants(&l, "learningPaths")
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            ["Compliance 101"],
            "{l}"
        );
        let granted = user_events(&s, id)
            .into_iter()
            .filter(|e| {
                e["resourceType"] == "Learner"
                    && touches(e, "learningPath", "new", "Compliance 101")
            })
            .count();
        assert_eq!(
            granted, 1,
            "{id}: the learning path was granted {granted} times"
        );
    }
    // And the server serves: a new user is mapped by the installed rules.
    let late = s.create_user("late-comer");
    let l = learner(&s, &late);
    assert_eq!(grants(&l, "learningPaths").len(), 1, "{l}");
}
