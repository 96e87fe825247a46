//! Per-tenant mapping rules: checking and installing them from the command
//! line and the admin API, the confirmation a sweeping change needs, preview
//! and explain (which apply nothing), drift, refusals and tenant isolation,
//! and group renames re-mapping members whose rules test the group's name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ENTERPRISE, LmsServer, Resp, USER_SCHEMA, grants, into_resp, item, learner};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The default mapping's role source.
const DEFAULT_LEARNER: &str = "default:learner-role@active";
/// The source of `default_role` under rules.
const RULES_DEFAULT_ROLE: &str = "default:learner-role@active";

// ---------------------------------------------------------------------------
// Helpers

/// Creates an active user with an enterprise department and a title.
#[track_caller]
pub(crate) fn user(
    s: &LmsServer,
    user_name: &str,
    department: &str,
    title: Option<&str>,
) -> String {
    let mut body = json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "userName": user_name,
        "active": true,
        "emails": [{"value": format!("{user_name}@example.com"), "type": "work", "primary": true}],
        ENTERPRISE: {"department": department},
    });
    if let Some(t) = title {
        body["title"] = json!(t);
    }
    let r = s.post("/Users", &body).expect(201);
    r.json["id"].as_str().expect("id").to_string()
}

fn patch_ops(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// A SCIM change to the user that the rules do not look at, so that mapping
/// visits the learner again.
#[track_caller]
fn touch_user(s: &LmsServer, id: &str, title: &str) {
    s.patch(
        &format!("/Users/{id}"),
        &patch_ops(json!([{"op": "replace", "path": "title", "value": title}])),
    )
    .expect(200);
}

#[track_caller]
fn rename_group(s: &LmsServer, gid: &str, name: &str) {
    s.patch(
        &format!("/Groups/{gid}"),
        &patch_ops(json!([{"op": "replace", "path": "displayName", "value": name}])),
    )
    .expect(204);
}

/// `{kind, name, source?}` objects as a set of `(kind, name, source)`.
fn triples(list: &Value) -> BTreeSet<(String, String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|g| {
            let s = |k: &str| g[k].as_str().unwrap_or("").to_string();
            (s("kind"), s("name"), s("source"))
        })
        .collect()
}

fn triple(kind: &str, name: &str, source: &str) -> (String, String, String) {
    (kind.to_string(), name.to_string(), source.to_string())
}

/// `{kind, name}` objects (a preview's gains, losses, skipped) as a set.
fn named(list: &Value) -> BTreeSet<(String, String)> {
    triples(list).into_iter().map(|(k, n, _)| (k, n)).collect()
}

fn pair(kind: &str, name: &str) -> (String, String) {
    (kind.to_string(), name.to_string())
}

/// `pending` of `GET /admin/v1/sync` with this admin token.
#[track_caller]
fn pending(s: &LmsServer, admin: &str) -> u64 {
    let r = s
        .send_as(Some(admin), "GET", &s.admin_url("/admin/v1/sync"), None)
        .expect(200);
    r.json["pending"]
        .as_u64()
        .unwrap_or_else(|| panic!("sync status without pending: {}", r.text))
}

/// Polls the tenant's sync status until nothing is pending (60 s at most).
#[track_caller]
fn wait_synced_as(s: &LmsServer, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending(s, admin) > 0 {
        assert!(
            Instant::now() < deadline,
            "background re-mapping still pending after 60 s\nserver log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[track_caller]
fn wait_synced(s: &LmsServer) {
    wait_synced_as(s, &s.admin_token);
}

/// `GET /admin/v1/events?{query}` with this admin token, newest first.
#[track_caller]
fn events_as(s: &LmsServer, admin: &str, query: &str) -> Vec<Value> {
    let r = s
        .send_as(
            Some(admin),
            "GET",
            &s.admin_url(&format!("/admin/v1/events?{query}")),
            None,
        )
        .expect(200);
    r.json["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array: {}", r.text))
        .clone()
}

#[track_caller]
fn events(s: &LmsServer, query: &str) -> Vec<Value> {
    events_as(s, &s.admin_token, query)
}

/// The events of one user, newest first.
fn user_events(s: &LmsServer, id: &str) -> Vec<Value> {
    events(s, &format!("user={id}&limit=200"))
}

/// The `Mapping` events (installs and removals) of a tenant.
fn mapping_events(s: &LmsServer, admin: &str) -> Vec<Value> {
    events_as(s, admin, "limit=1000")
        .into_iter()
        .filter(|e| e["resourceType"] == "Mapping")
        .collect()
}

/// Whether an event grants (`side` = "new") or revokes (`side` = "old") the
/// item `name` of this change kind (`role`, `team`, `learningPath`).
fn touches(e: &Value, kind: &str, side: &str, name: &str) -> bool {
    e["changes"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["name"] == kind && c[side]["name"] == name)
    })
}

/// A request to the admin API whose body is text (a rules document), with
/// the given bearer token (none when `None`).
fn send_text(s: &LmsServer, token: Option<&str>, method: &str, path: &str, body: &str) -> Resp {
    let mut req = crate::mapper::client()
        .request(method.parse().expect("method"), s.admin_url(path))
        .header("content-type", "application/toml")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    into_resp(req.send().expect("request"))
}

/// An admin request with the tenant's admin token and a rules document.
fn admin_text(s: &LmsServer, method: &str, path: &str, body: &str) -> Resp {
    send_text(s, Some(&s.admin_token), method, path, body)
}

/// Adds a role, team or learning path to the catalogue through the admin API.
#[track_caller]
fn catalogue_add(s: &LmsServer, kind: &str, name: &str) {
    s.admin(
        "POST",
        &format!("/admin/v1/catalogue/{kind}"),
        Some(&json!({"name": name})),
    )
    .expect(201);
}

/// Writes a rules file and returns its path.
fn rules_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write rules file");
    p
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs a command expected to fail; returns its standard output parsed as
/// JSON (Null when it printed none) and its standard error.
#[track_caller]
fn cli_fails(s: &LmsServer, args: &[&str]) -> (Value, String) {
    let out = s.cli(args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "scim-host {args:?} succeeded but should have failed:\n{stdout}\n{stderr}"
    );
    (
        serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stderr,
    )
}

/// The one `{kind, name}` list entry of a preview's `items` for this item.
#[track_caller]
fn item_count<'a>(preview: &'a Value, kind: &str, name: &str) -> &'a Value {
    preview["items"]
        .as_array()
        .unwrap_or_else(|| panic!("preview without items: {preview}"))
        .iter()
        .find(|i| i["kind"] == kind && i["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name:?} among the items of {preview}"))
}

/// The preview's difference for one learner.
#[track_caller]
fn difference<'a>(preview: &'a Value, id: &str) -> &'a Value {
    preview["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("preview without differences: {preview}"))
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no difference for {id} in {preview}"))
}

// ---------------------------------------------------------------------------
// 1. The command line

/// An invalid regular expression on line 10.
const BAD_RULES: &str = r#"version = 1

[[rule]]
name = "sales-onboarding"
when = { attribute = "department", equals = "Sales" }
grant = { learning_paths = ["Sales Onboarding"] }

