//! The database's storage fails under the server: the disk fills up (a
//! small filesystem made for the test), or another process holds the
//! database's lock. Writes are refused with `503` and a detail, reads go
//! on, nothing is corrupted (`PRAGMA integrity_check`), and service resumes
//! without a restart when the condition clears. SQLite only (the file is
//! the point); the full disk needs root to mount a filesystem.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Resp, Server, USER_SCHEMA, sqlite_only};

fn user(name: &str) -> Value {
    json!({"schemas": [USER_SCHEMA], "userName": name,
           "name": {"givenName": "Given", "familyName": name},
           "emails": [{"value": format!("{name}@example.com"), "type": "work"}]})
}

/// A `503` SCIM Error whose detail asks to retry.
#[track_caller]
fn assert_unavailable(r: Resp) {
    let r = r.expect_error(503, None);
    let detail = r.json["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("retry"), "{detail}");
}

#[track_caller]
fn assert_intact(db: &Path) {
    let c = rusqlite::Connection::open(db).expect("open the database");
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
}

/// A tmpfs of `size` mounted on a new directory, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    /// `None`, after saying why, when the filesystem cannot be made.
    fn mount(size: &str) -> Option<Self> {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk {
                dir,
                _parent: parent,
            }),
            Ok(o) => {
                eprintln!(
                    "skipped: mounting a {size} tmpfs was refused (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes zeros to `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler");
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_refuses_writes_with_503_and_service_resumes_when_space_returns() {
    if sqlite_only("a_full_disk_refuses_writes_with_503_and_service_resumes_when_space_returns") {
        return;
    }
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let db = disk.dir.join("scim.db");
    let token = "full-disk-token".to_string();
    let s = Server::launch(
        tempfile::tempdir().expect("temp dir"),
        db.to_str().expect("UTF-8 path").to_string(),
        token,
        &[],
        &[],
    );
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let r = s
            .post("/Users", &user(&format!("before{i:02}")))
            .expect(201);
        acknowledged.push(r.json["id"].as_str().expect("id").to_string());
    }

    let filler = disk.dir.join("filler");
    fill(&filler);
    // Pages SQLite already holds can take a few more writes; the disk is
    // full once one is refused.
    let mut refused = None;
    for i in 0..2000 {
        let r = s.post("/Users", &user(&format!("during{i:04}")));
        if r.status == 201 {
            acknowledged.push(r.json["id"].as_str().expect("id").to_string());
            continue;
        }
        refused = Some(r);
        break;
    }
    let refused = refused.expect("no write was refused on a full disk");
    assert_unavailable(refused);
    // Reads go on.
    s.get("/Users?count=1").expect(200);
    s.get(&format!("/Users/{}", acknowledged[0])).expect(200);
    assert_unavailable(s.post("/Users", &user("still-full")));

    std::fs::remove_file(&filler).expect("remove the filler");
    // No restart: the next write succeeds (allowing a moment for a
    // connection that saw the error to be replaced).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.post("/Users", &user("after"));
        if r.status == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume: {} {}\n{}",
            r.status,
            r.text,
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for id in &acknowledged {
        s.get(&format!("/Users/{id}")).expect(200);
    }
    assert_eq!(s.count("/Users", "userName sw \"still\""), 0);
    assert_intact(&db);
    drop(s);
    assert_intact(&db);
}

#[test]
fn a_held_database_lock_gets_503_within_the_request_timeout_and_writes_resume() {
    if sqlite_only("a_held_database_lock_gets_503_within_the_request_timeout_and_writes_resume") {
        return;
    }
    const TIMEOUT_MS: u64 = 2000;
    let s = Server::start_with(&["--request-timeout-ms", &TIMEOUT_MS.to_string()]);
    let before = s.post("/Users", &user("before")).expect(201);
    let db = s.db_file().to_path_buf();

    // Another process takes the write lock and holds it.
    let mut holder = Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 (apt-get install sqlite3)");
    let mut stdin = holder.stdin.take().expect("stdin");
    writeln!(stdin, "BEGIN EXCLUSIVE; SELECT 'locked';").expect("lock");
    stdin.flush().expect("flush");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(holder.stdout.take().expect("stdout"));
    std::io::BufRead::read_line(&mut out, &mut line).expect("sqlite3 answered");
    assert_eq!(line.trim(), "locked");

    let started = Instant::now();
    let r = s.post("/Users", &user("while-locked"));
    let took = started.elapsed();
    assert_unavailable(r);
    // A hang guard with room to spare, not a performance figure: the wait
    // for the lock is bounded by the request's timeout, not the lock's.
    assert!(
        took < Duration::from_millis(TIMEOUT_MS) * 4,
        "a write waited {took:?} for the lock"
    );
    // Reads go on.
    s.get(&format!(
        "/Users/{}",
        before.json["id"].as_str().expect("id")
    ))
    .expect(200);

    writeln!(stdin, "ROLLBACK;").expect("release");
    drop(stdin);
    let _ = holder.wait();
    s.post("/Users", &user("after")).expect(201);
    assert_eq!(s.count("/Users", "userName eq \"while-locked\""), 0);
    assert_intact(&db);
}
