//! A throwaway PostgreSQL cluster for the tests: `initdb` in a directory,
//! a postmaster on a free loopback port with trust authentication, and a
//! fresh database per caller ([`Cluster::create_database`]).
//!
//! The server binaries come from `/usr/lib/postgresql/<version>/bin` (15
//! when present), `pg_config --bindir`, or `PATH`. PostgreSQL refuses to
//! run as root, so as root every PostgreSQL command runs as the `postgres`
//! user (`runuser -u postgres --`) and the cluster's directory is given to
//! it.
//!
//! [`shared`] is one cluster for the whole test process, under
//! `target/pg/<pid>-<n>`; a detached watchdog stops and removes it once the
//! process is gone, however it ends.

// Included by several test targets, each of which uses a different part.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running PostgreSQL cluster in a directory of its own: `data/` (the
/// cluster), `log` (the postmaster's log) and the Unix socket.
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    /// Databases made by [`Cluster::create_database`], for unique names.
    databases: AtomicU64,
    /// One `CREATE DATABASE` at a time.
    creating: Mutex<()>,
}

impl Cluster {
    /// Creates a cluster in `dir` (made if missing; it should be empty) and
    /// starts it on a free loopback port. Panics, with the reason, when it
    /// cannot. Dropping it stops it; so does the end of this process.
    pub fn start(dir: &Path) -> Cluster {
        Self::start_in(dir, false)
    }

    /// [`Cluster::start`], and when `remove`, the directory is removed too
    /// once this process is gone.
    fn start_in(dir: &Path, remove: bool) -> Cluster {
        let bin = bin_dir();
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let dir = dir
            .canonicalize()
            .unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.display()));
        if is_root() {
            give_to_postgres(&dir);
        }
        let data = dir.join("data");
        let out = pg_command(&bin.join("initdb"), &dir)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        check(&out, "initdb");

        // Another process may take the port between choosing it and the
        // postmaster binding it: then try another.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let cluster = Cluster {
                dir: dir.clone(),
                port: free_port(),
                databases: AtomicU64::new(0),
                creating: Mutex::new(()),
            };
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    cluster.watch(remove);
                    cluster.wait_until_accepting();
                    return cluster;
                }
                Err(e) if attempts >= 5 => panic!("PostgreSQL did not start: {e}"),
                Err(_) => {
                    // Not running, so dropping it (`stop -m immediate`) is
                    // harmless.
                }
            }
        }
    }

    /// The loopback TCP port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (`data/`, `log`, the socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of `database` on this cluster, as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a new, empty database with a name of its own and returns its
    /// URL ([`Cluster::url`]).
    pub fn create_database(&self) -> String {
        let _one_at_a_time = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("scim_{}_{n}", std::process::id());
        let mut last = String::new();
        // A cluster that has only just come back may still refuse briefly.
        for _ in 0..50 {
            match postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
                .and_then(|mut c| c.batch_execute(&format!("CREATE DATABASE {name}")))
            {
                Ok(()) => return self.url(&name),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "cannot create database {name} on {}: {last}\n{}",
            self.url("postgres"),
            self.log_tail()
        );
    }

    /// Stops the cluster (`pg_ctl stop -m fast`) and waits until it is down.
    pub fn stop(&self) {
        let out = self
            .pg_ctl()
            .args(["stop", "-m", "fast", "-w"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        check(&out, "pg_ctl stop");
    }

    /// Starts the cluster again after [`Cluster::stop`], on the same port
    /// and with the same settings, and waits until it accepts connections.
    pub fn start_again(&self) {
        // The port is ours again as soon as the postmaster has let go of
        // it, unless something took it meanwhile: allow it a few seconds.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.pg_ctl_start() {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    panic!("PostgreSQL did not start again: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        self.wait_until_accepting();
    }

    /// `pg_ctl` for this cluster's data directory.
    fn pg_ctl(&self) -> Command {
        let mut c = pg_command(&bin_dir().join("pg_ctl"), &self.dir);
        c.arg("-D").arg(self.dir.join("data"));
        c
    }

    /// `pg_ctl start`, waiting for the postmaster to be ready; on failure,
    /// what `pg_ctl` said and the end of the log.
    fn pg_ctl_start(&self) -> Result<(), String> {
        // pg_ctl hands the options to the shell that starts the postmaster.
        // A socket path past the kernel's 107 bytes would stop it from
        // starting: then there is no Unix socket (the tests use TCP).
        let socket = self.dir.join(format!(".s.PGSQL.{}", self.port));
        let socket_dir = if socket.as_os_str().len() < 104 {
            sh_quote(&self.dir)
        } else {
            "''".to_string()
        };
        let options = format!(
            "-p {} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c max_connections=300 -c shared_buffers=128MB",
            self.port
        );
        let out = self
            .pg_ctl()
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start on port {} failed ({}):\n{}{}\n{}",
                self.port,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            ))
        }
    }

    /// Waits until a client can connect and run a query.
    fn wait_until_accepting(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let tried = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
                .and_then(|mut c| c.batch_execute("SELECT 1"));
            match tried {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!(
                    "PostgreSQL on port {} does not accept connections: {e}\n{}",
                    self.port,
                    self.log_tail()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The end of the postmaster's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        format!("--- {}/log ---\n{}", self.dir.display(), &log[start..])
    }

    /// Stops the cluster once this process is gone, even when it is killed
    /// or the cluster is a `static` (never dropped), and then removes its
    /// directory when `remove`.
    fn watch(&self, remove: bool) {
        let stop = format!(
            "{} -D {} stop -m immediate",
            sh_quote(&bin_dir().join("pg_ctl")),
            sh_quote(&self.dir.join("data"))
        );
        // The watchdog itself runs as this user: `kill -0` by `postgres` on
        // a root process would fail and end the wait at once.
        let stop = if is_root() {
            format!("runuser -u postgres -- {stop}")
        } else {
            stop
        };
        let remove = if remove {
            format!("; rm -rf {}", sh_quote(&self.dir))
        } else {
            String::new()
        };
        // In the background of a shell that exits at once: the watchdog is
        // nobody's child here, so it is never left a zombie of this process.
        let script = format!(
            "(trap '' HUP INT; while kill -0 {} 2>/dev/null; do sleep 1; done; {stop}{remove}) &",
            std::process::id()
        );
        let started = Command::new("sh")
            .args(["-c", &script])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the terminal's process group, so that Ctrl-C, which
            // the postmaster (in a session of its own) survives, leaves
            // the watchdog to stop it.
            .process_group(0)
            .status();
        match started {
            Ok(status) if status.success() => {}
            Ok(status) => panic!("cannot start the PostgreSQL watchdog: sh {status}"),
            Err(e) => panic!("cannot start the PostgreSQL watchdog: {e}"),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .pg_ctl()
            .args(["stop", "-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The test process's cluster, started on first use under
/// `target/pg/<pid>-<n>` and stopped (and removed) once the process is gone.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let root = shared_root();
        let pid = std::process::id();
        // A directory left by an earlier process with the same id is not
        // reused.
        let dir = (0..)
            .map(|n| root.join(format!("{pid}-{n}")))
            .find(|d| !d.exists())
            .expect("a free directory name");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Cluster::start_in(&dir, true)
    })
}

/// `target/pg`, or a directory under the system's temporary directory when
/// the `postgres` user (as root) cannot reach into the target directory.
fn shared_root() -> PathBuf {
    let target = match option_env!("CARGO_TARGET_TMPDIR") {
        // `target/tmp`
        Some(tmp) => Path::new(tmp)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(tmp)),
        // `target/debug/deps/<test>`
        None => {
            let exe = std::env::current_exe().expect("the test executable's path");
            exe.ancestors()
                .find(|a| a.file_name().is_some_and(|n| n == "target"))
                .or_else(|| exe.ancestors().nth(3))
                .expect("the target directory")
                .to_path_buf()
        }
    };
    let mut root = target.join("pg");
    if is_root() && untraversable(&target).is_some() {
        root = std::env::temp_dir().join("scim-test-pg");
    }
    std::fs::create_dir_all(&root)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
    if is_root() {
        // The `postgres` user must pass through it.
        let _ = std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755));
    }
    root
}