[[rule]]
name = "broken"
when = { attribute = "department", regex = "([a-z" }
grant = { teams = ["Broken"] }
"#;

/// Sales onboarding for the Sales department (line 7), a compliance course
/// for everyone (line 11, not in the catalogue), groups kept as teams.
const CLI_RULES: &str = r#"version = 1
groups_as_teams = true

[[rule]]
name = "sales-onboarding"
when = { attribute = "department", equals = "Sales" }
grant = { learning_paths = ["Sales Onboarding"] }

[[rule]]
name = "compliance"
grant = { learning_paths = ["Compliance 101"] }
"#;

#[test]
fn cli_checks_a_file_installs_it_and_existing_users_are_remapped() {
    let s = LmsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let ann = user(&s, "ann", "Sales", None);
    let bob = user(&s, "bob", "Sales", None);
    let cat = user(&s, "cat", "Engineering", None);
    let floor = s.create_group("Sales Floor", &[&ann]);
    let floor_team = item(
        "Sales Floor",
        &[&format!("default:groups-as-teams@group:{floor}")],
    );
    assert_eq!(
        grants(&learner(&s, &ann), "roles"),
        [item("learner", &[DEFAULT_LEARNER])]
    );

    // A bad file: the error at its line and column, a failing exit code,
    // and `set` refuses it too.
    let bad = rules_file(dir.path(), "bad.toml", BAD_RULES);
    let (report, _) = cli_fails(&s, &["mapping", "check", path_str(&bad), "--json"]);
    assert_eq!(report["valid"], false, "{report}");
    let diags = report["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(diags.len(), 1, "{report}");
    assert_eq!(diags[0]["severity"], "error", "{report}");
    assert_eq!(diags[0]["line"], 10, "{report}");
    assert_eq!(diags[0]["column"], 8, "{report}");
    assert!(
        diags[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("regular expression") && m.contains("([a-z")),
        "{report}"
    );
    let (_, stderr) = cli_fails(&s, &["mapping", "check", path_str(&bad)]);
    assert!(
        stderr.contains("bad.toml:10:8: error: invalid regular expression"),
        "{stderr}"
    );
    let (refused, _) = cli_fails(
        &s,
        &[
            "mapping",
            "set",
            "--tenant",
            "default",
            path_str(&bad),
            "--confirm",
            "--json",
        ],
    );
    assert_eq!(refused["error"], "invalid", "{refused}");
    assert_eq!(refused["check"]["diagnostics"][0]["line"], 10, "{refused}");
    let r = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(r.json["mapper"], "default", "{}", r.text);
    assert_eq!(r.json["history"], json!([]), "{}", r.text);

    // The good file: valid on its own; against the tenant's catalogue both
    // learning paths are missing, each reported at its own line.
    let good = rules_file(dir.path(), "rules.toml", CLI_RULES);
    let report = s.cli_json(&["mapping", "check", path_str(&good), "--json"]);
    assert_eq!(
        report,
        json!({"valid": true, "rules": 2, "diagnostics": []}),
        "{report}"
    );
    let with_tenant = [
        "mapping",
        "check",
        path_str(&good),
        "--tenant",
        "default",
        "--json",
    ];
    let report = s.cli_json(&with_tenant);
    assert_eq!(report["valid"], true, "{report}");
    let warnings: Vec<(u64, String)> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| {
            assert_eq!(d["severity"], "warning", "{d}");
            (d["line"].as_u64().unwrap(), d["message"].to_string())
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{report}");
    assert_eq!(warnings[0].0, 7, "{report}");
    assert!(warnings[0].1.contains("Sales Onboarding"), "{report}");
    assert_eq!(warnings[1].0, 11, "{report}");
    assert!(warnings[1].1.contains("Compliance 101"), "{report}");

    // Adding one to the catalogue silences its warning.
    let out = s.cli(&[
        "catalogue",
        "add",
        "--tenant",
        "default",
        "--learning-path",
        "Sales Onboarding",
    ]);
    assert!(out.status.success(), "{out:?}");
    let cat_list = s.admin_get("/admin/v1/catalogue").expect(200);
    assert_eq!(
        cat_list.json["learningPaths"],
        json!(["Sales Onboarding"]),
        "{}",
        cat_list.text
    );
    let report = s.cli_json(&with_tenant);
    let diags = report["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(diags.len(), 1, "{report}");
    assert_eq!(diags[0]["line"], 11, "{report}");

    // Install: nobody loses anything (the learner role stays through
    // default_role, the team through groups_as_teams), so no --confirm.
    let outcome = s.cli_json(&[
        "mapping",
        "set",
        "--tenant",
        "default",
        path_str(&good),
        "--json",
    ]);
    let installed = &outcome["installed"];
    let version = installed["version"].as_i64().expect("version");
    assert_eq!(installed["document"], CLI_RULES, "{outcome}");
    assert!(
        installed["installed_by"]
            .as_str()
            .is_some_and(|b| b.starts_with("cli:")),
        "{outcome}"
    );
    let preview = &outcome["preview"];
    assert_eq!(preview["users"], 3, "{outcome}");
    assert_eq!(preview["losing"], 0, "{outcome}");
    assert_eq!(preview["gaining"], 2, "{outcome}");
    let onboarding = item_count(preview, "learningPath", "Sales Onboarding");
    assert_eq!(onboarding["gained"], 2, "{outcome}");
    let compliance = item_count(preview, "learningPath", "Compliance 101");
    assert_eq!(
        (&compliance["gained"], &compliance["skipped"]),
        (&json!(0), &json!(3)),
        "{outcome}"
    );
    let change_id = outcome["changeId"].as_str().expect("changeId").to_string();

    // Existing users are re-mapped in the background, not only users who
    // change later.
    wait_synced(&s);
    let from_rule = "rules:sales-onboarding@attr:department";
    let rules_learner = item("learner", &[RULES_DEFAULT_ROLE]);
    let l = learner(&s, &ann);
    assert_eq!(
        grants(&l, "roles"),
        std::slice::from_ref(&rules_learner),
        "{l}"
    );
    assert_eq!(
        grants(&l, "learningPaths"),
        [item("Sales Onboarding", &[from_rule])],
        "{l}"
    );
    assert_eq!(grants(&l, "teams"), [floor_team], "{l}");
    let l = learner(&s, &bob);
    assert_eq!(
        grants(&l, "learningPaths"),
        [item("Sales Onboarding", &[from_rule])],
        "{l}"
    );
    let l = learner(&s, &cat);
    assert_eq!(grants(&l, "roles"), [rules_learner], "{l}");
    assert_eq!(grants(&l, "learningPaths"), [], "{l}");

    // The sync log: the install, the re-mapping under its change id, and
    // the learning path the catalogue lacks skipped for every user.
    let installs = mapping_events(&s, &s.admin_token);
    assert_eq!(installs.len(), 1, "{installs:?}");
    let install = &installs[0];
    assert_eq!(install["action"], "mapping-install", "{install}");
    assert_eq!(install["status"], "success", "{install}");
    assert_eq!(install["resourceId"], version.to_string(), "{install}");
    assert_eq!(install["changeId"], change_id.as_str(), "{install}");
    let evs = user_events(&s, &ann);
    let remapped = evs
        .iter()
        .find(|e| {
            e["resourceType"] == "Learner" && touches(e, "learningPath", "new", "Sales Onboarding")
        })
        .unwrap_or_else(|| panic!("no event grants the learning path: {evs:?}"));
    assert_eq!(remapped["changeId"], change_id.as_str(), "{remapped}");
    for id in [&ann, &bob, &cat] {
        let evs = user_events(&s, id);
        let skip = evs
            .iter()
            .find(|e| e["action"] == "skip")
            .unwrap_or_else(|| panic!("no skip event for {id}: {evs:?}"));
        assert_eq!(skip["reason"], "unknown-learning-path", "{skip}");
        assert_eq!(skip["status"], "skipped", "{skip}");
        assert_eq!(skip["changeId"], change_id.as_str(), "{skip}");
        assert!(
            skip["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Compliance 101")),
            "{skip}"
        );
    }

    // `mapping show` and the admin API agree on what is in force.
    let show = s.cli_json(&["mapping", "show", "--tenant", "default", "--json"]);
    assert_eq!(show["current"]["version"], version, "{show}");
    assert_eq!(show["current"]["document"], CLI_RULES, "{show}");
    let r = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(r.json["mapper"], "rules", "{}", r.text);
    assert_eq!(
        r.json["current"]["sha256"], installed["sha256"],
        "{}",
        r.text
    );

    // A file that takes everyone's role away is refused without --confirm,
    // with a non-zero exit and the preview, and installs nothing.
    let strip = rules_file(
        dir.path(),
        "strip.toml",
        "version = 1\ndefault_role = \"\"\n",
    );
    let (refused, stderr) = cli_fails(
        &s,
        &[
            "mapping",
            "set",
            "--tenant",
            "default",
            path_str(&strip),
            "--json",
        ],
    );
    assert_eq!(refused["error"], "confirmation-required", "{refused}");
    assert_eq!(refused["threshold"].as_f64(), Some(5.0), "{refused}");
    assert_eq!(refused["preview"]["losing"], 3, "{refused}");
    assert!(stderr.contains("--confirm"), "{stderr}");
    let show = s.cli_json(&["mapping", "show", "--tenant", "default", "--json"]);
    assert_eq!(show["current"]["version"], version, "{show}");
    assert_eq!(mapping_events(&s, &s.admin_token).len(), 1);
    assert_eq!(pending(&s, &s.admin_token), 0);
    assert_eq!(
        grants(&learner(&s, &cat), "roles"),
        [item("learner", &[RULES_DEFAULT_ROLE])]
    );
}

// ---------------------------------------------------------------------------
// 2. The admin API and the confirmation

/// Only Finance keeps a role, and nobody is in Finance.
pub(crate) const STRIP_RULES: &str = r#"version = 1
default_role = ""

[[rule]]
name = "finance-learners"
when = { attribute = "department", equals = "Finance" }
grant = { role = "learner" }
"#;

#[test]
fn api_refuses_a_change_that_strips_most_learners_until_confirmed() {
    let s = LmsServer::start();
    let ids: Vec<String> = (1..=4)
        .map(|i| user(&s, &format!("seller{i}"), "Sales", None))
        .collect();
    let default_role = item("learner", &[DEFAULT_LEARNER]);

    // Without confirmation: 409, the preview counting the losers.
    let r = admin_text(&s, "PUT", "/admin/v1/mapping", STRIP_RULES).expect(409);
    assert_eq!(r.json["threshold"].as_f64(), Some(5.0), "{}", r.text);
    let preview = &r.json["preview"];
    assert_eq!(preview["users"], 4, "{}", r.text);
    assert_eq!(preview["losing"], 4, "{}", r.text);
    assert_eq!(preview["gaining"], 0, "{}", r.text);
    assert_eq!(preview["losingPercent"].as_f64(), Some(100.0), "{}", r.text);
    let learner_count = item_count(preview, "role", "learner");
    assert_eq!(learner_count["lost"], 4, "{}", r.text);
    for id in &ids {
        let d = difference(preview, id);
        assert_eq!(
            named(&d["losses"]),
            BTreeSet::from([pair("role", "learner")]),
            "{d}"
        );
        assert_eq!(d["gains"], json!([]), "{d}");
    }
    assert!(
        r.json["detail"]
            .as_str()
            .is_some_and(|d| d.contains("confirm")),
        "{}",
        r.text
    );
    // A threshold of one's own that is still below the loss: refused too.
    let r = admin_text(&s, "PUT", "/admin/v1/mapping?threshold=50", STRIP_RULES).expect(409);
    assert_eq!(r.json["threshold"].as_f64(), Some(50.0), "{}", r.text);

    // Nothing changed: no version, no event, no background work, the
    // learners still hold their role.
    let r = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(r.json["mapper"], "default", "{}", r.text);
    assert_eq!(r.json["current"], Value::Null, "{}", r.text);
    assert_eq!(r.json["history"], json!([]), "{}", r.text);
    assert!(mapping_events(&s, &s.admin_token).is_empty());
    assert_eq!(pending(&s, &s.admin_token), 0);
    for id in &ids {
        assert_eq!(
            grants(&learner(&s, id), "roles"),
            std::slice::from_ref(&default_role)
        );
    }

    // Confirmed: installed, and the learners follow in the background.
    let r = admin_text(&s, "PUT", "/admin/v1/mapping?confirm=true", STRIP_RULES).expect(200);
    let version = r.json["installed"]["version"].as_i64().expect("version");
    assert_eq!(r.json["installed"]["document"], STRIP_RULES, "{}", r.text);
    assert_eq!(
        r.json["installed"]["installed_by"], "admin-api",
        "{}",
        r.text
    );
    assert_eq!(r.json["preview"]["losing"], 4, "{}", r.text);
    let change_id = r.json["changeId"].as_str().expect("changeId").to_string();
    let m = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(m.json["mapper"], "rules", "{}", m.text);
    assert_eq!(m.json["current"]["version"], version, "{}", m.text);
    assert_eq!(m.json["current"]["document"], STRIP_RULES, "{}", m.text);
    assert_eq!(
        m.json["history"].as_array().map(Vec::len),
        Some(1),
        "{}",
        m.text
    );
    let installs = mapping_events(&s, &s.admin_token);
    assert_eq!(installs.len(), 1, "{installs:?}");
    assert_eq!(installs[0]["action"], "mapping-install", "{}", installs[0]);
    assert_eq!(installs[0]["reason"], "confirmed", "{}", installs[0]);
    assert_eq!(installs[0]["changeId"], change_id.as_str());

    wait_synced(&s);
    for id in &ids {
        let l = learner(&s, id);
        assert_eq!(l["status"], "active", "{l}");
        assert_eq!(grants(&l, "roles"), [], "{l}");
        let evs = user_events(&s, id);
        let revoked = evs
            .iter()
            .find(|e| e["resourceType"] == "Learner" && touches(e, "role", "old", "learner"))
            .unwrap_or_else(|| panic!("no event revokes the role: {evs:?}"));
        assert_eq!(revoked["changeId"], change_id.as_str(), "{revoked}");
    }
    // A new user in Finance gets the rule's role as it is created.
    let fin = user(&s, "controller", "Finance", None);
    assert_eq!(
        grants(&learner(&s, &fin), "roles"),
        [item("learner", &["rules:finance-learners@attr:department"])]
    );

    // Back to the default mapping: everyone gains, nobody loses, so no
    // confirmation is needed; everyone holds the default role again.
    let r = s.admin("DELETE", "/admin/v1/mapping", None).expect(200);
    assert_eq!(r.json["preview"]["losing"], 0, "{}", r.text);
    assert_eq!(r.json["preview"]["gaining"], 4, "{}", r.text);
    let m = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(m.json["mapper"], "default", "{}", m.text);
    wait_synced(&s);
    for id in ids.iter().chain([&fin]) {
        assert_eq!(
            grants(&learner(&s, id), "roles"),
            std::slice::from_ref(&default_role)
        );
    }
    let evs = mapping_events(&s, &s.admin_token);
    assert_eq!(evs[0]["action"], "mapping-remove", "{evs:?}");
}

// ---------------------------------------------------------------------------
// 3. Preview

const SELLER_RULES: &str = r#"version = 1

[[rule]]
name = "sellers"
when = { attribute = "department", equals = "Sales" }
grant = { role = "seller", learning_paths = ["Sales Onboarding", "Unlisted Path"] }
"#;

#[test]
fn preview_lists_each_learners_difference_and_applies_nothing() {
    let s = LmsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let ann = user(&s, "ann", "Sales", None);
    let bob = user(&s, "bob", "Engineering", None);
    let cat = user(&s, "cat", "Sales", None);
    s.create_group("Sales", &[&ann]);
    catalogue_add(&s, "roles", "seller");
    catalogue_add(&s, "learningPaths", "Sales Onboarding");
    // Adding again is not an error, and not new.
    s.admin(
        "POST",
        "/admin/v1/catalogue/roles",
        Some(&json!({"name": "seller"})),
    )
    .expect(200);
    let c = s.admin_get("/admin/v1/catalogue").expect(200);
    assert_eq!(c.json["roles"], json!(["learner", "seller"]), "{}", c.text);

    let before: Vec<Value> = [&ann, &bob, &cat]
        .iter()
        .map(|id| learner(&s, id))
        .collect();
    let last_event = events(&s, "limit=1")[0]["id"].clone();

    let r = admin_text(&s, "POST", "/admin/v1/mapping/preview", SELLER_RULES).expect(200);
    let p = &r.json;
    assert_eq!(p["users"], 3, "{}", r.text);
    assert_eq!(p["changed"], 2, "{}", r.text);
    assert_eq!(p["gaining"], 2, "{}", r.text);
    assert_eq!(p["losing"], 2, "{}", r.text);
    assert_eq!(p["failed"], 0, "{}", r.text);
    assert_eq!(p["truncated"], false, "{}", r.text);
    let pct = p["losingPercent"].as_f64().expect("losingPercent");
    assert!((pct - 200.0 / 3.0).abs() < 0.01, "{}", r.text);
    // ann: the role and the path, losing the default role and her group's
    // team (the rules do not keep groups as teams); the path the catalogue
    // lacks is skipped.
    let d = difference(p, &ann);
    assert_eq!(d["userName"], "ann", "{d}");
    assert_eq!(
        named(&d["gains"]),
        BTreeSet::from([
            pair("role", "seller"),
            pair("learningPath", "Sales Onboarding")
        ]),
        "{d}"
    );
    assert_eq!(
        named(&d["losses"]),
        BTreeSet::from([pair("role", "learner"), pair("team", "Sales")]),
        "{d}"
    );
    assert_eq!(
        named(&d["skipped"]),
        BTreeSet::from([pair("learningPath", "Unlisted Path")]),
        "{d}"
    );
    let d = difference(p, &cat);
    assert_eq!(
        named(&d["losses"]),
        BTreeSet::from([pair("role", "learner")]),
        "{d}"
    );
    // bob is in Engineering: nothing changes for him, so he is not listed.
    assert!(
        p["differences"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["id"] != bob.as_str()),
        "{}",
        r.text
    );
    assert_eq!(item_count(p, "role", "seller")["gained"], 2);
    assert_eq!(item_count(p, "role", "learner")["lost"], 2);
    assert_eq!(item_count(p, "team", "Sales")["lost"], 1);
    assert_eq!(item_count(p, "learningPath", "Unlisted Path")["skipped"], 2);

    // `limit` keeps fewer differences and says so.
    let r = admin_text(
        &s,
        "POST",
        "/admin/v1/mapping/preview?limit=1",
        SELLER_RULES,
    )
    .expect(200);
    assert_eq!(r.json["changed"], 2, "{}", r.text);
    assert_eq!(r.json["differences"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.json["truncated"], true, "{}", r.text);
    // The installed mapping (empty body) and the default one: no change.
    for path in [
        "/admin/v1/mapping/preview",
        "/admin/v1/mapping/preview?default=true",
    ] {
        let r = admin_text(&s, "POST", path, "").expect(200);
        assert_eq!(r.json["users"], 3, "{path}: {}", r.text);
        assert_eq!(r.json["changed"], 0, "{path}: {}", r.text);
    }
    // A candidate that does not parse is refused.
    admin_text(&s, "POST", "/admin/v1/mapping/preview", "version = 2").expect(400);

    // The command line previews the same.
    let file = rules_file(dir.path(), "sellers.toml", SELLER_RULES);
    let cli = s.cli_json(&[
        "mapping",
        "preview",
        "--tenant",
        "default",
        path_str(&file),
        "--json",
    ]);
    for key in ["users", "changed", "gaining", "losing", "differences"] {
        assert_eq!(cli[key], p[key], "{key}: {cli}");
    }

    // Nothing was applied: the learners, the sync log, the mapping in force.
    let after: Vec<Value> = [&ann, &bob, &cat]
        .iter()
        .map(|id| learner(&s, id))
        .collect();
    assert_eq!(before, after);
    assert_eq!(events(&s, "limit=1")[0]["id"], last_event);
    let m = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(m.json["mapper"], "default", "{}", m.text);
    assert_eq!(m.json["history"], json!([]), "{}", m.text);
    assert_eq!(pending(&s, &s.admin_token), 0);
}

// ---------------------------------------------------------------------------
// 4. Explain

const EXPLAIN_RULES: &str = r#"version = 1

[[rule]]
name = "sellers"
when = { group = "Sales" }
grant = { role = "seller" }

[[rule]]
name = "sales-leads"
priority = 10
when = { all = [ { group = "sales" }, { attribute = "title", glob = "*manager*" } ] }
grant = { role = "team-lead", teams = ["Leads"] }

[[rule]]
name = "finance"
when = { attribute = "department", in = ["Finance", "Accounting"] }
grant = { role = "auditor" }
"#;

#[test]
fn explain_shows_the_matched_rule_its_trace_and_the_desired_grants() {
    let s = LmsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    for role in ["seller", "team-lead", "auditor"] {
        catalogue_add(&s, "roles", role);
    }
    let ann = user(&s, "ann", "Sales", Some("Sales Manager"));
    let sales = s.create_group("Sales", &[&ann]);
    admin_text(&s, "PUT", "/admin/v1/mapping?confirm=true", EXPLAIN_RULES).expect(200);
    wait_synced(&s);
    let via = format!("group:{sales}");
    let lead_source = format!("rules:sales-leads@{via}");
    let l = learner(&s, &ann);
    assert_eq!(
        grants(&l, "roles"),
        [item("team-lead", &[&lead_source])],
        "{l}"
    );
    assert_eq!(grants(&l, "teams"), [item("Leads", &[&lead_source])], "{l}");

    let r = s
        .admin_get(&format!("/admin/v1/learners/{ann}/explain"))
        .expect(200);
    let x = &r.json;
    assert_eq!(x["user"]["id"], ann.as_str(), "{}", r.text);
    assert_eq!(x["user"]["userName"], "ann", "{}", r.text);
    assert_eq!(x["mapper"], "rules", "{}", r.text);
    // The facts the mapper saw.
    assert_eq!(
        x["facts"]["groups"],
        json!([{"id": sales, "displayName": "Sales", "externalId": null}]),
        "{}",
        r.text
    );
    assert_eq!(x["facts"]["attributes"]["title"], json!(["Sales Manager"]));
    assert_eq!(x["facts"]["attributes"]["department"], json!(["Sales"]));

    let rules = x["rules"].as_array().expect("rules");
    let rule = |name: &str| {
        rules
            .iter()
            .find(|o| o["rule"] == name)
            .unwrap_or_else(|| panic!("no outcome for rule {name}: {}", r.text))
    };
    assert_eq!(rules.len(), 3, "{}", r.text);
    // The winner: matched through the group, both tests traced with the
    // values they saw.
    let lead = rule("sales-leads");
    assert_eq!(lead["matched"], true, "{lead}");
    assert_eq!(lead["priority"], 10, "{lead}");
    assert_eq!(lead["via"], via.as_str(), "{lead}");
    let cond = &lead["condition"];
    assert_eq!(cond["test"], "all", "{lead}");
    assert_eq!(cond["result"], true, "{lead}");
    let children = cond["children"].as_array().expect("children");
    assert_eq!(children.len(), 2, "{lead}");
    assert!(
        children[0]["test"]
            .as_str()
            .is_some_and(|t| t.starts_with("groups") && t.contains("\"sales\"")),
        "{lead}"
    );
    assert_eq!(children[0]["result"], true, "{lead}");
    assert_eq!(children[0]["values"], json!(["Sales"]), "{lead}");
    assert!(
        children[1]["test"]
            .as_str()
            .is_some_and(|t| t.contains("title") && t.contains("*manager*")),
        "{lead}"
    );
    assert_eq!(children[1]["result"], true, "{lead}");
    assert_eq!(children[1]["values"], json!(["Sales Manager"]), "{lead}");
    // The rule whose role lost on priority says so.
    let sellers = rule("sellers");
    assert_eq!(sellers["matched"], true, "{sellers}");
    assert_eq!(sellers["via"], via.as_str(), "{sellers}");
    assert!(
        sellers["notes"].as_array().into_iter().flatten().any(|n| n
            .as_str()
            .is_some_and(|n| n.contains("lost to 'team-lead'"))),
        "{sellers}"
    );
    // The rule that did not match: no via, the value it compared.
    let finance = rule("finance");
    assert_eq!(finance["matched"], false, "{finance}");
    assert!(finance.get("via").is_none_or(Value::is_null), "{finance}");
    assert_eq!(finance["condition"]["result"], false, "{finance}");
    assert_eq!(
        finance["condition"]["values"],
        json!(["Sales"]),
        "{finance}"
    );

    // Desired: the winner's role and team, nothing else (no default role,
    // not the losing role); the learner already holds exactly that.
    let desired = triples(&x["desired"]);
    assert_eq!(
        desired,
        BTreeSet::from([
            triple("role", "team-lead", &lead_source),
            triple("team", "Leads", &lead_source),
        ]),
        "{}",
        r.text
    );
    assert_eq!(x["current"]["status"], "active", "{}", r.text);
    assert_eq!(triples(&x["current"]["grants"]), desired, "{}", r.text);
    assert_eq!(x["effects"], json!([]), "{}", r.text);

    // The command line explains the same.
    let cli = s.cli_json(&["mapping", "explain", "--tenant", "default", &ann, "--json"]);
    assert_eq!(&cli, x);

    // Against a candidate without the leads rule: the role it would switch
    // to, the effects, and nothing applied.
    let before = learner(&s, &ann);
    let candidate = rules_file(
        dir.path(),
        "candidate.toml",
        "version = 1\n\n[[rule]]\nname = \"sellers\"\nwhen = { group = \"Sales\" }\ngrant = { role = \"seller\" }\n",
    );
    let cli = s.cli_json(&[
        "mapping",
        "explain",
        "--tenant",
        "default",
        &ann,
        "--file",
        path_str(&candidate),
        "--json",
    ]);
    let seller_source = format!("rules:sellers@{via}");
    assert_eq!(
        triples(&cli["desired"]),
        BTreeSet::from([triple("role", "seller", &seller_source)]),
        "{cli}"
    );
    let effects: BTreeSet<(String, String, String)> = cli["effects"]
        .as_array()
        .expect("effects")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("effect"), s("kind"), s("name"))
        })
        .collect();
    assert_eq!(
        effects,
        BTreeSet::from([
            triple("grant", "role", "seller"),
            triple("revoke", "role", "team-lead"),
            triple("revoke", "team", "Leads"),
        ]),
        "{cli}"
    );
    assert_eq!(learner(&s, &ann), before);

    // The same candidate through the admin API, by userName this time.
    let text = std::fs::read_to_string(&candidate).expect("candidate");
    let api = send_text(
        &s,
        Some(&s.admin_token),
        "POST",
        "/admin/v1/learners/ann/explain",
        &text,
    )
    .expect(200);
    assert_eq!(api.json["user"]["id"], json!(ann), "{}", api.text);
    assert_eq!(api.json["desired"], cli["desired"]);
    assert_eq!(api.json["effects"], cli["effects"]);
    assert_eq!(learner(&s, &ann), before);

    // Unknown users are 404.
    s.admin_get("/admin/v1/learners/no-such-user/explain")
        .expect(404);
}

