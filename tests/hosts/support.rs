//! Starting a host under test once per test binary, and talking HTTP to it.
//!
//! A host is a serve command taking `--listen ADDR --db FILE --token TOKEN
//! --test-api` (README.md): `scim-host serve`, `host-harness/python/serve`,
//! `host-harness/node/serve`, or the one `SCIM_HOST_SERVE` names. Each kind is started on first use and
//! shared by every case of that kind, so cases keep to their own users and
//! groups (see [`unique`]). The host runs in a process group of its own,
//! watched by a reaper (`sh`) that reads a pipe from this process: when the
//! test binary ends, however it ends (success, panic, Ctrl-C, kill -9), the
//! pipe closes and the reaper kills the whole group, so neither the host
//! nor anything it started (a Python or Node interpreter behind a wrapper
//! script) outlives the tests.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The source of the role every active user holds (the default mapping).
pub const LEARNER_ROLE: &str = "default:learner-role@active";

/// The variable naming a vendor's host; when set, only that host is tested.
pub const VENDOR_VAR: &str = "SCIM_HOST_SERVE";

/// How long a host may take to print its `listening on` line: the first
/// start of the Python and Node hosts installs their packages.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Which host a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ScimHost,
    Python,
    Node,
    /// The executable `SCIM_HOST_SERVE` names.
    Vendor,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ScimHost => "scim-host",
            Kind::Python => "python",
            Kind::Node => "node",
            Kind::Vendor => "vendor",
        }
    }

    /// The program and the arguments before `serve`'s own.
    fn command(self) -> Result<(PathBuf, Vec<String>), String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repository root")
            .to_path_buf();
        Ok(match self {
            Kind::ScimHost => (
                PathBuf::from(env!("CARGO_BIN_EXE_scim-host")),
                vec!["serve".into()],
            ),
            Kind::Python => (root.join("host-harness/python/serve"), Vec::new()),
            Kind::Node => (root.join("host-harness/node/serve"), Vec::new()),
            Kind::Vendor => {
                let v =
                    std::env::var(VENDOR_VAR).map_err(|_| format!("{VENDOR_VAR} is not set"))?;
                // A path to an executable, relative ones to the directory
                // cargo was started in (cargo runs tests in the package's
                // directory but leaves PWD alone); otherwise a program and
                // its leading arguments, separated by spaces.
                let path = match std::env::var_os("PWD") {
                    Some(pwd) if Path::new(&v).is_relative() => Path::new(&pwd).join(&v),
                    _ => PathBuf::from(&v),
                };
                if path.is_file() {
                    (path, Vec::new())
                } else {
                    let mut words = v.split_whitespace().map(str::to_string);
                    let program = words
                        .next()
                        .ok_or_else(|| format!("{VENDOR_VAR} is empty"))?;
                    (PathBuf::from(program), words.collect())
                }
            }
        })
    }
}

/// Runs one case against one host: the entry point of every generated test.
pub fn run(kind: Kind, case: fn(&Host)) {
    let vendor = std::env::var_os(VENDOR_VAR).is_some();
    if vendor != (kind == Kind::Vendor) {
        eprintln!(
            "not run: {}",
            if vendor {
                format!("{VENDOR_VAR} is set, so only the vendor:: cases run")
            } else {
                format!("set {VENDOR_VAR} to run the vendor:: cases against your host")
            }
        );
        return;
    }
    let host = match host(kind) {
        Ok(h) => h,
        Err(e) => panic!("the {} host did not start: {e}", kind.name()),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(host)));
    if let Err(panic) = result {
        eprintln!(
            "--- {} host ({}), the end of its log {}:\n{}",
            kind.name(),
            host.base,
            host.log.display(),
            host.log_tail(60)
        );
        std::panic::resume_unwind(panic);
    }
}

/// The host of this kind, started on first use.
fn host(kind: Kind) -> Result<&'static Host, String> {
    static HOSTS: [OnceLock<Result<Host, String>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = &HOSTS[kind as usize];
    slot.get_or_init(|| Host::start(kind, true))
        .as_ref()
        .map_err(Clone::clone)
}

/// A running host, its token and an HTTP client.
pub struct Host {
    pub kind: Kind,
    /// `http://127.0.0.1:PORT/scim/v2`.
    pub base: String,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub token: String,
    client: reqwest::blocking::Client,
    log: PathBuf,
    _child: Mutex<Child>,
    /// Closed when this process ends, which has the reaper kill the host.
    _reaper: Mutex<ChildStdin>,
    _dir: tempfile::TempDir,
}

