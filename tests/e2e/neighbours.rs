//! A noisy neighbour: tenant A (`default`, limited to one SCIM request at
//! once) floods the server with broad filters past its queue and with
//! concurrent previews of a plugin that runs out of fuel on every user,
//! while tenant B on the same server creates, reads and patches users.
//! Every request of B succeeds; A's excess SCIM requests get `429` with
//! `Retry-After` and a SCIM Error body, and A's previews beyond the one
//! running get `429` with `Retry-After` (mapping work is one per tenant).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mapper::hostile::{Plugin, build};
use crate::mapper::patch_ops;
use crate::support::{LmsServer, Resp, USER_SCHEMA, encode};

/// Tenant A, the server's own.
const A: &str = "default";
/// A's users: enough that a broad filter is real work.
const A_USERS: usize = 300;
/// A's threads running broad filters back to back. With one request at
/// once, 16 more wait in A's queue; the rest are refused at once.
const FILTER_THREADS: usize = 24;
/// A's threads posting previews back to back.
const PREVIEW_THREADS: usize = 7;
/// How long A keeps up its load while B works.
const LOAD: Duration = Duration::from_secs(3);
/// A hang guard, not a performance figure.
const HANG: Duration = Duration::from_secs(120);

/// What one of A's requests came to.
#[derive(Debug)]
struct Seen {
    status: u16,
    retry_after: Option<String>,
    body: Value,
    content_type: Option<String>,
}

impl From<Resp> for Seen {
    fn from(r: Resp) -> Self {
        Seen {
            status: r.status,
            retry_after: r.header("retry-after").map(str::to_string),
            content_type: r.header("content-type").map(str::to_string),
            body: r.json,
        }
    }
}

fn user(name: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": name,
        "name": {"givenName": "Given", "familyName": name},
        "active": true,
    })
}

/// An admin request with a component as its body.
fn post_wasm(s: &LmsServer, path: &str, body: &[u8]) -> Resp {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client")
    });
    crate::support::into_resp(
        client
            .post(s.admin_url(path))
            .bearer_auth(&s.admin_token)
            .header("content-type", "application/wasm")
            .body(body.to_vec())
            .send()
            .expect("request"),
    )
}

/// Asserts a `Retry-After` of whole seconds, at least 1.
#[track_caller]
fn assert_retry_after(seen: &Seen) {
    let secs: u64 = seen
        .retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("429 without Retry-After: {seen:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not whole seconds: {seen:?}"));
    assert!(secs >= 1, "{seen:?}");
}

