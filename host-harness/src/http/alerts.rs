//! The tenant's alert webhooks under `/admin/v1/alerts`: list, create
//! (answering the secret once), remove, send a test alert, and the
//! delivery log. Another tenant's webhook is answered 404, as one that
//! never existed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::api::{ApiError, Reply, authenticate, db_error, error, limit_param};
use crate::alerts::hooks::{self, HookError, NewHook};
use crate::alerts::{self, Kind, payload, queue};
use crate::app::App;

/// The alert routes, relative to `/admin/v1`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/alerts", get(list).post(create))
        .route("/alerts/deliveries", get(deliveries))
        .route("/alerts/{id}", axum::routing::delete(remove))
        .route("/alerts/{id}/test", post(test))
}

async fn list(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let hooks = hooks::list(&conn, tenant.id).map_err(db_error)?;
    Ok(Json(json!({
        "webhooks": hooks.iter().map(hooks::Hook::json).collect::<Vec<_>>(),
        "kinds": alerts::KINDS,
    }))
    .into_response())
}

/// The fields of a `POST /admin/v1/alerts` body.
fn new_hook(body: Result<Json<Value>, JsonRejection>) -> Result<NewHook, ApiError> {
    let example = r#"{"url": "https://hooks.example.com/scim", "on": ["provisioning-failed"], "format": "json", "backlogMinutes": 15}"#;
    let Json(body) = body.map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "The body must be a JSON object such as {example}: {}",
                e.body_text()
            ),
        )
    })?;
    let bad = |what: &str| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{what}; for example {example}"),
        )
    };
    let url = body["url"]
        .as_str()
        .ok_or_else(|| bad("'url' (a string) is required"))?
        .to_string();
    let on = match &body["on"] {
        Value::Array(a) => a
            .iter()
            .map(|k| k.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("'on' lists alert kinds as strings"))?,
        Value::String(s) => s.split(',').map(|k| k.trim().to_string()).collect(),
        _ => return Err(bad("'on' (the alert kinds to send) is required")),
    };
    let format = match &body["format"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => return Err(bad("'format' is \"json\" or \"slack\"")),
    };
    let backlog_minutes = match &body["backlogMinutes"] {
        Value::Null => None,
        v => Some(
            v.as_i64()
                .ok_or_else(|| bad("'backlogMinutes' is a whole number of minutes"))?,
        ),
    };
    Ok(NewHook {
        url,
        on,
        format,
        backlog_minutes,
    })
}

async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let new = new_hook(body)?;
    let _turn = app.writers.lock().await;
    let (hook, secret) =
        match hooks::create(&conn, tenant.id, &new, alerts::settings().allow_private) {
            Ok(h) => h,
            Err(HookError::Invalid(why)) => return Err(error(StatusCode::BAD_REQUEST, why)),
            Err(HookError::Db(e)) => return Err(db_error(e)),
        };
    let mut out = hook.json();
    out["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// A webhook id from the path; anything else names no webhook.
fn hook_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        format!("No webhook '{id}' in this tenant; GET /admin/v1/alerts lists them"),
    )
}

async fn remove(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let hook = hook_id(&id)?;
    let _turn = app.writers.lock().await;
    if !hooks::remove(&conn, tenant.id, hook).map_err(db_error)? {
        return Err(not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Queues a `test` alert for the webhook; 202, with its event id.
async fn test(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let hook = hook_id(&id)?;
    let _turn = app.writers.lock().await;
    if !hooks::exists(&conn, tenant.id, hook).map_err(db_error)? {
        return Err(not_found(&id));
    }
    let event_id = queue::event_id();
    let body = payload::test(&event_id, &tenant.name, hook);
    queue::insert(&conn, tenant.id, hook, Kind::Test, &body).map_err(db_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"eventId": event_id, "webhook": hook})),
    )
        .into_response())
}

async fn deliveries(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let limit = limit_param(&params, 100, 1000).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let list = queue::list(&conn, tenant.id, limit.into()).map_err(db_error)?;
    Ok(Json(json!({"deliveries": list})).into_response())
}
