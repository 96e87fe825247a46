//! The sync log: what each request and background batch did to SCIM
//! resources and learners, per tenant, with bounded retention.

use crate::db::sql::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

pub use crate::db::{now, timestamp};
pub use crate::event::{EventRow, LEARNER, Stamp, new_id};

/// One changed attribute as stored: its old and new values are JSON text.
#[derive(serde::Serialize)]
struct ChangeText<'a> {
    name: &'a str,
    old: &'a Option<String>,
    new: &'a Option<String>,
}

/// Stores events (inside the caller's transaction).
pub fn insert(
    conn: &Connection,
    tenant: i64,
    stamp: &Stamp,
    rows: &[EventRow],
) -> crate::db::sql::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let at = now();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO events (tenant, at, request_id, change_id, action, resource_type, resource_id,
            resource_name, status, reason, detail, changes, duration_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut names = conn.prepare_cached(
        "INSERT OR IGNORE INTO event_names (tenant, name, resource_type, resource_id)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for r in rows {
        // A learner is found through its user, whose events carry every
        // userName it had: a re-mapping's learner events write no names.
        if let Some(name) = &r.resource_name
            && r.resource_type != LEARNER
        {
            names.execute(params![tenant, name, r.resource_type, r.resource_id])?;
        }
        let changes: Vec<ChangeText> = r
            .changes
            .iter()
            .map(|(name, old, new)| ChangeText { name, old, new })
            .collect();
        let changes = serde_json::to_string(&changes).expect("strings serialize");
        stmt.execute(params![
            tenant,
            at,
            stamp.request_id,
            stamp.change_id,
            r.action,
            r.resource_type,
            r.resource_id,
            r.resource_name,
            r.status,
            r.reason,
            r.detail,
            changes,
            stamp.duration_us as i64,
        ])?;
    }
    // In the same transaction: a change that rolls back alerts nobody.
    crate::alerts::on_events(conn, tenant, stamp, rows)
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only events at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only events before this RFC 3339 time.
    pub until: Option<String>,
    /// Only failures.
    pub failed: bool,
    /// Only events about the resource with this id, or the resources (and
    /// their learners) ever logged under this name.
    pub user: Option<String>,
    /// Only events with this action (`create`, `grant`, ...).
    pub action: Option<String>,
    /// Only events of this request.
    pub request: Option<String>,
    /// Only events of this change (a request and the background work it
    /// caused).
    pub change: Option<String>,
    /// Only events older than this event (the next page).
    pub before: Option<i64>,
    /// At most this many (newest first).
    pub limit: u32,
}

