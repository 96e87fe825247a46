//! Admin-uploaded mapping plugins, end to end: the real binary runs real
//! components (the hostile WAT fixtures of `tests/mappers/hostile.rs`, and
//! the Rust and Python example plugins) uploaded through the admin API.
//! Install and its refusals, runtime failures that leave every learner as it
//! was and the server serving, disabling after failures in a row, denied and
//! unknown roles, suspensions, rollback and removal, preview and replay, and
//! which tokens the plugin endpoints answer (an admin token: its own tenant's).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[path = "../mappers/hostile.rs"]
pub(crate) mod hostile;

use hostile::{Plugin, build};

use crate::support::{
    ENTERPRISE, GROUP_SCHEMA, LmsServer, Resp, USER_SCHEMA, encode, grants, into_resp, item,
    learner,
};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The default mapping's sources.
const DEFAULT_LEARNER: &str = "default:learner-role@active";
/// What [`Plugin::Teams`] gives every active user.
const TEAMS_LEARNER: &str = "plugin:assign@active";

// ---------------------------------------------------------------------------
// Helpers

/// The admin API client of the tests that send plugins, rules and jobs.
pub(crate) fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            // Installing the Python example compiles an 18 MB component.
            .timeout(Duration::from_secs(600))
            .build()
            .expect("client")
    })
}

