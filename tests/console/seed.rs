//! The server the browser tests drive: tenant A (`default`, the one `serve`
//! creates) with users, groups, rules, catalogue items and failures in its
//! sync log, and tenant B (`globex`) with data of its own that A's session
//! must never see; plus the example Rust mapping plugin, built with its
//! real toolchain, for the plugin page to upload.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ENTERPRISE, LmsServer, USER_SCHEMA};

/// Tenant A's rules when the browser arrives: the Sales group's members get
/// a learning path, teachers the `instructor` role.
pub const RULES: &str = r#"version = 1
groups_as_teams = true
default_role = "learner"

[[rule]]
name = "sales-onboarding"
when = { group = "Sales" }
grant.learning_paths = ["Sales Onboarding"]

[[rule]]
name = "teachers"
when = { attribute = "title", glob = "*teacher*" }
grant.role = "instructor"
"#;

/// The running server and what the browser tests need to know about it.
pub struct Seeded {
    pub server: LmsServer,
    /// Everything else, as the JSON handed to the Node tests
    /// (`SCIM_CONSOLE_SEED`).
    pub facts: Value,
    pub plugin: PathBuf,
    _dir: tempfile::TempDir,
}

impl Seeded {
    /// Starts the server and seeds both tenants.
    pub fn start(plugin_wasm: &[u8]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugin = dir.path().join("example_rust_mapper.wasm");
        std::fs::write(&plugin, plugin_wasm).expect("write the plugin");
        // The alerts page's webhook goes to a receiver on this machine.
        let server = LmsServer::start_with(&["--alerts-allow-private"]);
        let a = seed_a(&server);
        let b = seed_b(&server);
        let facts = json!({
            "url": server.origin(),
            "a": a,
            "b": b,
            "plugin": {
                "path": plugin,
                "settings": workspace().join("plugin/mappers/example-rust/samples/settings.json"),
            },
            "rules": RULES,
        });
        Seeded {
            server,
            facts,
            plugin,
            _dir: dir,
        }
    }
}

/// A SCIM user with a department and a title.
fn user(user_name: &str, given: &str, family: &str, title: &str, department: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name,
        "displayName": format!("{given} {family}"),
        "name": {"givenName": given, "familyName": family},
        "title": title,
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "addresses": [{"type": "work", "locality": "Berlin", "country": "DE"}],
        ENTERPRISE: {"department": department},
        "active": true,
    })
}

/// POSTs to `/Users` or `/Groups` with `token`; returns the id.
#[track_caller]
fn create(s: &LmsServer, token: &str, endpoint: &str, body: &Value) -> String {
    let r = s
        .send_as(Some(token), "POST", &s.url(endpoint), Some(body))
        .expect(201);
    r.json["id"].as_str().expect("id").to_string()
}

/// An admin request with `token` that must answer `status`.
#[track_caller]
fn admin(
    s: &LmsServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    status: u16,
) -> Value {
    s.send_as(Some(token), method, &s.admin_url(path), body)
        .expect(status)
        .json
}

