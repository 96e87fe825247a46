//! Operating the host: `/metrics`, token rotation, tenant removal, one
//! server per database, `/readyz`, TLS, a graceful stop, online backups,
//! and slow or idle clients.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{LmsServer, Server, USER_SCHEMA, raise_open_file_limit, sqlite_only};

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

#[test]
fn readyz_says_the_database_answers_and_healthz_stays_plain() {
    let s = Server::start();
    let r = s.send_as(None, "GET", &format!("{}/readyz", s.origin()), None);
    let r = r.expect(200);
    assert_eq!(r.json["ready"], true, "{}", r.text);
    assert_eq!(r.json["database"], "ok", "{}", r.text);
    assert_eq!(r.json["engine"], "compiled", "{}", r.text);
    let h = s.send_as(None, "GET", &format!("{}/healthz", s.origin()), None);
    assert_eq!(h.expect(200).text, "ok");
}

// ---------------------------------------------------------------------------
// TLS

/// A self-signed certificate for 127.0.0.1 and localhost, written as
/// `NAME.crt` and `NAME.key` in `dir`; returns its DER.
fn certificate(
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let issued =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, issued.cert.pem()).unwrap();
    std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();
    (cert, key, issued.cert.der().to_vec())
}

/// A client that trusts the certificates in `pems` and reports the one the
/// server presents; every client has connections of its own.
fn tls_client(pems: &[&std::path::Path]) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .timeout(Duration::from_secs(60));
    for pem in pems {
        let pem = std::fs::read(pem).unwrap();
        b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
    }
    b.build().unwrap()
}

/// The certificate the server presented for `url`.
fn presented(client: &reqwest::blocking::Client, url: &str) -> Vec<u8> {
    let r = client.get(url).send().unwrap();
    assert_eq!(r.status(), 200);
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a TLS connection")
        .to_vec()
}

#[test]
fn https_serves_scim_and_sighup_swaps_the_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, first) = certificate(certs.path(), "first");
    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut s = Server::start_with(&["--tls-cert", cert_arg, "--tls-key", key_arg]);
    assert!(s.base.starts_with("https://"), "{}", s.base);
    s.use_client(tls_client(&[&cert]));
    let healthz = format!("{}/healthz", s.origin());
    assert_eq!(presented(&tls_client(&[&cert]), &healthz), first);
    let id = s.create_user("tls-user");
    s.get(&format!("/Users/{id}")).expect(200);

    // Plain HTTP on the TLS port is refused, and the server goes on.
    let plain = s.origin().replace("https://", "http://");
    let refused = reqwest::blocking::Client::new()
        .get(format!("{plain}/healthz"))
        .send();
    assert!(refused.is_err(), "plain HTTP answered: {refused:?}");
    s.get("/Users").expect(200);

    // A bad file on SIGHUP keeps the certificate in use.
    let first_pem = certs.path().join("first-copy.crt");
    std::fs::copy(&cert, &first_pem).unwrap();
    std::fs::write(&cert, "not a certificate").unwrap();
    s.signal(libc::SIGHUP);
    wait_for_log(&s, "TLS certificate not reloaded");
    assert_eq!(presented(&tls_client(&[&first_pem]), &healthz), first);

    // New files and SIGHUP: new connections get the new certificate.
    let (second_cert, second_key, second) = certificate(certs.path(), "second");
    std::fs::copy(&second_cert, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    s.signal(libc::SIGHUP);
    wait_for_log(&s, "TLS certificate reloaded");
    assert_eq!(presented(&tls_client(&[&second_cert]), &healthz), second);
    s.use_client(tls_client(&[&second_cert]));
    s.get(&format!("/Users/{id}")).expect(200);
}