// ---------------------------------------------------------------------------
// 5. Drift

const DEPARTMENT_SELLERS: &str = r#"version = 1

[[rule]]
name = "sellers"
when = { attribute = "department", equals = "Sales" }
grant = { role = "seller" }
"#;

#[test]
fn a_mapped_role_removed_by_hand_is_restored_or_reported() {
    let s = LmsServer::start();
    catalogue_add(&s, "roles", "seller");
    let ann = user(&s, "ann", "Sales", None);
    admin_text(
        &s,
        "PUT",
        "/admin/v1/mapping?confirm=true",
        DEPARTMENT_SELLERS,
    )
    .expect(200);
    wait_synced(&s);
    let source = "rules:sellers@attr:department";
    let seller = item("seller", &[source]);
    assert_eq!(
        grants(&learner(&s, &ann), "roles"),
        std::slice::from_ref(&seller)
    );
    let role_url = format!("/admin/v1/learners/{ann}/roles/seller");
    let withdrawn = json!([{"kind": "role", "name": "seller", "source": source}]);
    let drift_events = |reason: &str| -> usize {
        user_events(&s, &ann)
            .iter()
            .filter(|e| e["action"] == "drift" && e["reason"] == reason)
            .count()
    };

    // Removed by hand: withdrawn, not held.
    s.admin("DELETE", &role_url, None).expect(204);
    let l = learner(&s, &ann);
    assert_eq!(grants(&l, "roles"), [], "{l}");
    assert_eq!(l["withdrawn"], withdrawn, "{l}");
    // The next mapping of the user restores it, and says so.
    touch_user(&s, &ann, "Account Executive");
    let l = learner(&s, &ann);
    assert_eq!(grants(&l, "roles"), std::slice::from_ref(&seller), "{l}");
    assert_eq!(l["withdrawn"], json!([]), "{l}");
    let evs = user_events(&s, &ann);
    let drift = evs
        .iter()
        .find(|e| e["action"] == "drift")
        .unwrap_or_else(|| panic!("no drift event: {evs:?}"));
    assert_eq!(drift["reason"], "restored", "{drift}");
    assert_eq!(drift["status"], "success", "{drift}");
    assert_eq!(drift["resourceType"], "Learner", "{drift}");
    assert_eq!(drift["resourceId"], ann.as_str(), "{drift}");
    assert_eq!(drift_events("restored"), 1);

    // Under the `report` drift policy: recorded, not restored.
    let policy = s.cli_json(&["tenant", "policy", "default", "--drift", "report", "--json"]);
    assert_eq!(policy["drift"], "report", "{policy}");
    let m = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(m.json["policy"]["drift"], "report", "{}", m.text);
    s.admin("DELETE", &role_url, None).expect(204);
    touch_user(&s, &ann, "Senior Account Executive");
    let l = learner(&s, &ann);
    assert_eq!(grants(&l, "roles"), [], "{l}");
    assert_eq!(l["withdrawn"], withdrawn, "{l}");
    let evs = user_events(&s, &ann);
    let drift = evs
        .iter()
        .find(|e| e["action"] == "drift")
        .unwrap_or_else(|| panic!("no drift event: {evs:?}"));
    assert_eq!(drift["reason"], "drift-reported", "{drift}");
    assert_eq!(drift["status"], "skipped", "{drift}");
    assert_eq!(drift_events("restored"), 1, "no second restore");
    // Explain shows the withdrawn role and the grant mapping holds back.
    let x = s
        .admin_get(&format!("/admin/v1/learners/{ann}/explain"))
        .expect(200);
    assert_eq!(x.json["current"]["withdrawn"], withdrawn, "{}", x.text);
    let effect = &x.json["effects"][0];
    assert_eq!(
        (&effect["effect"], &effect["name"]),
        (&json!("grant"), &json!("seller")),
        "{}",
        x.text
    );
    assert!(
        effect["note"].as_str().is_some_and(|n| n.contains("drift")),
        "{}",
        x.text
    );
}

