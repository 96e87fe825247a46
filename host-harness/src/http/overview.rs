//! `GET /admin/v1/overview`: the console's first page in one request —
//! requests and failures per hour over the last 24 hours, the outbox
//! backlog, the mapper in force and the latest failures.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::api::{Reply, authenticate, db_error};
use crate::app::App;
use crate::db::sql::Connection;
use crate::events;

/// Failures listed on the overview.
const LATEST_FAILURES: u32 = 10;

pub async fn get_overview(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let hours: Vec<Value> = events::hourly(&conn, tenant.id, time::OffsetDateTime::now_utc())
        .map_err(db_error)?
        .into_iter()
        .map(|(hour, requests, failures)| {
            json!({"hour": hour, "requests": requests, "failures": failures})
        })
        .collect();
    let (backlog, oldest) = outbox(&conn, tenant.id).map_err(db_error)?;
    let latest = events::list(
        &conn,
        tenant.id,
        &events::Query {
            failed: true,
            limit: LATEST_FAILURES,
            ..events::Query::default()
        },
    )
    .map_err(db_error)?;
    Ok(Json(json!({
        "tenant": tenant.name,
        "hours": hours,
        "outbox": {"backlog": backlog, "oldest": oldest},
        "mapper": mapper(&conn, tenant.id).map_err(db_error)?,
        "latestFailures": latest,
    }))
    .into_response())
}

/// The tenant's outbox tasks and when the oldest was queued.
fn outbox(conn: &Connection, tenant: i64) -> crate::db::sql::Result<(i64, Option<String>)> {
    conn.prepare_cached("SELECT count(*), min(created) FROM outbox WHERE tenant = ?1")?
        .query_row([tenant], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// What maps the tenant's users: a plugin while one is installed (even
/// disabled by its failures, when the rules stand in for it), else rules
/// while a document is in force, else the default mapping.
fn mapper(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Value> {
    if let Some(plugin) = crate::db::plugins::current(conn, tenant)?
        && plugin.sha256.is_some()
    {
        return Ok(json!({
            "kind": "plugin",
            "version": plugin.version,
            "disabled": plugin.disabled_at.is_some(),
            "disabledReason": plugin.disabled_reason,
            "failures": plugin.failures,
        }));
    }
    let rules = crate::db::rules::current(conn, tenant)?.filter(|r| r.document.is_some());
    Ok(json!({
        "kind": if rules.is_some() { "rules" } else { "default" },
        "version": rules.map(|r| r.version),
        "disabled": false,
        "disabledReason": null,
        "failures": 0,
    }))
}
