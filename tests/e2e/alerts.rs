//! Alert webhooks end to end, against a receiver in the test process: each
//! kind is delivered and signed with the webhook's secret; a receiver that
//! is down loses nothing; pending deliveries survive `kill -9`, every event
//! id arriving with one body; a rolled-back change alerts nobody; tenants
//! see only their own webhooks; bad input is refused. And the Prometheus
//! rules shipped under `host-harness/prometheus/` name only metrics that
//! `/metrics` exports.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::mapper::hostile::{Plugin, build};
use crate::support::{ENTERPRISE, LmsServer, Resp, USER_SCHEMA, into_resp, postgres_backend};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

// ---------------------------------------------------------------------------
// A webhook receiver

/// One request the receiver got, and the status it answered.
#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    signature: String,
    content_type: String,
    body: String,
    status: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }
}

/// An HTTP server on a loopback port that records every request and
/// answers with the status it is set to.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").expect("bind a receiver"))
    }

    /// A receiver on a port that was free a moment ago (a webhook's URL
    /// named it while nothing listened).
    fn start_on(port: u16) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => return Self::on(l),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("port {port} not free yet: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("bind port {port}: {e}"),
            }
        }
    }

    fn on(listener: TcpListener) -> Self {
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (got, status, stop) = (got.clone(), status.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (got, status) = (got.clone(), status.clone());
                            std::thread::spawn(move || serve(stream, &got, &status));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Receiver {
            addr,
            got,
            status,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answer every later request with `status`.
    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// The requests answered 2xx.
    fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits (60 s at most) until a delivered request satisfies `pred`;
    /// returns it.
    #[track_caller]
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Received {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(r) = self.delivered().into_iter().find(|r| pred(&r.json())) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not delivered within 60 s; received: {:#?}",
                self.received()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads one HTTP/1.1 request from `stream`, records it, answers.
fn serve(stream: TcpStream, got: &Mutex<Vec<Received>>, status: &AtomicU16) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let answer = status.load(Ordering::SeqCst);
    got.lock().expect("lock").push(Received {
        event_id: headers.get("x-scim-event-id").cloned().unwrap_or_default(),
        signature: headers.get("x-scim-signature").cloned().unwrap_or_default(),
        content_type: headers.get("content-type").cloned().unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status: answer,
    });
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {answer} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}

/// Checks `r`'s signature as a receiver would: HMAC-SHA256 of "t.body"
/// with the webhook's secret, and a recent `t`.
#[track_caller]
fn assert_signed(r: &Received, secret: &str) {
    let (t, v1) = r
        .signature
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("bad signature header: {:?}", r.signature));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{t}.{}", r.body).as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(v1, expected, "signature of {}", r.body);
    let t: i64 = t.parse().expect("t");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    assert!((now - t).abs() < 300, "t={t} is not now ({now})");
    assert_eq!(r.content_type, "application/json");
}

// ---------------------------------------------------------------------------
// Helpers

/// Fast retries and checks, so the tests wait for milliseconds, not minutes.
const FAST: [(&str, &str); 3] = [
    ("SCIM_ALERT_RETRY_BASE_MS", "200"),
    ("SCIM_ALERT_BACKLOG_CHECK_MS", "200"),
    ("SCIM_ALERT_POLL_MS", "50"),
];

/// The public URL of [`server`]: its alerts link to the console under it.
const PUBLIC_URL: &str = "https://lms.example.com/scim/v2";

/// A server whose webhooks may reach this machine's receivers.
fn server() -> LmsServer {
    LmsServer::start_env(
        &["--alerts-allow-private", "--public-url", PUBLIC_URL],
        &FAST,
    )
}

/// Adds a webhook through the admin API; returns its id and secret.
#[track_caller]
fn add_hook(s: &LmsServer, url: &str, on: &[&str], extra: Value) -> (i64, String) {
    let mut body = json!({"url": url, "on": on});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    let r = s.admin("POST", "/admin/v1/alerts", Some(&body)).expect(201);
    let secret = r.json["secret"].as_str().expect("secret").to_string();
    (r.json["id"].as_i64().expect("id"), secret)
}

fn deliveries(s: &LmsServer) -> Vec<Value> {
    s.admin_get("/admin/v1/alerts/deliveries?limit=1000")
        .expect(200)
        .json["deliveries"]
        .as_array()
        .expect("deliveries")
        .clone()
}

/// Queues a test alert; returns its event id.
#[track_caller]
fn test_alert(s: &LmsServer, hook: i64) -> String {
    let r = s
        .admin("POST", &format!("/admin/v1/alerts/{hook}/test"), None)
        .expect(202);
    r.json["eventId"].as_str().expect("eventId").to_string()
}

fn user(s: &LmsServer, name: &str, department: &str) -> String {
    let r = s
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "userName": name,
                "active": true,
                ENTERPRISE: {"department": department},
            }),
        )
        .expect(201);
    r.json["id"].as_str().expect("id").to_string()
}