/// An admin request whose body is a component, with this bearer token.
fn send_wasm(s: &LmsServer, token: Option<&str>, method: &str, path: &str, body: &[u8]) -> Resp {
    let mut req = client()
        .request(method.parse().expect("method"), s.admin_url(path))
        .header("content-type", "application/wasm")
        .body(body.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    into_resp(req.send().expect("request"))
}

/// An admin request with the tenant's admin token and a component body.
fn admin_wasm(s: &LmsServer, method: &str, path: &str, body: &[u8]) -> Resp {
    send_wasm(s, Some(&s.admin_token), method, path, body)
}

/// Installs `bytes` with the query's options (`confirm=true&fuel=…`);
/// returns the outcome.
#[track_caller]
pub(crate) fn install_bytes(s: &LmsServer, bytes: &[u8], query: &str) -> Value {
    admin_wasm(s, "PUT", &format!("/admin/v1/mapper?{query}"), bytes)
        .expect(200)
        .json
}

#[track_caller]
fn install(s: &LmsServer, p: Plugin, query: &str) -> Value {
    install_bytes(s, &build(p), query)
}

/// `GET /admin/v1/mapper`.
#[track_caller]
pub(crate) fn mapper_state(s: &LmsServer) -> Value {
    s.admin_get("/admin/v1/mapper").expect(200).json
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `pending` of `GET /admin/v1/sync` with this admin token.
#[track_caller]
fn pending_as(s: &LmsServer, admin: &str) -> u64 {
    let r = s
        .send_as(Some(admin), "GET", &s.admin_url("/admin/v1/sync"), None)
        .expect(200);
    r.json["pending"]
        .as_u64()
        .unwrap_or_else(|| panic!("sync status without pending: {}", r.text))
}

/// Polls the tenant's sync status until nothing is pending (60 s at most).
#[track_caller]
pub(crate) fn wait_synced(s: &LmsServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending_as(s, &s.admin_token) > 0 {
        assert!(
            Instant::now() < deadline,
            "background re-mapping still pending after 60 s\nserver log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /admin/v1/events?{query}`, newest first.
#[track_caller]
fn events(s: &LmsServer, query: &str) -> Vec<Value> {
    let r = s
        .admin_get(&format!("/admin/v1/events?{query}"))
        .expect(200);
    r.json["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array: {}", r.text))
        .clone()
}

/// The failed `map` events of one user, newest first.
pub(crate) fn map_failures(s: &LmsServer, id: &str) -> Vec<Value> {
    events(s, &format!("failed=true&user={id}&limit=1000"))
        .into_iter()
        .filter(|e| e["action"] == "map")
        .collect()
}

/// Every failed event of the tenant.
fn all_failures(s: &LmsServer) -> Vec<Value> {
    events(s, "failed=true&limit=1000")
}

/// The tenant's events with this action (`mapper-install`, …).
pub(crate) fn actions(s: &LmsServer, action: &str) -> Vec<Value> {
    events(s, "limit=1000")
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect()
}

pub(crate) fn patch_ops(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// A SCIM change no mapping looks at, so that mapping visits the user.
#[track_caller]
fn touch(s: &LmsServer, id: &str, title: &str) {
    s.patch(
        &format!("/Users/{id}"),
        &patch_ops(json!([{"op": "replace", "path": "title", "value": title}])),
    )
    .expect(200);
}

/// Adds a role, team or learning path to the catalogue.
#[track_caller]
fn catalogue_add(s: &LmsServer, kind: &str, name: &str) {
    s.admin(
        "POST",
        &format!("/admin/v1/catalogue/{kind}"),
        Some(&json!({"name": name})),
    )
    .expect(201);
}

/// What a learner holds: status, roles, teams and learning paths.
pub(crate) type Held = (
    String,
    Vec<(String, Vec<String>)>,
    Vec<(String, Vec<String>)>,
    Vec<(String, Vec<String>)>,
);

#[track_caller]
pub(crate) fn held(s: &LmsServer, id: &str) -> Held {
    let l = learner(s, id);
    (
        l["status"].as_str().unwrap_or_default().to_string(),
        grants(&l, "roles"),
        grants(&l, "teams"),
        grants(&l, "learningPaths"),
    )
}

/// `ann` in the group `Physics`: returns (ann, group id).
fn ann_in_physics(s: &LmsServer) -> (String, String) {
    let ann = s.create_user("ann");
    let g = s.create_group("Physics", &[&ann]);
    (ann, g)
}

/// What [`Plugin::Teams`] gives ann in Physics.
#[track_caller]
fn assert_teams_mapped(s: &LmsServer, ann: &str, g: &str) {
    let l = learner(s, ann);
    assert_eq!(l["status"], "active", "{l}");
    assert_eq!(
        grants(&l, "roles"),
        [item("learner", &[TEAMS_LEARNER])],
        "{l}"
    );
    assert_eq!(
        grants(&l, "teams"),
        [item("Physics", &[&format!("plugin:assign@group:{g}")])],
        "{l}"
    );
    assert_eq!(grants(&l, "learningPaths"), [], "{l}");
}

/// What the default mapping gives ann in Physics.
#[track_caller]
fn assert_default_mapped(s: &LmsServer, ann: &str, g: &str) {
    let l = learner(s, ann);
    assert_eq!(
        grants(&l, "roles"),
        [item("learner", &[DEFAULT_LEARNER])],
        "{l}"
    );
    assert_eq!(
        grants(&l, "teams"),
        [item(
            "Physics",
            &[&format!("default:groups-as-teams@group:{g}")]
        )],
        "{l}"
    );
}

#[track_caller]
pub(crate) fn healthz(s: &LmsServer) {
    let r = s
        .send_as(None, "GET", &format!("{}/healthz", s.origin()), None)
        .expect(200);
    assert_eq!(r.text, "ok");
}

/// A second tenant, added on the same database while the first tenant's
/// plugin misbehaves, provisions and maps as usual.
#[track_caller]
pub(crate) fn second_tenant_works(s: &LmsServer) {
    other_tenant_works(s, "second");
}

/// [`second_tenant_works`] with a tenant of this name, so that a server can
/// check it more than once.
#[track_caller]
pub(crate) fn other_tenant_works(s: &LmsServer, name: &str) {
    let t = s.cli_json(&["tenant", "add", name, "--json"]);
    let scim = t["scimToken"].as_str().expect("scimToken").to_string();
    let admin = t["adminToken"].as_str().expect("adminToken").to_string();
    let started = Instant::now();
    let r = s
        .send_as(
            Some(&scim),
            "POST",
            &s.url("/Users"),
            Some(&json!({"schemas": [USER_SCHEMA], "userName": "zoe", "active": true})),
        )
        .expect(201);
    let id = r.json["id"].as_str().expect("id").to_string();
    s.send_as(
        Some(&scim),
        "PATCH",
        &s.url(&format!("/Users/{id}")),
        Some(&patch_ops(
            json!([{"op": "replace", "path": "title", "value": "Chemist"}]),
        )),
    )
    .expect(200);
    let r = s
        .send_as(Some(&scim), "GET", &s.url(&format!("/Users/{id}")), None)
        .expect(200);
    assert_eq!(r.json["title"], "Chemist", "{}", r.text);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    let r = s
        .send_as(
            Some(&admin),
            "GET",
            &s.admin_url(&format!("/admin/v1/learners/{id}")),
            None,
        )
        .expect(200);
    assert_eq!(
        grants(&r.json, "roles"),
        [item("learner", &[DEFAULT_LEARNER])],
        "{}",
        r.text
    );
    let m = s
        .send_as(Some(&admin), "GET", &s.admin_url("/admin/v1/mapper"), None)
        .expect(200);
    assert_eq!(m.json["active"], false, "{}", m.text);
}

// ---------------------------------------------------------------------------
// a. Install

#[test]
fn mapper_teams_plugin_maps_users_and_shows_its_hash() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    assert_default_mapped(&s, &ann, &g);
    let bytes = build(Plugin::Teams);
    let sha = sha256(&bytes);

    // Nobody loses a role, team or path by name: no confirmation needed.
    let outcome = install_bytes(&s, &bytes, "");
    let installed = &outcome["installed"];
    assert_eq!(installed["version"], 1, "{outcome}");
    assert_eq!(installed["sha256"], sha.as_str(), "{outcome}");
    assert_eq!(outcome["preview"]["users"], 1, "{outcome}");
    assert_eq!(outcome["preview"]["losing"], 0, "{outcome}");
    assert_eq!(outcome["preview"]["failed"], 0, "{outcome}");

    // A PATCH maps the user with the plugin, at once.
    touch(&s, &ann, "Physicist");
    assert_teams_mapped(&s, &ann, &g);
    // So does a creation.
    let bob = s.create_user("bob");
    let l = learner(&s, &bob);
    assert_eq!(
        grants(&l, "roles"),
        [item("learner", &[TEAMS_LEARNER])],
        "{l}"
    );
    assert_eq!(grants(&l, "teams"), [], "{l}");
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);

    let m = mapper_state(&s);
    assert_eq!(m["active"], true, "{m}");
    let current = &m["current"];
    assert_eq!(current["version"], 1, "{m}");
    assert_eq!(current["sha256"], sha.as_str(), "{m}");
    assert_eq!(current["size"], bytes.len(), "{m}");
    assert_eq!(current["failures"], 0, "{m}");
    assert_eq!(current["installed_by"], "admin-api", "{m}");
    assert!(current["installed_at"].as_str().is_some(), "{m}");
    assert!(current.get("disabled_at").is_none(), "{m}");
    assert_eq!(current["settings"], "{}", "{m}");
    assert_eq!(current["fuel"], 10_000_000, "{m}");
    assert_eq!(current["memory_bytes"], 16 << 20, "{m}");
    assert_eq!(m["history"], json!([]), "{m}");

    let installs = actions(&s, "mapper-install");
    assert_eq!(installs.len(), 1, "{installs:?}");
    let e = &installs[0];
    assert_eq!(e["status"], "success", "{e}");
    assert_eq!(e["resourceType"], "Mapper", "{e}");
    assert_eq!(e["resourceId"], "1", "{e}");
    assert_eq!(e["resourceName"], &sha[..12], "{e}");
    assert_eq!(e["changeId"], outcome["changeId"], "{e}");
    assert_eq!(
        e["changes"],
        json!([{"name": "plugin", "old": null, "new": sha}]),
        "{e}"
    );
    assert!(all_failures(&s).is_empty(), "{:?}", all_failures(&s));
}

// ---------------------------------------------------------------------------
// b. Install refusals

#[test]
fn mapper_install_refusals_install_nothing() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    let refused = |p: Plugin, status: u16, says: &[&str]| {
        let r = admin_wasm(&s, "PUT", "/admin/v1/mapper?confirm=true", &build(p)).expect(status);
        let detail = r.json["detail"].as_str().unwrap_or_default();
        for words in says {
            assert!(detail.contains(words), "{p:?}: {detail}");
        }
    };
    refused(
        Plugin::ImportsFilesystem,
        422,
        &[hostile::FILESYSTEM_IMPORT, "refused"],
    );
    refused(
        Plugin::ImportsSockets,
        422,
        &[hostile::SOCKETS_IMPORT, "refused"],
    );
    refused(
        Plugin::NotAComponent,
        422,
        &["not a WebAssembly component", "core WebAssembly module"],
    );
    refused(Plugin::WrongWorld, 422, &["`mapper` world", "assign"]);
    // Preview and replay check the upload the same way.
    let r = admin_wasm(
        &s,
        "POST",
        "/admin/v1/mapper/preview",
        &build(Plugin::ImportsSockets),
    )
    .expect(422);
    assert!(r.text.contains(hostile::SOCKETS_IMPORT), "{}", r.text);

    // The identity provider's SCIM token, or none, opens nothing.
    let teams = build(Plugin::Teams);
    let r = send_wasm(
        &s,
        Some(&s.token),
        "PUT",
        "/admin/v1/mapper?confirm=true",
        &teams,
    )
    .expect(401);
    assert!(r.header("www-authenticate").is_some(), "{:?}", r.headers);
    send_wasm(&s, None, "PUT", "/admin/v1/mapper?confirm=true", &teams).expect(401);
    s.send_as(
        Some(&s.token),
        "GET",
        &s.admin_url("/admin/v1/mapper"),
        None,
    )
    .expect(401);

    // Bad options.
    let bad = |query: &str, says: &str| {
        let r = admin_wasm(&s, "PUT", &format!("/admin/v1/mapper?{query}"), &teams).expect(400);
        assert!(r.text.contains(says), "{query}: {}", r.text);
    };
    bad("settings=%5B1%5D", "JSON object");
    bad("settings=%7Bnope", "not JSON");
    bad("fuel=0", "--fuel");
    bad("fuel=1000000001", "--fuel");
    bad("memoryMib=257", "--memory-mib");
    bad("maxFailures=0", "--max-failures");
    bad("fuel=lots", "'fuel'");
    bad("confirm=maybe", "'confirm'");
    admin_wasm(&s, "PUT", "/admin/v1/mapper", b"").expect(400);

    // Nothing is installed, logged or queued; the learner is untouched.
    let m = mapper_state(&s);
    assert_eq!(m["active"], false, "{m}");
    assert_eq!(m["current"], Value::Null, "{m}");
    assert_eq!(m["history"], json!([]), "{m}");
    let logged: Vec<Value> = events(&s, "limit=1000")
        .into_iter()
        .filter(|e| e["resourceType"] == "Mapper")
        .collect();
    assert!(logged.is_empty(), "{logged:?}");
    assert_eq!(pending_as(&s, &s.admin_token), 0);
    touch(&s, &ann, "Physicist");
    assert_default_mapped(&s, &ann, &g);
}

// ---------------------------------------------------------------------------
// c. Plugins that misbehave at run time

/// Maps ann with Teams, installs `p`, and changes ann: the request succeeds,
/// ann keeps what Teams gave her, the failure is logged with its reason and
/// the plugin's hash, and the server (and another tenant) carry on.
fn misbehaving_plugin_changes_nothing(p: Plugin, query: &str, reason: &str) {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    install(&s, Plugin::Teams, "");
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);
    let before = held(&s, &ann);

    let bytes = build(p);
    let sha = sha256(&bytes);
    let outcome = install_bytes(&s, &bytes, query);
    // The preview ran it over ann and saw it fail, counting nothing.
    assert_eq!(outcome["preview"]["failed"], 1, "{outcome}");
    assert_eq!(outcome["preview"]["failures"][reason], 1, "{outcome}");
    assert_eq!(outcome["preview"]["losing"], 0, "{outcome}");
    wait_synced(&s);
    let after_drain = map_failures(&s, &ann).len();
    assert_eq!(after_drain, 1, "the re-mapping after install fails once");

    let started = Instant::now();
    s.patch(
        &format!("/Users/{ann}"),
        &patch_ops(json!([{"op": "replace", "path": "title", "value": "Physicist"}])),
    )
    .expect(200);
    let took = started.elapsed();
    eprintln!("{p:?}: PATCH answered in {took:?}");
    assert_eq!(
        s.get(&format!("/Users/{ann}")).expect(200).json["title"],
        "Physicist"
    );
    // Last known good.
    assert_eq!(held(&s, &ann), before, "{p:?}");
    let failures = map_failures(&s, &ann);
    assert_eq!(failures.len(), after_drain + 1, "{failures:?}");
    let f = &failures[0];
    assert_eq!(f["reason"], reason, "{f}");
    assert_eq!(f["resourceType"], "Learner", "{f}");
    assert_eq!(f["resourceName"], "ann", "{f}");
    let detail = f["detail"].as_str().expect("detail");
    assert!(
        detail.contains(&format!("plugin {}", &sha[..12])),
        "{p:?}: {detail}"
    );
    let m = mapper_state(&s);
    assert_eq!(m["active"], true, "{m}");
    assert_eq!(m["current"]["sha256"], sha.as_str(), "{m}");
    assert_eq!(m["current"]["failures"], 2, "{m}");

    healthz(&s);
    second_tenant_works(&s);
    // The misbehaving plugin's tenant serves reads and writes too.
    let bob = s.create_user("bob");
    s.get(&format!("/Users/{bob}")).expect(200);
    healthz(&s);
}

#[test]
fn mapper_infinite_loop_runs_out_of_fuel_and_changes_nothing() {
    // A million fuel units burn in milliseconds: fuel, not the 100 ms
    // deadline, stops it even on a loaded machine.
    misbehaving_plugin_changes_nothing(
        Plugin::InfiniteLoop,
        "confirm=true&fuel=1000000",
        "plugin-fuel",
    );
}

#[test]
fn mapper_memory_bomb_hits_the_cap_and_changes_nothing() {
    misbehaving_plugin_changes_nothing(Plugin::MemoryBomb, "confirm=true", "plugin-memory");
}

#[test]
fn mapper_huge_output_is_refused_and_changes_nothing() {
    misbehaving_plugin_changes_nothing(
        Plugin::HugeOutput,
        "confirm=true",
        "plugin-output-too-large",
    );
}

#[test]
fn mapper_trap_changes_nothing() {
    misbehaving_plugin_changes_nothing(Plugin::Trap, "confirm=true", "plugin-trap");
}

#[test]
fn mapper_stack_overflow_is_a_trap_and_changes_nothing() {
    misbehaving_plugin_changes_nothing(Plugin::StackOverflow, "confirm=true", "plugin-trap");
}

// ---------------------------------------------------------------------------
// d. Disabled after failures in a row

#[test]
fn mapper_failing_plugin_is_disabled_and_the_default_mapping_returns() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    install(&s, Plugin::Teams, "");
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);
    let before = held(&s, &ann);

    install(&s, Plugin::Trap, "confirm=true&maxFailures=3");
    wait_synced(&s);
    // The re-mapping after install was the first failure.
    let m = mapper_state(&s);
    assert_eq!(m["current"]["failures"], 1, "{m}");
    assert_eq!(m["current"]["max_failures"], 3, "{m}");
    assert_eq!(m["active"], true, "{m}");

    touch(&s, &ann, "one");
    let m = mapper_state(&s);
    assert_eq!(m["current"]["failures"], 2, "{m}");
    assert_eq!(m["active"], true, "{m}");
    assert!(actions(&s, "mapper-disabled").is_empty());
    assert_eq!(held(&s, &ann), before);

    // The third failure in a row disables it and its request succeeds.
    // (What ann holds right after it is not asserted: the re-mapping by the
    // default mapping starts as soon as the request commits.)
    touch(&s, &ann, "two");
    let m = mapper_state(&s);
    assert_eq!(m["active"], false, "{m}");
    let current = &m["current"];
    assert_eq!(current["failures"], 3, "{m}");
    assert!(current["disabled_at"].as_str().is_some(), "{m}");
    let why = current["disabled_reason"]
        .as_str()
        .expect("disabled_reason");
    assert!(
        why.contains("3 calls in a row failed") && why.contains("plugin-trap"),
        "{why}"
    );
    let disabled = actions(&s, "mapper-disabled");
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    let e = &disabled[0];
    assert_eq!(e["status"], "failure", "{e}");
    assert_eq!(e["reason"], "plugin-disabled", "{e}");
    assert_eq!(e["resourceType"], "Mapper", "{e}");
    assert_eq!(e["resourceId"], "2", "{e}");
    assert_eq!(
        e["resourceName"],
        &sha256(&build(Plugin::Trap))[..12],
        "{e}"
    );

    // Everyone is re-mapped by the default mapping in the background.
    wait_synced(&s);
    assert_default_mapped(&s, &ann, &g);
    // The plugin runs no more: changes map by the default mapping and no
    // failure is added.
    let failed = map_failures(&s, &ann).len();
    assert_eq!(failed, 3);
    touch(&s, &ann, "three");
    let bob = s.create_user("bob");
    assert_eq!(
        grants(&learner(&s, &bob), "roles"),
        [item("learner", &[DEFAULT_LEARNER])]
    );
    assert_eq!(map_failures(&s, &ann).len(), failed);
    assert_eq!(mapper_state(&s)["current"]["failures"], 3);

    // Installing a plugin again puts a plugin back in force.
    install(&s, Plugin::Teams, "");
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);
    assert_eq!(mapper_state(&s)["active"], true);
}

