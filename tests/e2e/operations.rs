//! Operating the host: `/metrics`, token rotation, tenant removal, and one
//! server per database.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{LmsServer, Server, sqlite_only};

#[test]
fn metrics_need_their_token_and_count_requests_effects_and_backlog() {
    let s = LmsServer::start_with(&["--metrics-token", "metrics-secret"]);
    let u = s.create_user("m1");
    s.create_group("Metrics Team", &[&u]);
    s.get("/Users/does-not-exist").expect(404);
    // Invented methods must not become label values (unbounded series).
    s.send_as(Some(&s.token), "FOOBAR", &s.url("/Users"), None);
    let url = format!("{}/metrics", s.origin());

    for token in [None, Some(s.token.as_str()), Some(s.admin_token.as_str())] {
        s.send_as(token, "GET", &url, None).expect(401);
    }
    let r = s
        .send_as(Some("metrics-secret"), "GET", &url, None)
        .expect(200);
    let text = r.text.clone();
    for line in [
        r#"scim_requests_total{tenant="default",method="POST",resource="User",status="201"} 1"#,
        r#"scim_requests_total{tenant="default",method="GET",resource="User",status="404"} 1"#,
        r#"scim_lms_effects_total{tenant="default",effect="join-team"} 1"#,
        r#"scim_lms_effects_total{tenant="default",effect="set-role"} 1"#,
        "scim_outbox_backlog 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        text.contains("scim_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[test]
fn metrics_are_off_without_a_token() {
    let s = LmsServer::start();
    let url = format!("{}/metrics", s.origin());
    s.send_as(Some(&s.admin_token), "GET", &url, None)
        .expect(404);
}

#[test]
fn a_rotated_token_stops_working_at_once() {
    let s = LmsServer::start();
    let out = s.cli(&["tenant", "rotate-token", "default"]);
    assert!(out.status.success(), "{out:?}");
    let fresh = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let users = s.url("/Users");
    s.send_as(Some(&s.token), "GET", &users, None).expect(401);
    s.send_as(Some(&fresh), "GET", &users, None).expect(200);

    let out = s.cli(&["tenant", "rotate-token", "default", "--admin"]);
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let sync = s.admin_url("/admin/v1/sync");
    s.send_as(Some(&s.admin_token), "GET", &sync, None)
        .expect(401);
    s.send_as(Some(&admin), "GET", &sync, None).expect(200);
    // Tokens of one kind never open the other's endpoints.
    s.send_as(Some(&fresh), "GET", &sync, None).expect(401);
    s.send_as(Some(&admin), "GET", &users, None).expect(401);

    let out = s.cli(&["tenant", "rotate-token", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no tenant named 'nobody'"));
}

#[test]
fn removing_a_tenant_needs_confirmation_and_takes_all_its_data() {
    let s = LmsServer::start();
    let other: Value = s.cli_json(&["tenant", "add", "leaving", "--json"]);
    let token = other["scimToken"].as_str().unwrap();
    let users = s.url("/Users");
    let body = serde_json::json!({"userName": "gone@example.com"});
    s.send_as(Some(token), "POST", &users, Some(&body))
        .expect(201);

    let out = s.cli(&["tenant", "remove", "leaving"]);
    assert!(!out.status.success(), "removal without --yes must refuse");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    s.send_as(Some(token), "GET", &users, None).expect(200);

    let out = s.cli(&["tenant", "remove", "leaving", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    s.send_as(Some(token), "GET", &users, None).expect(401);
    // The default tenant is untouched; the other's user and learner are gone.
    s.get("/Users").expect(200);
    let left = s.query_i64(
        "SELECT (SELECT count(*) FROM learners WHERE user_name = 'gone@example.com')
              + (SELECT count(*) FROM documents WHERE body LIKE '%gone@example.com%')",
    );
    assert_eq!(left, 0);
}

#[test]
fn the_admin_api_refuses_garbled_input_and_changes_nothing() {
    let s = LmsServer::start();
    let u = s.create_user("hostile@example.com");
    for query in ["limit=abc", "limit=0", "since=yesterday", "failed=maybe"] {
        let r = s
            .admin_get(&format!("/admin/v1/events?{query}"))
            .expect(400);
        assert!(
            r.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{query}: {}",
            r.text
        );
    }
    let teams = format!("/admin/v1/learners/{u}/teams");
    for body in [
        serde_json::json!({}),
        serde_json::json!({"name": "  "}),
        serde_json::json!({"name": 7}),
    ] {
        s.admin("POST", &teams, Some(&body)).expect(400);
    }
    s.admin(
        "POST",
        &format!("/admin/v1/learners/{u}/badges"),
        Some(&serde_json::json!({"name": "x"})),
    )
    .expect(404);
    s.admin("DELETE", &format!("{teams}/NeverGranted"), None)
        .expect(404);
    let learner = s.admin_get(&format!("/admin/v1/learners/{u}")).expect(200);
    assert_eq!(
        learner.json["teams"],
        serde_json::json!([]),
        "{}",
        learner.text
    );
}

/// A background batch is at most what the LMS answers at once; a larger one
/// is refused at start rather than draining part of each task.
#[test]
fn a_drain_batch_past_the_maximum_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token", "t"])
        .args(["--drain-batch", "20000", "--db"])
        .arg(dir.path().join("scim.db"))
        .output()
        .expect("run scim-host");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--drain-batch") && stderr.contains("10000"),
        "{stderr}"
    );
    assert!(!dir.path().join("scim.db").exists(), "nothing was created");
}

#[test]
fn a_second_server_on_the_same_database_is_refused() {
    // Replicas share a PostgreSQL database; a SQLite file has one server.
    if sqlite_only("a_second_server_on_the_same_database_is_refused") {
        return;
    }
    let s = Server::start();
    let mut second = Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token", "another"])
        .arg("--db")
        .arg(s.db_file())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a second scim-host");
    // Two servers would both drain the outbox; the second must stop at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second scim-host is serving the same database");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("already serving") && stderr.contains(&s.pid().to_string()),
        "{stderr}"
    );
    // The first server is untouched, and the command line still works.
    s.get("/Users").expect(200);
    let out = s.cli(&["tenant", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
