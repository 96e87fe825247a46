//! Starts the real `scim-host` binary on a free loopback port with a fresh
//! database, and talks to it over HTTP.
//!
//! The database is a SQLite file in the server's temporary directory, or,
//! in the `e2e_postgres` target (`crate::POSTGRES`) and wherever
//! `SCIM_TEST_BACKEND=postgres` is set, a new database of its own on a
//! PostgreSQL cluster the test process starts on first use (see
//! [`postgres::shared`]; it needs the PostgreSQL server binaries, e.g.
//! `apt-get install postgresql-15`):
//!
//! ```text
//! SCIM_TEST_BACKEND=postgres cargo test -p scim-host --test e2e
//! ```
//!
//! The few tests about the SQLite file itself skip themselves then
//! ([`sqlite_only`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A running `scim-host` and an HTTP client authenticated as its tenant.
pub struct Server {
    child: Child,
    pub base: String,
    pub token: String,
    /// `--db`: the SQLite file or the PostgreSQL URL.
    db: String,
    client: reqwest::blocking::Client,
    _dir: tempfile::TempDir,
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts a SCIM error with this status and scimType.
    #[track_caller]
    pub fn expect_error(self, status: u16, scim_type: Option<&str>) -> Self {
        let s = self.expect(status);
        assert_eq!(
            s.json["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            s.text
        );
        assert_eq!(s.json["status"], status.to_string(), "{}", s.text);
        assert_eq!(s.json["scimType"].as_str(), scim_type, "{}", s.text);
        assert!(
            s.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            s.text
        );
        assert!(
            s.header("content-type")
                .unwrap_or("")
                .starts_with("application/scim+json"),
            "{:?}",
            s.headers
        );
        s
    }
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the server with extra `serve` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_env(extra, &[])
    }

    /// Starts the server with extra `serve` arguments and environment
    /// variables.
    pub fn start_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = new_database(dir.path());
        let token = format!("test-{:x}", std::process::id() as u64 * 7919 + rand_u64());
        Self::launch(dir, db, token, extra, env)
    }

    /// Another `scim-host` on this server's database with the same token: a
    /// replica (PostgreSQL only; SQLite refuses a second server).
    pub fn replica(&self, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::launch(dir, self.db.clone(), self.token.clone(), extra, &[])
    }

    /// Starts `scim-host serve` on `db` with the SCIM token `token`.
    pub fn launch(
        dir: tempfile::TempDir,
        db: String,
        token: String,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_scim-host"))
            .args(["serve", "--listen", "127.0.0.1:0", "--token", &token])
            .arg("--db")
            .arg(&db)
            .args(shared_cache(extra))
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start scim-host");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let log =
                        std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                    panic!("scim-host exited before listening:\n{log}");
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Server {
            child,
            base,
            token,
            db,
            client,
            _dir: dir,
        }
    }

    /// The server's `--db`, its SQLite file or PostgreSQL URL (for
    /// `scim-host tenant add`).
    pub fn db_arg(&self) -> &str {
        &self.db
    }

    /// The server's SQLite file; only for tests that skip PostgreSQL
    /// ([`sqlite_only`]).
    #[track_caller]
    pub fn db_file(&self) -> &Path {
        assert!(
            !postgres_backend(),
            "the database is not a file with SCIM_TEST_BACKEND=postgres"
        );
        Path::new(&self.db)
    }

    /// The first column of the first row of `sql` (an integer), read from
    /// the server's database directly, whichever the backend: keep `sql`
    /// to what SQLite and PostgreSQL both understand.
    pub fn query_i64(&self, sql: &str) -> i64 {
        if postgres_backend() {
            let mut client = ::postgres::Client::connect(&self.db, ::postgres::NoTls)
                .unwrap_or_else(|e| panic!("connect to {}: {e}", self.db));
            client
                .query_one(sql, &[])
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .get(0)
        } else {
            rusqlite::Connection::open(&self.db)
                .unwrap_or_else(|e| panic!("open {}: {e}", self.db))
                .query_row(sql, [], |r| r.get(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the tenant's token and optional JSON body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(method.parse().expect("method"), self.url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_resp(req.send().expect("request"))
    }

    /// A raw request: no token unless given, body as bytes.
    pub fn raw(&self, method: &str, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Resp {
        let mut req = self
            .client
            .request(method.parse().expect("method"), self.url(path))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_resp(req.send().expect("request"))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, &[])
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(body), &[])
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.send("PUT", path, Some(body), &[])
    }

    pub fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send("PATCH", path, Some(body), &[])
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None, &[])
    }

    /// Creates a user and returns its id.
    pub fn create_user(&self, user_name: &str) -> String {
        let r = self
            .post(
                "/Users",
                &serde_json::json!({
                    "schemas": [USER_SCHEMA],
                    "userName": user_name,
                    "name": {"givenName": "Given", "familyName": user_name},
                    "emails": [{"value": format!("{user_name}@example.com"), "type": "work", "primary": true}],
                    "active": true,
                }),
            )
            .expect(201);
        r.json["id"].as_str().expect("id").to_string()
    }

    /// Creates a group with members and returns its id.
    pub fn create_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|m| serde_json::json!({"value": m}))
            .collect();
        let r = self
            .post(
                "/Groups",
                &serde_json::json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members}),
            )
            .expect(201);
        r.json["id"].as_str().expect("id").to_string()
    }

    /// `totalResults` of a filtered list.
    pub fn count(&self, endpoint: &str, filter: &str) -> u64 {
        let r = self
            .get(&format!("{endpoint}?filter={}", encode(filter)))
            .expect(200);
        r.json["totalResults"].as_u64().expect("totalResults")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cache of compiled code the tests share (`--cache-dir`), unless the
/// `serve` arguments give one of their own.
fn shared_cache(extra: &[impl AsRef<str>]) -> Vec<std::ffi::OsString> {
    if extra.iter().any(|a| a.as_ref() == "--cache-dir") {
        return Vec::new();
    }
    vec!["--cache-dir".into(), shared_cache_dir().into_os_string()]
}

/// Where the tests' servers cache compiled code by default.
pub fn shared_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-cache")
}

