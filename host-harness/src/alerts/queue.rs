//! The durable delivery queue (`alert_deliveries`): one row per alert and
//! webhook, with its event id (stable across retries), its body, and where
//! its delivery stands. Rows are claimed before they are sent, so replicas
//! never send one twice at once, and a process killed mid-send leaves a
//! row that is sent again once its claim lapses.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Alert, Kind, payload};
use crate::db::sql::{Connection, OptionalExtension, params};
use crate::db::{now, timestamp};
use crate::event::Stamp;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Attempts after which a delivery is given up (with a base of 30 s and the
/// cap of an hour, about a day of retries).
pub const MAX_ATTEMPTS: i64 = 30;

/// Age after which a delivery that still fails is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How long a claimed delivery is left to its sender before another may
/// take it (the send's timeout, and room to record the outcome).
pub const CLAIM: Duration = Duration::from_secs(30);

/// Deliveries of one tenant claimed in one round at most (see [`claim`]).
pub const PER_TENANT: i64 = 4;

/// A new event id: what receivers de-duplicate by.
pub fn event_id() -> String {
    format!("evt_{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// The time `d` from now, as stored.
fn later(d: Duration) -> String {
    timestamp(time::OffsetDateTime::now_utc() + d)
}

/// Queues a new delivery of `body` (its `id` is the event id) to `hook`;
/// a second row with the same event id for the hook is ignored.
pub fn insert(
    conn: &Connection,
    tenant: i64,
    hook: i64,
    kind: Kind,
    body: &Value,
) -> crate::db::sql::Result<bool> {
    let event_id = body["id"].as_str().unwrap_or_default();
    let at = now();
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO alert_deliveries (tenant, hook, event_id, kind, body, created, next_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )?
        .execute(params![tenant, hook, event_id, kind.as_str(), body.to_string(), at])?;
    Ok(n > 0)
}

/// Queues `alert` for `hook`, inside the caller's transaction. Events of a
/// change that another transaction of it already alerted (the batches of
/// one re-mapping) join that alert while it was never tried; once tried,
/// its body is fixed and a new alert starts.
pub fn enqueue(
    conn: &Connection,
    tenant: i64,
    tenant_name: &str,
    hook: i64,
    alert: &Alert,
    stamp: &Stamp,
) -> crate::db::sql::Result<()> {
    if !stamp.change_id.is_empty() {
        // Untried rows are few (they are sent within a second or so).
        let candidates: Vec<(i64, String)> = conn
            .prepare_cached(
                "SELECT id, body FROM alert_deliveries
                 WHERE state = 'pending' AND attempts = 0 AND hook = ?1 AND kind = ?2
                 ORDER BY id DESC LIMIT 20",
            )?
            .query_map(params![hook, alert.kind.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<crate::db::sql::Result<_>>()?;
        for (id, body) in candidates {
            let Ok(body) = serde_json::from_str::<Value>(&body) else {
                continue;
            };
            if body["changeId"].as_str() != Some(stamp.change_id.as_str()) {
                continue;
            }
            let merged = payload::merge(body, alert);
            // Not if a sender claimed it meanwhile (PostgreSQL re-checks
            // the condition on the row as committed).
            let n = conn
                .prepare_cached(
                    "UPDATE alert_deliveries SET body = ?2
                     WHERE id = ?1 AND attempts = 0 AND state = 'pending'",
                )?
                .execute(params![id, merged.to_string()])?;
            if n == 1 {
                return Ok(());
            }
        }
    }
    let body = payload::body(&event_id(), tenant_name, alert, stamp);
    insert(conn, tenant, hook, alert.kind, &body)?;
    Ok(())
}

/// A delivery taken for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub body: String,
    /// Attempts including this one.
    pub attempts: i64,
    pub created: String,
    pub url: String,
    pub secret: String,
    pub format: String,
}

/// Whether a delivery is due (a read outside any transaction, so an idle
/// worker's poll writes nothing).
pub fn any_due(conn: &Connection) -> crate::db::sql::Result<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM alert_deliveries WHERE state = 'pending' AND next_at <= ?1 LIMIT 1",
    )?
    .exists([now()])
}

/// Claims up to `limit` due deliveries, in the caller's write transaction:
/// each counts an attempt and is hidden from other senders for [`CLAIM`].
/// On PostgreSQL rows another replica is claiming are skipped.
pub fn claim(conn: &Connection, limit: i64) -> crate::db::sql::Result<Vec<Claimed>> {
    let lock = match conn.dialect() {
        crate::db::Dialect::Sqlite => "",
        crate::db::Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    // Tenants in the order of their oldest due delivery, each taking at
    // most PER_TENANT: a tenant whose failures flood its queue (or whose
    // receiver hangs for the whole timeout) waits behind itself, not in
    // front of the other tenants' alerts. Claimed rows move CLAIM ahead,
    // so the next round turns to the tenants after it.
    let at = now();
    let tenants: Vec<i64> = conn
        .prepare_cached(
            "SELECT tenant FROM alert_deliveries WHERE state = 'pending' AND next_at <= ?1
             GROUP BY tenant ORDER BY min(next_at), tenant LIMIT ?2",
        )?
        .query_map(params![at, limit], |r| r.get(0))?
        .collect::<crate::db::sql::Result<_>>()?;
    let mut ids: Vec<i64> = Vec::new();
    for tenant in tenants {
        let room = (limit - ids.len() as i64).min(PER_TENANT);
        if room <= 0 {
            break;
        }
        let mine = conn
            .prepare_cached(&format!(
                "SELECT id FROM alert_deliveries
                 WHERE tenant = ?1 AND state = 'pending' AND next_at <= ?2
                 ORDER BY next_at, id LIMIT ?3{lock}"
            ))?
            .query_map(params![tenant, at, room], |r| r.get::<_, i64>(0))?
            .collect::<crate::db::sql::Result<Vec<_>>>()?;
        ids.extend(mine);
    }
    let until = later(CLAIM);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        conn.prepare_cached(
            "UPDATE alert_deliveries SET attempts = attempts + 1, next_at = ?2 WHERE id = ?1",
        )?
        .execute(params![id, until])?;
        let row = conn
            .prepare_cached(
                "SELECT d.id, d.event_id, d.kind, d.body, d.attempts, d.created, h.url, h.secret, h.format
                 FROM alert_deliveries d JOIN alert_hooks h ON h.id = d.hook WHERE d.id = ?1",
            )?
            .query_row([id], |r| {
                Ok(Claimed {
                    id: r.get(0)?,
                    event_id: r.get(1)?,
                    kind: r.get(2)?,
                    body: r.get(3)?,
                    attempts: r.get(4)?,
                    created: r.get(5)?,
                    url: r.get(6)?,
                    secret: r.get(7)?,
                    format: r.get(8)?,
                })
            })
            .optional()?;
        match row {
            Some(c) => out.push(c),
            // Its webhook is gone.
            None => {
                conn.prepare_cached(
                    "UPDATE alert_deliveries SET state = 'failed', last_error = 'the webhook was removed'
                     WHERE id = ?1",
                )?
                .execute([id])?;
            }
        }
    }
    Ok(out)
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// It did not; tried again at `next_at`.
    Retry {
        status: Option<u16>,
        error: String,
        next_at: String,
    },
    /// It did not, and retries are exhausted.
    Failed { status: Option<u16>, error: String },
}

/// What to do after a failed attempt of `c` (`jitter` in [0, 1)).
pub fn after_failure(
    c: &Claimed,
    status: Option<u16>,
    error: String,
    base: Duration,
    jitter: f64,
) -> Outcome {
    let created =
        time::OffsetDateTime::parse(&c.created, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let age = time::OffsetDateTime::now_utc() - created;
    let wait = backoff(base, c.attempts, jitter);
    if c.attempts >= MAX_ATTEMPTS || age + wait > GIVE_UP_AFTER {
        return Outcome::Failed {
            status,
            error: format!("{error} (gave up after {} attempts)", c.attempts),
        };
    }
    Outcome::Retry {
        status,
        error,
        next_at: later(wait),
    }
}

/// The wait after the `attempts`-th failed attempt: `base` doubled each
/// time, capped at [`MAX_BACKOFF`], of which a random half (`jitter` in
/// [0, 1)) is taken off so that many deliveries failing together do not
/// retry together.
pub fn backoff(base: Duration, attempts: i64, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let full = base.saturating_mul(1u32 << exp.min(31)).min(MAX_BACKOFF);
    let jitter = jitter.clamp(0.0, 1.0);
    full.mul_f64(1.0 - jitter / 2.0)
}

/// Records an attempt's outcome, unless the claim lapsed and another
/// sender took the row since (its attempt count moved on).
pub fn complete(conn: &Connection, c: &Claimed, outcome: &Outcome) -> crate::db::sql::Result<()> {
    let sql = match outcome {
        Outcome::Delivered { .. } => {
            "UPDATE alert_deliveries SET state = 'delivered', delivered_at = ?3, last_status = ?4,
                last_error = ?5 WHERE id = ?1 AND attempts = ?2 AND state = 'pending'"
        }
        Outcome::Retry { .. } => {
            "UPDATE alert_deliveries SET next_at = ?3, last_status = ?4, last_error = ?5
             WHERE id = ?1 AND attempts = ?2 AND state = 'pending'"
        }
        Outcome::Failed { .. } => {
            "UPDATE alert_deliveries SET state = 'failed', next_at = ?3, last_status = ?4,
                last_error = ?5 WHERE id = ?1 AND attempts = ?2 AND state = 'pending'"
        }
    };
    let (at, status, error): (String, Option<i64>, Option<&str>) = match outcome {
        Outcome::Delivered { status } => (now(), Some(i64::from(*status)), None),
        Outcome::Retry {
            status,
            error,
            next_at,
        } => (next_at.clone(), status.map(i64::from), Some(error)),
        Outcome::Failed { status, error } => (now(), status.map(i64::from), Some(error)),
    };
    conn.prepare_cached(sql)?
        .execute(params![c.id, c.attempts, at, status, error])?;
    Ok(())
}

/// The tenant's deliveries, newest first, as the API shows them.
pub fn list(conn: &Connection, tenant: i64, limit: i64) -> crate::db::sql::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, hook, event_id, kind, state, attempts, last_status, last_error, created,
            delivered_at, next_at
         FROM alert_deliveries WHERE tenant = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    stmt.query_map(params![tenant, limit], |r| {
        let state: String = r.get(4)?;
        let next_at: String = r.get(10)?;
        Ok(json!({
            "id": r.get::<_, i64>(0)?,
            "webhook": r.get::<_, i64>(1)?,
            "eventId": r.get::<_, String>(2)?,
            "kind": r.get::<_, String>(3)?,
            "attempts": r.get::<_, i64>(5)?,
            "lastStatus": r.get::<_, Option<i64>>(6)?,
            "lastError": r.get::<_, Option<String>>(7)?,
            "created": r.get::<_, String>(8)?,
            "deliveredAt": r.get::<_, Option<String>>(9)?,
            "nextAt": (state == "pending").then_some(next_at),
            "state": state,
        }))
    })?
    .collect()
}

/// Deletes finished deliveries (delivered or given up) created more than
/// `days` ago, as the sync log forgets its events; returns how many.
pub fn purge(conn: &Connection, days: u32) -> crate::db::sql::Result<usize> {
    let cutoff = timestamp(time::OffsetDateTime::now_utc() - time::Duration::days(i64::from(days)));
    conn.prepare_cached(
        "DELETE FROM alert_deliveries WHERE state IN ('delivered', 'failed') AND created < ?1",
    )?
    .execute([cutoff])
}

/// Deliveries waiting, over every tenant (a gauge).
pub fn pending(conn: &Connection) -> crate::db::sql::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM alert_deliveries WHERE state = 'pending'")?
        .query_row([], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1, 0.0), Duration::from_secs(30));
        assert_eq!(backoff(base, 2, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(base, 3, 0.0), Duration::from_secs(120));
        assert_eq!(backoff(base, 3, 0.999_999).as_secs(), 60);
        assert_eq!(backoff(base, 8, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(base, 1000, 0.0), MAX_BACKOFF);
        for j in [0.0, 0.3, 0.7, 0.99] {
            let d = backoff(base, 5, j);
            assert!(
                d <= Duration::from_secs(480) && d >= Duration::from_secs(240),
                "{d:?}"
            );
        }
    }

    fn claimed(attempts: i64, created: &str) -> Claimed {
        Claimed {
            id: 1,
            event_id: "evt".into(),
            kind: "test".into(),
            body: "{}".into(),
            attempts,
            created: created.into(),
            url: "https://hooks.example.com".into(),
            secret: "s".into(),
            format: "json".into(),
        }
    }

    #[test]
    fn failures_retry_until_attempts_or_a_day_run_out() {
        let base = Duration::from_secs(30);
        let fresh = now();
        assert!(matches!(
            after_failure(&claimed(1, &fresh), Some(500), "e".into(), base, 0.5),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            after_failure(&claimed(MAX_ATTEMPTS, &fresh), None, "e".into(), base, 0.5),
            Outcome::Failed { .. }
        ));
        let old = timestamp(time::OffsetDateTime::now_utc() - time::Duration::hours(25));
        assert!(matches!(
            after_failure(&claimed(3, &old), None, "e".into(), base, 0.5),
            Outcome::Failed { .. }
        ));
    }

    /// One tenant's flood of due alerts does not hold back another's: each
    /// round takes a few of each tenant's, oldest tenant first.
    #[test]
    fn a_round_takes_a_few_alerts_of_each_tenant() {
        let (_dir, pool) = crate::db::scratch();
        let conn = pool.get().unwrap();
        let mut tenants = Vec::new();
        for name in ["flood", "quiet"] {
            let t = crate::db::add_tenant(&conn, name).unwrap();
            let t = crate::db::tenant_id(&conn, &t.name).unwrap();
            let new = super::super::hooks::NewHook {
                url: format!("https://hooks.example.com/{name}"),
                on: vec!["provisioning-failed".into()],
                format: None,
                backlog_minutes: None,
            };
            let (hook, _) = super::super::hooks::create(&conn, t, &new, false).unwrap();
            tenants.push((t, hook.id));
        }
        let (flood, quiet) = (tenants[0], tenants[1]);
        for _ in 0..50 {
            let body = serde_json::json!({"id": event_id()});
            insert(&conn, flood.0, flood.1, Kind::ProvisioningFailed, &body).unwrap();
        }
        let body = serde_json::json!({"id": event_id()});
        insert(&conn, quiet.0, quiet.1, Kind::ProvisioningFailed, &body).unwrap();

        let claimed = claim(&conn, 16).unwrap();
        let quiet_ones = claimed.iter().filter(|c| c.url.ends_with("/quiet")).count();
        assert_eq!(
            quiet_ones, 1,
            "the quiet tenant's alert is in the first round"
        );
        assert_eq!(claimed.len() as i64, PER_TENANT + 1);
        // The flood's next ones come in the next rounds.
        let next = claim(&conn, 16).unwrap();
        assert_eq!(next.len() as i64, PER_TENANT);
        assert!(next.iter().all(|c| c.url.ends_with("/flood")));
    }

    /// The batches of one change join its alert until it is tried; then a
    /// new alert starts. Nothing is queued for a change that rolls back.
    #[test]
    fn batches_of_one_change_make_one_alert_until_it_is_tried() {
        let (_dir, pool) = crate::db::scratch();
        let conn = pool.get().unwrap();
        let t = crate::db::add_tenant(&conn, "t").unwrap();
        let t = crate::db::tenant_id(&conn, &t.name).unwrap();
        let new = super::super::hooks::NewHook {
            url: "https://hooks.example.com/x".into(),
            on: vec!["role-mismatch".into()],
            format: None,
            backlog_minutes: None,
        };
        let (hook, _) = super::super::hooks::create(&conn, t, &new, false).unwrap();
        let stamp = Stamp {
            request_id: "b1".into(),
            change_id: "c1".into(),
            duration_us: 0,
        };
        let row = |id: &str| crate::events::EventRow {
            action: "mismatch".into(),
            resource_type: "Learner".into(),
            resource_id: id.into(),
            resource_name: None,
            status: "skipped",
            reason: None,
            detail: None,
            changes: Vec::new(),
        };
        let batch = |ids: &[&str], stamp: &Stamp| {
            let rows: Vec<_> = ids.iter().map(|i| row(i)).collect();
            crate::events::insert(&conn, t, stamp, &rows).unwrap();
        };
        batch(&["a", "b"], &stamp);
        batch(&["c"], &stamp);
        let list_ = list(&conn, t, 10).unwrap();
        assert_eq!(list_.len(), 1, "{list_:?}");
        let claimed = claim(&conn, 10).unwrap();
        assert_eq!(claimed.len(), 1);
        let body: Value = serde_json::from_str(&claimed[0].body).unwrap();
        assert_eq!(body["count"], 3);
        assert_eq!(body["kind"], "role-mismatch");
        // Tried: its body is fixed, the next batch starts another alert.
        batch(&["d"], &stamp);
        assert_eq!(list(&conn, t, 10).unwrap().len(), 2);
        // Another change is another alert.
        let other = Stamp {
            change_id: "c2".into(),
            ..stamp.clone()
        };
        batch(&["e"], &other);
        assert_eq!(list(&conn, t, 10).unwrap().len(), 3);
        // A rolled-back transaction leaves nothing.
        conn.execute_batch("BEGIN").unwrap();
        batch(
            &["f"],
            &Stamp {
                change_id: "c3".into(),
                ..stamp.clone()
            },
        );
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(list(&conn, t, 10).unwrap().len(), 3);
        assert_eq!(pending(&conn).unwrap(), 3);

        let c = &claimed[0];
        complete(&conn, c, &Outcome::Delivered { status: 204 }).unwrap();
        let d = list(&conn, t, 10).unwrap();
        let first = d.iter().find(|d| d["id"] == c.id).unwrap();
        assert_eq!(first["state"], "delivered");
        assert_eq!(first["lastStatus"], 204);
        assert_eq!(first["webhook"], hook.id);
        assert!(first["nextAt"].is_null());
        // A stale sender's outcome changes nothing.
        complete(
            &conn,
            c,
            &Outcome::Failed {
                status: None,
                error: "late".into(),
            },
        )
        .unwrap();
        let d = list(&conn, t, 10).unwrap();
        assert_eq!(
            d.iter().find(|d| d["id"] == c.id).unwrap()["state"],
            "delivered"
        );
        // Old finished deliveries are forgotten; waiting ones never.
        conn.execute(
            "UPDATE alert_deliveries SET created = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
        assert_eq!(purge(&conn, 30).unwrap(), 1);
        assert_eq!(list(&conn, t, 10).unwrap().len(), 2);
        assert_eq!(pending(&conn).unwrap(), 2);
    }
}
