//! Shared by the HTTP benchmarks: building a directory through the real
//! engine component, and running `scim-host` on it.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scim_host::bindings::lms::scim::types::{HttpRequest, RequestContext};
use scim_host::db::{self, Pool};
use scim_host::imports::SqlStore;
use scim_host::runtime::{Limits, Runtime};
use serde_json::{Value, json};

pub const TOKEN: &str = "bench-token";

/// Where benchmark databases are kept between runs.
pub fn data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Drives the engine component in-process against a new database, in large
/// transactions, to build benchmark data quickly with the real code paths.
pub struct Loader {
    pool: Pool,
    runtime: Runtime,
    context: RequestContext,
    tenant: i64,
    store: Option<SqlStore>,
    /// For a SQLite file: where it is built, and where it goes when done.
    files: Option<(PathBuf, PathBuf)>,
}

impl Loader {
    /// Starts building the database that will be at `path`.
    pub fn new(path: &Path) -> Self {
        let tmp = path.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        let pool = db::open_file(&tmp, 2, db::Checkpoints::InCommit).unwrap();
        Self::with_pool(pool, Some((path.to_path_buf(), tmp)))
    }

    /// Starts filling the (empty) database at `location`, in place.
    pub fn at(location: &db::Location) -> Self {
        let pool = db::open(location, 2, db::Checkpoints::InCommit).unwrap();
        Self::with_pool(pool, None)
    }

    fn with_pool(pool: Pool, files: Option<(PathBuf, PathBuf)>) -> Self {
        let tenant = tenant_with_token(&pool, "default", TOKEN);
        let limits = Limits {
            timeout: Duration::from_secs(120),
            memory_bytes: 512 << 20,
            instances: 4,
            warm: 0,
        };
        let runtime = Runtime::new(scim_host::ENGINE_WASM, limits.clone(), None).unwrap();
        let context = RequestContext {
            tenant: tenant.name.clone(),
            base_url: "http://localhost/scim/v2".into(),
            request_id: "populate".into(),
            subject: None,
            max_payload_bytes: 64 << 20,
            signing_key: tenant.signing_key.clone(),
        };
        let mut loader = Loader {
            pool,
            runtime,
            context,
            tenant: tenant.id,
            store: None,
            files,
        };
        loader.begin();
        loader
    }

    /// Commits what was written so far and goes on as tenant `name`
    /// (created if needed), whose SCIM token becomes `token`.
    pub fn switch_tenant(&mut self, name: &str, token: &str) {
        let conn = self.store.take().unwrap().into_conn().unwrap();
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        let tenant = tenant_with_token(&self.pool, name, token);
        self.tenant = tenant.id;
        self.context.tenant = tenant.name;
        self.context.signing_key = tenant.signing_key;
        self.begin();
    }

    /// Makes `token` the admin token (for `/admin/v1`) of the current tenant.
    pub fn set_admin_token(&mut self, token: &str) {
        let store = self.store.as_ref().unwrap();
        db::set_tenant_token(
            store.conn_ref().unwrap(),
            &self.context.tenant,
            db::TokenKind::Admin,
            token,
        )
        .unwrap();
    }

    fn begin(&mut self) {
        let conn = self.pool.get().unwrap();
        conn.begin(db::Begin::Write(Some(self.tenant))).unwrap();
        self.store = Some(SqlStore::new(conn, self.tenant));
    }

