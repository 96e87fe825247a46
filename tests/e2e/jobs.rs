//! Previews and installs as background jobs (`Prefer: respond-async`): the
//! 202 and its job, polling to the end, the confirmation that rests on a
//! job's preview (and is refused once that preview is stale), cancelling,
//! tenants kept apart, and a job whose server was killed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mapper::client;
use crate::mapper::hostile::{Plugin, build};
use crate::mapping::{STRIP_RULES, user};
use crate::support::{LmsServer, Resp, into_resp};

/// Sales keeps its role: nobody loses anything.
const SALES_RULES: &str = r#"version = 1
default_role = ""

[[rule]]
name = "sales-learners"
when = { attribute = "department", equals = "Sales" }
grant = { role = "learner" }
"#;

/// How long a job waits before its work, in the servers that need to see
/// one running (debug builds only).
const DELAY: (&str, &str) = ("SCIM_JOB_DELAY_MS", "60000");
/// A heartbeat every 0.3 s: a job silent for 1.8 s has lost its server.
const HEARTBEAT: (&str, &str) = ("SCIM_JOB_HEARTBEAT_MS", "300");

/// An admin request with this token (none: `None`), a body of bytes, and
/// `Prefer: respond-async` when `background`.
fn send(
    s: &LmsServer,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    background: bool,
) -> Resp {
    let mut req = client()
        .request(method.parse().expect("method"), s.admin_url(path))
        .body(body.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if background {
        req = req.header("prefer", "respond-async");
    }
    into_resp(req.send().expect("request"))
}

/// With the tenant's admin token.
fn admin(s: &LmsServer, method: &str, path: &str, body: &str, background: bool) -> Resp {
    send(
        s,
        Some(&s.admin_token),
        method,
        path,
        body.as_bytes(),
        background,
    )
}

/// Starts a job: 202, `Location` and `Preference-Applied`, the job running.
#[track_caller]
fn started(r: Resp, kind: &str) -> Value {
    let r = r.expect(202);
    let id = r.json["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/admin/v1/jobs/{id}").as_str())
    );
    assert_eq!(r.header("preference-applied"), Some("respond-async"));
    assert_eq!(r.json["kind"], kind, "{}", r.text);
    assert_eq!(r.json["state"], "running", "{}", r.text);
    assert_eq!(r.json["result"], Value::Null, "{}", r.text);
    r.json
}