// ---------------------------------------------------------------------------
// 6. Refusals and tenants

/// An unknown attribute on line 5.
const TYPO_RULES: &str = r#"version = 1

[[rule]]
name = "typo"
when = { attribute = "departmnet", equals = "Sales" }
grant = { role = "learner" }
"#;

const WELCOME_RULES: &str = r#"version = 1

[[rule]]
name = "welcome"
grant = { learning_paths = ["Welcome"] }
"#;

#[test]
fn refusals_and_tenants_see_only_their_own_mapping() {
    let s = LmsServer::start();
    let alice = user(&s, "alice", "Sales", None);

    // The SCIM token (and no token) opens none of the mapping endpoints.
    let explain = format!("/admin/v1/learners/{alice}/explain");
    for token in [Some(s.token.as_str()), None] {
        for (method, path) in [
            ("PUT", "/admin/v1/mapping?confirm=true"),
            ("GET", "/admin/v1/mapping"),
            ("DELETE", "/admin/v1/mapping?confirm=true"),
            ("POST", "/admin/v1/mapping/check"),
            ("POST", "/admin/v1/mapping/preview"),
            ("GET", explain.as_str()),
            ("POST", explain.as_str()),
            ("POST", "/admin/v1/mapping/rollback?confirm=true"),
            ("GET", "/admin/v1/catalogue"),
        ] {
            let r = send_text(&s, token, method, path, WELCOME_RULES);
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.text);
        }
        s.send_as(
            token,
            "POST",
            &s.admin_url("/admin/v1/catalogue/learningPaths"),
            Some(&json!({"name": "Welcome"})),
        )
        .expect(401);
    }

    // Nothing to remove while the default mapping applies; nothing recorded.
    let r = s
        .admin("DELETE", "/admin/v1/mapping?confirm=true", None)
        .expect(409);
    assert!(
        r.text.contains("default mapping already applies"),
        "{}",
        r.text
    );
    assert_eq!(s.admin_get("/admin/v1/mapping").json["history"], json!([]));

    // An invalid document: 400 with the diagnostics, nothing installed.
    let r = admin_text(&s, "PUT", "/admin/v1/mapping?confirm=true", TYPO_RULES).expect(400);
    let diags = r.json["check"]["diagnostics"]
        .as_array()
        .unwrap_or_else(|| panic!("no diagnostics: {}", r.text));
    assert_eq!(diags.len(), 1, "{}", r.text);
    assert_eq!(diags[0]["severity"], "error", "{}", r.text);
    assert_eq!(diags[0]["line"], 5, "{}", r.text);
    assert!(
        diags[0]["column"].as_u64().is_some_and(|c| c > 0),
        "{}",
        r.text
    );
    assert!(
        diags[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("departmnet")),
        "{}",
        r.text
    );
    assert_eq!(r.json["check"]["valid"], false, "{}", r.text);
    // So is an empty body.
    admin_text(&s, "PUT", "/admin/v1/mapping?confirm=true", "  ").expect(400);
    let r = admin_text(&s, "POST", "/admin/v1/mapping/check", TYPO_RULES).expect(200);
    assert_eq!(r.json["valid"], false, "{}", r.text);
    assert_eq!(r.json["diagnostics"][0]["line"], 5, "{}", r.text);
    let m = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(m.json["mapper"], "default", "{}", m.text);
    assert_eq!(m.json["history"], json!([]), "{}", m.text);
    assert!(mapping_events(&s, &s.admin_token).is_empty());
    assert_eq!(pending(&s, &s.admin_token), 0);
    assert_eq!(
        grants(&learner(&s, &alice), "roles"),
        [item("learner", &[DEFAULT_LEARNER])]
    );

    // The first tenant installs rules with a learning path of its catalogue.
    catalogue_add(&s, "learningPaths", "Welcome");
    let r = admin_text(&s, "PUT", "/admin/v1/mapping", WELCOME_RULES).expect(200);
    let version = r.json["installed"]["version"].clone();
    wait_synced(&s);
    let welcome = item("Welcome", &["rules:welcome@always"]);
    assert_eq!(
        grants(&learner(&s, &alice), "learningPaths"),
        std::slice::from_ref(&welcome)
    );

    // A second tenant sees none of it.
    let second = s.cli_json(&["tenant", "add", "second", "--json"]);
    let scim2 = second["scimToken"].as_str().expect("scimToken").to_string();
    let admin2 = second["adminToken"]
        .as_str()
        .expect("adminToken")
        .to_string();
    let get2 = |path: &str| s.send_as(Some(&admin2), "GET", &s.admin_url(path), None);
    let m = get2("/admin/v1/mapping").expect(200);
    assert_eq!(m.json["mapper"], "default", "{}", m.text);
    assert_eq!(m.json["current"], Value::Null, "{}", m.text);
    assert_eq!(m.json["history"], json!([]), "{}", m.text);
    assert!(!m.text.contains("welcome"), "{}", m.text);
    get2(&explain).expect(404);
    // Its rollback reaches only its own (empty) history.
    s.send_as(
        Some(&admin2),
        "POST",
        &s.admin_url("/admin/v1/mapping/rollback?confirm=true"),
        None,
    )
    .expect(409);
    assert_eq!(s.admin_get("/admin/v1/mapping").json["mapper"], "rules");
    assert!(mapping_events(&s, &admin2).is_empty());
    let c = get2("/admin/v1/catalogue").expect(200);
    assert_eq!(c.json["learningPaths"], json!([]), "{}", c.text);
    // Its catalogue is its own: the same rules warn there, not here.
    let r = send_text(
        &s,
        Some(&admin2),
        "POST",
        "/admin/v1/mapping/check",
        WELCOME_RULES,
    )
    .expect(200);
    assert_eq!(
        r.json["diagnostics"][0]["severity"], "warning",
        "{}",
        r.text
    );
    let r = admin_text(&s, "POST", "/admin/v1/mapping/check", WELCOME_RULES).expect(200);
    assert_eq!(r.json["diagnostics"], json!([]), "{}", r.text);
    // Its preview covers its own users only.
    let r = s
        .send_as(
            Some(&scim2),
            "POST",
            &s.url("/Users"),
            Some(&json!({"schemas": [USER_SCHEMA], "userName": "bob"})),
        )
        .expect(201);
    let bob = r.json["id"].as_str().expect("id").to_string();
    let r = send_text(
        &s,
        Some(&admin2),
        "POST",
        "/admin/v1/mapping/preview",
        "version = 1\ndefault_role = \"\"\n",
    )
    .expect(200);
    assert_eq!(r.json["users"], 1, "{}", r.text);
    assert_eq!(r.json["differences"][0]["id"], bob.as_str(), "{}", r.text);

    // Its rules (JSON this time) apply to its learners and not to the
    // first tenant's.
    let r = send_text(
        &s,
        Some(&admin2),
        "PUT",
        "/admin/v1/mapping?confirm=true",
        r#"{"version": 1, "default_role": ""}"#,
    )
    .expect(200);
    assert_eq!(r.json["preview"]["users"], 1, "{}", r.text);
    wait_synced_as(&s, &admin2);
    wait_synced(&s);
    let r = get2(&format!("/admin/v1/learners/{bob}")).expect(200);
    assert_eq!(grants(&r.json, "roles"), [], "{}", r.text);
    let l = learner(&s, &alice);
    assert_eq!(
        grants(&l, "roles"),
        [item("learner", &[RULES_DEFAULT_ROLE])],
        "{l}"
    );
    assert_eq!(grants(&l, "learningPaths"), [welcome], "{l}");
    let m = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(m.json["current"]["version"], version, "{}", m.text);
    assert_eq!(m.json["current"]["document"], WELCOME_RULES, "{}", m.text);
    assert_eq!(mapping_events(&s, &s.admin_token).len(), 1);
    assert_eq!(mapping_events(&s, &admin2).len(), 1);
    // Its removal leaves the first tenant's rules alone.
    s.send_as(
        Some(&admin2),
        "DELETE",
        &s.admin_url("/admin/v1/mapping"),
        None,
    )
    .expect(200);
    let m = s.admin_get("/admin/v1/mapping").expect(200);
    assert_eq!(m.json["mapper"], "rules", "{}", m.text);
    assert_eq!(m.json["current"]["version"], version, "{}", m.text);
}

