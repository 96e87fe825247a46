//! The admin API under `/admin/v1`: what an LMS administrator (or the
//! CLI) does with the tenant's admin token. The identity provider's SCIM
//! token opens nothing here, and each admin token sees its own tenant only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};

use super::api::{ApiError, Reply, authenticate, db_error, error, internal_error, limit_param};
use crate::app::App;
use crate::db::Conn;
use crate::events::{self, Stamp};
use crate::lms::admin::{AdminError, grant_manual, learner_json, revoke_by_hand};
use crate::lms::{self, kind_of};

/// The admin routes, relative to `/admin/v1`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .merge(super::alerts::router())
        .route(
            "/session",
            axum::routing::post(super::session::sign_in)
                .get(super::session::current)
                .delete(super::session::sign_out),
        )
        .route("/overview", get(super::overview::get_overview))
        .route("/learners", get(search_learners))
        .route("/learners/{id}", get(get_learner))
        .route("/policy", get(get_policy).put(put_policy))
        .route("/tokens/{kind}", axum::routing::post(post_token))
        .route("/learners/{id}/{kind}", axum::routing::post(post_grant))
        .route("/learners/{id}/{kind}/{name}", delete(delete_grant))
        .route("/events", get(get_events))
        .route("/sync", get(get_sync))
        .route(
            "/mapping",
            get(super::mapping::get_mapping)
                .put(super::mapping::put_mapping)
                .delete(super::mapping::delete_mapping),
        )
        .route("/mapping/check", axum::routing::post(super::mapping::check))
        .route(
            "/mapping/rollback",
            axum::routing::post(super::mapping::rollback),
        )
        .route(
            "/mapping/preview",
            axum::routing::post(super::mapping::preview),
        )
        .route(
            "/learners/{id}/explain",
            get(super::mapping::explain).post(super::mapping::explain_candidate),
        )
        .route(
            "/mapper",
            get(super::mapper::get_mapper)
                .put(super::mapper::put_mapper)
                .delete(super::mapper::delete_mapper),
        )
        .route(
            "/mapper/preview",
            axum::routing::post(super::mapper::preview),
        )
        .route(
            "/mapper/rollback",
            axum::routing::post(super::mapper::rollback),
        )
        .route("/mapper/replay", axum::routing::post(super::mapper::replay))
        .route("/jobs", get(super::jobs::list))
        .route(
            "/jobs/{id}",
            get(super::jobs::get_job).delete(super::jobs::cancel),
        )
        .route("/catalogue", get(get_catalogue))
        .route("/catalogue/{kind}", axum::routing::post(post_catalogue))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "No admin endpoint here; see the README's admin API section",
            )
        })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "This admin endpoint does not take that method; see the README's admin API section",
            )
        })
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
}

/// The answer to an admin request whose handler panicked: a 500 in the
/// admin API's error shape.
///
/// Every admin handler runs under `CatchPanicLayer` (one layer rather than
/// a `catch_unwind` in each handler; the handlers are async and hold
/// nothing shared that unwinding would leave half-changed). Unwinding
/// dropped the handler's connection: a write transaction rolled back as
/// its `rusqlite::Transaction` was dropped, and the pool closes a
/// connection that would come back inside one (`db::Manager`), so nothing
/// of the request stays. Work handed to the blocking pool
/// (`mapping::blocking`) comes back as a join error and is answered the
/// same way there.
fn panicked(payload: Box<dyn std::any::Any + Send>) -> Response {
    let why = crate::app::panic_message(&*payload);
    tracing::error!(panic = why, "admin request panicked; rolled back");
    internal_error().into_response()
}

async fn get_learner(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    match lms::learner(&conn, tenant.id, &id).map_err(db_error)? {
        Some(l) => Ok(Json(learner_json(&l)).into_response()),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("No learner with SCIM id '{id}' in this tenant"),
        )),
    }
}

/// `roles`, `teams`, `learningPaths` in a URL.
fn kind_segment(s: &str) -> Option<crate::bindings::lms::scim::lms::GrantKind> {
    match s {
        "roles" => kind_of("role"),
        "teams" => kind_of("team"),
        "learningPaths" => kind_of("learningPath"),
        _ => None,
    }
}

fn admin_error(e: AdminError) -> ApiError {
    let status = match &e {
        AdminError::NoLearner(_) | AdminError::NotHeld(..) => StatusCode::NOT_FOUND,
        AdminError::NotInCatalogue(..) | AdminError::NoName => StatusCode::BAD_REQUEST,
        AdminError::Db(e) => return db_error(e),
    };
    error(status, e.to_string())
}

fn stamp() -> Stamp {
    let id = crate::events::new_id();
    Stamp {
        request_id: id.clone(),
        change_id: id,
        duration_us: 0,
    }
}