// ---------------------------------------------------------------------------
// e. Roles the plugin may not, or cannot, grant

#[test]
fn mapper_denied_role_is_refused_whole() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    // In the catalogue: only the policy stands in the way.
    catalogue_add(&s, "roles", "admin");
    install(&s, Plugin::Teams, "");
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);
    let before = held(&s, &ann);
    let policy = s.cli_json(&[
        "tenant",
        "policy",
        "default",
        "--plugin-deny-role",
        "admin",
        "--json",
    ]);
    assert_eq!(policy["plugin_denied_roles"], json!(["admin"]), "{policy}");

    let outcome = install(&s, Plugin::GrantsAdmin, "confirm=true");
    assert_eq!(
        outcome["preview"]["failures"]["plugin-forbidden-grant"], 1,
        "{outcome}"
    );
    wait_synced(&s);
    touch(&s, &ann, "Physicist");
    let l = learner(&s, &ann);
    assert!(
        !grants(&l, "roles").iter().any(|(name, _)| name == "admin"),
        "{l}"
    );
    assert_eq!(held(&s, &ann), before);
    let failures = map_failures(&s, &ann);
    assert_eq!(failures.len(), 2, "{failures:?}");
    for f in &failures {
        assert_eq!(f["reason"], "plugin-forbidden-grant", "{f}");
        let detail = f["detail"].as_str().expect("detail");
        assert!(detail.contains("'admin'"), "{detail}");
        let sha = sha256(&build(Plugin::GrantsAdmin));
        assert!(detail.contains(&sha[..12]), "{detail}");
    }
    let m = mapper_state(&s);
    assert_eq!(m["active"], true, "{m}");

    // Without the denial the same plugin grants it (the output is the
    // whole answer: learner and Physics go).
    s.cli_json(&[
        "tenant",
        "policy",
        "default",
        "--plugin-deny-none",
        "--json",
    ]);
    touch(&s, &ann, "Chemist");
    let l = learner(&s, &ann);
    assert_eq!(
        grants(&l, "roles"),
        [item("admin", &["plugin:assign@everyone"])],
        "{l}"
    );
}