    /// One request through the component; it must succeed.
    pub fn call(&mut self, method: &str, path: &str, body: &Value) -> Value {
        let req = HttpRequest {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
            context: self.context.clone(),
        };
        let (resp, mut store) = self.runtime.handle(self.store.take().unwrap(), &req);
        // The sync log a server would have written, so that benchmarks see
        // a database of the size and shape a real one has.
        let journal = std::mem::take(&mut store.journal);
        scim_host::events::insert(
            store.conn_ref().unwrap(),
            self.tenant,
            &scim_host::events::Stamp::default(),
            &journal.events,
        )
        .unwrap();
        self.store = Some(store);
        let resp = resp.unwrap();
        assert!(
            resp.status < 300,
            "{method} {path}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
    }

    /// Commits what was written so far and opens a new transaction.
    pub fn commit(&mut self) {
        let conn = self.store.take().unwrap().into_conn().unwrap();
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        self.begin();
    }

    /// Commits and moves the finished database into place.
    pub fn finish(mut self) {
        let conn = self.store.take().unwrap().into_conn().unwrap();
        conn.execute_batch("COMMIT").unwrap();
        drop(conn);
        drop(self.pool);
        if let Some((path, tmp)) = &self.files {
            std::fs::rename(tmp, path).unwrap();
            for ext in ["partial-wal", "partial-shm"] {
                let _ = std::fs::remove_file(path.with_extension(ext));
            }
        }
    }
}

/// Tenant `name` (created if needed) with SCIM token `token`.
fn tenant_with_token(pool: &Pool, name: &str, token: &str) -> db::Tenant {
    db::set_tenant_token(&pool.get().unwrap(), name, db::TokenKind::Scim, token).unwrap();
    db::authenticate(&pool.get().unwrap(), db::TokenKind::Scim, token)
        .unwrap()
        .unwrap()
}

/// A `scim-host` serving a database on a free port.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// The server's process id (to read its resources from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release `scim-host` on `db` with extra `serve` arguments.
pub fn serve(db: &Path, extra: &[&str]) -> Server {
    serve_at(
        &db.display().to_string(),
        &format!("{}.log", db.display()),
        extra,
    )
}

/// Starts the release `scim-host` on `db` (a file or a PostgreSQL URL),
/// its warnings in `log`.
pub fn serve_at(db: &str, log: &str, extra: &[&str]) -> Server {
    // `SCIM_BENCH_HOST` serves from another build (e.g. a copy of main's
    // binary) so that two builds can be compared back to back.
    let binary = std::env::var("SCIM_BENCH_HOST")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_scim-host").to_string());
    // `SCIM_BENCH_LOG` (a `RUST_LOG` filter) shows the server's log;
    // otherwise its warnings go to `<db>.log`, shown if it fails to start.
    let log_file = PathBuf::from(log);
    let log = std::env::var("SCIM_BENCH_LOG").ok();
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN])
        .args(extra)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", log.as_deref().unwrap_or("warn"))
        .stdout(Stdio::piped())
        .stderr(if log.is_some() {
            Stdio::inherit()
        } else {
            Stdio::from(std::fs::File::create(&log_file).unwrap())
        })
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let Some(Ok(line)) = lines.next() else {
            let why = std::fs::read_to_string(&log_file).unwrap_or_default();
            panic!("scim-host exited before listening: {why}");
        };
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example Rust mapping plugin (`plugin/mappers/example-rust`), built.
pub fn rust_example() -> Vec<u8> {
    let root = root();
    scim_engine_build::ensure_target("wasm32-wasip2").unwrap_or_else(|e| panic!("{e:#}"));
    let status = std::process::Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "-q",
            "-p",
            "example-rust-mapper",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "wasm",
            "--target-dir",
            "target/mappers",
        ])
        .status()
        .expect("cargo");
    assert!(status.success(), "building the Rust example plugin failed");
    std::fs::read(root.join("target/mappers/wasm32-wasip2/wasm/example_rust_mapper.wasm")).unwrap()
}

/// The example Python mapping plugin (`plugin/mappers/example-python`),
/// built by its `build.sh` (componentize-py, installed from PyPI into
/// `target/mappers/py-venv` on first use) when `mapper.wasm` is missing or
/// older than its sources. `None`, after saying why and what to run, when
/// it cannot be built here.
pub fn python_example() -> Option<Vec<u8>> {
    let root = root();
    let dir = root.join("plugin/mappers/example-python");
    let wasm = dir.join("mapper.wasm");
    let modified = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
    };
    let sources = [
        dir.join("app.py"),
        dir.join("policy.py"),
        dir.join("build.sh"),
        root.join("wit/mapper/mapper.wit"),
    ];
    let built = wasm.exists().then(|| modified(&wasm));
    if built.is_none_or(|b| sources.iter().any(|s| modified(s) > b)) {
        let script = dir.join("build.sh");
        eprintln!(
            "building the Python example plugin ({}; about 25 s, longer the first time)",
            script.display()
        );
        let started = std::time::Instant::now();
        let out = Command::new("bash").arg(&script).current_dir(&dir).output();
        let why = match out {
            Err(e) => format!("bash could not run it: {e}"),
            Ok(out) if out.status.success() => String::new(),
            Ok(out) => {
                let what = if out.status.code() == Some(3) {
                    "componentize-py could not be installed (python3's venv module, network access to PyPI and disk space are needed)"
                } else {
                    "the build failed"
                };
                format!(
                    "{what}, {}:\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            }
        };
        if !why.is_empty() {
            eprintln!(
                "NOT MEASURED: the Python plugin. {why}\nTo measure it, make this work and run the benchmark again:\n  (cd {} && ./build.sh)",
                dir.display()
            );
            return None;
        }
        eprintln!("built {} in {:.0?}", wasm.display(), started.elapsed());
    }
    match std::fs::read(&wasm) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!(
                "NOT MEASURED: the Python plugin: {}: {e}; run (cd {} && ./build.sh)",
                wasm.display(),
                dir.display()
            );
            None
        }
    }
}