/// A change the mapping rules do not look at, so mapping visits the user.
#[track_caller]
fn touch(s: &LmsServer, id: &str, title: &str) {
    s.patch(
        &format!("/Users/{id}"),
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": title}]}),
    )
    .expect(200);
}

/// A request that fails: the same userName twice.
fn failed_request(s: &LmsServer, name: &str) {
    s.post(
        "/Users",
        &json!({"schemas": [USER_SCHEMA], "userName": name}),
    )
    .expect(409);
}

fn catalogue_add(s: &LmsServer, kind: &str, name: &str) {
    s.admin(
        "POST",
        &format!("/admin/v1/catalogue/{kind}"),
        Some(&json!({"name": name})),
    )
    .expect(201);
}

const SELLERS: &str = r#"version = 1

[[rule]]
name = "sellers"
when = { attribute = "department", equals = "Sales" }
grant = { role = "seller" }
"#;

/// Installs rules with the admin API.
fn install_rules(s: &LmsServer, rules: &str) -> Resp {
    let client = reqwest::blocking::Client::new();
    into_resp(
        client
            .put(s.admin_url("/admin/v1/mapping?confirm=true"))
            .bearer_auth(&s.admin_token)
            .header("content-type", "application/toml")
            .body(rules.to_string())
            .send()
            .expect("request"),
    )
}

/// Installs a plugin whose every call traps, disabled at its first failure.
fn install_trap(s: &LmsServer) {
    let r = reqwest::blocking::Client::new()
        .put(s.admin_url("/admin/v1/mapper?confirm=true&maxFailures=1"))
        .bearer_auth(&s.admin_token)
        .header("content-type", "application/wasm")
        .body(build(Plugin::Trap))
        .send()
        .expect("install");
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap_or_default());
}