/// An output the engine refuses (here a denied role) is a failure of the
/// plugin like a trap, so a plugin whose every answer is refused is disabled
/// after `maxFailures` of them in a row.
#[test]

fn mapper_refused_outputs_in_a_row_disable_the_plugin() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    catalogue_add(&s, "roles", "admin");
    s.cli_json(&[
        "tenant",
        "policy",
        "default",
        "--plugin-deny-role",
        "admin",
        "--json",
    ]);
    install(&s, Plugin::GrantsAdmin, "confirm=true&maxFailures=3");
    wait_synced(&s);
    touch(&s, &ann, "one");
    touch(&s, &ann, "two");
    assert_eq!(map_failures(&s, &ann).len(), 3);
    let m = mapper_state(&s);
    assert_eq!(m["current"]["failures"], 3, "{m}");
    assert_eq!(m["active"], false, "{m}");
    assert_eq!(actions(&s, "mapper-disabled").len(), 1);
    wait_synced(&s);
    assert_default_mapped(&s, &ann, &g);
}

#[test]
fn mapper_unknown_role_is_not_granted_and_the_learner_keeps_its_state() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    install(&s, Plugin::Teams, "");
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);
    let before = held(&s, &ann);
    let sha = sha256(&build(Plugin::UnknownRole));

    // The preview says so before anything is installed.
    let outcome = install(&s, Plugin::UnknownRole, "confirm=true");
    let p = &outcome["preview"];
    assert_eq!(p["failures"]["plugin-unknown-item"], 1, "{outcome}");
    assert_eq!(
        p["items"],
        json!([{"kind": "role", "name": "wizard", "gained": 0, "lost": 0, "skipped": 1}]),
        "{outcome}"
    );
    assert_eq!(p["losing"], 0, "{outcome}");
    wait_synced(&s);

    // `wizard` is not in the catalogue: nothing the plugin answered is
    // applied, the request succeeds, and ann keeps all she had.
    touch(&s, &ann, "Wizard");
    assert_eq!(held(&s, &ann), before);
    let failures = map_failures(&s, &ann);
    assert_eq!(failures.len(), 2, "{failures:?}");
    for f in &failures {
        assert_eq!(f["reason"], "plugin-unknown-item", "{f}");
        let detail = f["detail"].as_str().expect("detail");
        assert!(
            detail.contains("'wizard'") && detail.contains(&sha[..12]),
            "{detail}"
        );
    }
    let m = mapper_state(&s);
    assert_eq!(m["active"], true, "{m}");
    eprintln!("failures counted: {}", m["current"]["failures"]);

    // Once the catalogue has it, the next mapping applies the whole answer
    // (which no longer names the learner role or the team).
    catalogue_add(&s, "roles", "wizard");
    touch(&s, &ann, "Archmage");
    let l = learner(&s, &ann);
    assert_eq!(
        grants(&l, "roles"),
        [item("wizard", &["plugin:assign@magic"])],
        "{l}"
    );
    assert_eq!(grants(&l, "teams"), [], "{l}");
}

// ---------------------------------------------------------------------------
// f. Suspensions never wait for a plugin

