//! The `jobs` table: a job's row from creation to its end, read by any
//! replica. Writes here are single statements, outside any transaction but
//! [`claim`]'s.

use serde_json::{Value, json};

use super::{Job, KEEP_DAYS, KEEP_JOBS, Kind, owner, stale};
use crate::db::sql::{Connection, Dialect, OptionalExtension as _, Row, params};
use crate::db::{now, timestamp};
use crate::mapping::Refusal;

const COLUMNS: &str =
    "id, kind, state, done, total, created, finished, result, error, basis, owner, heartbeat";
/// [`COLUMNS`] for a listing, which shows no results: a preview's report
/// is not read only to be dropped.
const LISTED: &str =
    "id, kind, state, done, total, created, finished, NULL, error, basis, owner, heartbeat";

/// A time `ago` before now, as stored.
fn before_now(ago: std::time::Duration) -> String {
    timestamp(time::OffsetDateTime::now_utc() - ago)
}

fn json_column(r: &Row, i: usize) -> crate::db::sql::Result<Option<Value>> {
    let text: Option<String> = r.get(i)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// A row, with what it takes to tell whether its server is gone.
struct Stored {
    job: Job,
    owner: String,
    heartbeat: String,
}

fn row(r: &Row) -> crate::db::sql::Result<Stored> {
    let done: i64 = r.get(3)?;
    let total: i64 = r.get(4)?;
    Ok(Stored {
        job: Job {
            id: r.get(0)?,
            kind: r.get(1)?,
            state: r.get(2)?,
            done: done.max(0) as u64,
            total: total.max(0) as u64,
            created: r.get(5)?,
            finished: r.get(6)?,
            result: json_column(r, 7)?,
            error: json_column(r, 8)?,
            basis: json_column(r, 9)?,
        },
        owner: r.get(10)?,
        heartbeat: r.get(11)?,
    })
}

/// Starts a job's row: running, owned by this process. Old finished jobs
/// of the tenant go.
pub fn create(
    conn: &Connection,
    tenant: i64,
    kind: Kind,
    total: u64,
    basis: Option<&Value>,
) -> crate::db::sql::Result<Job> {
    prune(conn, tenant)?;
    let id = crate::events::new_id();
    let at = now();
    conn.execute(
        "INSERT INTO jobs (id, tenant, kind, state, done, total, created, owner, heartbeat, basis)
         VALUES (?1, ?2, ?3, 'running', 0, ?4, ?5, ?6, ?5, ?7)",
        params![
            id,
            tenant,
            kind.name(),
            total as i64,
            at,
            owner(),
            basis.map(Value::to_string)
        ],
    )?;
    Ok(Job {
        id,
        kind: kind.name().to_string(),
        state: "running".into(),
        done: 0,
        total,
        created: at,
        finished: None,
        result: None,
        error: None,
        basis: basis.cloned(),
    })
}

/// Deletes the tenant's finished jobs beyond the newest [`KEEP_JOBS`] or
/// older than [`KEEP_DAYS`].
fn prune(conn: &Connection, tenant: i64) -> crate::db::sql::Result<usize> {
    let cutoff = before_now(std::time::Duration::from_secs(KEEP_DAYS as u64 * 86_400));
    let old = conn.execute(
        "DELETE FROM jobs WHERE tenant = ?1 AND created < ?2
         AND state NOT IN ('running', 'applying')",
        params![tenant, cutoff],
    )?;
    let beyond = conn.execute(
        "DELETE FROM jobs WHERE tenant = ?1 AND state NOT IN ('running', 'applying')
         AND id NOT IN (SELECT id FROM jobs WHERE tenant = ?1 ORDER BY created DESC, id DESC LIMIT ?2)",
        params![tenant, KEEP_JOBS],
    )?;
    Ok(old + beyond)
}

/// Whether the job's server is gone: on SQLite (one server per file) when
/// another process runs it; on PostgreSQL when it went silent.
fn orphaned(conn: &Connection, s: &Stored) -> bool {
    if !matches!(s.job.state.as_str(), "running" | "applying") {
        return false;
    }
    let silent = s.heartbeat < before_now(stale());
    silent || (conn.dialect() == Dialect::Sqlite && s.owner != owner())
}

/// Records that the job's server is gone; what it says depends on whether
/// its change was already recorded (`applying` commits with the change).
fn interrupt(conn: &Connection, s: &mut Stored) -> crate::db::sql::Result<()> {
    let detail = if s.job.state == "applying" {
        "The server stopped right after it recorded this change, before it recorded the outcome: \
         the change is in force (GET /admin/v1/mapping or /admin/v1/mapper shows it)"
    } else {
        "The server running this job stopped before the job ended; nothing was applied. Run it again"
    };
    let error = json!({"status": 500, "detail": detail});
    let at = now();
    let n = conn.execute(
        "UPDATE jobs SET state = 'interrupted', finished = ?2, error = ?3
         WHERE id = ?1 AND state = ?4",
        params![s.job.id, at, error.to_string(), s.job.state],
    )?;
    if n == 1 {
        s.job.state = "interrupted".into();
        s.job.finished = Some(at);
        s.job.error = Some(error);
    }
    Ok(())
}

/// As the API shows it: a change being recorded is still running.
fn shown(mut s: Stored) -> Job {
    if s.job.state == "applying" {
        s.job.state = "running".into();
    }
    s.job
}

/// One of the tenant's jobs (`None`: no such job in this tenant).
pub fn get(conn: &Connection, tenant: i64, id: &str) -> crate::db::sql::Result<Option<Job>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE tenant = ?1 AND id = ?2"
        ))?
        .query_row(params![tenant, id], row)
        .optional()?;
    let Some(mut s) = found else { return Ok(None) };
    if orphaned(conn, &s) {
        interrupt(conn, &mut s)?;
    }
    Ok(Some(shown(s)))
}