/// The failed events of a tenant, newest first.
fn failures(s: &LmsServer, token: &str) -> Vec<Value> {
    admin(
        s,
        token,
        "GET",
        "/admin/v1/events?failed=true&limit=100",
        None,
        200,
    )["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until the tenant's background re-mapping is done.
fn wait_synced(s: &LmsServer, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while admin(s, token, "GET", "/admin/v1/sync", None, 200)["pending"] != 0 {
        assert!(
            Instant::now() < deadline,
            "re-mapping still pending:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Tenant A: six people, two groups, rules, a manual role that differs
/// from the mapped one (a role mismatch), and a refused duplicate.
fn seed_a(s: &LmsServer) -> Value {
    let admin_token = s.admin_token.clone();
    let scim = s.token.clone();
    // `learner` is there from the start.
    for (kind, name) in [
        ("roles", "instructor"),
        ("roles", "admin"),
        ("learningPaths", "Sales Onboarding"),
        ("learningPaths", "Secure Coding"),
        ("learningPaths", "Negotiation Basics"),
        ("learningPaths", "Anti-Bribery"),
        ("learningPaths", "Expense Policy"),
        ("learningPaths", "EMEA Data Protection"),
        ("learningPaths", "Americas Workplace Safety"),
    ] {
        admin(
            s,
            &admin_token,
            "POST",
            &format!("/admin/v1/catalogue/{kind}"),
            Some(&json!({"name": name})),
            201,
        );
    }
    let people = [
        (
            "ann.lee@acme.example",
            "Ann",
            "Lee",
            "Account Executive",
            "Sales",
        ),
        (
            "bob.stone@acme.example",
            "Bob",
            "Stone",
            "Sales Manager",
            "Sales",
        ),
        (
            "carol.diaz@acme.example",
            "Carol",
            "Diaz",
            "Engineer",
            "Engineering",
        ),
        ("dan.wu@acme.example", "Dan", "Wu", "Teacher", "Engineering"),
        (
            "eve.moss@acme.example",
            "Eve",
            "Moss",
            "Accountant",
            "Finance",
        ),
        ("finn.ray@acme.example", "Finn", "Ray", "Analyst", "Finance"),
    ];
    let ids: Vec<String> = people
        .iter()
        .map(|(u, g, f, t, d)| create(s, &scim, "/Users", &user(u, g, f, t, d)))
        .collect();
    let group = |name: &str, members: &[&String]| {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        create(
            s,
            &scim,
            "/Groups",
            &json!({"schemas": [crate::support::GROUP_SCHEMA], "displayName": name, "members": members}),
        )
    };
    let sales = group("Sales", &[&ids[0], &ids[1]]);
    let engineering = group("Engineering", &[&ids[2], &ids[3]]);
    put_body(
        &s.admin_url("/admin/v1/mapping?confirm=true"),
        &admin_token,
        RULES.as_bytes().to_vec(),
    );
    wait_synced(s, &admin_token);

    // Dan is a teacher (mapped role `instructor`) and is given `admin` by
    // hand; his next change reports the mismatch.
    admin(
        s,
        &admin_token,
        "POST",
        &format!("/admin/v1/learners/{}/roles", ids[3]),
        Some(&json!({"name": "admin"})),
        201,
    );
    s.send_as(
        Some(&scim),
        "PATCH",
        &s.url(&format!("/Users/{}", ids[3])),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "Head Teacher"}],
        })),
    )
    .expect(200);
    // A change with old and new values, then a refused duplicate.
    s.send_as(
        Some(&scim),
        "PATCH",
        &s.url(&format!("/Users/{}", ids[0])),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "Senior Account Executive"}],
        })),
    )
    .expect(200);
    // A change the engine refuses: Ann's record stays as it was, and the
    // sync log says why.
    s.send_as(
        Some(&scim),
        "PATCH",
        &s.url(&format!("/Users/{}", ids[0])),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": "perhaps"}],
        })),
    )
    .expect(400);
    s.send_as(
        Some(&scim),
        "POST",
        &s.url("/Users"),
        Some(&user(
            "carol.diaz@acme.example",
            "Carol",
            "Diaz",
            "Engineer",
            "Engineering",
        )),
    )
    .expect(409);

    let failed = failures(s, &admin_token);
    eprintln!(
        "console: tenant A's failures: {}",
        Value::from(failed.clone())
    );
    assert!(!failed.is_empty(), "tenant A has no failed event to find");
    json!({
        "tenant": "default",
        "adminToken": admin_token,
        "learner": {"id": ids[0], "userName": people[0].0, "displayName": "Ann Lee", "team": "Sales"},
        "mismatch": {"id": ids[3], "userName": people[3].0},
        "users": ids,
        "groups": {"Sales": sales, "Engineering": engineering},
        "failures": failed,
    })
}

/// Tenant B: data of its own, with a failure, that A must never see.
fn seed_b(s: &LmsServer) -> Value {
    let t = s.cli_json(&["tenant", "add", "globex", "--json"]);
    let scim = t["scimToken"].as_str().expect("scimToken").to_string();
    let admin_token = t["adminToken"].as_str().expect("adminToken").to_string();
    let zara = create(
        s,
        &scim,
        "/Users",
        &user(
            "zara.quinn@globex.example",
            "Zara",
            "Quinn",
            "Secret Agent",
            "Espionage",
        ),
    );
    s.send_as(
        Some(&scim),
        "POST",
        &s.url("/Users"),
        Some(&user(
            "zara.quinn@globex.example",
            "Zara",
            "Quinn",
            "Secret Agent",
            "Espionage",
        )),
    )
    .expect(409);
    admin(
        s,
        &admin_token,
        "POST",
        "/admin/v1/catalogue/roles",
        Some(&json!({"name": "globex-only-role"})),
        201,
    );
    let failed = failures(s, &admin_token);
    assert!(!failed.is_empty(), "tenant B has no failed event");
    json!({
        "tenant": "globex",
        "adminToken": admin_token,
        "learner": {"id": zara, "userName": "zara.quinn@globex.example", "displayName": "Zara Quinn"},
        "failures": failed,
    })
}

/// A PUT of a raw body (a rules document) with an admin token; it must
/// answer 200.
#[track_caller]
fn put_body(url: &str, token: &str, body: Vec<u8>) {
    let r = reqwest::blocking::Client::new()
        .put(url)
        .bearer_auth(token)
        .body(body)
        .send()
        .expect("request");
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    assert_eq!(status, 200, "PUT {url}: {text}");
}

pub use crate::support::plugins::workspace;

/// The example Rust mapping plugin (`plugin/mappers/example-rust`), built
/// as the end-to-end plugin tests build it.
pub fn example_plugin() -> Vec<u8> {
    crate::support::plugins::build_rust_plugin("example-rust-mapper", "example_rust_mapper.wasm")
}
