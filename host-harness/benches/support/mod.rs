//! Shared by the HTTP benchmarks: building a directory through the real
//! engine component, and running `scim-host` on it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use scim_host::bindings::lms::scim::types::{HttpRequest, RequestContext};
use scim_host::db::{self, Pool};
use scim_host::imports::SqlStore;
use scim_host::runtime::{Limits, Runtime};
use serde_json::Value;

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
    path: PathBuf,
    tmp: PathBuf,
}

impl Loader {
    /// Starts building the database that will be at `path`.
    pub fn new(path: &Path) -> Self {
        let tmp = path.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        let pool = db::open(&tmp, 2, db::Checkpoints::InCommit).unwrap();
        db::set_tenant_token(&pool.get().unwrap(), "default", db::TokenKind::Scim, TOKEN).unwrap();
        let tenant = db::authenticate(&pool.get().unwrap(), db::TokenKind::Scim, TOKEN)
            .unwrap()
            .unwrap();
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
            path: path.to_path_buf(),
            tmp,
        };
        loader.begin();
        loader
    }

    fn begin(&mut self) {
        let conn = self.pool.get().unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
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
        std::fs::rename(&self.tmp, &self.path).unwrap();
        for ext in ["partial-wal", "partial-shm"] {
            let _ = std::fs::remove_file(self.path.with_extension(ext));
        }
    }
}

/// A `scim-host` serving a database on a free port.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the release `scim-host` on `db` with extra `serve` arguments.
pub fn serve(db: &Path, extra: &[&str]) -> Server {
    // `SCIM_BENCH_HOST` serves from another build (e.g. a copy of main's
    // binary) so that two builds can be compared back to back.
    let binary = std::env::var("SCIM_BENCH_HOST")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_scim-host").to_string());
    // `SCIM_BENCH_LOG` (a `RUST_LOG` filter) shows the server's log;
    // otherwise its warnings go to `<db>.log`, shown if it fails to start.
    let log = std::env::var("SCIM_BENCH_LOG").ok();
    let log_file = PathBuf::from(format!("{}.log", db.display()));
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

/// The example Python mapping plugin, if its `build.sh` has made it.
pub fn python_example() -> Option<Vec<u8>> {
    let path = root().join("plugin/mappers/example-python/mapper.wasm");
    let bytes = std::fs::read(&path).ok();
    if bytes.is_none() {
        eprintln!(
            "{} is missing: run its build.sh to measure the Python plugin",
            path.display()
        );
    }
    bytes
}

/// The example plugins' settings.
pub fn example_settings() -> String {
    std::fs::read_to_string(root().join("plugin/mappers/example-rust/samples/settings.json"))
        .unwrap()
}