// ---------------------------------------------------------------------------
// 7. Group renames

const SALES_GROUP_RULES: &str = r#"version = 1
groups_as_teams = true

[[rule]]
name = "sales"
when = { group = "Sales" }
grant = { role = "seller", learning_paths = ["Sales Onboarding"] }
"#;

#[test]
fn renaming_a_group_a_rule_tests_moves_its_members_grants() {
    let s = LmsServer::start();
    catalogue_add(&s, "roles", "seller");
    catalogue_add(&s, "learningPaths", "Sales Onboarding");
    let ann = user(&s, "ann", "Sales", None);
    let bob = user(&s, "bob", "Sales", None);
    let cat = user(&s, "cat", "Sales", None);
    let g = s.create_group("Sales", &[&ann, &bob]);
    admin_text(
        &s,
        "PUT",
        "/admin/v1/mapping?confirm=true",
        SALES_GROUP_RULES,
    )
    .expect(200);
    wait_synced(&s);
    let source = format!("rules:sales@group:{g}");
    let team_source = format!("default:groups-as-teams@group:{g}");
    let in_sales = |id: &str, team: &str| {
        let l = learner(&s, id);
        assert_eq!(grants(&l, "roles"), [item("seller", &[&source])], "{l}");
        assert_eq!(
            grants(&l, "learningPaths"),
            [item("Sales Onboarding", &[&source])],
            "{l}"
        );
        assert_eq!(grants(&l, "teams"), [item(team, &[&team_source])], "{l}");
    };
    let outside = |id: &str, team: Option<&str>| {
        let l = learner(&s, id);
        assert_eq!(
            grants(&l, "roles"),
            [item("learner", &[RULES_DEFAULT_ROLE])],
            "{l}"
        );
        assert_eq!(grants(&l, "learningPaths"), [], "{l}");
        let teams: Vec<_> = team.iter().map(|t| item(t, &[&team_source])).collect();
        assert_eq!(grants(&l, "teams"), teams, "{l}");
    };
    in_sales(&ann, "Sales");
    in_sales(&bob, "Sales");
    outside(&cat, None);

    // Renamed away from the name the rule tests: the members lose the
    // rule's grants in the background, under the rename's change id.
    rename_group(&s, &g, "Field Marketing");
    wait_synced(&s);
    outside(&ann, Some("Field Marketing"));
    outside(&bob, Some("Field Marketing"));
    outside(&cat, None);
    let rename = events(&s, "limit=200")
        .into_iter()
        .find(|e| e["resourceType"] == "Group" && e["resourceId"] == g.as_str())
        .expect("the rename's Group event");
    assert_eq!(rename["action"], "update", "{rename}");
    for id in [&ann, &bob] {
        let evs = user_events(&s, id);
        let lost = evs
            .iter()
            .find(|e| e["resourceType"] == "Learner" && touches(e, "role", "old", "seller"))
            .unwrap_or_else(|| panic!("no event revokes the role: {evs:?}"));
        assert_eq!(lost["changeId"], rename["changeId"], "{lost}");
        assert!(
            touches(lost, "learningPath", "old", "Sales Onboarding"),
            "{lost}"
        );
    }

    // Renamed back: the grants return.
    rename_group(&s, &g, "Sales");
    wait_synced(&s);
    in_sales(&ann, "Sales");
    in_sales(&bob, "Sales");
    outside(&cat, None);
}