#[test]
fn a_noisy_tenant_gets_429s_and_its_neighbour_is_served() {
    let s = Arc::new(LmsServer::start());
    // A's users, created before A's share is narrowed.
    let creators: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in (t..A_USERS).step_by(4) {
                    s.post("/Users", &user(&format!("alice-{i:03}")))
                        .expect(201);
                }
            })
        })
        .collect();
    for c in creators {
        c.join().expect("creator");
    }
    // B, added on the same database while the server runs.
    let b = s.cli_json(&["tenant", "add", "b", "--json"]);
    let b_scim = b["scimToken"].as_str().expect("scimToken").to_string();
    // A's share: one SCIM request at once (from its next request on).
    let share = s.cli_json(&["tenant", "limits", A, "--max-concurrent", "1", "--json"]);
    assert_eq!(share["maxConcurrent"], 1, "{share}");

    // A plugin that loops on every user until its (small) fuel runs out:
    // each preview is real work over A's users.
    let plugin = Arc::new(build(Plugin::InfiniteLoop));
    const PREVIEW: &str = "/admin/v1/mapper/preview?fuel=1000000&limit=10";
    let started = Instant::now();
    let solo = post_wasm(&s, PREVIEW, &plugin).expect(200);
    eprintln!(
        "one preview alone: {:?}, {} users, {} failed",
        started.elapsed(),
        solo.json["users"],
        solo.json["failed"]
    );
    assert_eq!(solo.json["users"], A_USERS, "{}", solo.text);
    assert_eq!(solo.json["failed"], A_USERS, "{}", solo.text);
    let filter = format!("/Users?filter={}&count=10", encode("userName co \"a\""));
    let started = Instant::now();
    let r = s.get(&filter).expect(200);
    eprintln!("one broad filter alone: {:?}", started.elapsed());
    assert_eq!(r.json["totalResults"], A_USERS, "{}", r.text);

    let stop = Arc::new(AtomicBool::new(false));
    let filters: Vec<_> = (0..FILTER_THREADS)
        .map(|_| {
            let (s, stop, filter) = (s.clone(), stop.clone(), filter.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = Seen::from(s.get(&filter));
                    if r.status == 429 {
                        // An impatient client, not one that waits out
                        // Retry-After.
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    seen.push(r);
                }
                seen
            })
        })
        .collect();
    let previews: Vec<_> = (0..PREVIEW_THREADS)
        .map(|_| {
            let (s, stop, plugin) = (s.clone(), stop.clone(), plugin.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let r = Seen::from(post_wasm(&s, PREVIEW, &plugin));
                    if r.status == 429 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    seen.push(r);
                }
                seen
            })
        })
        .collect();

    // B works while A's load lasts: creates, reads, a PATCH, a filter.
    let b_req = |method: &str, path: &str, body: Option<&Value>| {
        s.send_as(Some(&b_scim), method, &s.url(path), body)
    };
    let load_started = Instant::now();
    let mut b_requests = 0;
    let mut round = 0;
    while round < 3 || load_started.elapsed() < LOAD {
        let name = format!("bob-{round}");
        let r = b_req("POST", "/Users", Some(&user(&name))).expect(201);
        let id = r.json["id"].as_str().expect("id").to_string();
        let r = b_req("GET", &format!("/Users/{id}"), None).expect(200);
        assert_eq!(r.json["userName"], name, "{}", r.text);
        let title = format!("Chemist {round}");
        b_req(
            "PATCH",
            &format!("/Users/{id}"),
            Some(&patch_ops(
                json!([{"op": "replace", "path": "title", "value": title}]),
            )),
        )
        .expect(200);
        let r = b_req("GET", &format!("/Users/{id}"), None).expect(200);
        assert_eq!(r.json["title"], title, "{}", r.text);
        let r = b_req(
            "GET",
            &format!(
                "/Users?filter={}",
                encode(&format!("userName eq \"{name}\""))
            ),
            None,
        )
        .expect(200);
        assert_eq!(r.json["totalResults"], 1, "{}", r.text);
        b_requests += 5;
        round += 1;
        assert!(load_started.elapsed() < HANG, "B's requests hung");
    }
    let b_took = load_started.elapsed();
    stop.store(true, Ordering::Relaxed);

    let join = |handles: Vec<std::thread::JoinHandle<Vec<Seen>>>| -> Vec<Seen> {
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("A's thread"))
            .collect()
    };
    let filtered = join(filters);
    let previewed = join(previews);
    assert!(load_started.elapsed() < HANG, "A's requests hung");
    // B sees only its own users.
    let r = b_req("GET", "/Users?count=0", None).expect(200);
    assert_eq!(r.json["totalResults"], round, "{}", r.text);

    let count = |seen: &[Seen], status: u16| seen.iter().filter(|r| r.status == status).count();
    let (f_ok, f_429) = (count(&filtered, 200), count(&filtered, 429));
    let (p_ok, p_429) = (count(&previewed, 200), count(&previewed, 429));
    eprintln!(
        "B: {b_requests} requests in {b_took:?}, all succeeded; \
         A's filters: {} sent, {f_ok} answered 200, {f_429} answered 429; \
         A's previews: {} sent, {p_ok} answered 200, {p_429} answered 429",
        filtered.len(),
        previewed.len()
    );

    // A's SCIM requests: answered, or refused with 429 in the SCIM shape.
    for r in &filtered {
        match r.status {
            200 => assert_eq!(r.body["totalResults"], A_USERS, "{r:?}"),
            429 => {
                assert_retry_after(r);
                assert_eq!(
                    r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
                    "{r:?}"
                );
                assert_eq!(r.body["status"], "429", "{r:?}");
                let detail = r.body["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("at once"), "{r:?}");
                assert!(
                    r.content_type
                        .as_deref()
                        .is_some_and(|c| c.starts_with("application/scim+json")),
                    "{r:?}"
                );
            }
            _ => panic!("A's filter answered neither 200 nor 429: {r:?}"),
        }
    }
    assert!(f_ok > 0, "none of A's filters ran");
    assert!(f_429 > 0, "none of A's filters was refused");

    // A's previews: one at a time, the others refused with Retry-After.
    for r in &previewed {
        match r.status {
            200 => assert_eq!(r.body["failed"], A_USERS, "{r:?}"),
            429 => {
                assert_retry_after(r);
                assert_eq!(r.body["status"], 429, "{r:?}");
                let detail = r.body["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("still running"), "{r:?}");
            }
            _ => panic!("A's preview answered neither 200 nor 429: {r:?}"),
        }
    }
    assert!(p_ok > 0, "none of A's previews ran");
    assert!(p_429 > 0, "none of A's concurrent previews was refused");
}

/// A preview whose client went away still holds its tenant's turn until it
/// ends: the next preview of the tenant gets 429 rather than running beside
/// the abandoned one.
#[test]
fn an_abandoned_preview_keeps_its_tenants_turn() {
    let s = LmsServer::start();
    for i in 0..A_USERS {
        s.post("/Users", &user(&format!("abandoned-{i:03}")))
            .expect(201);
    }
    let plugin = build(Plugin::InfiniteLoop);
    // Each user runs the plugin to its deadline (100 ms) or its fuel:
    // tens of seconds in all, far longer than the impatient client waits,
    // which in turn leaves the server ample time to take the turn.
    const PREVIEW: &str = "/admin/v1/mapper/preview?fuel=100000000&limit=10";
    let impatient = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("client");
    let gone = impatient
        .post(s.admin_url(PREVIEW))
        .bearer_auth(&s.admin_token)
        .header("content-type", "application/wasm")
        .body(plugin.clone())
        .send();
    assert!(gone.is_err(), "the impatient client gave up");
    let next = Seen::from(post_wasm(&s, PREVIEW, &plugin));
    assert_eq!(next.status, 429, "{next:?}");
    assert_retry_after(&next);
}
