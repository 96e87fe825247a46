//! The outbox: background re-mapping tasks the engine queued inside a
//! request's transaction, drained in order by the worker (`worker`).

use crate::db::sql::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::bindings::lms::scim::outbox::{Task, Work};

/// Attempts after which a failing task stops being retried (it stays in
/// the outbox, visible in `sync status`, until an operator removes it).
pub const MAX_ATTEMPTS: i64 = 10;

use crate::db::now;

fn work_json(w: &Work) -> String {
    match w {
        Work::Source(s) => json!({"source": s}),
        Work::Users(u) => json!({"users": u}),
        Work::Everyone => json!({"everyone": true}),
        Work::Members(g) => json!({"members": g}),
        Work::Renamed(g) => json!({"renamed": g}),
    }
    .to_string()
}

fn work_of(text: &str) -> Option<Work> {
    let v: Value = serde_json::from_str(text).ok()?;
    if let Some(s) = v.get("source").and_then(Value::as_str) {
        return Some(Work::Source(s.to_string()));
    }
    if v.get("everyone").is_some() {
        return Some(Work::Everyone);
    }
    if let Some(g) = v.get("members").and_then(Value::as_str) {
        return Some(Work::Members(g.to_string()));
    }
    if let Some(g) = v.get("renamed").and_then(Value::as_str) {
        return Some(Work::Renamed(g.to_string()));
    }
    let users = v.get("users")?.as_array()?;
    Some(Work::Users(
        users
            .iter()
            .filter_map(|u| u.as_str().map(str::to_string))
            .collect(),
    ))
}

/// Drops the tenant's queued re-mappings of every user (a newer one
/// supersedes them; work already done stays done).
pub fn drop_everyone(conn: &Connection, tenant: i64) -> crate::db::sql::Result<usize> {
    conn.prepare_cached("DELETE FROM outbox WHERE tenant = ?1 AND task = ?2")?
        .execute(params![tenant, work_json(&Work::Everyone)])
}

/// Queues a task (inside the caller's transaction).
pub fn enqueue(
    conn: &Connection,
    tenant: i64,
    change_id: &str,
    task: &Task,
) -> crate::db::sql::Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (tenant, change_id, task, cursor, created) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        tenant,
        change_id,
        work_json(&task.work),
        task.cursor,
        now()
    ])?;
    Ok(())
}

/// A task taken from the outbox.
#[derive(Clone)]
pub struct Queued {
    pub id: i64,
    pub tenant: i64,
    pub tenant_name: String,
    pub signing_key: Vec<u8>,
    pub change_id: String,
    pub task: Task,
}

/// The task to try next: the oldest of those that failed least since they
/// last progressed. A failing task so backs off behind every task that did
/// not fail (of any tenant) rather than being retried before them, until
/// it stalls at [`MAX_ATTEMPTS`]; tasks that do not fail go in queue order.
pub fn next(conn: &Connection) -> crate::db::sql::Result<Option<Queued>> {
    let row = conn
        .prepare_cached(
            "SELECT o.id, o.tenant, t.name, t.signing_key, o.change_id, o.task, o.cursor
             FROM outbox o JOIN tenants t ON t.id = o.tenant
             WHERE o.attempts < ?1 ORDER BY o.attempts, o.id LIMIT 1",
        )?
        .query_row([MAX_ATTEMPTS], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })
        .optional()?;
    Ok(row.map(
        |(id, tenant, tenant_name, signing_key, change_id, work, cursor)| {
            let work = work_of(&work).unwrap_or(Work::Users(Vec::new()));
            Queued {
                id,
                tenant,
                tenant_name,
                signing_key,
                change_id,
                task: Task { work, cursor },
            }
        },
    ))
}

/// The task's cursor now, locked for this transaction (`None`: the task is
/// gone, or another replica's batch holds it). Read after the tenant's
/// write lock, so that a task read before it is resumed where it stands.
pub fn claim(conn: &Connection, id: i64) -> crate::db::sql::Result<Option<Option<String>>> {
    let sql = match conn.dialect() {
        crate::db::Dialect::Sqlite => "SELECT cursor FROM outbox WHERE id = ?1",
        crate::db::Dialect::Postgres => {
            "SELECT cursor FROM outbox WHERE id = ?1 FOR UPDATE SKIP LOCKED"
        }
    };
    conn.prepare_cached(sql)?
        .query_row([id], |r| r.get(0))
        .optional()
}