// ---------------------------------------------------------------------------
// Deleting a group re-maps every former member, not only the learners whose
// grants name the group: a rule may test membership with `not`, or through
// the second group of an `all`.

#[test]
fn deleting_a_group_grants_what_a_not_rule_now_allows() {
    let s = LmsServer::start();
    catalogue_add(&s, "learningPaths", "Staff Onboarding");
    let ann = user(&s, "ann", "Sales", None);
    let contractors = s.create_group("Contractors", &[&ann]);
    admin_text(
        &s,
        "PUT",
        "/admin/v1/mapping?confirm=true",
        "version = 1\n\n[[rule]]\nname = \"staff\"\nwhen = { not = { group = \"Contractors\" } }\ngrant = { learning_paths = [\"Staff Onboarding\"] }\n",
    )
    .expect(200);
    wait_synced(&s);
    assert_eq!(grants(&learner(&s, &ann), "learningPaths"), []);

    // ann is no contractor any more once the group is gone.
    s.delete(&format!("/Groups/{contractors}")).expect(204);
    wait_synced(&s);
    let x = s
        .admin_get(&format!("/admin/v1/learners/{ann}/explain"))
        .expect(200);
    assert_eq!(
        grants(&learner(&s, &ann), "learningPaths"),
        [item("Staff Onboarding", &["rules:staff@always"])],
        "explain's pending effects: {}",
        x.json["effects"]
    );
}