/// A response read whole, its body parsed as JSON when it is JSON.
pub fn into_resp(r: reqwest::blocking::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        text,
        json,
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

// ---------------------------------------------------------------------------
// The database backend: SQLite files, or PostgreSQL with
// SCIM_TEST_BACKEND=postgres.

#[path = "../support/postgres.rs"]
pub mod postgres;

#[path = "../support/plugins.rs"]
pub mod plugins;

/// Whether the servers store their data in PostgreSQL
/// (`SCIM_TEST_BACKEND=postgres`) rather than in SQLite files (unset, or
/// `sqlite`).
pub fn postgres_backend() -> bool {
    if crate::POSTGRES {
        return true;
    }
    match std::env::var("SCIM_TEST_BACKEND").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(std::env::VarError::NotPresent) => false,
        Ok(other) => panic!("SCIM_TEST_BACKEND is 'sqlite' or 'postgres', not '{other}'"),
        Err(e) => panic!("SCIM_TEST_BACKEND: {e}"),
    }
}

/// For a test about the SQLite file itself: true, after saying so, when the
/// backend is PostgreSQL, and the test should return at once.
pub fn sqlite_only(test: &str) -> bool {
    let skip = postgres_backend();
    if skip {
        eprintln!("{test}: skipped with SCIM_TEST_BACKEND=postgres (it is about the SQLite file)");
    }
    skip
}

/// A new server's `--db`: a file in its directory `dir`, or a new database
/// on the shared PostgreSQL cluster.
fn new_database(dir: &Path) -> String {
    if postgres_backend() {
        postgres::shared().create_database()
    } else {
        dir.join("scim.db")
            .into_os_string()
            .into_string()
            .expect("a UTF-8 temporary directory")
    }
}

// ---------------------------------------------------------------------------
// The LMS admin API, other bearer tokens, the command line, and restarts.

impl Server {
    /// Scheme, host and port: the base URL without `/scim/v2`.
    pub fn origin(&self) -> String {
        self.base
            .strip_suffix("/scim/v2")
            .unwrap_or(&self.base)
            .to_string()
    }

    /// A request to an absolute URL with the given bearer token (none when
    /// `None`) and optional JSON body.
    pub fn send_as(
        &self,
        token: Option<&str>,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Resp {
        let mut req = self.client.request(method.parse().expect("method"), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        into_resp(req.send().expect("request"))
    }

    /// Runs `scim-host ARGS --db <this server's database>`.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_scim-host"))
            .args(args)
            .arg("--db")
            .arg(&self.db)
            .output()
            .expect("run scim-host")
    }

    /// Runs a `--json` subcommand (see [`Server::cli`]), asserts it succeeded
    /// and parses its standard output.
    #[track_caller]
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scim-host {args:?} failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("scim-host {args:?} printed no JSON ({e}): {stdout}"))
    }

    /// What the server wrote to standard error so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }
}