/// Events of a tenant, newest first, as the admin API and CLI print them.
pub fn list(conn: &Connection, tenant: i64, q: &Query) -> crate::db::sql::Result<Vec<Value>> {
    let mut sql = String::from(
        "SELECT id, at, request_id, change_id, action, resource_type, resource_id, resource_name,
            status, reason, detail, changes, duration_us
         FROM events WHERE tenant = ?1",
    );
    let mut args: Vec<crate::db::sql::Value> = vec![tenant.into()];
    let filters = [
        ("at >=", q.since.clone().map(Into::into)),
        ("at <", q.until.clone().map(Into::into)),
        ("action =", q.action.clone().map(Into::into)),
        ("request_id =", q.request.clone().map(Into::into)),
        ("change_id =", q.change.clone().map(Into::into)),
        ("id <", q.before.map(Into::into)),
    ];
    for (condition, value) in filters {
        if let Some(value) = value {
            args.push(value);
            sql.push_str(&format!(" AND {condition} ?{}", args.len()));
        }
    }
    // Times have no index, ids are in time order: a time window is also an
    // id range, which the (tenant, id) index reads instead of the whole log.
    let window = [("id >=", q.since.as_deref()), ("id <", q.until.as_deref())];
    for (condition, at) in window {
        if let Some(at) = at {
            let id = first_id_since(conn, at)?.unwrap_or(i64::MAX);
            args.push(id.into());
            sql.push_str(&format!(" AND {condition} ?{}", args.len()));
        }
    }
    if q.failed {
        sql.push_str(" AND status = 'failure'");
    }
    if let Some(user) = &q.user {
        args.push(user.clone().into());
        let n = args.len();
        sql.push_str(&format!(
            " AND id IN (SELECT id FROM events WHERE tenant = ?1 AND resource_id = ?{n}
                UNION SELECT e.id FROM event_names n JOIN events e
                    ON e.tenant = n.tenant AND e.resource_id = n.resource_id
                    AND (e.resource_type = n.resource_type
                        OR (n.resource_type = 'User' AND e.resource_type = '{LEARNER}'))
                WHERE n.tenant = ?1 AND n.name = ?{n})"
        ));
    }
    args.push(i64::from(q.limit.clamp(1, 10_001)).into());
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(crate::db::sql::params_from_iter(args), |r| {
        let changes: String = r.get(11)?;
        let changes: Value = serde_json::from_str(&changes).unwrap_or(Value::Array(Vec::new()));
        // Old and new values are JSON text; show them as JSON.
        let changes: Vec<Value> = changes
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let parse = |v: &Value| {
                    v.as_str()
                        .map(|s| serde_json::from_str(s).unwrap_or(Value::String(s.to_string())))
                        .unwrap_or(Value::Null)
                };
                json!({"name": c["name"], "old": parse(&c["old"]), "new": parse(&c["new"])})
            })
            .collect();
        Ok(json!({
            "id": r.get::<_, i64>(0)?,
            "time": r.get::<_, String>(1)?,
            "requestId": r.get::<_, String>(2)?,
            "changeId": r.get::<_, String>(3)?,
            "action": r.get::<_, String>(4)?,
            "resourceType": r.get::<_, String>(5)?,
            "resourceId": r.get::<_, String>(6)?,
            "resourceName": r.get::<_, Option<String>>(7)?,
            "status": r.get::<_, String>(8)?,
            "reason": r.get::<_, Option<String>>(9)?,
            "detail": r.get::<_, Option<String>>(10)?,
            "changes": changes,
            "durationMs": r.get::<_, i64>(12)? as f64 / 1000.0,
        }))
    })?;
    rows.collect()
}

/// One page of [`list`]: the events, and the id to pass as `before` for
/// the next page (`None` on the last).
pub fn page(
    conn: &Connection,
    tenant: i64,
    q: &Query,
) -> crate::db::sql::Result<(Vec<Value>, Option<i64>)> {
    let limit = q.limit.clamp(1, 10_000);
    let mut events = list(
        conn,
        tenant,
        &Query {
            limit: limit + 1,
            ..q.clone()
        },
    )?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next = more
        .then(|| events.last().and_then(|e| e["id"].as_i64()))
        .flatten();
    Ok((events, next))
}

/// The columns of the sync log as CSV, in order.
const CSV_COLUMNS: [&str; 11] = [
    "id",
    "time",
    "action",
    "resourceType",
    "resourceId",
    "resourceName",
    "status",
    "reason",
    "detail",
    "requestId",
    "changeId",
];