#[test]
fn mapper_suspension_does_not_run_the_plugin() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    install(&s, Plugin::Teams, "");
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);
    install(&s, Plugin::InfiniteLoop, "confirm=true&fuel=1000000");
    wait_synced(&s);
    let failed = all_failures(&s).len();
    assert_eq!(failed, 1, "the re-mapping after install");

    s.patch(
        &format!("/Users/{ann}"),
        &patch_ops(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .expect(200);
    let l = learner(&s, &ann);
    assert_eq!(l["status"], "suspended", "{l}");
    // Inactive users hold nothing mapped, whatever the plugin would say,
    // and it was not asked.
    assert_eq!(grants(&l, "roles"), [], "{l}");
    assert_eq!(grants(&l, "teams"), [], "{l}");
    assert_eq!(all_failures(&s).len(), failed);
    assert_eq!(mapper_state(&s)["current"]["failures"], 1);
    wait_synced(&s);
    assert_eq!(learner(&s, &ann)["status"], "suspended");

    // Reactivated under the looping plugin: active again, and the failed
    // mapping grants nothing.
    s.patch(
        &format!("/Users/{ann}"),
        &patch_ops(json!([{"op": "replace", "path": "active", "value": true}])),
    )
    .expect(200);
    let l = learner(&s, &ann);
    assert_eq!(l["status"], "active", "{l}");
    assert_eq!(grants(&l, "roles"), [], "{l}");
    assert_eq!(map_failures(&s, &ann)[0]["reason"], "plugin-fuel");
}

// ---------------------------------------------------------------------------
// g. Rollback and removal

#[test]
fn mapper_rollback_and_removal() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    let teams = sha256(&build(Plugin::Teams));
    let trap = sha256(&build(Plugin::Trap));
    // Nothing to roll back or remove yet.
    s.admin("POST", "/admin/v1/mapper/rollback?confirm=true", None)
        .expect(409);
    s.admin("DELETE", "/admin/v1/mapper?confirm=true", None)
        .expect(409);

    assert_eq!(install(&s, Plugin::Teams, "")["installed"]["version"], 1);
    assert_eq!(
        install(&s, Plugin::Trap, "confirm=true&fuel=2000000")["installed"]["version"],
        2
    );
    wait_synced(&s);
    let r = s
        .admin("POST", "/admin/v1/mapper/rollback?confirm=true", None)
        .expect(200);
    let v3 = &r.json["installed"];
    assert_eq!(v3["version"], 3, "{}", r.text);
    assert_eq!(v3["sha256"], teams.as_str(), "{}", r.text);
    // Version 1's limits come back with it.
    assert_eq!(v3["fuel"], 10_000_000, "{}", r.text);
    let m = mapper_state(&s);
    assert_eq!(m["active"], true, "{m}");
    assert_eq!(m["current"]["sha256"], teams.as_str(), "{m}");
    let history: Vec<(Value, Value)> = m["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|v| (v["version"].clone(), v["sha256"].clone()))
        .collect();
    assert_eq!(
        history,
        [(json!(2), json!(trap)), (json!(1), json!(teams))],
        "{m}"
    );
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);
    touch(&s, &ann, "Physicist");
    assert_teams_mapped(&s, &ann, &g);

    // Removal: the default mapping applies again, after the drain.
    let r = s
        .admin("DELETE", "/admin/v1/mapper?confirm=true", None)
        .expect(200);
    assert_eq!(r.json["installed"]["version"], 4, "{}", r.text);
    assert!(r.json["installed"].get("sha256").is_none(), "{}", r.text);
    let m = mapper_state(&s);
    assert_eq!(m["active"], false, "{m}");
    assert_eq!(m["current"]["version"], 4, "{m}");
    assert!(m["current"].get("sha256").is_none(), "{m}");
    wait_synced(&s);
    assert_default_mapped(&s, &ann, &g);
    let bob = s.create_user("bob");
    assert_eq!(
        grants(&learner(&s, &bob), "roles"),
        [item("learner", &[DEFAULT_LEARNER])]
    );
    // Nothing left to remove.
    s.admin("DELETE", "/admin/v1/mapper?confirm=true", None)
        .expect(409);

    // The command line shows the same.
    let shown = s.cli_json(&["mapper", "show", "--tenant", "default", "--json"]);
    assert_eq!(shown, mapper_state(&s));
    let out = s.cli(&["mapper", "show", "--tenant", "default"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("Version 4: no plugin"), "{text}");
    assert!(text.contains(&teams), "{text}");

    let logged: Vec<String> = events(&s, "limit=1000")
        .into_iter()
        .filter(|e| e["resourceType"] == "Mapper")
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        logged,
        [
            "mapper-remove",
            "mapper-rollback",
            "mapper-install",
            "mapper-install"
        ]
    );
}

// ---------------------------------------------------------------------------
// h. Preview

#[test]
fn mapper_preview_applies_nothing() {
    let s = LmsServer::start();
    // Rules without groups as teams: the plugin would add the team.
    let r = client()
        .put(s.admin_url("/admin/v1/mapping?confirm=true"))
        .bearer_auth(&s.admin_token)
        .header("content-type", "application/toml")
        .body("version = 1\n")
        .send()
        .expect("request");
    into_resp(r).expect(200);
    let (ann, _) = ann_in_physics(&s);
    let bob = s.create_user("bob");
    wait_synced(&s);
    let (ann_before, bob_before) = (held(&s, &ann), held(&s, &bob));
    assert_eq!(ann_before.2, [], "the rules make no teams");

    let r = admin_wasm(
        &s,
        "POST",
        "/admin/v1/mapper/preview",
        &build(Plugin::Teams),
    )
    .expect(200);
    let p = &r.json;
    assert_eq!(p["users"], 2, "{p}");
    assert_eq!(p["gaining"], 1, "{p}");
    assert_eq!(p["losing"], 0, "{p}");
    assert_eq!(p["failed"], 0, "{p}");
    let diffs = p["differences"].as_array().expect("differences");
    assert_eq!(diffs.len(), 1, "{p}");
    assert_eq!(diffs[0]["id"], ann.as_str(), "{p}");
    assert_eq!(
        diffs[0]["gains"],
        json!([{"kind": "team", "name": "Physics"}]),
        "{p}"
    );
    // A failing candidate's preview lists its failures.
    let r = admin_wasm(&s, "POST", "/admin/v1/mapper/preview", &build(Plugin::Trap)).expect(200);
    assert_eq!(r.json["failed"], 2, "{}", r.text);
    assert_eq!(r.json["failures"]["plugin-trap"], 2, "{}", r.text);

    // Nothing changed, nothing is installed, queued or logged.
    assert_eq!(held(&s, &ann), ann_before);
    assert_eq!(held(&s, &bob), bob_before);
    touch(&s, &ann, "Physicist");
    assert_eq!(held(&s, &ann), ann_before);
    let m = mapper_state(&s);
    assert_eq!(m["active"], false, "{m}");
    assert_eq!(m["current"], Value::Null, "{m}");
    assert_eq!(pending_as(&s, &s.admin_token), 0);
    assert!(all_failures(&s).is_empty(), "{:?}", all_failures(&s));
    assert!(actions(&s, "mapper-install").is_empty());
}

// ---------------------------------------------------------------------------
// i. Replay