/// A server started with `--admin-token`, for the LMS admin API at
/// `/admin/v1`. Dereferences to [`Server`] for SCIM requests.
pub struct LmsServer {
    pub scim: Server,
    pub admin_token: String,
    /// The `serve` arguments after the common ones, kept for restarts.
    extra: Vec<String>,
    /// The server's extra environment variables, kept for restarts.
    env: Vec<(String, String)>,
}

impl std::ops::Deref for LmsServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.scim
    }
}

impl LmsServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts the server with an admin token and extra `serve` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_env(extra, &[])
    }

    /// Starts the server with an admin token, extra `serve` arguments and
    /// environment variables.
    pub fn start_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let admin_token = format!("admin-{:x}", rand_u64());
        let mut args = vec!["--admin-token".to_string(), admin_token.clone()];
        args.extend(extra.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        LmsServer {
            scim: Server::start_env(&refs, env),
            admin_token,
            extra: args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The absolute URL of an admin path such as `/admin/v1/sync`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.scim.origin())
    }

    /// An admin API request with the admin token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.scim
            .send_as(Some(&self.admin_token), method, &self.admin_url(path), body)
    }

    pub fn admin_get(&self, path: &str) -> Resp {
        self.admin("GET", path, None)
    }

    /// A replica of this server (see [`Server::replica`]) with the same
    /// admin token and arguments.
    pub fn replica(&self) -> Self {
        let refs: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        LmsServer {
            scim: self.scim.replica(&refs),
            admin_token: self.admin_token.clone(),
            extra: self.extra.clone(),
            env: self.env.clone(),
        }
    }

    /// Kills the server with SIGKILL (no shutdown of any kind) and waits for
    /// it to be gone.
    pub fn kill9(&mut self) {
        self.scim.child.kill().expect("kill -9 scim-host");
        self.scim.child.wait().expect("reap scim-host");
    }

    /// Starts the server again (after [`Self::kill9`]) on the same database
    /// with the same tokens and arguments. The new process listens on a new
    /// port; `base` follows it.
    pub fn restart(&mut self) {
        let s = &mut self.scim;
        let log_path = s._dir.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&log_path)
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_scim-host"))
            .args(["serve", "--listen", "127.0.0.1:0", "--token", &s.token])
            .arg("--db")
            .arg(&s.db)
            .args(shared_cache(&self.extra))
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("restart scim-host");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_string();
                    }
                }
                _ => {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("restarted scim-host exited before listening:\n{log}");
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        s.child = child;
        s.base = base;
    }
}

/// `GET /admin/v1/learners/{id}`, which must answer 200.
#[track_caller]
pub fn learner(s: &LmsServer, id: &str) -> Value {
    let r = s.admin_get(&format!("/admin/v1/learners/{id}")).expect(200);
    assert_eq!(r.json["id"], id, "{}", r.text);
    r.json
}

/// A learner's roles, teams or learning paths (`kind` is the JSON key) as
/// `(name, sorted sources)`, sorted by name.
pub fn grants(l: &Value, kind: &str) -> Vec<(String, Vec<String>)> {
    let items = l[kind]
        .as_array()
        .unwrap_or_else(|| panic!("learner without {kind}: {l}"));
    let mut out: Vec<(String, Vec<String>)> = items
        .iter()
        .map(|i| {
            let name = i["name"].as_str().expect("name").to_string();
            let mut sources: Vec<String> = i["sources"]
                .as_array()
                .unwrap_or_else(|| panic!("item without sources: {i}"))
                .iter()
                .map(|s| s.as_str().expect("source").to_string())
                .collect();
            sources.sort();
            (name, sources)
        })
        .collect();
    out.sort();
    out
}

/// One expected grant, for comparing with [`grants`].
pub fn item(name: &str, sources: &[&str]) -> (String, Vec<String>) {
    let mut sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    sources.sort();
    (name.to_string(), sources)
}

// ---------------------------------------------------------------------------
// Signals, exits and other clients (tests/e2e/operations.rs).

impl Server {
    /// Sends the server a signal (`libc::SIGTERM`, `libc::SIGHUP`, ...).
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid");
        // SAFETY: kill only sends a signal to the child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {signal}");
    }

    /// Waits, at most `within`, for the server to exit, and returns how.
    #[track_caller]
    pub fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "scim-host still running after {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends this server's requests through `client` from now on (one that
    /// trusts the server's TLS certificate, say).
    pub fn use_client(&mut self, client: reqwest::blocking::Client) {
        self.client = client;
    }
}

/// Raises this process's soft limit on open files to the hard one and
/// returns it.
pub fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let wanted = limit.rlim_max.min(1 << 20);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    limit.rlim_cur
}