/// Events as CSV (RFC 4180, with a header). A text cell that a spreadsheet
/// would run as a formula (`=`, `+`, `-`, `@`, tab, CR at its start) gets a
/// leading `'`: names and details come from the identity provider.
pub fn csv(events: &[Value]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for e in events {
        let cells: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|c| match &e[*c] {
                Value::Null => String::new(),
                Value::String(s) => csv_cell(s),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Requests and failed requests of a tenant per hour over the last 24
/// hours, oldest first, every hour present: `(hour, requests, failures)`
/// with the hour as `2026-12-07T05:00:00Z`. A request counts once however
/// many events it logged; background batches count as requests.
///
/// Reads only the tenant's events of those hours: the first event id of the
/// window is found by a binary search over ids (events are stored in time
/// order), and the `(tenant, id)` index gives the range from there.
pub fn hourly(
    conn: &Connection,
    tenant: i64,
    now: time::OffsetDateTime,
) -> crate::db::sql::Result<Vec<(String, i64, i64)>> {
    let now = now.to_offset(time::UtcOffset::UTC);
    let this_hour = now
        - time::Duration::seconds(i64::from(now.minute()) * 60 + i64::from(now.second()))
        - time::Duration::nanoseconds(i64::from(now.nanosecond()));
    let start = this_hour - time::Duration::hours(23);
    let cutoff = timestamp(start);
    let mut counts = std::collections::HashMap::new();
    if let Some(first) = first_id_since(conn, &cutoff)? {
        let mut stmt = conn.prepare_cached(
            "SELECT substr(at, 1, 13), count(DISTINCT request_id),
                count(DISTINCT CASE WHEN status = 'failure' THEN request_id END)
             FROM events WHERE tenant = ?1 AND id >= ?2 AND at >= ?3
             GROUP BY substr(at, 1, 13)",
        )?;
        let rows = stmt.query_map(params![tenant, first, cutoff], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (hour, requests, failures) = row?;
            counts.insert(hour, (requests, failures));
        }
    }
    Ok((0..24)
        .map(|h| {
            let hour = timestamp(start + time::Duration::hours(h));
            let key = &hour[..13];
            let (requests, failures) = counts.get(key).copied().unwrap_or((0, 0));
            (format!("{key}:00:00Z"), requests, failures)
        })
        .collect())
}

/// The first event id (of any tenant) logged at or after `at`; `None` when
/// none was. Ids grow with time, so a binary search over the primary key
/// finds it in a few dozen point reads whatever the log's size.
fn first_id_since(conn: &Connection, at: &str) -> crate::db::sql::Result<Option<i64>> {
    let bound = |sql: &str| -> crate::db::sql::Result<Option<i64>> {
        conn.query_row(sql, [], |r| r.get::<_, Option<i64>>(0))
    };
    let (Some(mut lo), Some(mut hi)) = (
        bound("SELECT min(id) FROM events")?,
        bound("SELECT max(id) FROM events")?,
    ) else {
        return Ok(None);
    };
    let first_from = |id: i64| -> crate::db::sql::Result<Option<(i64, String)>> {
        conn.prepare_cached("SELECT id, at FROM events WHERE id >= ?1 ORDER BY id LIMIT 1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
    };
    if first_from(hi)?.is_none_or(|(_, t)| t.as_str() < at) {
        return Ok(None);
    }
    // The smallest position whose first event is recent enough.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if first_from(mid)?.is_some_and(|(_, t)| t.as_str() >= at) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(first_from(lo)?.map(|(id, _)| id))
}

/// Events deleted per statement while purging.
const PURGE_CHUNK: i64 = 5000;

/// Deletes events older than `days`; returns how many. Events are stored in
/// time order, so the oldest are the lowest ids: the purge walks from the
/// start and stops at the first chunk that is not wholly old, with no index
/// on the time.
pub fn purge(conn: &Connection, days: u32) -> crate::db::sql::Result<usize> {
    let cutoff = timestamp(time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days)));
    let mut total = 0;
    loop {
        let n = conn.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?2) AND at < ?1",
            params![cutoff, PURGE_CHUNK],
        )?;
        total += n;
        if (n as i64) < PURGE_CHUNK {
            break;
        }
    }
    if total > 0 {
        // Names of resources with no event left (by id alone, which the
        // index answers; a name kept a little longer only costs a row).
        conn.execute(
            "DELETE FROM event_names WHERE NOT EXISTS (SELECT 1 FROM events e
                WHERE e.tenant = event_names.tenant AND e.resource_id = event_names.resource_id)",
            [],
        )?;
    }
    Ok(total)
}