/// The tenant's jobs, newest first, without their results.
pub fn list(conn: &Connection, tenant: i64, limit: u32) -> crate::db::sql::Result<Vec<Job>> {
    let rows: Vec<Stored> = conn
        .prepare_cached(&format!(
            "SELECT {LISTED} FROM jobs WHERE tenant = ?1 ORDER BY created DESC, id DESC LIMIT ?2"
        ))?
        .query_map(params![tenant, limit], row)?
        .collect::<Result<_, _>>()?;
    let mut jobs = Vec::with_capacity(rows.len());
    for mut s in rows {
        if orphaned(conn, &s) {
            interrupt(conn, &mut s)?;
        }
        jobs.push(shown(s));
    }
    Ok(jobs)
}

/// Writes the users previewed so far, and that the job still runs;
/// `false` when it no longer does (cancelled, or taken for interrupted).
pub(super) fn progress(conn: &Connection, id: &str, done: u64) -> crate::db::sql::Result<bool> {
    let n = conn.execute(
        "UPDATE jobs SET done = ?2, heartbeat = ?3
         WHERE id = ?1 AND state IN ('running', 'applying')",
        params![id, done as i64, now()],
    )?;
    Ok(n == 1)
}

/// In the change's transaction: the job's change is being recorded, so it
/// can no longer be cancelled; refused when it was cancelled already.
/// Both sides write the row, so the database orders them.
pub fn claim(tx: &Connection, id: &str) -> Result<(), Refusal> {
    let n = tx.execute(
        "UPDATE jobs SET state = 'applying', heartbeat = ?2 WHERE id = ?1 AND state = 'running'",
        params![id, now()],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Refusal::Cancelled)
    }
}

/// Records how the job ended; nothing when it had ended already
/// (cancelled). `false` then.
pub fn finish(
    conn: &Connection,
    id: &str,
    state: &str,
    done: u64,
    result: Option<&Value>,
    error: Option<&Value>,
) -> crate::db::sql::Result<bool> {
    let n = conn.execute(
        "UPDATE jobs SET state = ?2, finished = ?3, result = ?4, error = ?5,
             done = CASE WHEN done > ?6 THEN done ELSE ?6 END
         WHERE id = ?1 AND state IN ('running', 'applying')",
        params![
            id,
            state,
            now(),
            result.map(Value::to_string),
            error.map(Value::to_string),
            done as i64
        ],
    )?;
    Ok(n == 1)
}

/// What a cancellation found.
pub enum Cancel {
    /// Cancelled now; nothing of it is applied.
    Cancelled(Job),
    /// It had ended (or its change is being recorded): as it is.
    Ended(Job),
    /// No such job in this tenant.
    Unknown,
}