/// Stores how far a task got (in the batch's transaction).
pub fn advance(conn: &Connection, id: i64, cursor: &str) -> crate::db::sql::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET cursor = ?2, attempts = 0, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, cursor])?;
    Ok(())
}

/// Removes a finished task (in the batch's transaction).
pub fn finish(conn: &Connection, id: i64) -> crate::db::sql::Result<()> {
    conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Records a failed attempt.
pub fn fail(conn: &Connection, id: i64, error: &str) -> crate::db::sql::Result<()> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
    )?
    .execute(params![id, error])?;
    Ok(())
}

/// Backlog size and the age of its oldest task, for metrics.
pub fn backlog(conn: &Connection) -> crate::db::sql::Result<(u64, Option<f64>)> {
    conn.query_row(
        &format!(
            "SELECT count(*), {} FROM outbox",
            conn.dialect().seconds_since("min(created)")
        ),
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Option<f64>>(1)?)),
    )
}

/// A tenant's oldest waiting task, for the backlog alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Oldest {
    pub id: i64,
    /// Tasks of the tenant waiting, this one included.
    pub tasks: i64,
    pub age_secs: f64,
}

/// The tenant's oldest task (ids are in queue order), if any.
pub fn oldest(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Option<Oldest>> {
    let first: Option<(i64, f64)> = conn
        .query_row(
            &format!(
                "SELECT id, {} FROM outbox WHERE tenant = ?1 ORDER BY id LIMIT 1",
                conn.dialect().seconds_since("created")
            ),
            [tenant],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((id, age_secs)) = first else {
        return Ok(None);
    };
    let tasks: i64 = conn.query_row(
        "SELECT count(*) FROM outbox WHERE tenant = ?1",
        [tenant],
        |r| r.get(0),
    )?;
    Ok(Some(Oldest {
        id,
        tasks,
        age_secs,
    }))
}

/// Users already counted for each re-mapping of every user in progress
/// (task id to cursor and users up to it), so that polling the status costs
/// the users done since the last poll rather than all of them.
#[derive(Default)]
pub struct Progress(std::sync::Mutex<std::collections::HashMap<i64, (i64, i64)>>);

/// How far a re-mapping of every user got: users up to the cursor (a
/// document sequence number) and users in all.
fn everyone_progress(
    conn: &Connection,
    tenant: i64,
    task: i64,
    cursor: Option<&str>,
    progress: &Progress,
) -> crate::db::sql::Result<(i64, i64)> {
    let total: i64 = conn
        .prepare_cached("SELECT n FROM kind_counts WHERE tenant = ?1 AND kind = 'User'")?
        .query_row([tenant], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let Some(seq) = cursor.and_then(|c| c.parse::<i64>().ok()) else {
        return Ok((0, total));
    };
    let mut counted = progress.0.lock().unwrap_or_else(|e| e.into_inner());
    let (from, before) = counted
        .get(&task)
        .copied()
        .filter(|(at, _)| *at <= seq)
        .unwrap_or((0, 0));
    let since: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM documents
             WHERE tenant = ?1 AND kind = 'User' AND seq > ?2 AND seq <= ?3",
        )?
        .query_row(params![tenant, from, seq], |r| r.get(0))?;
    // Users deleted after they were counted stay counted: clamp.
    let done = (before + since).min(total);
    counted.insert(task, (seq, done));
    Ok((done, total))
}

/// The backlog as `sync status` and `GET /admin/v1/sync` show it; all
/// tenants when `tenant` is `None`.
pub fn status(
    conn: &Connection,
    tenant: Option<i64>,
    progress: &Progress,
) -> crate::db::sql::Result<Value> {
    let mut stmt = conn.prepare(&format!(
        "SELECT o.id, t.name, o.change_id, o.task, o.cursor, o.created, o.attempts, o.last_error,
            {}, o.tenant
         FROM outbox o JOIN tenants t ON t.id = o.tenant
         WHERE CAST(?1 AS BIGINT) IS NULL OR o.tenant = ?1 ORDER BY o.id LIMIT 1000",
        conn.dialect().seconds_since("o.created")
    ))?;
    let mut seen = Vec::new();
    let tasks = stmt
        .query_map([tenant], |r| {
            let work: String = r.get(3)?;
            let work: Value = serde_json::from_str(&work).unwrap_or(Value::Null);
            let what = if let Some(s) = work.get("source") {
                json!({"remap": "source", "via": s})
            } else if let Some(Value::Array(u)) = work.get("users") {
                // The cursor of a list of users is how many are done.
                let cursor: Option<String> = r.get(4)?;
                let done = cursor.and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
                json!({"remap": "users", "users": u.len(), "done": done})
            } else if work.get("everyone").is_some() {
                let cursor: Option<String> = r.get(4)?;
                let (done, total) =
                    everyone_progress(conn, r.get(9)?, r.get(0)?, cursor.as_deref(), progress)?;
                seen.push(r.get::<_, i64>(0)?);
                json!({"remap": "everyone", "done": done, "total": total})
            } else if let Some(g) = work.get("members") {
                json!({"remap": "members", "group": g})
            } else if let Some(g) = work.get("renamed") {
                json!({"remap": "renamed", "group": g})
            } else {
                Value::Null
            };
            let attempts: i64 = r.get(6)?;
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "tenant": r.get::<_, String>(1)?,
                "changeId": r.get::<_, String>(2)?,
                "work": what,
                "cursor": r.get::<_, Option<String>>(4)?,
                "created": r.get::<_, String>(5)?,
                "attempts": attempts,
                "stalled": attempts >= MAX_ATTEMPTS,
                "lastError": r.get::<_, Option<String>>(7)?,
                "ageSeconds": r.get::<_, f64>(8)?,
            }))
        })?
        .collect::<crate::db::sql::Result<Vec<_>>>()?;
    // Tasks no longer listed are finished (or another tenant's: recounted
    // when asked for).
    progress
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|task, _| seen.contains(task));
    let (pending, oldest): (i64, Option<f64>) = conn.query_row(
        &format!(
            "SELECT count(*), {} FROM outbox WHERE CAST(?1 AS BIGINT) IS NULL OR tenant = ?1",
            conn.dialect().seconds_since("min(created)")
        ),
        [tenant],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(json!({
        "pending": pending,
        "oldestAgeSeconds": oldest,
        "tasks": tasks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    #[test]
    fn a_new_re_mapping_of_everyone_supersedes_the_queued_ones_of_its_tenant_only() {
        let (_dir, pool) = db::scratch();
        let conn = pool.get().unwrap();
        let a = db::add_tenant(&conn, "a").unwrap();
        let b = db::add_tenant(&conn, "b").unwrap();
        let (a, b) = (
            db::tenant_id(&conn, &a.name).unwrap(),
            db::tenant_id(&conn, &b.name).unwrap(),
        );
        let everyone = Task {
            work: Work::Everyone,
            cursor: None,
        };
        let users = Task {
            work: Work::Users(vec!["u1".into()]),
            cursor: None,
        };
        for (tenant, task) in [(a, &everyone), (a, &users), (b, &everyone)] {
            enqueue(&conn, tenant, "c", task).unwrap();
        }
        conn.execute("UPDATE outbox SET cursor = '7' WHERE tenant = ?1", [a])
            .unwrap();
        assert_eq!(drop_everyone(&conn, a).unwrap(), 1);
        let left: Vec<(i64, String)> = conn
            .prepare("SELECT tenant, task FROM outbox ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<crate::db::sql::Result<_>>()
            .unwrap();
        assert_eq!(
            left,
            [(a, work_json(&users.work)), (b, work_json(&everyone.work))]
        );
    }

    /// A failing task is tried again only after the tasks queued behind
    /// it, and once stalled no more; a task that progresses is back in
    /// queue order.
    #[test]
    fn a_failing_task_backs_off_behind_the_others_and_stalls() {
        let (_dir, pool) = db::scratch();
        let conn = pool.get().unwrap();
        let a = db::add_tenant(&conn, "a").unwrap();
        let b = db::add_tenant(&conn, "b").unwrap();
        let (a, b) = (
            db::tenant_id(&conn, &a.name).unwrap(),
            db::tenant_id(&conn, &b.name).unwrap(),
        );
        let task = |u: &str| Task {
            work: Work::Users(vec![u.into()]),
            cursor: None,
        };
        enqueue(&conn, a, "ca", &task("a1")).unwrap();
        enqueue(&conn, b, "cb", &task("b1")).unwrap();
        enqueue(&conn, b, "cb", &task("b2")).unwrap();
        let next_id = || next(&conn).unwrap().map(|q| q.id);
        let (first, second, third) = (1, 2, 3);
        assert_eq!(next_id(), Some(first));

        fail(&conn, first, "boom").unwrap();
        assert_eq!(next_id(), Some(second), "retried before the others");
        advance(&conn, second, "1").unwrap();
        assert_eq!(next_id(), Some(second), "progress keeps queue order");
        finish(&conn, second).unwrap();
        assert_eq!(next_id(), Some(third));
        finish(&conn, third).unwrap();
        for _ in 1..MAX_ATTEMPTS {
            assert_eq!(next_id(), Some(first));
            fail(&conn, first, "boom").unwrap();
        }
        assert_eq!(next_id(), None, "a stalled task is set aside");
        let s = status(&conn, Some(a), &Progress::default()).unwrap();
        assert_eq!(s["tasks"][0]["stalled"], true, "{s}");
        assert_eq!(s["tasks"][0]["lastError"], "boom", "{s}");
        assert_eq!(s["tasks"][0]["attempts"], MAX_ATTEMPTS, "{s}");
    }

    #[test]
    fn progress_polled_step_by_step_matches_a_full_count() {
        let (_dir, pool) = db::scratch();
        let conn = pool.get().unwrap();
        let t = db::add_tenant(&conn, "t").unwrap();
        let t = db::tenant_id(&conn, &t.name).unwrap();
        let add = |kind: &str, batch: &str, n: usize| {
            for i in 0..n {
                conn.execute(
                    "INSERT INTO documents (tenant, kind, id, version, body) VALUES (?1, ?2, ?3, 1, '{}')",
                    params![t, kind, format!("{kind}-{batch}{i}")],
                )
                .unwrap();
            }
        };
        add("User", "a", 30);
        add("Group", "a", 5);
        add("User", "b", 10);
        conn.execute(
            "INSERT INTO kind_counts (tenant, kind, n) VALUES (?1, 'User', 40)",
            [t],
        )
        .unwrap();
        let everyone = Task {
            work: Work::Everyone,
            cursor: None,
        };
        enqueue(&conn, t, "c", &everyone).unwrap();
        let progress = Progress::default();
        let work = |cursor: &str| {
            conn.execute("UPDATE outbox SET cursor = ?1", [cursor])
                .unwrap();
            status(&conn, Some(t), &progress).unwrap()["tasks"][0]["work"].clone()
        };
        // Cursors are document sequence numbers: 1-30 users, 31-35 groups.
        for (cursor, done) in [("10", 10), ("10", 10), ("33", 30), ("38", 33), ("45", 40)] {
            assert_eq!(
                work(cursor),
                json!({"remap": "everyone", "done": done, "total": 40}),
                "cursor {cursor}"
            );
        }
        // Users deleted after they were counted never push it past the total.
        conn.execute("DELETE FROM documents WHERE kind = 'User' AND seq < 5", [])
            .unwrap();
        conn.execute("UPDATE kind_counts SET n = 36", []).unwrap();
        assert_eq!(work("45")["done"], 36);
        // A finished task is forgotten.
        conn.execute("DELETE FROM outbox", []).unwrap();
        status(&conn, Some(t), &progress).unwrap();
        assert!(progress.0.lock().unwrap().is_empty());
    }
}