#[test]
fn deleting_the_second_group_of_an_all_rule_revokes_its_grant() {
    let s = LmsServer::start();
    catalogue_add(&s, "learningPaths", "Sales Leadership");
    let ann = user(&s, "ann", "Sales", None);
    let sales = s.create_group("Sales", &[&ann]);
    let managers = s.create_group("Managers", &[&ann]);
    admin_text(
        &s,
        "PUT",
        "/admin/v1/mapping?confirm=true",
        "version = 1\n\n[[rule]]\nname = \"sales-leaders\"\nwhen = { all = [ { group = \"Sales\" }, { group = \"Managers\" } ] }\ngrant = { learning_paths = [\"Sales Leadership\"] }\n",
    )
    .expect(200);
    wait_synced(&s);
    let l = learner(&s, &ann);
    let paths = grants(&l, "learningPaths");
    assert_eq!(paths.len(), 1, "{l}");
    assert_eq!(paths[0].0, "Sales Leadership", "{l}");
    // The source names the first group of the `all` only.
    assert_eq!(
        paths[0].1,
        [format!("rules:sales-leaders@group:{sales}")],
        "{l}"
    );

    // Without Managers the rule no longer holds.
    s.delete(&format!("/Groups/{managers}")).expect(204);
    wait_synced(&s);
    let x = s
        .admin_get(&format!("/admin/v1/learners/{ann}/explain"))
        .expect(200);
    assert_eq!(
        grants(&learner(&s, &ann), "learningPaths"),
        [],
        "explain's pending effects: {}",
        x.json["effects"]
    );
}