#[test]
fn mapper_replay_runs_failed_calls_against_a_new_build() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    let bob = s.create_user("bob");
    install(&s, Plugin::Trap, "confirm=true");
    wait_synced(&s);
    touch(&s, &ann, "Physicist");
    let kept = map_failures(&s, &ann).len() + map_failures(&s, &bob).len();
    assert_eq!(kept, 3);

    let r = admin_wasm(&s, "POST", "/admin/v1/mapper/replay", &build(Plugin::Teams)).expect(200);
    let runs = r.json.as_array().expect("a list of runs");
    assert_eq!(runs.len(), kept, "{}", r.text);
    for run in runs {
        assert_eq!(run["failure"], Value::Null, "{run}");
        assert!(
            run["before"]
                .as_str()
                .is_some_and(|b| b.starts_with("plugin-trap: ")),
            "{run}"
        );
        let grants: Vec<&str> = run["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .map(|g| g.as_str().expect("grant"))
            .collect();
        let id = run["userId"].as_str().expect("userId");
        if id == ann {
            assert_eq!(run["userName"], "ann", "{run}");
            assert_eq!(
                grants,
                [
                    "role:learner (active)".to_string(),
                    format!("team:Physics (group:{g})")
                ],
                "{run}"
            );
        } else {
            assert_eq!(id, bob, "{run}");
            assert_eq!(grants, ["role:learner (active)"], "{run}");
        }
    }
    // The failing build fails them all again; nothing is installed by a
    // replay.
    let r = admin_wasm(&s, "POST", "/admin/v1/mapper/replay", &build(Plugin::Trap)).expect(200);
    let runs = r.json.as_array().expect("a list of runs");
    assert_eq!(runs.len(), kept);
    assert!(
        runs.iter().all(|r| r["failure"]
            .as_str()
            .is_some_and(|f| f.starts_with("plugin-trap: "))
            && r["grants"] == json!([])),
        "{}",
        r.text
    );
    let m = mapper_state(&s);
    assert_eq!(
        m["current"]["sha256"],
        sha256(&build(Plugin::Trap)).as_str(),
        "{m}"
    );
    assert_eq!(m["history"], json!([]), "{m}");
}

// ---------------------------------------------------------------------------
// j. The example plugins

pub(crate) use crate::support::plugins::{build_rust_plugin, workspace};

fn samples() -> PathBuf {
    workspace().join("plugin/mappers/example-rust/samples")
}

/// Builds the Rust example (seconds when warm, a minute or two cold).
fn rust_example() -> Vec<u8> {
    build_rust_plugin("example-rust-mapper", "example_rust_mapper.wasm")
}

pub(crate) fn modified(p: &Path) -> SystemTime {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A Python plugin's component, built by `build.sh` in `dir` when missing
/// or older than `sources`; `None` when the script says (status 3) that
/// componentize-py cannot be installed here.
pub(crate) fn build_python_plugin(dir: &Path, sources: &[PathBuf]) -> Option<Vec<u8>> {
    let wasm = dir.join("mapper.wasm");
    let built = wasm.exists().then(|| modified(&wasm));
    if built.is_none_or(|b| sources.iter().any(|s| modified(s) > b)) {
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(dir.join("build.sh"))
            .current_dir(dir)
            .output()
            .expect("run build.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(3) {
            eprintln!("componentize-py cannot be installed here:\n{stderr}");
            return None;
        }
        assert!(
            out.status.success(),
            "{}/build.sh failed:\n{}\n{stderr}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
        );
        eprintln!("{} built in {:?}", dir.display(), started.elapsed());
    }
    Some(std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display())))
}