/// Runs a statement on the server's database, whichever backend.
fn exec(s: &LmsServer, sql: &str) {
    if postgres_backend() {
        let mut c = ::postgres::Client::connect(s.db_arg(), ::postgres::NoTls).expect("connect");
        c.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    } else {
        let c = rusqlite::Connection::open(s.db_arg()).expect("open");
        c.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        c.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Waits (60 s at most) for `done`.
#[track_caller]
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every attempt of one event id carried the same body.
#[track_caller]
fn assert_one_body_per_event(got: &[Received]) {
    let mut bodies: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in got {
        bodies.entry(&r.event_id).or_default().insert(&r.body);
    }
    for (id, b) in bodies {
        assert_eq!(
            b.len(),
            1,
            "event {id} was sent with different bodies: {b:#?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The webhooks themselves

#[test]
fn alert_webhooks_belong_to_their_tenant_and_bad_input_is_refused() {
    // No --alerts-allow-private: this machine's addresses are refused.
    let s = LmsServer::start();
    let (id, secret) = add_hook(
        &s,
        "https://hooks.example.com/scim",
        &["drift", "role-mismatch"],
        json!({"format": "slack", "backlogMinutes": 30}),
    );
    assert!(secret.starts_with("whsec_"), "{secret}");
    let list = s.admin_get("/admin/v1/alerts").expect(200).json;
    assert_eq!(
        list["webhooks"],
        json!([{"id": id, "url": "https://hooks.example.com/scim", "on": ["drift", "role-mismatch"],
                "format": "slack", "backlogMinutes": 30, "created": list["webhooks"][0]["created"]}]),
        "{list}"
    );
    assert_eq!(
        list["kinds"],
        json!([
            "provisioning-failed",
            "mapping-failed",
            "role-mismatch",
            "drift",
            "plugin-disabled",
            "outbox-backlog"
        ])
    );
    assert!(
        !list.to_string().contains(&secret),
        "the secret is shown once"
    );

    for (body, says) in [
        (
            json!({"url": "ftp://hooks.example.com/x", "on": ["drift"]}),
            "http or https",
        ),
        (
            json!({"url": "https://u:p@hooks.example.com/x", "on": ["drift"]}),
            "user name or password",
        ),
        (json!({"url": "not a url", "on": ["drift"]}), "not a URL"),
        (json!({"on": ["drift"]}), "'url'"),
        (
            json!({"url": "https://hooks.example.com/x", "on": ["everything"]}),
            "not an alert kind",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "on": []}),
            "'on'",
        ),
        (json!({"url": "https://hooks.example.com/x"}), "'on'"),
        (
            json!({"url": "https://hooks.example.com/x", "on": ["drift"], "format": "xml"}),
            "'format'",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "on": ["drift"], "backlogMinutes": 0}),
            "backlogMinutes",
        ),
        (
            json!({"url": "http://127.0.0.1:9/x", "on": ["drift"]}),
            "--alerts-allow-private",
        ),
        (
            json!({"url": "http://localhost:9/x", "on": ["drift"]}),
            "--alerts-allow-private",
        ),
        (
            json!({"url": "http://169.254.169.254/latest", "on": ["drift"]}),
            "--alerts-allow-private",
        ),
        (
            json!({"url": "http://[::1]:9/x", "on": ["drift"]}),
            "--alerts-allow-private",
        ),
        (
            json!({"url": "http://10.0.0.1/x", "on": ["drift"]}),
            "--alerts-allow-private",
        ),
    ] {
        let r = s.admin("POST", "/admin/v1/alerts", Some(&body)).expect(400);
        let detail = r.json["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{body}: {detail}");
    }
    let r = s.send_as(
        Some(&s.admin_token),
        "POST",
        &s.admin_url("/admin/v1/alerts"),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        s.admin_get("/admin/v1/alerts").json["webhooks"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "refusals created nothing"
    );

    // Another tenant neither sees nor touches it.
    let other = s.cli_json(&["tenant", "add", "other", "--json"]);
    let other = other["adminToken"]
        .as_str()
        .expect("adminToken")
        .to_string();
    let as_other =
        |method: &str, path: &str| s.send_as(Some(&other), method, &s.admin_url(path), None);
    assert_eq!(
        as_other("GET", "/admin/v1/alerts").expect(200).json["webhooks"],
        json!([])
    );
    as_other("DELETE", &format!("/admin/v1/alerts/{id}")).expect(404);
    as_other("POST", &format!("/admin/v1/alerts/{id}/test")).expect(404);
    assert_eq!(
        as_other("GET", "/admin/v1/alerts/deliveries")
            .expect(200)
            .json["deliveries"],
        json!([])
    );
    // Nor does the SCIM token, nor no token.
    s.send_as(
        Some(&s.token),
        "GET",
        &s.admin_url("/admin/v1/alerts"),
        None,
    )
    .expect(401);
    s.send_as(
        None,
        "POST",
        &s.admin_url("/admin/v1/alerts"),
        Some(&json!({})),
    )
    .expect(401);
    s.admin("DELETE", "/admin/v1/alerts/abc", None).expect(404);
    s.admin_get("/admin/v1/alerts/deliveries?limit=0")
        .expect(400);

    // The command line: add (the secret once), list, remove.
    let added = s.cli_json(&[
        "tenant",
        "alerts",
        "default",
        "--webhook",
        "https://hooks.example.com/cli",
        "--on",
        "provisioning-failed,outbox-backlog",
        "--backlog-minutes",
        "5",
        "--json",
    ]);
    assert!(
        added["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{added}"
    );
    assert_eq!(
        added["on"],
        json!(["provisioning-failed", "outbox-backlog"])
    );
    let listed = s.cli_json(&["tenant", "alerts", "default", "--list", "--json"]);
    assert_eq!(
        listed["webhooks"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert!(!listed.to_string().contains("whsec_"), "{listed}");
    for args in [
        &["--webhook", "http://127.0.0.1:9/x", "--on", "drift"][..],
        &[
            "--webhook",
            "https://hooks.example.com/x",
            "--on",
            "nothing",
        ][..],
    ] {
        let mut all = vec!["tenant", "alerts", "default"];
        all.extend_from_slice(args);
        let out = s.cli(&all);
        assert!(!out.status.success(), "{args:?} was accepted");
    }
    let removed = s.cli_json(&[
        "tenant",
        "alerts",
        "default",
        "--remove",
        &added["id"].to_string(),
        "--json",
    ]);
    assert_eq!(removed["removed"], added["id"]);
    assert!(
        !s.cli(&["tenant", "alerts", "default", "--remove", "9999"])
            .status
            .success()
    );
    let deliveries = s.cli_json(&["tenant", "alerts", "default", "--deliveries", "--json"]);
    assert_eq!(deliveries["deliveries"], json!([]));

    s.admin("DELETE", &format!("/admin/v1/alerts/{id}"), None)
        .expect(204);
    s.admin("DELETE", &format!("/admin/v1/alerts/{id}"), None)
        .expect(404);
    assert_eq!(s.admin_get("/admin/v1/alerts").json["webhooks"], json!([]));
}

/// This machine's host name when it resolves to loopback addresses only
/// (as in most containers), so that a receiver here would be reachable
/// through it.
fn loopback_host_name() -> Option<String> {
    use std::net::ToSocketAddrs;
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    let name = String::from_utf8(buf[..end].to_vec()).ok()?;
    let addrs: Vec<SocketAddr> = (name.as_str(), 80).to_socket_addrs().ok()?.collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())).then_some(name)
}

/// Without `--alerts-allow-private` a webhook that reaches this machine is
/// refused at delivery too: one whose URL names a loopback address (let in
/// by the CLI's `--allow-private`), and one whose host name resolves to it.
#[test]
fn without_the_flag_deliveries_to_this_machine_are_refused() {
    let s = LmsServer::start_env(&[], &FAST);
    let rx = Receiver::start();
    let port = rx.addr.port();
    let mut urls = vec![format!("http://127.0.0.1:{port}/hook")];
    match loopback_host_name() {
        Some(name) => urls.push(format!("http://{name}:{port}/hook")),
        None => eprintln!("this host's name does not resolve to loopback; checked by address only"),
    }
    for url in &urls {
        s.cli_json(&[
            "tenant",
            "alerts",
            "default",
            "--webhook",
            url,
            "--on",
            "provisioning-failed",
            "--allow-private",
            "--json",
        ]);
    }
    s.create_user("erin");
    failed_request(&s, "erin");
    wait_until("every delivery refused", || {
        let d = deliveries(&s);
        d.len() == urls.len()
            && d.iter().all(|d| {
                d["lastError"]
                    .as_str()
                    .is_some_and(|e| e.contains("--alerts-allow-private"))
            })
    });
    for d in deliveries(&s) {
        assert_eq!(d["state"], "pending", "{d}");
        assert!(d["lastStatus"].is_null(), "{d}");
    }
    assert!(rx.received().is_empty(), "{:#?}", rx.received());
}

// ---------------------------------------------------------------------------
// Delivery of each kind

#[test]
fn alerts_of_each_kind_arrive_signed_with_a_stable_id() {
    let s = server();
    let rx = Receiver::start();
    let kinds = [
        "provisioning-failed",
        "mapping-failed",
        "role-mismatch",
        "drift",
        "plugin-disabled",
    ];
    let (hook, secret) = add_hook(&s, &rx.url(), &kinds, json!({}));
    let slack_rx = Receiver::start();
    let (slack, slack_secret) = add_hook(
        &s,
        &slack_rx.url(),
        &["provisioning-failed"],
        json!({"format": "slack"}),
    );

    // A test alert, asked for.
    let id = test_alert(&s, hook);
    let r = rx.wait_for("the test alert", |b| b["id"] == id.as_str());
    assert_signed(&r, &secret);
    assert_eq!(r.event_id, id);
    let b = r.json();
    assert_eq!(
        (&b["kind"], &b["tenant"]),
        (&json!("test"), &json!("default")),
        "{b}"
    );

    // A failed provisioning request, to both webhooks.
    let ann = user(&s, "ann", "Sales");
    failed_request(&s, "ann");
    let r = rx.wait_for("provisioning-failed", |b| {
        b["kind"] == "provisioning-failed"
    });
    assert_signed(&r, &secret);
    let b = r.json();
    assert_eq!(r.event_id, b["id"].as_str().expect("id"));
    assert_eq!(b["count"], 1, "{b}");
    assert_eq!(b["sample"][0]["action"], "create", "{b}");
    assert_eq!(b["sample"][0]["status"], "failure", "{b}");
    let change = b["changeId"].as_str().expect("changeId");
    assert_eq!(
        b["links"]["console"],
        format!("https://lms.example.com/admin#/events?change={change}")
    );
    assert!(
        b["summary"]
            .as_str()
            .is_some_and(|s| s.contains("Provisioning failed")),
        "{b}"
    );
    let r = slack_rx.wait_for("the Slack alert", |b| b["blocks"].is_array());
    assert_signed(&r, &slack_secret);
    let b = r.json();
    assert!(
        b["text"]
            .as_str()
            .is_some_and(|t| t.contains("provisioning-failed")),
        "{b}"
    );
    assert_eq!(
        b["blocks"][0]["text"]["text"],
        format!("scim-host alert {}", r.event_id),
        "{b}"
    );

    // Drift: a mapped role removed by hand, met again by mapping.
    s.admin(
        "DELETE",
        &format!("/admin/v1/learners/{ann}/roles/learner"),
        None,
    )
    .expect(204);
    touch(&s, &ann, "Account Executive");
    let r = rx.wait_for("drift", |b| b["kind"] == "drift");
    assert_signed(&r, &secret);
    let b = r.json();
    assert_eq!(b["sample"][0]["resourceId"], ann.as_str(), "{b}");
    assert_eq!(b["sample"][0]["reason"], "restored", "{b}");

    // A plugin that traps: the mapping failure, then (one failure allowed)
    // the plugin's disabling.
    install_trap(&s);
    let r = rx.wait_for("mapping-failed", |b| b["kind"] == "mapping-failed");
    assert_signed(&r, &secret);
    assert_eq!(r.json()["sample"][0]["resourceId"], ann.as_str());
    let r = rx.wait_for("plugin-disabled", |b| b["kind"] == "plugin-disabled");
    let b = r.json();
    assert_eq!(b["sample"][0]["resourceType"], "Mapper", "{b}");
    assert!(
        b["sample"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("in a row failed")),
        "{b}"
    );

    // The log: each delivered at its first attempt, with the receiver's
    // status (recorded once the receiver answered).
    wait_until("the log shows every alert delivered", || {
        deliveries(&s).iter().all(|d| d["state"] == "delivered")
    });
    let log = deliveries(&s);
    assert!(log.len() >= 6, "{log:#?}");
    for d in &log {
        assert_eq!(d["state"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1, "{d}");
        assert_eq!(d["lastStatus"], 200, "{d}");
        assert!(d["nextAt"].is_null() && d["deliveredAt"].is_string(), "{d}");
    }
    assert!(log.iter().any(|d| d["webhook"] == slack), "{log:#?}");
    // Exactly once each.
    let ids: Vec<String> = rx.delivered().iter().map(|r| r.event_id.clone()).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "{ids:?}");
}

/// A re-mapping that finds a role mismatch on several learners is one
/// alert with a count and a sample, not one per learner.
#[test]
fn the_mismatches_of_one_re_mapping_are_one_alert() {
    let s = server();
    let rx = Receiver::start();
    catalogue_add(&s, "roles", "seller");
    catalogue_add(&s, "roles", "manager");
    let users: Vec<String> = (0..3)
        .map(|i| user(&s, &format!("seller{i}"), "Sales"))
        .collect();
    for u in &users {
        s.admin(
            "POST",
            &format!("/admin/v1/learners/{u}/roles"),
            Some(&json!({"name": "manager"})),
        )
        .expect(201);
    }
    let (_, secret) = add_hook(&s, &rx.url(), &["role-mismatch"], json!({}));
    install_rules(&s, SELLERS).expect(200);
    let r = rx.wait_for("role-mismatch", |b| b["kind"] == "role-mismatch");
    assert_signed(&r, &secret);
    let b = r.json();
    assert_eq!(b["count"], 3, "{b}");
    let sampled: BTreeSet<&str> = b["sample"]
        .as_array()
        .expect("sample")
        .iter()
        .map(|e| e["resourceId"].as_str().expect("id"))
        .collect();
    assert_eq!(sampled, users.iter().map(String::as_str).collect());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.received().len(), 1, "{:#?}", rx.received());
}

#[test]
fn an_outbox_backlog_alerts_once_per_episode() {
    let s = server();
    let rx = Receiver::start();
    let (_, secret) = add_hook(
        &s,
        &rx.url(),
        &["outbox-backlog"],
        json!({"backlogMinutes": 1}),
    );
    // A task stalled for years (failed as often as the worker tries).
    let stalled = "INSERT INTO outbox (tenant, change_id, task, created, attempts, last_error)
         SELECT id, 'stuck', '{\"users\": [\"nobody\"]}', '2000-01-01T00:00:00.000Z', 10, 'stuck'
         FROM tenants WHERE name = 'default'";
    exec(&s, stalled);
    let r = rx.wait_for("outbox-backlog", |b| b["kind"] == "outbox-backlog");
    assert_signed(&r, &secret);
    let b = r.json();
    assert_eq!(b["count"], 1, "{b}");
    assert!(
        b["summary"]
            .as_str()
            .is_some_and(|s| s.contains("threshold 1")),
        "{b}"
    );
    // Checked every 200 ms: still one alert.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.received().len(), 1, "{:#?}", rx.received());
    // The backlog clears, then comes back: a new episode.
    exec(&s, "DELETE FROM outbox");
    // Long enough for several checks to see it clear.
    std::thread::sleep(Duration::from_millis(2000));
    exec(&s, stalled);
    wait_until("a second backlog alert", || rx.delivered().len() == 2);
    let ids: BTreeSet<String> = rx.delivered().iter().map(|r| r.event_id.clone()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    exec(&s, "DELETE FROM outbox");
}

// ---------------------------------------------------------------------------
// Durability

#[test]
fn a_receiver_that_is_down_gets_every_alert_once_it_is_back() {
    let metrics = "alerts-metrics";
    let s = LmsServer::start_env(
        &["--alerts-allow-private", "--metrics-token", metrics],
        &FAST,
    );
    let rx = Receiver::start();
    rx.answer(503);
    let (hook, secret) = add_hook(&s, &rx.url(), &["provisioning-failed"], json!({}));
    let mut ids: BTreeSet<String> = (0..3).map(|_| test_alert(&s, hook)).collect();
    s.create_user("bob");
    failed_request(&s, "bob");
    wait_until("four alerts tried twice", || {
        let got = rx.received();
        let mut tries: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &got {
            *tries.entry(&r.event_id).or_default() += 1;
        }
        tries.len() == 4 && tries.values().all(|&n| n >= 2)
    });
    ids.extend(rx.received().iter().map(|r| r.event_id.clone()));
    assert_eq!(ids.len(), 4, "{ids:?}");
    for d in deliveries(&s) {
        if d["state"] == "pending" {
            assert_eq!(d["lastStatus"], 503, "{d}");
            assert!(
                d["lastError"].as_str().is_some_and(|e| e.contains("503")),
                "{d}"
            );
            assert!(d["nextAt"].is_string(), "{d}");
        }
    }
    // Retries back off: the gaps between one alert's attempts grow.
    rx.answer(200);
    wait_until("every alert delivered", || {
        rx.delivered()
            .iter()
            .map(|r| &r.event_id)
            .collect::<BTreeSet<_>>()
            .len()
            == 4
    });
    let got = rx.received();
    assert_one_body_per_event(&got);
    for r in rx.delivered() {
        assert_signed(&r, &secret);
    }
    // Delivered once each, and never tried again.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.delivered().len(), 4, "{:#?}", rx.delivered());
    wait_until("the log shows them delivered", || {
        deliveries(&s).iter().all(|d| d["state"] == "delivered")
    });
    for d in deliveries(&s) {
        assert!(d["attempts"].as_i64().is_some_and(|a| a >= 2), "{d}");
    }

    let text = s
        .send_as(Some(metrics), "GET", &s.admin_url("/metrics"), None)
        .expect(200)
        .text;
    let value = |outcome: &str| -> f64 {
        let prefix = format!("scim_alert_deliveries_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    assert_eq!(value("delivered"), 4.0, "{text}");
    assert!(value("retried") >= 4.0, "{text}");
    assert_eq!(value("failed"), 0.0, "{text}");
}

#[test]
fn pending_alerts_survive_kill_9_and_arrive_once_each_with_one_body() {
    let mut s = server();
    // A port nothing listens on (yet): every attempt is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let (hook, secret) = add_hook(
        &s,
        &format!("http://127.0.0.1:{port}/hook"),
        &["provisioning-failed"],
        json!({}),
    );
    let mut ids: BTreeSet<String> = (0..4).map(|_| test_alert(&s, hook)).collect();
    s.create_user("carol");
    failed_request(&s, "carol");
    wait_until("every alert tried", || {
        let d = deliveries(&s);
        // Tried and failed (a claimed row in flight has no error yet).
        d.len() == 5 && d.iter().all(|d| d["lastError"].is_string())
    });
    let before = deliveries(&s);
    for d in &before {
        assert_eq!(d["state"], "pending", "{d}");
        assert!(d["lastError"].as_str().is_some(), "{d}");
        ids.insert(d["eventId"].as_str().expect("eventId").to_string());
    }
    assert_eq!(ids.len(), 5, "{before:#?}");

    s.kill9();
    s.restart();
    let rx = Receiver::start_on(port);
    wait_until("every alert delivered after the restart", || {
        rx.delivered()
            .iter()
            .map(|r| r.event_id.clone())
            .collect::<BTreeSet<_>>()
            == ids
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = rx.delivered();
    assert_eq!(got.len(), 5, "delivered twice: {got:#?}");
    assert_one_body_per_event(&rx.received());
    for r in &got {
        assert_signed(r, &secret);
        assert_eq!(r.json()["id"], r.event_id.as_str());
    }
}

/// Events that roll back raise no alert: a re-mapping whose batches fail
/// (an injected fault) would find a role mismatch, and nobody hears of it;
/// the same mismatch found by a request that commits is alerted.
#[test]
fn a_change_that_rolls_back_alerts_nobody() {
    let s = LmsServer::start_env(
        &["--alerts-allow-private"],
        &[
            FAST[0],
            FAST[1],
            FAST[2],
            ("SCIM_FAULT", "drain-batch@default"),
        ],
    );
    let rx = Receiver::start();
    catalogue_add(&s, "roles", "seller");
    catalogue_add(&s, "roles", "manager");
    let ann = user(&s, "ann", "Sales");
    s.admin(
        "POST",
        &format!("/admin/v1/learners/{ann}/roles"),
        Some(&json!({"name": "manager"})),
    )
    .expect(201);
    add_hook(
        &s,
        &rx.url(),
        &["role-mismatch", "drift", "mapping-failed"],
        json!({}),
    );
    install_rules(&s, SELLERS).expect(200);
    wait_until("the re-mapping failed twice", || {
        let sync = s.admin_get("/admin/v1/sync").expect(200).json;
        sync["tasks"][0]["attempts"].as_i64() >= Some(2)
            && sync["tasks"][0]["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("injected fault"))
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(rx.received().is_empty(), "{:#?}", rx.received());
    assert_eq!(deliveries(&s), Vec::<Value>::new());

    touch(&s, &ann, "Account Executive");
    let r = rx.wait_for("role-mismatch", |b| b["kind"] == "role-mismatch");
    assert_eq!(r.json()["sample"][0]["resourceId"], ann.as_str());
}

// ---------------------------------------------------------------------------
// The Prometheus rules

/// Metric names a rule expression uses: identifiers of the exporter's
/// (`scim_…`) and Prometheus's own `up`.
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    let mut in_quotes = false;
    let mut in_braces = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if in_quotes {
            in_quotes = c != '"';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !in_braces && (word.starts_with("scim_") || word == "up") {
            out.insert(word.clone());
        }
        word.clear();
        match c {
            '"' => in_quotes = true,
            '{' => in_braces = true,
            '}' => in_braces = false,
            _ => {}
        }
    }
    out
}

#[test]
fn prometheus_rules_name_only_metrics_the_server_exports() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus/alerts.yml");
    let rules =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        rules.starts_with("groups:") || rules.contains("\ngroups:"),
        "no groups"
    );
    // Each expression: `expr:` on one line, or a block (`expr: |`) of the
    // lines indented below it.
    let mut exprs: Vec<String> = Vec::new();
    let lines: Vec<&str> = rules.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = line.trim_start().strip_prefix("expr:") {
            let indent = line.len() - line.trim_start().len();
            let rest = rest.trim();
            if rest == "|" || rest == ">" || rest.is_empty() {
                let mut block = String::new();
                while i + 1 < lines.len()
                    && (lines[i + 1].trim().is_empty()
                        || lines[i + 1].len() - lines[i + 1].trim_start().len() > indent)
                {
                    i += 1;
                    block.push_str(lines[i]);
                    block.push('\n');
                }
                exprs.push(block);
            } else {
                exprs.push(rest.to_string());
            }
        }
        i += 1;
    }
    // Prometheus's own check, where it is installed (Debian's `prometheus`).
    match std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("promtool not run ({e}); the rules' names are still checked"),
    }
    let alerts = rules
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert!(alerts >= 6, "{alerts} alerts");
    assert_eq!(exprs.len(), alerts, "every alert has one expression");

    // What the server exports: sample names, and the names each family's
    // type implies (a family may have no sample yet).
    let token = "rules-metrics";
    let s = LmsServer::start_with(&["--metrics-token", token]);
    s.create_user("dave");
    s.get("/Users").expect(200);
    // Per-tenant families show once they count something: a plugin whose
    // every call fails counts a mapping failure and its disabling.
    install_trap(&s);
    wait_until("the plugin disabled", || {
        s.admin_get("/admin/v1/mapper").expect(200).json["active"] == false
    });
    let text = s
        .send_as(Some(token), "GET", &s.admin_url("/metrics"), None)
        .expect(200)
        .text;
    let mut exported: BTreeSet<String> = BTreeSet::from(["up".to_string()]);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for s in suffixes {
                exported.insert(format!("{name}{s}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            exported.insert(name);
        }
    }
    let mut used = BTreeSet::new();
    for e in &exprs {
        let names = names_in(e);
        assert!(!names.is_empty(), "an expression without a metric: {e}");
        used.extend(names);
    }
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the rules use metrics /metrics does not export: {unknown:?}\nexported: {exported:?}"
    );
    for needed in [
        "scim_requests_total",
        "scim_outbox_oldest_age_seconds",
        "scim_mapping_failures_total",
        "scim_alert_deliveries_total",
        "up",
    ] {
        assert!(used.contains(needed), "no rule watches {needed}");
    }
}

#[test]
fn metric_names_in_rule_expressions_are_found() {
    assert_eq!(
        names_in(
            r#"sum by (tenant) (rate(scim_requests_total{status=~"5..", x="scim_no"}[5m])) / up"#
        ),
        BTreeSet::from(["scim_requests_total".to_string(), "up".to_string()])
    );
}

/// Replicas on PostgreSQL share the queue: each alert is sent by one of
/// them, once (claims skip rows another replica holds).
#[test]
fn replicas_send_each_alert_once() {
    if !postgres_backend() {
        eprintln!("replicas_send_each_alert_once: PostgreSQL only (SQLite has one server)");
        return;
    }
    let s = server();
    let replica = s.replica();
    let rx = Receiver::start();
    let (hook, secret) = add_hook(&s, &rx.url(), &["provisioning-failed"], json!({}));
    let mut ids = BTreeSet::new();
    for i in 0..20 {
        let on = if i % 2 == 0 { &s } else { &replica };
        ids.insert(test_alert(on, hook));
    }
    wait_until("every alert delivered", || {
        rx.delivered()
            .iter()
            .map(|r| r.event_id.clone())
            .collect::<BTreeSet<_>>()
            == ids
    });
    std::thread::sleep(Duration::from_millis(500));
    let got = rx.delivered();
    assert_eq!(got.len(), ids.len(), "sent twice: {got:#?}");
    for r in &got {
        assert_signed(r, &secret);
    }
}

/// A request that fails after mapping found a role mismatch rolls back,
/// and with it the mismatch's alert: its failure is alerted, the mismatch
/// is not. The same change on a server without the fault alerts the
/// mismatch.
#[test]
fn a_request_that_rolls_back_alerts_its_failure_only() {
    let mut s = server();
    let rx = Receiver::start();
    catalogue_add(&s, "roles", "seller");
    catalogue_add(&s, "roles", "manager");
    let ann = user(&s, "ann", "Sales");
    s.admin(
        "POST",
        &format!("/admin/v1/learners/{ann}/roles"),
        Some(&json!({"name": "manager"})),
    )
    .expect(201);
    install_rules(&s, SELLERS).expect(200);
    wait_until("the re-mapping done", || {
        s.admin_get("/admin/v1/sync").expect(200).json["pending"] == 0
    });
    add_hook(
        &s,
        &rx.url(),
        &["role-mismatch", "provisioning-failed"],
        json!({}),
    );

    // The same database under a server whose SCIM writes panic before
    // their commit.
    s.kill9();
    let faulty = crate::support::Server::launch(
        tempfile::tempdir().expect("temp dir"),
        s.db_arg().to_string(),
        s.token.clone(),
        &["--admin-token", &s.admin_token, "--alerts-allow-private"],
        &[
            FAST[0],
            FAST[1],
            FAST[2],
            ("SCIM_FAULT", "before-commit@default"),
        ],
    );
    let r = faulty.patch(
        &format!("/Users/{ann}"),
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]}),
    );
    assert_eq!(r.status, 500, "{}", r.text);
    let failed = rx.wait_for("provisioning-failed", |b| {
        b["kind"] == "provisioning-failed"
    });
    assert_eq!(failed.json()["sample"][0]["reason"], "panic");
    std::thread::sleep(Duration::from_millis(500));
    let kinds: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(kinds, ["provisioning-failed"]);
    drop(faulty);

    s.restart();
    touch(&s, &ann, "Lead");
    let r = rx.wait_for("role-mismatch", |b| b["kind"] == "role-mismatch");
    assert_eq!(r.json()["sample"][0]["resourceId"], ann.as_str());
}