/// Cancels a running job of the tenant: its row says so at once, and the
/// work stops at its next page of users (here) or write of its progress
/// (on another replica).
pub fn cancel(conn: &Connection, tenant: i64, id: &str) -> crate::db::sql::Result<Cancel> {
    let error = json!({"status": 409, "detail": "Cancelled; nothing was applied"});
    let n = conn.execute(
        "UPDATE jobs SET state = 'cancelled', finished = ?3, error = ?4
         WHERE tenant = ?1 AND id = ?2 AND state = 'running'",
        params![tenant, id, now(), error.to_string()],
    )?;
    if n == 1 {
        super::stop_here(id);
    }
    Ok(match get(conn, tenant, id)? {
        Some(job) if n == 1 => Cancel::Cancelled(job),
        Some(job) => Cancel::Ended(job),
        None => Cancel::Unknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    #[test]
    fn a_job_runs_ends_once_and_other_tenants_do_not_see_it() {
        let (_dir, pool) = db::scratch();
        let conn = pool.get().unwrap();
        let job = create(&conn, 1, Kind::MappingPreview, 10, None).unwrap();
        assert!(progress(&conn, &job.id, 5).unwrap());
        let seen = get(&conn, 1, &job.id).unwrap().unwrap();
        assert_eq!(
            (seen.state.as_str(), seen.done, seen.total),
            ("running", 5, 10)
        );
        assert!(get(&conn, 2, &job.id).unwrap().is_none());
        assert!(matches!(
            cancel(&conn, 2, &job.id).unwrap(),
            Cancel::Unknown
        ));
        let report = json!({"users": 10});
        assert!(finish(&conn, &job.id, "done", 10, Some(&report), None).unwrap());
        assert!(!finish(&conn, &job.id, "failed", 10, None, None).unwrap());
        let done = get(&conn, 1, &job.id).unwrap().unwrap();
        assert_eq!(done.state, "done");
        assert_eq!(done.result, Some(report));
        assert!(matches!(
            cancel(&conn, 1, &job.id).unwrap(),
            Cancel::Ended(_)
        ));
        assert_eq!(
            list(&conn, 1, 10).unwrap()[0].result,
            None,
            "lists leave results out"
        );
    }

    #[test]
    fn a_cancelled_job_cannot_be_claimed_and_a_claimed_one_cannot_be_cancelled() {
        let (_dir, pool) = db::scratch();
        let conn = pool.get().unwrap();
        let a = create(&conn, 1, Kind::MappingInstall, 0, None).unwrap();
        assert!(matches!(
            cancel(&conn, 1, &a.id).unwrap(),
            Cancel::Cancelled(_)
        ));
        assert!(!progress(&conn, &a.id, 1).unwrap(), "its work hears it");
        assert!(matches!(claim(&conn, &a.id), Err(Refusal::Cancelled)));
        assert_eq!(get(&conn, 1, &a.id).unwrap().unwrap().state, "cancelled");

        let b = create(&conn, 1, Kind::MappingInstall, 0, None).unwrap();
        claim(&conn, &b.id).unwrap();
        assert_eq!(get(&conn, 1, &b.id).unwrap().unwrap().state, "running");
        assert!(matches!(cancel(&conn, 1, &b.id).unwrap(), Cancel::Ended(_)));
        assert!(finish(&conn, &b.id, "done", 0, None, None).unwrap());
    }

    #[test]
    fn a_job_whose_server_went_silent_or_away_is_interrupted() {
        let (_dir, pool) = db::scratch();
        let conn = pool.get().unwrap();
        let silent = create(&conn, 1, Kind::MapperPreview, 0, None).unwrap();
        conn.execute(
            "UPDATE jobs SET heartbeat = ?2 WHERE id = ?1",
            params![silent.id, before_now(stale() * 2)],
        )
        .unwrap();
        let gone = create(&conn, 1, Kind::MappingInstall, 0, None).unwrap();
        conn.execute(
            "UPDATE jobs SET owner = 'another process', state = 'applying' WHERE id = ?1",
            params![gone.id],
        )
        .unwrap();
        let alive = create(&conn, 1, Kind::MappingPreview, 0, None).unwrap();
        let s = get(&conn, 1, &silent.id).unwrap().unwrap();
        assert_eq!(s.state, "interrupted");
        assert!(
            s.error.unwrap()["detail"]
                .as_str()
                .unwrap()
                .contains("nothing was applied")
        );
        let listed = list(&conn, 1, 10).unwrap();
        let g = listed.iter().find(|j| j.id == gone.id).unwrap();
        assert_eq!(g.state, "interrupted");
        let detail = g.error.as_ref().unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(detail.contains("in force"), "{detail}");
        assert_eq!(get(&conn, 1, &alive.id).unwrap().unwrap().state, "running");
    }

    #[test]
    fn old_finished_jobs_are_pruned_running_ones_kept() {
        let (_dir, pool) = db::scratch();
        let conn = pool.get().unwrap();
        let running = create(&conn, 1, Kind::MappingPreview, 0, None).unwrap();
        conn.execute(
            "UPDATE jobs SET created = '2000-01-01T00:00:00.000Z' WHERE id = ?1",
            params![running.id],
        )
        .unwrap();
        for _ in 0..KEEP_JOBS + 5 {
            let j = create(&conn, 1, Kind::MappingPreview, 0, None).unwrap();
            finish(&conn, &j.id, "done", 0, None, None).unwrap();
        }
        create(&conn, 2, Kind::MappingPreview, 0, None).unwrap();
        let n = |t: i64| -> i64 {
            conn.query_row("SELECT count(*) FROM jobs WHERE tenant = ?1", [t], |r| {
                r.get(0)
            })
            .unwrap()
        };
        // The newest finished ones, the running one, and the new one.
        assert_eq!(n(1), KEEP_JOBS + 2);
        assert!(get(&conn, 1, &running.id).unwrap().is_some());
        assert_eq!(n(2), 1);
    }
}