// ---------------------------------------------------------------------------
// Entra ID's custom extension attributes, end to end.

#[test]
fn rules_map_entra_custom_extension_attributes() {
    const EXT: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    let s = LmsServer::start();
    catalogue_add(&s, "learningPaths", "Forklift Safety");
    let rules = format!(
        "[[rule]]\nname = \"warehouse\"\nwhen = {{ attribute = \"{EXT}:site\", equals_ignore_case = \"warehouse\" }}\ngrant.learning_paths = [\"Forklift Safety\"]\n"
    );
    admin_text(&s, "PUT", "/admin/v1/mapping", &rules).expect(200);

    // Entra's POST carries the extension object and lists its URN.
    let created = s
        .post(
            "/Users",
            &json!({"schemas": [USER_SCHEMA, EXT], "userName": "wh@example.com", EXT: {"site": "Warehouse"}}),
        )
        .expect(201);
    let id = created.json["id"].as_str().expect("id").to_string();
    assert_eq!(created.json[EXT]["site"], "Warehouse", "{}", created.text);
    assert!(
        created.json["schemas"]
            .as_array()
            .is_some_and(|l| l.contains(&json!(EXT))),
        "{}",
        created.text
    );
    let rule = "rules:warehouse@attr:".to_string() + EXT + ":site";
    assert_eq!(
        grants(&learner(&s, &id), "learningPaths"),
        [item("Forklift Safety", &[&rule])]
    );

    // Entra's PATCH of the one attribute: the learner moves out of scope.
    s.patch(
        &format!("/Users/{id}"),
        &patch_ops(json!([{"op": "Replace", "path": format!("{EXT}:site"), "value": "Office"}])),
    )
    .expect(200);
    assert_eq!(s.get(&format!("/Users/{id}")).json[EXT]["site"], "Office");
    assert!(grants(&learner(&s, &id), "learningPaths").is_empty());
}

#[test]
fn rolling_back_installs_the_previous_version_again() {
    let s = LmsServer::start();
    catalogue_add(&s, "learningPaths", "A");
    catalogue_add(&s, "learningPaths", "B");
    let ann = user(&s, "ann", "Sales", None);
    let rules = |path: &str| {
        format!(
            "[[rule]]\nname = \"p\"\nwhen = {{ attribute = \"department\", equals = \"Sales\" }}\ngrant.learning_paths = [\"{path}\"]\n"
        )
    };
    // Nothing to roll back to yet.
    s.admin("POST", "/admin/v1/mapping/rollback?confirm=true", None)
        .expect(409);
    admin_text(&s, "PUT", "/admin/v1/mapping", &rules("A")).expect(200);
    s.admin("POST", "/admin/v1/mapping/rollback?confirm=true", None)
        .expect(200);
    // Version 1's predecessor is the default mapping.
    assert_eq!(s.admin_get("/admin/v1/mapping").json["mapper"], "default");
    admin_text(&s, "PUT", "/admin/v1/mapping?confirm=true", &rules("A")).expect(200);
    admin_text(&s, "PUT", "/admin/v1/mapping?confirm=true", &rules("B")).expect(200);
    wait_synced(&s);
    assert_eq!(grants(&learner(&s, &ann), "learningPaths")[0].0, "B");

    // Taking B away from a learner or two needs the confirmation.
    let out = s.cli(&[
        "mapping",
        "rollback",
        "--tenant",
        "default",
        "--threshold",
        "0",
    ]);
    assert!(!out.status.success());
    let out = s.cli(&["mapping", "rollback", "--tenant", "default", "--confirm"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_synced(&s);
    let m = s.admin_get("/admin/v1/mapping").json;
    assert_eq!(m["current"]["document"], json!(rules("A")), "{m}");
    assert_eq!(m["current"]["version"], 5, "{m}");
    assert_eq!(grants(&learner(&s, &ann), "learningPaths")[0].0, "A");
}