/// Waits (at most a minute) for `needle` in the server's log.
#[track_caller]
fn wait_for_log(s: &Server, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no '{needle}' in the log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tls_flags_come_in_pairs_and_bad_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certificate(dir.path(), "good");
    let (_, other_key, _) = certificate(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "neither a certificate nor a key\n").unwrap();
    let torn = dir.path().join("torn.pem");
    std::fs::write(&torn, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let serve = |args: &[&std::path::Path], flags: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_scim-host"));
        c.args(["serve", "--listen", "127.0.0.1:0", "--token", "t", "--db"])
            .arg(dir.path().join("scim.db"));
        for (flag, file) in flags.iter().zip(args) {
            c.arg(flag).arg(file);
        }
        let out = c.output().expect("run scim-host");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = serve(&[&cert], &["--tls-cert"]);
    assert!(e.contains("--tls-key"), "{e}");
    let e = serve(&[&key], &["--tls-key"]);
    assert!(e.contains("--tls-cert"), "{e}");
    let e = serve(&[&missing, &key], &["--tls-cert", "--tls-key"]);
    assert!(e.contains("missing.pem"), "{e}");
    let e = serve(&[&garbage, &key], &["--tls-cert", "--tls-key"]);
    assert!(
        e.contains("garbage.pem") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = serve(&[&torn, &key], &["--tls-cert", "--tls-key"]);
    assert!(e.contains("torn.pem") && e.contains("not valid PEM"), "{e}");
    let e = serve(&[&cert, &garbage], &["--tls-cert", "--tls-key"]);
    assert!(
        e.contains("garbage.pem") && e.contains("private key"),
        "{e}"
    );
    let e = serve(&[&cert, &other_key], &["--tls-cert", "--tls-key"]);
    assert!(e.contains("does not go with"), "{e}");
    assert!(!dir.path().join("scim.db").exists(), "nothing was created");
}

// ---------------------------------------------------------------------------
// A graceful stop

/// A request with `Expect: 100-continue` whose body is sent in two halves:
/// the server has the request in hand once it asks for the body.
fn half_sent_user(s: &Server, user_name: &str) -> (TcpStream, Vec<u8>) {
    let body = serde_json::json!({"schemas": [USER_SCHEMA], "userName": user_name}).to_string();
    let addr = s.origin().replace("http://", "");
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        conn,
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        s.token,
        body.len()
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        assert_eq!(
            conn.read(&mut byte).unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let bytes = body.into_bytes();
    conn.write_all(&bytes[..bytes.len() / 2]).unwrap();
    (conn, bytes[bytes.len() / 2..].to_vec())
}

/// Reads a response to its end (the server closes the connection).
fn read_to_close(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn sigterm_finishes_the_request_in_flight_checkpoints_and_exits_0() {
    if sqlite_only("sigterm_finishes_the_request_in_flight_checkpoints_and_exits_0") {
        return;
    }
    let mut s = LmsServer::start();
    s.create_user("before-stop");
    let (mut conn, rest) = half_sent_user(&s, "in-flight");
    let addr = s.origin().replace("http://", "");
    s.signal(libc::SIGTERM);
    // Once it stops accepting, the stop has begun; the request is still open.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(&addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    conn.write_all(&rest).unwrap();
    let response = read_to_close(&mut conn);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = s.scim.wait_for_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}\n{}", s.log());
    let wal = std::path::PathBuf::from(format!("{}-wal", s.db_file().display()));
    let wal_bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(
        wal_bytes,
        0,
        "the write-ahead log was not checkpointed:\n{}",
        s.log()
    );

    s.restart();
    assert_eq!(s.count("/Users", "userName eq \"in-flight\""), 1);
    assert_eq!(s.count("/Users", "userName eq \"before-stop\""), 1);
}

// ---------------------------------------------------------------------------
// Online backups

#[test]
fn a_backup_under_load_restores_every_write_acknowledged_before_it() {
    if sqlite_only("a_backup_under_load_restores_every_write_acknowledged_before_it") {
        return;
    }
    let s = Arc::new(Server::start());
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, acked, stop) = (s.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let body =
                    serde_json::json!({"schemas": [USER_SCHEMA], "userName": format!("load-{i}")});
                s.post("/Users", &body).expect(201);
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
        })
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "the writer is stuck");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(40);
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");
    let before = acked.load(Ordering::SeqCst);
    let written = s.cli_json(&["db", "backup", backup.to_str().unwrap(), "--json"]);
    // The writer went on during and after the backup.
    wait_for(acked.load(Ordering::SeqCst) + 20);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_eq!(
        written["bytes"].as_u64(),
        Some(std::fs::metadata(&backup).unwrap().len()),
        "{written}"
    );
    assert!(written["pages"].as_i64().unwrap() > 0, "{written}");

    // An existing file is kept unless --force.
    let out = s.cli(&["db", "backup", backup.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{out:?}"
    );

    // Restore: the copy becomes another server's database.
    let restored_dir = tempfile::tempdir().unwrap();
    let restored = restored_dir.path().join("scim.db");
    std::fs::copy(&backup, &restored).unwrap();
    let check: String = rusqlite::Connection::open(&restored)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let r = Server::launch(
        restored_dir,
        restored.to_str().unwrap().to_string(),
        s.token.clone(),
        &[],
        &[],
    );
    let present = r.count("/Users", "userName sw \"load-\"") as usize;
    assert!(
        present >= before,
        "{present} users restored, {before} acknowledged before the backup"
    );
    for i in 0..before {
        assert_eq!(
            r.count("/Users", &format!("userName eq \"load-{i}\"")),
            1,
            "load-{i}"
        );
    }
    let out = s.cli(&["db", "backup", backup.to_str().unwrap(), "--force"]);
    assert!(out.status.success(), "{out:?}");
}

// ---------------------------------------------------------------------------
// Slow and idle clients

#[test]
fn a_client_trickling_its_body_gets_408_and_the_server_goes_on() {
    let s = Server::start_with(&["--body-timeout-secs", "2", "--header-timeout-secs", "2"]);
    let addr = s.origin().replace("http://", "");
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        conn,
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{{",
        s.token
    )
    .unwrap();
    // A byte every 200 ms would take 200 s to send the body.
    let trickler = {
        let mut conn = conn.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..999 {
                std::thread::sleep(Duration::from_millis(200));
                if conn.write_all(b" ").is_err() {
                    return;
                }
            }
        })
    };
    let response = read_to_close(&mut conn);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("application/scim+json"), "{response}");
    assert!(
        response.contains("urn:ietf:params:scim:api:messages:2.0:Error"),
        "{response}"
    );
    let _ = conn.shutdown(std::net::Shutdown::Both);
    trickler.join().unwrap();

    // Headers that never end, and a connection that says nothing, are closed.
    let mut half = TcpStream::connect(&addr).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(half, "GET /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\n").unwrap();
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    for c in [&mut half, &mut idle] {
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf[..n]));
    }
    s.get("/Users").expect(200);
}

#[test]
fn ten_thousand_idle_connections_leave_room_for_a_request() {
    let limit = raise_open_file_limit();
    // What the tests of this process may hold open meanwhile.
    let wanted = 10_000usize.min((limit as usize).saturating_sub(500));
    if wanted < 10_000 {
        eprintln!("the open-file limit is {limit}: holding {wanted} idle connections");
    }
    let s = Server::start();
    let addr = s.origin().replace("http://", "");
    let idle: Vec<TcpStream> = (0..wanted)
        .map(|i| TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    s.get("/Users").expect(200);
    let r = s.send_as(None, "GET", &format!("{}/healthz", s.origin()), None);
    r.expect(200);
    drop(idle);
}