/// Checks the time (RFC 3339, or a date) given as `param` and returns it in
/// the form stored times compare with.
pub fn normalize_time(param: &str, s: &str) -> Result<String, String> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    let t = time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| time::OffsetDateTime::parse(&format!("{s}T00:00:00Z"), &Rfc3339))
        .map_err(|_| {
            format!("'{param}' must be an RFC 3339 time such as 2026-11-29T08:00:00Z, not '{s}'")
        })?;
    Ok(timestamp(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_drops_old_events_only() {
        let (_dir, pool) = crate::db::scratch();
        let conn = pool.get().unwrap();
        let event = EventRow {
            changes: vec![("title".into(), Some("\"a\"".into()), Some("\"b\"".into()))],
            ..row("User", "u", Some("u@example.com"))
        };
        insert(&conn, 1, &Stamp::default(), &[event.clone(), event]).unwrap();
        let old = timestamp(time::OffsetDateTime::now_utc() - time::Duration::days(31));
        conn.execute("UPDATE events SET at = ?1 WHERE id = 1", [old])
            .unwrap();
        assert_eq!(purge(&conn, 30).unwrap(), 1);
        let left = list(
            &conn,
            1,
            &Query {
                user: Some("u@example.com".into()),
                limit: 10,
                ..Query::default()
            },
        )
        .unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["changes"][0]["new"], "b");
    }

    /// `since` and `until` select by time, whatever lies before or after
    /// the window (they are read as an id range).
    #[test]
    fn a_time_window_selects_the_events_inside_it() {
        let (_dir, pool) = crate::db::scratch();
        let conn = pool.get().unwrap();
        for id in ["a", "b", "c", "d"] {
            insert(&conn, 1, &Stamp::default(), &[row("User", id, None)]).unwrap();
        }
        insert(&conn, 2, &Stamp::default(), &[row("User", "x", None)]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let at = |h: i64| timestamp(now - time::Duration::hours(h));
        for (id, hours) in [(1, 40), (2, 30), (3, 20), (4, 10), (5, 15)] {
            conn.execute(
                "UPDATE events SET at = ?1 WHERE id = ?2",
                params![at(hours), id],
            )
            .unwrap();
        }
        let ids = |since: Option<i64>, until: Option<i64>| -> Vec<String> {
            let q = Query {
                since: since.map(at),
                until: until.map(at),
                limit: 100,
                ..Query::default()
            };
            list(&conn, 1, &q)
                .unwrap()
                .iter()
                .map(|e| e["resourceId"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(Some(35), Some(15)), ["c", "b"]);
        assert_eq!(ids(Some(25), None), ["d", "c"]);
        assert_eq!(ids(None, Some(35)), ["a"]);
        assert_eq!(ids(Some(5), None), Vec::<String>::new());
        assert_eq!(ids(None, Some(50)), Vec::<String>::new());
    }

    /// The hourly counts read only the window (found by binary search over
    /// ids), count each request once, and show every hour.
    #[test]
    fn hourly_counts_distinct_requests_of_the_last_24_hours() {
        let (_dir, pool) = crate::db::scratch();
        let conn = pool.get().unwrap();
        let stamp = |id: &str| Stamp {
            request_id: id.into(),
            change_id: id.into(),
            duration_us: 0,
        };
        let failed = EventRow {
            status: "failure",
            ..row("User", "u", None)
        };
        insert(&conn, 1, &stamp("old"), &[row("User", "u", None)]).unwrap();
        insert(
            &conn,
            1,
            &stamp("a"),
            &[row("User", "u", None), row("Learner", "u", None)],
        )
        .unwrap();
        insert(
            &conn,
            1,
            &stamp("b"),
            &[row("User", "u", None), failed.clone()],
        )
        .unwrap();
        insert(&conn, 2, &stamp("other"), &[failed]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let at = |h: i64| timestamp(now - time::Duration::hours(h));
        conn.execute("UPDATE events SET at = ?1 WHERE id = 1", [at(30)])
            .unwrap();
        conn.execute("UPDATE events SET at = ?1 WHERE id IN (2, 3)", [at(2)])
            .unwrap();

        assert_eq!(first_id_since(&conn, &at(25)).unwrap(), Some(2));
        assert_eq!(first_id_since(&conn, &at(-1)).unwrap(), None);
        assert_eq!(first_id_since(&conn, &at(40)).unwrap(), Some(1));

        let hours = hourly(&conn, 1, now).unwrap();
        assert_eq!(hours.len(), 24);
        assert!(hours[23].0.starts_with(&timestamp(now)[..13]), "{hours:?}");
        assert!(hours[23].0.ends_with(":00:00Z"));
        assert_eq!(hours[21], (format!("{}:00:00Z", &at(2)[..13]), 1, 0));
        assert_eq!(hours[23], (hours[23].0.clone(), 1, 1));
        let total: i64 = hours.iter().map(|h| h.1).sum();
        assert_eq!(
            total, 2,
            "the 30-hour-old request and tenant 2's are not counted"
        );
    }

    #[test]
    fn csv_quotes_cells_and_defuses_formulas() {
        let e = json!({"id": 7, "time": "t", "action": "create", "resourceType": "User",
            "resourceId": "u", "resourceName": "=HYPERLINK(\"x\")", "status": "failure",
            "reason": null, "detail": "a, b\nc", "requestId": "r", "changeId": "c"});
        let text = csv(&[e]);
        let mut lines = text.split("\r\n");
        assert_eq!(
            lines.next(),
            Some(
                "id,time,action,resourceType,resourceId,resourceName,status,reason,detail,requestId,changeId"
            )
        );
        assert_eq!(
            lines.next(),
            Some("7,t,create,User,u,\"'=HYPERLINK(\"\"x\"\")\",failure,,\"a, b\nc\",r,c")
        );
    }

    fn row(kind: &str, id: &str, name: Option<&str>) -> EventRow {
        EventRow {
            action: "update".into(),
            resource_type: kind.into(),
            resource_id: id.into(),
            resource_name: name.map(str::to_string),
            status: "success",
            reason: None,
            detail: None,
            changes: Vec::new(),
        }
    }

    fn ids(conn: &Connection, tenant: i64, user: &str) -> Vec<String> {
        let q = Query {
            user: Some(user.into()),
            limit: 100,
            ..Default::default()
        };
        list(conn, tenant, &q)
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["resourceType"].as_str().unwrap(),
                    e["resourceId"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// A name finds every event of the resources ever logged under it (a
    /// renamed user's events from before and after, its learner's included),
    /// and nothing of another type that shares the id; names of purged
    /// resources are forgotten.
    #[test]
    fn a_name_finds_every_event_of_its_resources_and_only_theirs() {
        let (_dir, pool) = crate::db::scratch();
        let conn = pool.get().unwrap();
        crate::db::add_tenant(&conn, "other").unwrap();
        let t = crate::db::tenant_id(&conn, "other").unwrap();
        let stamp = Stamp::default();
        insert(
            &conn,
            t,
            &stamp,
            &[
                row("User", "u1", Some("alice")),
                row("Learner", "u1", Some("alice")),
            ],
        )
        .unwrap();
        insert(
            &conn,
            t,
            &stamp,
            &[row("Group", "g1", None), row("User", "u1", Some("alicia"))],
        )
        .unwrap();
        insert(
            &conn,
            t,
            &stamp,
            &[
                row("User", "u2", Some("bob")),
                row("Mapping", "1", Some("alice")),
            ],
        )
        .unwrap();
        insert(&conn, t, &stamp, &[row("Mapper", "1", Some("other"))]).unwrap();
        insert(&conn, t + 1, &stamp, &[row("User", "u9", Some("alice"))]).unwrap();

        assert_eq!(
            ids(&conn, t, "alice"),
            ["Mapping:1", "User:u1", "Learner:u1", "User:u1"]
        );
        assert_eq!(
            ids(&conn, t, "alicia"),
            ["User:u1", "Learner:u1", "User:u1"]
        );
        assert_eq!(ids(&conn, t, "u1"), ["User:u1", "Learner:u1", "User:u1"]);
        assert_eq!(ids(&conn, t, "nobody"), Vec::<String>::new());

        // Learners are found through their users' names; they write none.
        let learner_names: i64 = conn
            .query_row(
                "SELECT count(*) FROM event_names WHERE resource_type = 'Learner'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(learner_names, 0);

        // Everything is old: the purge takes the events and their names.
        conn.execute("UPDATE events SET at = '2000-01-01T00:00:00.000Z'", [])
            .unwrap();
        assert_eq!(purge(&conn, 30).unwrap(), 8);
        let names: i64 = conn
            .query_row("SELECT count(*) FROM event_names", [], |r| r.get(0))
            .unwrap();
        assert_eq!(names, 0);
    }
}