/// The Python example's component, built by its `build.sh` when missing or
/// older than its sources.
fn python_example() -> Vec<u8> {
    let dir = workspace().join("plugin/mappers/example-python");
    let sources = [
        dir.join("app.py"),
        dir.join("policy.py"),
        dir.join("build.sh"),
        workspace().join("wit/mapper/mapper.wit"),
    ];
    build_python_plugin(&dir, &sources).expect(
        "componentize-py could not be installed; see plugin/mappers/example-python/build.sh",
    )
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const SAMPLES: [&str; 4] = [
    "bjensen.json",
    "mchen.json",
    "contractor.json",
    "rdiaz.json",
];

/// Installs an example plugin with the samples' settings over the sample
/// users, and checks every learner against `expected.json`.
fn example_plugin_maps_the_samples(wasm: &[u8], options: &str) {
    let s = LmsServer::start();
    catalogue_add(&s, "roles", "manager");
    for path in [
        "Secure Coding",
        "Sales Onboarding",
        "Negotiation Basics",
        "Anti-Bribery",
        "Expense Policy",
        "EMEA Data Protection",
        "Americas Workplace Safety",
    ] {
        catalogue_add(&s, "learningPaths", path);
    }

    // The sample users as the identity provider would send them.
    let mut ids = Vec::new();
    // Their groups by the sample's group id: (name, externalId, members).
    let mut groups: std::collections::BTreeMap<String, (String, Option<String>, Vec<String>)> =
        Default::default();
    for sample in SAMPLES {
        let u = read_json(&samples().join(sample));
        let mut body = u["scim-json"].clone();
        let obj = body.as_object_mut().expect("scim-json object");
        obj.remove("id");
        obj.remove("meta");
        let r = s.post("/Users", &body).expect(201);
        let id = r.json["id"].as_str().expect("id").to_string();
        for grp in u["groups"].as_array().expect("groups") {
            // A SCIM group needs a display name; the nameless one grants
            // nothing.
            let Some(name) = grp["display-name"].as_str() else {
                continue;
            };
            let key = grp["id"].as_str().expect("group id").to_string();
            let external = grp["external-id"].as_str().map(str::to_string);
            groups
                .entry(key)
                .or_insert_with(|| (name.to_string(), external, Vec::new()))
                .2
                .push(id.clone());
        }
        ids.push(id);
    }
    // A plugin sees a user's groups ordered by group id, and the policy
    // takes the first manager group as the reason: the server's ids must
    // sort like the sample's (they are random: create again until they do).
    for attempt in 0.. {
        assert!(attempt < 40, "group ids never sorted like the samples'");
        let created: Vec<String> = groups
            .values()
            .map(|(name, external, members)| {
                let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
                let mut body =
                    json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members});
                if let Some(e) = external {
                    body["externalId"] = json!(e);
                }
                let r = s.post("/Groups", &body).expect(201);
                r.json["id"].as_str().expect("id").to_string()
            })
            .collect();
        let members: Vec<&Vec<String>> = groups.values().map(|(_, _, m)| m).collect();
        let sorted = (0..created.len()).all(|i| {
            (i + 1..created.len()).all(|j| {
                created[i] < created[j] || !members[i].iter().any(|m| members[j].contains(m))
            })
        });
        if sorted {
            break;
        }
        for id in &created {
            s.delete(&format!("/Groups/{id}")).expect(204);
        }
    }
    wait_synced(&s);
    let contractor = &ids[2];
    let contractor_before = held(&s, contractor);

    let settings = std::fs::read_to_string(samples().join("settings.json")).expect("settings");
    let query = format!("settings={}&{options}", encode(settings.trim()));
    // The plugin takes the default mapping's group teams away: more than
    // the 5% threshold of learners lose something.
    let r = admin_wasm(&s, "PUT", &format!("/admin/v1/mapper?{query}"), wasm).expect(409);
    assert!(r.json["preview"]["losing"].as_u64() > Some(0), "{}", r.text);
    assert_eq!(mapper_state(&s)["current"], Value::Null);

    let started = Instant::now();
    let outcome = install_bytes(&s, wasm, &format!("{query}&confirm=true"));
    eprintln!("installed in {:?}", started.elapsed());
    let preview = &outcome["preview"];
    assert_eq!(preview["users"], 4, "{outcome}");
    assert_eq!(preview["failed"], 1, "{outcome}");
    assert_eq!(preview["failures"]["plugin-refused"], 1, "{outcome}");
    assert_eq!(
        outcome["installed"]["settings"].as_str().map(str::trim),
        Some(settings.trim()),
        "{outcome}"
    );
    let memory_mib = options
        .split('&')
        .find_map(|o| o.strip_prefix("memoryMib="))
        .map_or(16, |m| m.parse::<u64>().expect("memoryMib"));
    assert_eq!(
        outcome["installed"]["memory_bytes"],
        memory_mib << 20,
        "{outcome}"
    );
    assert_eq!(
        outcome["installed"]["sha256"],
        sha256(wasm).as_str(),
        "{outcome}"
    );
    wait_synced(&s);

    let expected = read_json(&samples().join("expected.json"));
    let check = |when: &str| {
        for (sample, id) in SAMPLES.iter().zip(&ids) {
            let want = &expected[*sample];
            let l = learner(&s, id);
            if let Some(code) = want["error"].as_str() {
                // Refused: the learner keeps what it had.
                assert_eq!(held(&s, id), contractor_before, "{when} {sample}: {l}");
                let f = &map_failures(&s, id)[0];
                assert_eq!(f["reason"], "plugin-refused", "{when} {sample}: {f}");
                assert!(
                    f["detail"].as_str().is_some_and(|d| d.contains(code)),
                    "{when} {sample}: {f}"
                );
                continue;
            }
            let mut by_kind: [Vec<(String, Vec<String>)>; 3] = Default::default();
            for g in want["grants"].as_array().expect("grants") {
                let (kind, name, reason) = (
                    g[0].as_str().expect("kind"),
                    g[1].as_str().expect("name"),
                    g[2].as_str().expect("reason"),
                );
                let slot = match kind {
                    "role" => 0,
                    "team" => 1,
                    "learning-path" => 2,
                    other => panic!("kind {other}"),
                };
                let source = format!("plugin:assign@{reason}");
                match by_kind[slot].iter_mut().find(|(n, _)| n == name) {
                    Some((_, sources)) => {
                        sources.push(source);
                        sources.sort();
                    }
                    None => by_kind[slot].push(item(name, &[&source])),
                }
            }
            for list in &mut by_kind {
                list.sort();
            }
            assert_eq!(l["status"], "active", "{when} {sample}: {l}");
            assert_eq!(grants(&l, "roles"), by_kind[0], "{when} {sample}: {l}");
            assert_eq!(grants(&l, "teams"), by_kind[1], "{when} {sample}: {l}");
            assert_eq!(
                grants(&l, "learningPaths"),
                by_kind[2],
                "{when} {sample}: {l}"
            );
        }
    };
    check("after the re-mapping");
    // A change maps each user again, to the same.
    for id in &ids {
        touch(&s, id, "Changed");
    }
    check("after a change");
    // Refusals are deliberate answers: they do not count towards disabling.
    let m = mapper_state(&s);
    assert_eq!(m["active"], true, "{m}");
    assert_eq!(m["current"]["failures"], 0, "{m}");
    assert_eq!(map_failures(&s, contractor).len(), 2);
    assert!(
        all_failures(&s)
            .iter()
            .all(|f| f["resourceId"] == contractor.as_str()),
        "{:?}",
        all_failures(&s)
    );
    // An ENTERPRISE department change moves a user to another department.
    let bjensen = &ids[0];
    s.patch(
        &format!("/Users/{bjensen}"),
        &patch_ops(json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Finance"}])),
    )
    .expect(200);
    let l = learner(&s, bjensen);
    assert_eq!(
        grants(&l, "teams"),
        [
            item("Finance", &["plugin:assign@department:Finance"]),
            item("Office Berlin", &["plugin:assign@office:Berlin"]),
        ],
        "{l}"
    );
}

#[test]
fn mapper_rust_example_maps_the_sample_users() {
    let wasm = rust_example();
    example_plugin_maps_the_samples(&wasm, "");
}

#[test]
fn mapper_python_example_maps_the_sample_users() {
    let wasm = python_example();
    // The interpreter alone takes some 12 MiB of the default 16: room to
    // spare, as the README advises for Python.
    example_plugin_maps_the_samples(&wasm, "memoryMib=32");
}

// ---------------------------------------------------------------------------
// k. Tokens and tenants

/// The plugin endpoints: method, path, and the component the body carries
/// (empty where none is read).
fn plugin_endpoints(component: &[u8]) -> [(&'static str, &'static str, Vec<u8>); 6] {
    [
        ("GET", "/admin/v1/mapper", Vec::new()),
        ("PUT", "/admin/v1/mapper?confirm=true", component.to_vec()),
        ("DELETE", "/admin/v1/mapper?confirm=true", Vec::new()),
        ("POST", "/admin/v1/mapper/preview", component.to_vec()),
        ("POST", "/admin/v1/mapper/rollback?confirm=true", Vec::new()),
        ("POST", "/admin/v1/mapper/replay", component.to_vec()),
    ]
}