/// The directory with `initdb`, `pg_ctl` and `postgres`.
fn bin_dir() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let usable = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse().ok()?;
                Some((version, e.path().join("bin")))
            })
            .filter(|(_, bin)| usable(bin))
            .collect();
        // 15 first, then the newest.
        versions.sort_by_key(|(v, _)| (*v != 15, std::cmp::Reverse(*v)));
        if let Some((_, bin)) = versions.into_iter().next() {
            return bin;
        }
        let pg_config = Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        let path = std::env::var_os("PATH").unwrap_or_default();
        pg_config
            .into_iter()
            .chain(std::env::split_paths(&path))
            .find(|d| usable(d))
            .unwrap_or_else(|| {
                panic!(
                    "the PostgreSQL server binaries (initdb, pg_ctl) were not found in \
                     /usr/lib/postgresql/*/bin, `pg_config --bindir` or PATH; install them \
                     with `apt-get install postgresql-15` (or `postgresql`)"
                )
            })
    })
}

/// A PostgreSQL program, as `postgres` when this process is root, run in
/// `dir` (a directory `postgres` can enter).
fn pg_command(program: &Path, dir: &Path) -> Command {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    c.current_dir(dir).stdin(Stdio::null());
    c
}

/// Whether this process runs as root (its effective user id is 0).
fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata("/proc/self") {
            Ok(m) => m.uid() == 0,
            Err(_) => Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0"),
        }
    })
}

/// Makes `dir` the `postgres` user's, after checking that it can reach it.
fn give_to_postgres(dir: &Path) {
    if let Some(parent) = dir.parent().and_then(untraversable) {
        panic!(
            "the postgres user cannot reach {}: {} is not searchable by others \
             (chmod o+x it, or put the cluster elsewhere)",
            dir.display(),
            parent.display()
        );
    }
    let out = Command::new("chown")
        .arg("postgres:")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run chown: {e}"));
    check(&out, "chown postgres:");
}

/// The first of `dir` and its ancestors that others cannot search.
fn untraversable(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|a| {
            std::fs::metadata(a)
                .map(|m| m.permissions().mode() & 0o001 == 0)
                .unwrap_or(true)
        })
        .map(Path::to_path_buf)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Panics with the command's output when it failed.
#[track_caller]
fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `path` quoted for `sh`.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