/// Runs `f` in a write transaction of `tenant`'s, queued behind SCIM
/// writers.
async fn write<T>(
    app: &App,
    tenant: &str,
    conn: &mut Conn,
    f: impl FnOnce(&crate::db::sql::Connection) -> Result<T, AdminError>,
) -> Result<T, ApiError> {
    let _turn = app.writers.lock().await;
    let tx = conn
        .transaction(crate::db::Begin::Write(None))
        .map_err(db_error)?;
    let out = f(&tx).map_err(admin_error)?;
    crate::fault::hit(crate::fault::Point::Admin, tenant);
    tx.commit().map_err(db_error)?;
    Ok(out)
}

/// The `name` of a `{"name": "..."}` body. A body that is not JSON is
/// refused in the admin API's error shape; none at all asks for the name.
fn name_of(body: Result<Json<Value>, JsonRejection>) -> Result<String, ApiError> {
    let body = match body {
        Ok(b) => Some(b),
        Err(JsonRejection::MissingJsonContentType(_)) => None,
        Err(e) => {
            return Err(error(
                e.status(),
                format!(
                    "The body must be a JSON object such as {{\"name\": \"...\"}}: {}",
                    e.body_text()
                ),
            ));
        }
    };
    body.as_ref()
        .and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| admin_error(AdminError::NoName))
}

async fn post_grant(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, kind)): Path<(String, String)>,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    let (tenant, mut conn) = authenticate(&app, &headers)?;
    let kind = kind_segment(&kind).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "Grant under /roles, /teams or /learningPaths",
        )
    })?;
    let name = name_of(body)?;
    let stamp = stamp();
    let learner = write(&app, &tenant.name, &mut conn, |c| {
        grant_manual(c, tenant.id, &id, kind, &name, &stamp)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(learner)).into_response())
}

async fn delete_grant(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, kind, name)): Path<(String, String, String)>,
) -> Reply {
    let (tenant, mut conn) = authenticate(&app, &headers)?;
    let kind = kind_segment(&kind).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "Revoke under /roles, /teams or /learningPaths",
        )
    })?;
    let stamp = stamp();
    write(&app, &tenant.name, &mut conn, |c| {
        revoke_by_hand(c, tenant.id, &id, kind, &name, &stamp)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_catalogue(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let list = lms::catalogue::list(&conn, tenant.id).map_err(db_error)?;
    Ok(Json(list).into_response())
}

/// Adds a role, team or learning path to the catalogue.
async fn post_catalogue(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(kind): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let kind = kind_segment(&kind).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "Add to /catalogue/roles, /catalogue/teams or /catalogue/learningPaths",
        )
    })?;
    let name = name_of(body)?;
    let _turn = app.writers.lock().await;
    let added = lms::catalogue::add(&conn, tenant.id, kind, &name)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let list = lms::catalogue::list(&conn, tenant.id).map_err(db_error)?;
    Ok((status, Json(list)).into_response())
}

/// `GET /events`: a page of the sync log as JSON (`next` is the `before`
/// of the following page), or with `format=csv` as a download.
async fn get_events(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let query = events_query(&params).map_err(|d| error(StatusCode::BAD_REQUEST, d))?;
    let csv = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("'format' must be json or csv, not '{other}'"),
            ));
        }
    };
    let (list, next) = events::page(&conn, tenant.id, &query).map_err(db_error)?;
    if csv {
        return Ok((
            [
                ("content-type", "text/csv; charset=utf-8"),
                (
                    "content-disposition",
                    "attachment; filename=\"sync-log.csv\"",
                ),
            ],
            events::csv(&list),
        )
            .into_response());
    }
    Ok(Json(json!({"events": list, "next": next.map(|n| n.to_string())})).into_response())
}

/// Reads `since`, `until`, `failed`, `user`, `action`, `request`, `change`,
/// `before` and `limit`.
pub fn events_query(params: &HashMap<String, String>) -> Result<events::Query, String> {
    let time = |name: &str| {
        params
            .get(name)
            .map(|s| events::normalize_time(name, s))
            .transpose()
    };
    let failed = match params.get("failed").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(format!("'failed' must be true or false, not '{other}'")),
    };
    let limit = limit_param(params, 100, 10_000)?;
    let before = match params.get("before") {
        None => None,
        Some(b) => Some(b.parse::<i64>().ok().filter(|b| *b > 0).ok_or_else(|| {
            format!("'before' must be an event id (a positive number), not '{b}'")
        })?),
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        match params.get(name).map(|v| v.trim()) {
            None => Ok(None),
            Some("") => Err(format!(
                "'{name}' must not be empty; leave it out to match every event"
            )),
            Some(v) => Ok(Some(v.to_string())),
        }
    };
    Ok(events::Query {
        since: time("since")?,
        until: time("until")?,
        failed,
        user: params.get("user").cloned(),
        action: text("action")?,
        request: text("request")?,
        change: text("change")?,
        before,
        limit,
    })
}