/// The `Mapper` events the bearer of this admin token sees, as
/// `(action, resourceId)`, newest first.
#[track_caller]
fn mapper_events_as(s: &LmsServer, admin: &str) -> Vec<(String, String)> {
    let r = s
        .send_as(
            Some(admin),
            "GET",
            &s.admin_url("/admin/v1/events?limit=1000"),
            None,
        )
        .expect(200);
    r.json["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array: {}", r.text))
        .iter()
        .filter(|e| e["resourceType"] == "Mapper")
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["resourceId"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// An admin token selects its tenant: there is no way to address another
/// tenant's plugin. Tenant B's admin token sees none of tenant A's plugin,
/// history or kept failures, cannot remove or roll it back (409: B has
/// nothing installed), previews over B's users only, and installs and
/// removes B's own plugin while A's stays in force, unchanged.
#[test]
fn mapper_admin_token_sees_and_changes_only_its_own_tenants_plugin() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    let bob = s.create_user("bob");
    let teams = build(Plugin::Teams);
    let trap = build(Plugin::Trap);
    let (teams_sha, trap_sha) = (sha256(&teams), sha256(&trap));

    // Tenant A: a failing build (its failed calls on ann and bob are kept
    // for replay), then Teams in force.
    install_bytes(&s, &trap, "confirm=true");
    wait_synced(&s);
    assert_eq!(
        install_bytes(&s, &teams, "confirm=true")["installed"]["version"],
        2
    );
    wait_synced(&s);
    assert_teams_mapped(&s, &ann, &g);
    let a_state = mapper_state(&s);
    assert_eq!(a_state["active"], true, "{a_state}");
    assert_eq!(
        a_state["current"]["sha256"],
        teams_sha.as_str(),
        "{a_state}"
    );
    let a_events = mapper_events_as(&s, &s.admin_token);
    assert_eq!(a_events.len(), 2, "{a_events:?}");
    // A's replay finds A's two failed calls.
    let r = admin_wasm(&s, "POST", "/admin/v1/mapper/replay", &teams).expect(200);
    assert_eq!(r.json.as_array().map(Vec::len), Some(2), "{}", r.text);

    // Tenant B, with one user of its own.
    let second = s.cli_json(&["tenant", "add", "second", "--json"]);
    let scim2 = second["scimToken"].as_str().expect("scimToken").to_string();
    let admin2 = second["adminToken"]
        .as_str()
        .expect("adminToken")
        .to_string();
    let r = s
        .send_as(
            Some(&scim2),
            "POST",
            &s.url("/Users"),
            Some(&json!({"schemas": [USER_SCHEMA], "userName": "zoe", "active": true})),
        )
        .expect(201);
    let zoe = r.json["id"].as_str().expect("id").to_string();
    let as_b =
        |method: &str, path: &str, body: &[u8]| send_wasm(&s, Some(&admin2), method, path, body);

    // B's show: no plugin, no history, nothing of A's.
    let m = as_b("GET", "/admin/v1/mapper", b"").expect(200);
    assert_eq!(m.json["active"], false, "{}", m.text);
    assert_eq!(m.json["current"], Value::Null, "{}", m.text);
    assert_eq!(m.json["history"], json!([]), "{}", m.text);
    assert!(
        !m.text.contains(&teams_sha) && !m.text.contains(&trap_sha),
        "{}",
        m.text
    );
    // B's removal and rollback reach only B's (empty) history.
    let r = as_b("DELETE", "/admin/v1/mapper?confirm=true", b"").expect(409);
    assert!(r.text.contains("No plugin is installed"), "{}", r.text);
    let r = as_b("POST", "/admin/v1/mapper/rollback?confirm=true", b"").expect(409);
    assert!(r.text.contains("nothing to roll back"), "{}", r.text);
    // B's preview runs over B's one user, not A's two.
    let r = as_b("POST", "/admin/v1/mapper/preview", &trap).expect(200);
    assert_eq!(r.json["users"], 1, "{}", r.text);
    assert_eq!(r.json["failed"], 1, "{}", r.text);
    let ids: Vec<&str> = r.json["differences"]
        .as_array()
        .expect("differences")
        .iter()
        .map(|d| d["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, [zoe.as_str()], "{}", r.text);
    // B's replay sees none of A's failed calls.
    let r = as_b("POST", "/admin/v1/mapper/replay", &teams).expect(200);
    assert_eq!(r.json, json!([]), "{}", r.text);
    // None of that touched A: same plugin in force, same history, same log,
    // same kept failures; A's users still map by it.
    assert_eq!(mapper_state(&s), a_state);
    assert_eq!(mapper_events_as(&s, &s.admin_token), a_events);
    assert!(mapper_events_as(&s, &admin2).is_empty());
    let r = admin_wasm(&s, "POST", "/admin/v1/mapper/replay", &teams).expect(200);
    assert_eq!(r.json.as_array().map(Vec::len), Some(2), "{}", r.text);
    touch(&s, &ann, "Physicist");
    assert_teams_mapped(&s, &ann, &g);
    wait_synced(&s);

    // B installs and removes its own plugin: versions of its own, its own
    // log, its own re-mapping; A's plugin stays in force, unchanged.
    let r = as_b("PUT", "/admin/v1/mapper?confirm=true", &trap).expect(200);
    assert_eq!(r.json["installed"]["version"], 1, "{}", r.text);
    assert_eq!(r.json["preview"]["users"], 1, "{}", r.text);
    let m = as_b("GET", "/admin/v1/mapper", b"").expect(200);
    assert_eq!(m.json["active"], true, "{}", m.text);
    assert_eq!(m.json["current"]["sha256"], trap_sha.as_str(), "{}", m.text);
    assert_eq!(m.json["history"], json!([]), "{}", m.text);
    assert_eq!(mapper_state(&s), a_state);
    assert_eq!(pending_as(&s, &s.admin_token), 0);
    touch(&s, &bob, "Chemist");
    assert_eq!(
        grants(&learner(&s, &bob), "roles"),
        [item("learner", &[TEAMS_LEARNER])]
    );
    let r = as_b("DELETE", "/admin/v1/mapper?confirm=true", b"").expect(200);
    assert_eq!(r.json["installed"]["version"], 2, "{}", r.text);
    assert!(r.json["installed"].get("sha256").is_none(), "{}", r.text);
    assert_eq!(
        mapper_events_as(&s, &admin2),
        [
            ("mapper-remove".to_string(), "2".to_string()),
            ("mapper-install".to_string(), "1".to_string()),
        ]
    );
    let m = mapper_state(&s);
    assert_eq!(m, a_state);
    assert_eq!(m["active"], true, "{m}");
    assert_eq!(mapper_events_as(&s, &s.admin_token), a_events);
    touch(&s, &ann, "Chemist");
    assert_teams_mapped(&s, &ann, &g);
}

/// The identity provider's SCIM token (of this tenant or another), or no
/// token, opens none of the plugin endpoints, and changes nothing.
#[test]
fn mapper_endpoints_refuse_scim_tokens_and_no_token() {
    let s = LmsServer::start();
    let (ann, g) = ann_in_physics(&s);
    // Something to roll back to, remove and replay if a refusal let it by.
    install(&s, Plugin::Trap, "confirm=true");
    wait_synced(&s);
    install(&s, Plugin::Teams, "confirm=true");
    wait_synced(&s);
    let before = mapper_state(&s);
    let logged = mapper_events_as(&s, &s.admin_token);
    let second = s.cli_json(&["tenant", "add", "second", "--json"]);
    let scim2 = second["scimToken"].as_str().expect("scimToken").to_string();
    let admin2 = second["adminToken"]
        .as_str()
        .expect("adminToken")
        .to_string();

    let trap = build(Plugin::Trap);
    for token in [Some(s.token.as_str()), Some(scim2.as_str()), None] {
        for (method, path, body) in plugin_endpoints(&trap) {
            let r = send_wasm(&s, token, method, path, &body);
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.text);
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|h| h.contains("admin")),
                "{method} {path} with {token:?}: {:?}",
                r.headers
            );
        }
    }

    // Nothing changed for either tenant.
    assert_eq!(mapper_state(&s), before);
    assert_eq!(mapper_events_as(&s, &s.admin_token), logged);
    assert_eq!(pending_as(&s, &s.admin_token), 0);
    let m = s
        .send_as(Some(&admin2), "GET", &s.admin_url("/admin/v1/mapper"), None)
        .expect(200);
    assert_eq!(m.json["current"], Value::Null, "{}", m.text);
    assert!(mapper_events_as(&s, &admin2).is_empty());
    touch(&s, &ann, "Physicist");
    assert_teams_mapped(&s, &ann, &g);
}