/// Polls a job of the tenant's until it no longer runs.
#[track_caller]
fn poll(s: &LmsServer, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = send(
            s,
            Some(token),
            "GET",
            &format!("/admin/v1/jobs/{id}"),
            b"",
            false,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        if r.json["state"] != "running" {
            return r.json;
        }
        assert!(Instant::now() < deadline, "job still running: {}", r.text);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sellers(s: &LmsServer, n: usize) {
    for i in 1..=n {
        user(s, &format!("seller{i}"), "Sales", None);
    }
}

/// Installs [`STRIP_RULES`] as a job, which every seller's loss takes over
/// the threshold: its id and its ended state, `needs-confirmation`.
fn install_needing_confirmation(s: &LmsServer) -> (String, Value) {
    let job = started(
        admin(s, "PUT", "/admin/v1/mapping", STRIP_RULES, true),
        "mapping-install",
    );
    let id = job["id"].as_str().unwrap().to_string();
    let ended = poll(s, &s.admin_token, &id);
    assert_eq!(ended["state"], "needs-confirmation", "{ended}");
    (id, ended)
}

/// Starts a confirmed install of [`STRIP_RULES`] as a job; its id.
fn confirmed_install(s: &LmsServer) -> String {
    let job = started(
        admin(
            s,
            "PUT",
            "/admin/v1/mapping?confirm=true",
            STRIP_RULES,
            true,
        ),
        "mapping-install",
    );
    job["id"].as_str().unwrap().to_string()
}

/// Versions of the tenant's rules installed so far.
fn rules_history(s: &LmsServer) -> usize {
    let m = s.admin_get("/admin/v1/mapping").expect(200).json;
    m["history"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_preview_in_the_background_answers_at_once_and_polls_to_its_report() {
    let s = LmsServer::start();
    sellers(&s, 3);
    let job = started(
        admin(&s, "POST", "/admin/v1/mapping/preview", STRIP_RULES, true),
        "mapping-preview",
    );
    assert_eq!(job["total"], 3, "{job}");
    let id = job["id"].as_str().unwrap();
    let done = poll(&s, &s.admin_token, id);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["done"], 3, "{done}");
    assert!(done["finished"].is_string(), "{done}");
    assert_eq!(done["error"], Value::Null, "{done}");
    // The report is the one the request in the foreground answers.
    let sync = admin(&s, "POST", "/admin/v1/mapping/preview", STRIP_RULES, false).expect(200);
    for k in ["users", "losing", "gaining", "losingPercent", "items"] {
        assert_eq!(done["result"][k], sync.json[k], "{k}: {done}");
    }
    assert_eq!(done["result"]["losing"], 3, "{done}");

    // Listed, newest first, without the report.
    let list = s.admin_get("/admin/v1/jobs").expect(200).json;
    assert_eq!(list["jobs"][0]["id"], id, "{list}");
    assert_eq!(list["jobs"][0]["result"], Value::Null, "{list}");
    for bad in ["0", "101", "ten"] {
        let r = s
            .admin_get(&format!("/admin/v1/jobs?limit={bad}"))
            .expect(400);
        assert!(r.text.contains("from 1 to 100"), "{}", r.text);
    }
    // A preview applies nothing.
    assert_eq!(rules_history(&s), 0);
}

#[test]
fn an_install_over_the_threshold_waits_for_confirmation_of_its_own_preview() {
    let s = LmsServer::start();
    sellers(&s, 4);
    let (id, ended) = install_needing_confirmation(&s);
    assert_eq!(ended["result"], Value::Null, "{ended}");
    let e = &ended["error"];
    assert_eq!(e["status"], 409, "{ended}");
    assert_eq!(e["threshold"].as_f64(), Some(5.0), "{ended}");
    assert_eq!(e["preview"]["losing"], 4, "{ended}");
    assert!(e["detail"].as_str().unwrap().contains("confirm"), "{ended}");
    assert_eq!(rules_history(&s), 0, "nothing applied before confirmation");

    // Confirmed in the foreground, resting on that preview.
    let r = admin(
        &s,
        "PUT",
        &format!("/admin/v1/mapping?confirm=true&preview={id}"),
        STRIP_RULES,
        false,
    )
    .expect(200);
    assert_eq!(r.json["installed"]["version"], 1, "{}", r.text);
    assert_eq!(r.json["preview"]["losing"], 4, "{}", r.text);
    assert_eq!(rules_history(&s), 1);

    // A background preview confirms a background install just as well.
    let p = started(
        admin(&s, "POST", "/admin/v1/mapping/preview", SALES_RULES, true),
        "mapping-preview",
    );
    let pid = p["id"].as_str().unwrap().to_string();
    assert_eq!(poll(&s, &s.admin_token, &pid)["state"], "done");
    let c = started(
        admin(
            &s,
            "PUT",
            &format!("/admin/v1/mapping?confirm=true&preview={pid}"),
            SALES_RULES,
            true,
        ),
        "mapping-install",
    );
    let applied = poll(&s, &s.admin_token, c["id"].as_str().unwrap());
    assert_eq!(applied["state"], "done", "{applied}");
    assert_eq!(applied["result"]["installed"]["version"], 2, "{applied}");
    assert!(applied["result"]["changeId"].is_string(), "{applied}");
    assert_eq!(rules_history(&s), 2);
}

#[test]
fn a_confirmation_resting_on_a_stale_or_other_preview_is_refused() {
    let s = LmsServer::start();
    sellers(&s, 2);
    let (id, _) = install_needing_confirmation(&s);

    // Other rules than the preview's.
    let r = admin(
        &s,
        "PUT",
        &format!("/admin/v1/mapping?confirm=true&preview={id}"),
        SALES_RULES,
        false,
    )
    .expect(409);
    assert!(r.text.contains("preview this one"), "{}", r.text);
    // An unknown job.
    admin(
        &s,
        "PUT",
        "/admin/v1/mapping?confirm=true&preview=0000nosuchjob",
        STRIP_RULES,
        false,
    )
    .expect(404);

    // Something else was installed since: the preview is stale, in the
    // foreground and in the background alike.
    admin(&s, "PUT", "/admin/v1/mapping", SALES_RULES, false).expect(200);
    let r = admin(
        &s,
        "PUT",
        &format!("/admin/v1/mapping?confirm=true&preview={id}"),
        STRIP_RULES,
        false,
    )
    .expect(409);
    assert!(r.text.contains("preview again"), "{}", r.text);
    let c = started(
        admin(
            &s,
            "PUT",
            &format!("/admin/v1/mapping?confirm=true&preview={id}"),
            STRIP_RULES,
            true,
        ),
        "mapping-install",
    );
    let failed = poll(&s, &s.admin_token, c["id"].as_str().unwrap());
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error"]["status"], 409, "{failed}");
    assert!(
        failed["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("preview again"),
        "{failed}"
    );
    assert_eq!(rules_history(&s), 1, "only the Sales rules");
}

#[test]
fn a_plugin_install_waits_for_confirmation_and_applies_the_preview_confirmed() {
    let s = LmsServer::start();
    sellers(&s, 2);
    // Everyone gets `admin` instead of `learner`: everyone loses a role.
    s.admin(
        "POST",
        "/admin/v1/catalogue/roles",
        Some(&json!({"name": "admin"})),
    )
    .expect(201);
    let wasm = build(Plugin::GrantsAdmin);
    let send_wasm = |path: &str, background: bool| {
        send(&s, Some(&s.admin_token), "PUT", path, &wasm, background)
    };
    let job = started(send_wasm("/admin/v1/mapper", true), "mapper-install");
    let id = job["id"].as_str().unwrap().to_string();
    let ended = poll(&s, &s.admin_token, &id);
    assert_eq!(ended["state"], "needs-confirmation", "{ended}");
    assert_eq!(ended["error"]["preview"]["losing"], 2, "{ended}");
    let shown = s.admin_get("/admin/v1/mapper").expect(200).json;
    assert_eq!(shown["current"], Value::Null, "nothing applied: {shown}");

    // Other settings than the preview's: another plugin as far as the
    // preview goes.
    send_wasm(
        &format!("/admin/v1/mapper?confirm=true&preview={id}&fuel=12345"),
        false,
    )
    .expect(409);
    let c = started(
        send_wasm(&format!("/admin/v1/mapper?confirm=true&preview={id}"), true),
        "mapper-install",
    );
    let applied = poll(&s, &s.admin_token, c["id"].as_str().unwrap());
    assert_eq!(applied["state"], "done", "{applied}");
    assert_eq!(applied["result"]["installed"]["version"], 1, "{applied}");
    let shown = s.admin_get("/admin/v1/mapper").expect(200).json;
    assert_eq!(shown["active"], true, "{shown}");
}

#[test]
fn a_cancelled_job_applies_nothing_and_frees_the_tenant() {
    let s = LmsServer::start_env(&[], &[DELAY]);
    sellers(&s, 2);
    let id = confirmed_install(&s);
    // It holds the tenant's turn at mapping work while it runs.
    admin(&s, "POST", "/admin/v1/mapping/preview", STRIP_RULES, false).expect(429);

    let r = admin(&s, "DELETE", &format!("/admin/v1/jobs/{id}"), "", false).expect(200);
    assert_eq!(r.json["state"], "cancelled", "{}", r.text);
    let seen = poll(&s, &s.admin_token, &id);
    assert_eq!(seen["state"], "cancelled", "{seen}");
    assert!(seen["finished"].is_string(), "{seen}");
    // Once ended, it stays as it is.
    let again = admin(&s, "DELETE", &format!("/admin/v1/jobs/{id}"), "", false).expect(409);
    assert_eq!(again.json["job"]["state"], "cancelled", "{}", again.text);

    // The work stops and gives the turn back; nothing was applied.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin(&s, "POST", "/admin/v1/mapping/preview", STRIP_RULES, false);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 429, "{}", r.text);
        assert!(Instant::now() < deadline, "the turn was never given back");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(poll(&s, &s.admin_token, &id)["state"], "cancelled");
    assert_eq!(rules_history(&s), 0);
}

#[test]
fn tenants_see_only_their_own_jobs_and_tokens_are_required() {
    let s = LmsServer::start();
    sellers(&s, 1);
    let job = started(
        admin(&s, "POST", "/admin/v1/mapping/preview", STRIP_RULES, true),
        "mapping-preview",
    );
    let id = job["id"].as_str().unwrap().to_string();
    poll(&s, &s.admin_token, &id);
    let path = format!("/admin/v1/jobs/{id}");

    let second = s.cli_json(&["tenant", "add", "second", "--json"]);
    let other = second["adminToken"].as_str().unwrap();
    for method in ["GET", "DELETE"] {
        let r = send(&s, Some(other), method, &path, b"", false);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
    }
    let list = send(&s, Some(other), "GET", "/admin/v1/jobs", b"", false).expect(200);
    assert_eq!(list.json["jobs"], json!([]), "{}", list.text);

    // No token, or the SCIM token, opens none of it.
    for token in [None, Some(s.token.as_str())] {
        for (method, p) in [
            ("GET", "/admin/v1/jobs"),
            ("GET", path.as_str()),
            ("DELETE", path.as_str()),
            ("POST", "/admin/v1/mapping/preview"),
        ] {
            let r = send(&s, token, method, p, STRIP_RULES.as_bytes(), true);
            assert_eq!(r.status, 401, "{method} {p} with {token:?}: {}", r.text);
        }
    }
    // An unknown job.
    let r = admin(&s, "GET", "/admin/v1/jobs/0000nosuchjob", "", false).expect(404);
    assert!(r.text.contains("No job"), "{}", r.text);
    admin(&s, "DELETE", "/admin/v1/jobs/0000nosuchjob", "", false).expect(404);
}

/// On SQLite (one server per file) the restarted server knows at once that
/// the job's server is gone; on PostgreSQL (replicas) the job's heartbeat
/// tells, once it has stopped for long enough.
#[test]
fn a_job_whose_server_was_killed_is_interrupted_and_applied_nothing() {
    let mut s = LmsServer::start_env(&[], &[DELAY, HEARTBEAT]);
    sellers(&s, 2);
    let id = confirmed_install(&s);
    // Alive, it keeps running past the time a silent job is given.
    std::thread::sleep(Duration::from_millis(2500));
    let alive = admin(&s, "GET", &format!("/admin/v1/jobs/{id}"), "", false).expect(200);
    assert_eq!(alive.json["state"], "running", "{}", alive.text);
    s.kill9();
    s.restart();
    let seen = poll(&s, &s.admin_token, &id);
    assert_eq!(seen["state"], "interrupted", "{seen}");
    assert!(
        seen["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was applied"),
        "{seen}"
    );
    assert_eq!(rules_history(&s), 0);
    // The tenant may start again at once.
    admin(&s, "POST", "/admin/v1/mapping/preview", STRIP_RULES, false).expect(200);
}

/// The command line works on the database directly: a preview there shows
/// its progress on a terminal only, so piped output is just the report.
#[test]
fn the_command_line_preview_prints_no_progress_when_piped() {
    let s = LmsServer::start();
    sellers(&s, 3);
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("rules.toml");
    std::fs::write(&file, STRIP_RULES).expect("rules file");
    let file = file.to_str().expect("UTF-8 path");
    let out = s.cli(&["mapping", "preview", "--tenant", "default", file]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = s.cli_json(&["mapping", "preview", "--tenant", "default", file, "--json"]);
    assert_eq!(report["users"], 3, "{report}");
    assert_eq!(report["losing"], 3, "{report}");
}
