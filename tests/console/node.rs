//! The Node side: Chromium's whereabouts, the packages' install, and a run
//! of the Node tests (`node --test`) against the seeded server.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::seed::{Seeded, workspace};

/// The longest the Node tests may run before they are stopped: a hang
/// guard, well above their usual time.
const LIMIT: Duration = Duration::from_secs(300);

/// The console's test directory, `tests/console`.
fn here() -> PathBuf {
    workspace().join("tests/console")
}

/// Chromium: `$SCIM_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("SCIM_CHROMIUM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "the console's browser tests drive Chromium, and there is none at {}: \
         install Debian's with `apt-get install chromium` (.ci/run does), \
         or set SCIM_CHROMIUM to a Chromium binary",
        path.display()
    );
    path
}

/// Installs the pinned packages once per change of `package-lock.json`
/// (`install.sh`, under a lock).
pub fn install() {
    let out = Command::new("bash")
        .arg(here().join("install.sh"))
        .output()
        .expect("run tests/console/install.sh (needs bash)");
    assert!(
        out.status.success(),
        "installing the browser tests' packages failed (Node.js 20 and npm are needed):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Where the screenshots go: `target/console-screenshots`.
fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("console-screenshots")
}

/// The Node test files, in the order they run.
fn test_files() -> Vec<PathBuf> {
    let dir = here().join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.mjs in {}", dir.display());
    files
}

/// Runs the Node tests one file after another; panics with their output
/// (and the end of the server's log) when any fails.
pub fn run_tests(chromium: &std::path::Path, seeded: &Seeded) {
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, seeded.facts.to_string()).expect("write seed.json");
    let shots = screenshots();
    std::fs::create_dir_all(&shots).expect("create target/console-screenshots");
    let update = std::env::var("SCIM_CONSOLE_SCREENSHOTS_UPDATE").as_deref() == Ok("1");
    let docs = workspace().join("host-harness/docs/console");
    let stdout = dir.path().join("stdout.txt");
    let stderr = dir.path().join("stderr.txt");
    let mut cmd = Command::new("node");
    cmd.current_dir(here())
        .args([
            "--test",
            "--test-concurrency=1",
            "--test-timeout=120000",
            "--test-reporter=spec",
        ])
        .args(test_files())
        .env("SCIM_CONSOLE_SEED", &seed)
        .env("SCIM_CONSOLE_URL", seeded.server.origin())
        .env("SCIM_CHROMIUM", chromium)
        .env("SCIM_CONSOLE_SCREENSHOTS", &shots)
        .env("SCIM_CONSOLE_PLUGIN", &seeded.plugin)
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    if update {
        cmd.env("SCIM_CONSOLE_DOCS", &docs);
    } else {
        cmd.env_remove("SCIM_CONSOLE_DOCS");
    }
    // A group of its own, so that a run stopped at the limit takes its
    // Chromium processes with it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("run node (Node.js 20 is needed)");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill only sends a signal to the group the child leads.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&stdout).unwrap_or_default();
    let err = std::fs::read_to_string(&stderr).unwrap_or_default();
    let passed = status.is_some_and(|s| s.success());
    if !passed {
        let log = seeded.server.log();
        let start = (log.len().saturating_sub(6000)..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        let tail = &log[start..];
        let why = match status {
            None => format!("still running after {LIMIT:?}, stopped"),
            Some(s) => format!("exited with {s}"),
        };
        panic!(
            "the console's browser tests failed ({why}); screenshots in {}\n\
             --- node stdout ---\n{out}\n--- node stderr ---\n{err}\n\
             --- server log (end) ---\n{tail}",
            shots.display()
        );
    }
    eprintln!("{out}");
    if update {
        eprintln!("console: screenshots copied to {}", docs.display());
    }
}