impl Host {
    /// Starts a host of this kind with a fresh database; with the test API
    /// unless `test_api` is false. Dropped, it stops (its reaper's pipe
    /// closes); the shared hosts never are.
    pub fn start(kind: Kind, test_api: bool) -> Result<Host, String> {
        let (program, mut args) = kind.command()?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("hosts-{}-", kind.name()))
            .tempdir()
            .map_err(|e| e.to_string())?;
        let db = dir.path().join("scim.db");
        let token = format!("hosts-{:016x}{:016x}", random(), random());
        args.extend(
            [
                "--listen",
                "127.0.0.1:0",
                "--db",
                db.to_str().ok_or("temp dir path is not UTF-8")?,
                "--token",
                &token,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        if test_api {
            args.push("--test-api".into());
        }
        let log = dir.path().join("host.log");
        let stderr = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let reaper = reaper(child.id(), dir.path()).map_err(|e| {
            let _ = child.kill();
            format!("cannot start the reaper: {e}")
        })?;
        eprintln!(
            "hosts: started {} ({} {}), pid {}, log {}",
            kind.name(),
            program.display(),
            args.join(" "),
            child.id(),
            log.display()
        );

        // Read stdout on a thread that keeps draining it, so the host
        // never blocks on a full pipe; the first `listening on` line
        // carries the URL.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<Option<String>>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.trim().strip_prefix("listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(Some(url.trim().to_string()));
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(None);
            }
        });
        let started = Instant::now();
        let base = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(url)) => url,
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                return Err(format!(
                    "{} exited ({status:?}) before printing 'listening on URL'; its log:\n{}",
                    program.display(),
                    tail(&log, 60)
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                return Err(format!(
                    "{} printed no 'listening on URL' within {} s; its log:\n{}",
                    program.display(),
                    START_TIMEOUT.as_secs(),
                    tail(&log, 60)
                ));
            }
        };
        eprintln!(
            "hosts: {} listening on {base} after {:.1} s",
            kind.name(),
            started.elapsed().as_secs_f64()
        );
        let origin = base
            .strip_suffix("/scim/v2")
            .ok_or_else(|| format!("'{base}' does not end in /scim/v2"))?
            .to_string();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Host {
            kind,
            base,
            origin,
            token,
            client,
            log,
            _child: Mutex::new(child),
            _reaper: Mutex::new(reaper),
            _dir: dir,
        })
    }

    /// The last `n` lines of the host's standard error.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// A request to an absolute URL with the given bearer token (none when
    /// `None`), JSON body and headers.
    pub fn request(
        &self,
        token: Option<&str>,
        method: &str,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method.parse().expect("method"), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        into_resp(format!("{method} {url}"), r)
    }

    /// A SCIM request (path under `/scim/v2`) with the tenant's token.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.request(
            Some(&self.token),
            method,
            &format!("{}{path}", self.base),
            body,
            headers,
        )
    }

    /// A SCIM request with this body as it is (not JSON, say).
    pub fn raw(&self, method: &str, path: &str, body: &str) -> Resp {
        let r = self
            .client
            .request(
                method.parse().expect("method"),
                format!("{}{path}", self.base),
            )
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        into_resp(format!("{method} {path}"), r)
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

    pub fn patch(&self, path: &str, ops: Value) -> Resp {
        self.send("PATCH", path, Some(&patch_ops(ops)), &[])
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None, &[])
    }

    /// A test API request (path under `/test/v1`) with the tenant's token.
    pub fn test_api(&self, method: &str, path: &str) -> Resp {
        self.request(
            Some(&self.token),
            method,
            &format!("{}/test/v1{path}", self.origin),
            None,
            &[],
        )
    }

    /// `GET /test/v1/learners/{id}`, which must exist.
    #[track_caller]
    pub fn learner(&self, id: &str) -> Value {
        let r = self.test_api("GET", &format!("/learners/{id}")).expect(200);
        assert_eq!(r.json["id"], id, "{}", r.text);
        r.json
    }

    /// `GET /test/v1/events`, oldest first.
    #[track_caller]
    pub fn events(&self) -> Vec<Value> {
        let r = self.test_api("GET", "/events").expect(200);
        r.json["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events array: {}", r.text))
            .clone()
    }

    /// `POST /test/v1/drain`: the background work is done.
    #[track_caller]
    pub fn drain(&self) {
        let r = self.test_api("POST", "/drain").expect(200);
        assert_eq!(r.json["pending"], 0, "{}", r.text);
    }

    /// Creates a user with a name, a work email and `active: true`; its id.
    #[track_caller]
    pub fn create_user(&self, user_name: &str) -> String {
        let r = self
            .post(
                "/Users",
                &json!({
                    "schemas": [USER_SCHEMA],
                    "userName": user_name,
                    "name": {"givenName": "Given", "familyName": "Family"},
                    "emails": [{"value": format!("{user_name}@example.com"), "type": "work", "primary": true}],
                    "active": true,
                }),
            )
            .expect(201);
        id_of(&r)
    }

    /// Creates a group with these members; its id.
    #[track_caller]
    pub fn create_group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        let r = self
            .post(
                "/Groups",
                &json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members}),
            )
            .expect(201);
        id_of(&r)
    }

    /// The `userName`s a filtered `GET /Users` answers, in order, and its
    /// `totalResults`.
    #[track_caller]
    pub fn user_names(&self, filter: &str) -> (Vec<String>, u64) {
        let r = self
            .get(&format!("/Users?filter={}&count=100", encode(filter)))
            .expect(200);
        let total = r.json["totalResults"]
            .as_u64()
            .unwrap_or_else(|| panic!("no totalResults: {}", r.text));
        (
            resources(&r)
                .iter()
                .map(|u| str_of(u, "userName"))
                .collect(),
            total,
        )
    }
}