/// The example plugins' settings.
pub fn example_settings() -> String {
    std::fs::read_to_string(root().join("plugin/mappers/example-rust/samples/settings.json"))
        .unwrap()
}

/// Latency percentile `q` of sorted microseconds, in milliseconds.
pub fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    sorted_us[((sorted_us.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0
}

/// One keep-alive HTTP/1.1 connection: a minimal client over `TcpStream`,
/// so that the load generator costs little next to the server on the same
/// two cores.
pub struct Conn {
    reader: BufReader<TcpStream>,
    host: String,
    /// The server said it closes the connection after its last response.
    pub closed: bool,
    /// The last response's `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
}

impl Conn {
    /// Connects to the server at `base` (`http://host:port/...`).
    pub fn open(base: &str) -> Conn {
        Conn::try_open(base).unwrap()
    }

    /// Connects to the server at `base`, or says why not.
    pub fn try_open(base: &str) -> io::Result<Conn> {
        let host = base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = TcpStream::connect(&host)?;
        stream.set_nodelay(true)?;
        // A stuck server fails the benchmark instead of hanging it.
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        Ok(Conn {
            reader: BufReader::with_capacity(1 << 16, stream),
            host,
            closed: false,
            retry_after: None,
        })
    }

    /// The `host:port` the connection goes to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A SCIM request as the `default` tenant: `path` is under `/scim/v2`,
    /// the body is SCIM JSON. Returns (status, body).
    pub fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
        self.request(
            method,
            &format!("/scim/v2{path}"),
            Some(TOKEN),
            body.map(|b| ("application/scim+json", b.as_bytes())),
        )
        .unwrap()
    }

    /// Any request: `target` is the path (and query) from the server's
    /// root, `token` the bearer token, `body` its content type and bytes.
    /// Returns (status, body), or the I/O error (the server closed the
    /// connection, say).
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> io::Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let stream = self.reader.get_mut();
        match body {
            Some((content_type, b)) => {
                head.push_str(&format!(
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    b.len()
                ));
                if b.len() < 1 << 16 {
                    // One write, so a small request is one segment.
                    let mut all = head.into_bytes();
                    all.extend_from_slice(b);
                    stream.write_all(&all)?;
                } else {
                    stream.write_all(head.as_bytes())?;
                    stream.write_all(b)?;
                }
            }
            None => {
                head.push_str("\r\n");
                stream.write_all(head.as_bytes())?;
            }
        }
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let Some(status) = line.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()) else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("no status line: {line:?}"),
            ));
        };
        let (mut length, mut chunked) = (0usize, false);
        self.retry_after = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.eq_ignore_ascii_case("chunked");
                } else if k.eq_ignore_ascii_case("retry-after") {
                    self.retry_after = v.parse().ok();
                } else if k.eq_ignore_ascii_case("connection") {
                    self.closed |= v.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let start = body.len();
                body.resize(start + size, 0);
                self.reader.read_exact(&mut body[start..])?;
                line.clear();
                self.reader.read_line(&mut line)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok((status, body))
    }
}

/// Every user matches `userName sw "bench0"` below ten million users.
pub fn user(i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("bench{i:07}"),
        "externalId": format!("ext-{i}"),
        "name": {"givenName": format!("G{i}"), "familyName": format!("F{}", i % 10)},
        "title": if i.is_multiple_of(2) { "Manager" } else { "Engineer" },
        "active": !i.is_multiple_of(13),
        "emails": [{"value": format!("bench{i}@work.example.com"), "type": "work", "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": format!("Dept {}", i % 40), "employeeNumber": format!("{i}")
        }
    })
}
