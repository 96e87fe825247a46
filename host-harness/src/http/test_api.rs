//! The test API under `/test/v1` (`serve --test-api`), for the host test
//! suite (`tests/hosts`): what the LMS holds for a SCIM user, the tenant's
//! sync log, and a wait for the background work. It reads the host's own
//! tables and knows nothing of SCIM. Never on in production: it is a
//! second way into every learner of the tenant.
//!
//! The contract every host implements is `tests/hosts/README.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::sql::params;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::bindings::lms::scim::types::RequestContext;
use crate::db::{Conn, Tenant};
use crate::lms::{self, PROFILE_KEYS, admin::learner_json};

/// How often `POST /drain` looks at the outbox, and for how long.
const DRAIN_POLL: Duration = Duration::from_millis(20);
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// The test routes, relative to `/test/v1`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/learners/{id}", get(get_learner))
        .route("/events", get(get_events))
        .route("/drain", post(drain))
        .fallback(|| async {
            reply(
                StatusCode::NOT_FOUND,
                json!({"detail": "No test endpoint here"}),
            )
        })
}

type Reply = Result<Response, Response>;

fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "test API database error");
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": "The database is unavailable; retry later"}),
    )
}

/// The tenant whose SCIM token the request carries (as SCIM authenticates
/// it, with the same 401), and a connection.
fn authenticate(app: &App, headers: &HeaderMap) -> Result<(Tenant, Conn), Box<Response>> {
    let context = RequestContext {
        tenant: String::new(),
        base_url: String::new(),
        request_id: crate::events::new_id(),
        subject: None,
        max_payload_bytes: app.max_body_bytes as u64,
        signing_key: Vec::new(),
    };
    let header = headers.get("authorization").and_then(|h| h.to_str().ok());
    let tenant = app.authenticate(header, &context).map_err(|outcome| {
        let r = outcome.response;
        let mut out = Response::new(Body::from(r.body));
        *out.status_mut() =
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in r.headers {
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::try_from(name),
                axum::http::HeaderValue::try_from(value),
            ) {
                out.headers_mut().append(n, v);
            }
        }
        Box::new(out)
    })?;
    let conn = app.pool.get().map_err(|e| Box::new(unavailable(e)))?;
    Ok((tenant, conn))
}

/// `GET /learners/{scimId}`: status, profile, and every item held with
/// its sources.
async fn get_learner(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers).map_err(|r| *r)?;
    let learner = lms::learner(&conn, tenant.id, &id).map_err(unavailable)?;
    let profile = lms::profile(&conn, tenant.id, &id).map_err(unavailable)?;
    let (Some(learner), Some(profile)) = (learner, profile) else {
        return Err(reply(
            StatusCode::NOT_FOUND,
            json!({"detail": format!("No learner with SCIM id '{id}'")}),
        ));
    };
    let mut body = learner_json(&learner);
    let obj = body.as_object_mut().expect("learner_json is an object");
    obj.remove("withdrawn");
    let profile: Map<String, Value> = PROFILE_KEYS
        .iter()
        .zip(profile)
        .map(|(k, v)| (k.to_string(), v.map_or(Value::Null, Value::String)))
        .collect();
    obj.insert("profile".into(), Value::Object(profile));
    Ok(Json(body).into_response())
}

/// `GET /events`: the tenant's sync log, oldest first.
async fn get_events(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers).map_err(|r| *r)?;
    let events = (|| -> crate::db::sql::Result<Vec<Value>> {
        let mut stmt = conn.prepare(
            "SELECT action, resource_type, resource_id, resource_name, status, reason,
                request_id, change_id
             FROM events WHERE tenant = ?1 ORDER BY id",
        )?;
        stmt.query_map(params![tenant.id], |r| {
            Ok(json!({
                "action": r.get::<_, String>(0)?,
                "resourceType": r.get::<_, String>(1)?,
                "resourceId": r.get::<_, String>(2)?,
                "resourceName": r.get::<_, Option<String>>(3)?,
                "status": r.get::<_, String>(4)?,
                "reason": r.get::<_, Option<String>>(5)?,
                "requestId": r.get::<_, String>(6)?,
                "changeId": r.get::<_, String>(7)?,
            }))
        })?
        .collect()
    })()
    .map_err(unavailable)?;
    Ok(Json(json!({"events": events})).into_response())
}

/// `POST /drain`: waits until the tenant's outbox is empty (the background
/// worker drains it), 503 with what is left after 30 s.
async fn drain(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers).map_err(|r| *r)?;
    let deadline = Instant::now() + DRAIN_WAIT;
    app.outbox.notify_one();
    loop {
        let pending: i64 = conn
            .prepare_cached("SELECT count(*) FROM outbox WHERE tenant = ?1")
            .and_then(|mut s| s.query_row([tenant.id], |r| r.get(0)))
            .map_err(unavailable)?;
        if pending == 0 {
            return Ok(Json(json!({"pending": 0})).into_response());
        }
        if Instant::now() >= deadline {
            return Err(reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"pending": pending}),
            ));
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}