async fn get_sync(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let status = crate::outbox::status(&conn, Some(tenant.id), &app.progress).map_err(db_error)?;
    Ok(Json(status).into_response())
}

/// `GET /learners?q=TEXT&limit=N`: learners by id, or by a piece of their
/// userName, display name or email.
async fn search_learners(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let q = params.get("q").map(|q| q.trim()).unwrap_or_default();
    if q.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Say what to look for: ?q= an id, or part of a userName, display name or email",
        ));
    }
    let max = lms::search::MAX_RESULTS;
    let limit = limit_param(&params, 20, max).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let found = lms::search::learners(&conn, tenant.id, q, limit).map_err(db_error)?;
    Ok(Json(json!({"learners": found})).into_response())
}

/// The tenant's policy as the admin API shows it.
fn policy_json(p: &crate::db::PolicyRow) -> Value {
    json!({
        "onDelete": p.on_delete,
        "drift": p.drift,
        "confirmThreshold": p.confirm_threshold,
        "pluginDeniedRoles": p.plugin_denied_roles,
    })
}

async fn get_policy(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let policy = crate::db::policy(&conn, tenant.id).map_err(db_error)?;
    Ok(Json(policy_json(&policy)).into_response())
}

/// `PUT /policy`: changes the members given (`onDelete`, `drift`,
/// `confirmThreshold`, `pluginDeniedRoles`) and answers the new policy.
async fn put_policy(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let bad = |d: String| error(StatusCode::BAD_REQUEST, d);
    let shape = "The body must be a JSON object with any of onDelete (\"suspend\" or \"remove\"), \
                 drift (\"restore\" or \"report\"), confirmThreshold (0 to 100) and \
                 pluginDeniedRoles (an array of role names)";
    let Ok(Json(Value::Object(body))) = body else {
        return Err(bad(shape.into()));
    };
    if let Some(unknown) = body.keys().find(|k| {
        !matches!(
            k.as_str(),
            "onDelete" | "drift" | "confirmThreshold" | "pluginDeniedRoles"
        )
    }) {
        return Err(bad(format!("Unknown policy member '{unknown}'. {shape}")));
    }
    let text = |k: &str| match body.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad(format!("'{k}' must be a string. {shape}"))),
    };
    let on_delete = text("onDelete")?;
    let drift = text("drift")?;
    let threshold = match body.get("confirmThreshold") {
        None => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| bad(format!("'confirmThreshold' must be a number. {shape}")))?,
        ),
    };
    let denied = match body.get("pluginDeniedRoles") {
        None => None,
        Some(Value::Array(roles)) => Some(
            roles
                .iter()
                .map(|r| r.as_str().map(str::to_string))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| bad(format!("'pluginDeniedRoles' must hold strings. {shape}")))?,
        ),
        Some(_) => {
            return Err(bad(format!(
                "'pluginDeniedRoles' must be an array. {shape}"
            )));
        }
    };
    crate::db::check_policy(on_delete, drift, threshold).map_err(bad)?;
    let _turn = app.writers.lock().await;
    let policy = crate::db::set_policy(
        &conn,
        &tenant.name,
        on_delete,
        drift,
        threshold,
        denied.as_deref(),
    )
    .map_err(|e| db_error(format!("{e:#}")))?;
    Ok(Json(policy_json(&policy)).into_response())
}

/// `POST /tokens/scim` or `/tokens/admin`: a new token of that kind, shown
/// once; the old one stops working at once. A new admin token also ends
/// every console session of the tenant (this one's included).
async fn post_token(
    State(app): State<Arc<App>>,
    axum::Extension(sessions): axum::Extension<Arc<super::session::Sessions>>,
    headers: HeaderMap,
    Path(kind): Path<String>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let kind = match kind.as_str() {
        "scim" => crate::db::TokenKind::Scim,
        "admin" => crate::db::TokenKind::Admin,
        _ => {
            return Err(error(
                StatusCode::NOT_FOUND,
                "Rotate /tokens/scim (the identity provider's) or /tokens/admin",
            ));
        }
    };
    let _turn = app.writers.lock().await;
    let token = crate::db::rotate_token(&conn, &tenant.name, kind)
        .map_err(|e| db_error(format!("{e:#}")))?;
    let mut r = Json(json!({"token": token})).into_response();
    r.headers_mut().insert(
        "cache-control",
        axum::http::HeaderValue::from_static("no-store"),
    );
    if kind == crate::db::TokenKind::Admin && super::api::cookie(&headers).is_some() {
        // The session just ended: the browser may drop its cookie.
        r.headers_mut().insert("set-cookie", sessions.cookie(None));
    }
    Ok(r)
}