/// A response, its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub what: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, showing the request and body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status, status,
            "{}: unexpected status; body: {}",
            self.what, self.text
        );
        self
    }

    /// Asserts a SCIM Error (RFC 7644 §3.12) with this status and scimType.
    #[track_caller]
    pub fn expect_error(self, status: u16, scim_type: Option<&str>) -> Self {
        let s = self.expect(status);
        assert_eq!(s.json["schemas"], json!([ERROR]), "{}: {}", s.what, s.text);
        assert_eq!(
            s.json["status"],
            status.to_string(),
            "{}: {}",
            s.what,
            s.text
        );
        assert_eq!(
            s.json["scimType"].as_str(),
            scim_type,
            "{}: {}",
            s.what,
            s.text
        );
        assert!(
            s.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}: no detail: {}",
            s.what,
            s.text
        );
        assert!(
            s.header("content-type")
                .unwrap_or("")
                .starts_with("application/scim+json"),
            "{}: content-type {:?}",
            s.what,
            s.header("content-type")
        );
        s
    }
}

fn into_resp(what: String, r: reqwest::blocking::Response) -> Resp {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        what,
        status,
        headers,
        text,
        json,
    }
}

/// A name no other case (and no earlier run) uses: `prefix` and a number.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{:06x}{}",
        random() & 0xff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A SCIM PatchOp body.
pub fn patch_ops(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// The id of a created resource.
#[track_caller]
pub fn id_of(r: &Resp) -> String {
    r.json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no id: {}", r.what, r.text))
        .to_string()
}

/// A string member, or a panic naming it.
#[track_caller]
pub fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string '{key}' in {v}"))
        .to_string()
}

/// The `Resources` of a list response.
#[track_caller]
pub fn resources(r: &Resp) -> Vec<Value> {
    assert_eq!(r.json["schemas"], json!([LIST]), "{}: {}", r.what, r.text);
    match &r.json["Resources"] {
        Value::Array(a) => a.clone(),
        // Left out of an empty page (RFC 7644 §3.4.2).
        Value::Null if r.json["totalResults"] == 0 || r.json["itemsPerPage"] == 0 => Vec::new(),
        _ => panic!("{}: no Resources: {}", r.what, r.text),
    }
}

/// The member ids of a group document, sorted.
#[track_caller]
pub fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = match &group["members"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a.iter().map(|m| str_of(m, "value")).collect(),
        other => panic!("members is not a list: {other}"),
    };
    ids.sort();
    ids
}

/// A learner's items of one kind (`roles`, `teams`, `learningPaths`) as
/// (name, sources), in the order the host gives them.
#[track_caller]
pub fn grants(learner: &Value, kind: &str) -> Vec<(String, Vec<String>)> {
    learner[kind]
        .as_array()
        .unwrap_or_else(|| panic!("no '{kind}' list in {learner}"))
        .iter()
        .map(|i| {
            let sources = i["sources"]
                .as_array()
                .unwrap_or_else(|| panic!("no sources in {i}"))
                .iter()
                .map(|s| s.as_str().expect("source string").to_string())
                .collect();
            (str_of(i, "name"), sources)
        })
        .collect()
}

/// One expected item.
pub fn item(name: &str, sources: &[&str]) -> (String, Vec<String>) {
    (
        name.to_string(),
        sources.iter().map(|s| s.to_string()).collect(),
    )
}

/// The source of a team mapped from group `gid` by the default mapping.
pub fn from_group(gid: &str) -> String {
    format!("default:groups-as-teams@group:{gid}")
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

fn random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one((std::time::SystemTime::now(), std::process::id()))
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts `sh` in a process group of its own, reading a pipe from this
/// process; when the pipe closes (this process ended) it kills the host's
/// process group, after 2 s what is left of it, and removes the host's
/// temporary directory (its database and log).
fn reaper(pgid: u32, dir: &Path) -> std::io::Result<ChildStdin> {
    let mut child = Command::new("sh")
        .args([
            "-c",
            r#"read _; kill -TERM -"$0" 2>/dev/null; sleep 2; kill -KILL -"$0" 2>/dev/null; rm -rf "$1"; exit 0"#,
        ])
        .arg(pgid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Nothing to say; the pipe only has to stay open.
    stdin.flush()?;
    Ok(stdin)
}
