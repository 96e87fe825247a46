//! The admin API's mapping rules: `GET|PUT|DELETE /admin/v1/mapping`,
//! `POST /admin/v1/mapping/check`, `POST /admin/v1/mapping/preview` and
//! `GET /admin/v1/learners/{id}/explain` (`POST` with candidate rules). The
//! body of PUT, check, preview and a candidate explain is the rules document
//! itself (TOML or JSON). Preview, PUT, DELETE and rollback run as a job
//! with `Prefer: respond-async` (see `jobs`); `?preview=<job id>` rests a
//! change on that job's preview instead of previewing again.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

use super::api::{ApiError, Reply, authenticate, db_error, error, internal_error};
use super::jobs::{self as http_jobs, prefers_async};
use super::refusals::refusal;
use crate::app::App;
use crate::db::Tenant;
use crate::jobs::Kind;
use crate::mapping::{self, Change, Choice, Previewed, Refusal};

/// Per-learner differences a preview answers unless `limit` says otherwise.
const KEEP: usize = 1000;

/// What installing `document` puts in force, for a confirmation to match
/// against the preview it rests on.
fn target(document: Option<&str>) -> String {
    use sha2::Digest as _;
    match document {
        Some(d) => format!("rules:{}", hex::encode(sha2::Sha256::digest(d.as_bytes()))),
        None => "rules:default".into(),
    }
}

/// A job's answer (an outcome or a report) as JSON.
pub(super) fn as_json(v: impl serde::Serialize) -> Result<serde_json::Value, Refusal> {
    serde_json::to_value(v).map_err(|e| Refusal::Internal(e.into()))
}

pub(super) fn flag(params: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(other) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("'{name}' must be true or false, not '{other}'"),
        )),
    }
}

pub(super) fn number<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
    what: &str,
) -> Result<Option<T>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("'{name}' must be {what}, not '{v}'"),
                )
            })
        })
        .transpose()
}

/// The largest rules document a request may carry.
const MAX_DOCUMENT_BYTES: usize = 2 * 1024 * 1024;

/// The request body as text, read after the admin token is checked: at
/// most [`MAX_DOCUMENT_BYTES`], UTF-8.
async fn text(body: Body) -> Result<String, ApiError> {
    let bytes = match Limited::new(body, MAX_DOCUMENT_BYTES).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("A rules document may be at most {MAX_DOCUMENT_BYTES} bytes"),
            ));
        }
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("Could not read the request body: {e}"),
            ));
        }
    };
    String::from_utf8(bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "The rules document is not UTF-8 text: byte {} is not valid UTF-8",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A rules document from the body: UTF-8 text that is not blank.
async fn document(body: Body) -> Result<String, ApiError> {
    let body = text(body).await?;
    if body.trim().is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Send the rules document (TOML or JSON) as the request body",
        ));
    }
    Ok(body)
}

/// The tenant's turn at mapping work ([`crate::gate::MappingWork`]): 429
/// while the tenant already runs some, 503 when the server is full.
pub(super) async fn mapping_turn(
    app: &App,
    tenant: i64,
) -> Result<crate::gate::MappingTurn, ApiError> {
    use crate::gate::WorkRefused;
    app.mapping_work.begin(tenant).await.map_err(|r| match r {
        WorkRefused::TenantBusy => error(
            StatusCode::TOO_MANY_REQUESTS,
            "This tenant's previous preview, install, replay, explain or check is still running; retry when it ends",
        )
        .retry_after(2),
        WorkRefused::ServerBusy => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is busy with other tenants' mapping work; retry in a minute",
        )
        .retry_after(60),
    })
}

/// Runs mapping work off the async threads, holding the tenant's turn until
/// the work ends: a client that goes away does not end the work, so it
/// must not end the turn either.
pub(super) async fn work<T: Send + 'static>(
    turn: crate::gate::MappingTurn,
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, ApiError> {
    blocking(move || {
        let _turn = turn;
        f()
    })
    .await
}

/// Runs blocking mapping work off the async threads. A panic in it is a
/// 500 (its transaction was rolled back as the panic dropped it).
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, ApiError> {
    // Its plugin calls run on the blocking thread itself.
    match tokio::task::spawn_blocking(move || crate::sandbox::threads::inline(f)).await {
        Ok(done) => done.map_err(refusal),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let why = crate::app::panic_message(&*panic);
            tracing::error!(panic = why, "admin mapping work panicked; rolled back");
            Err(internal_error())
        }
        Err(e) => Err(db_error(format!("mapping task failed: {e}"))),
    }
}

fn tenant_of(app: &App, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    authenticate(app, headers).map(|(t, _)| t)
}

pub async fn get_mapping(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let current = crate::db::rules::current(&conn, tenant.id).map_err(db_error)?;
    let history = crate::db::rules::history(&conn, tenant.id, 20).map_err(db_error)?;
    let policy = crate::db::policy(&conn, tenant.id).map_err(db_error)?;
    Ok(Json(json!({
        "mapper": if current.as_ref().is_some_and(|c| c.document.is_some()) { "rules" } else { "default" },
        "current": current,
        "history": history,
        "policy": policy,
    }))
    .into_response())
}

pub async fn put_mapping(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let text = document(body).await?;
    let target = target(Some(&text));
    let asked = Asked::of(&headers, &params, Kind::MappingInstall, target)?;
    change(app, tenant, Some(text), asked).await
}

pub async fn delete_mapping(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let asked = Asked::of(&headers, &params, Kind::MappingRemove, target(None))?;
    change(app, tenant, None, asked).await
}

/// How a change was asked for.
struct Asked {
    confirm: bool,
    threshold: Option<f64>,
    /// As a job (`Prefer: respond-async`).
    background: bool,
    kind: Kind,
    target: String,
    /// `?preview=<job id>`: the preview it rests on.
    preview: Option<String>,
}

impl Asked {
    fn of(
        headers: &HeaderMap,
        params: &HashMap<String, String>,
        kind: Kind,
        target: String,
    ) -> Result<Asked, ApiError> {
        Ok(Asked {
            confirm: flag(params, "confirm")?,
            threshold: number::<f64>(params, "threshold", "a percentage")?,
            background: prefers_async(headers),
            kind,
            target,
            preview: params.get("preview").cloned(),
        })
    }
}

async fn change(app: Arc<App>, tenant: Tenant, text: Option<String>, asked: Asked) -> Reply {
    let previewed = asked
        .preview
        .as_deref()
        .map(|id| http_jobs::previewed(&app, &tenant, id, &asked.target))
        .transpose()?;
    let Asked {
        confirm, threshold, ..
    } = asked;
    changed(
        app,
        tenant,
        asked.background,
        asked.kind,
        &asked.target,
        previewed,
        move |app, tenant, progress, previewed, claim| {
            mapping::install(
                &app.runtime,
                &app.pool,
                tenant,
                text.as_deref(),
                threshold,
                Change {
                    confirm,
                    by: "admin-api",
                    keep: KEEP,
                    progress,
                    writers: Some(&app.writers),
                    previewed,
                    claim,
                },
            )
        },
    )
    .await
}

/// Runs a change of the tenant's mapping (its rules or its plugin) through
/// `run`: as a job when the client prefers it (answered 202 at once, the
/// job hearing `run`'s progress and claimed inside its transaction), or
/// else in the request; either way holding the tenant's mapping turn, and
/// resting on `previewed` when given.
pub(super) async fn changed<T: serde::Serialize + Send + 'static>(
    app: Arc<App>,
    tenant: Tenant,
    background: bool,
    kind: Kind,
    target: &str,
    previewed: Option<Previewed>,
    run: impl FnOnce(
        &App,
        &Tenant,
        mapping::Progress<'_>,
        Option<Previewed>,
        Option<mapping::Claim<'_>>,
    ) -> Result<T, Refusal>
    + Send
    + 'static,
) -> Reply {
    if background {
        let seen = match &previewed {
            Some(p) => p.in_force,
            None => http_jobs::in_force(&app, &tenant)?,
        };
        let basis = http_jobs::basis(target, seen);
        let turn = mapping_turn(&app, tenant.id).await?;
        let t = tenant.clone();
        return http_jobs::start(app, &tenant, kind, turn, Some(basis), move |app, job| {
            let id = job.id().to_string();
            let claim = move |tx: &crate::db::sql::Connection| crate::jobs::claim(tx, &id);
            as_json(run(app, &t, &mut |n| job.hear(n), previewed, Some(&claim))?)
        })
        .await;
    }
    let app2 = app.clone();
    let turn = mapping_turn(&app, tenant.id).await?;
    let outcome = work(turn, move || {
        run(&app2, &tenant, &mut mapping::heard(|_| {}), previewed, None)
    })
    .await?;
    app.outbox.notify_one();
    Ok(Json(outcome).into_response())
}

/// Installs again the version before the one in force.
pub async fn rollback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    // What it installs follows from what is in force, which a confirmation
    // checks anyway.
    let asked = Asked::of(
        &headers,
        &params,
        Kind::MappingRollback,
        "rules:rollback".into(),
    )?;
    let (app2, t2) = (app.clone(), tenant.clone());
    let (_, document) = blocking(move || mapping::rollback_target(&app2.pool, &t2)).await?;
    change(app, tenant, document, asked).await
}

pub async fn check(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let text = document(body).await?;
    let turn = mapping_turn(&app, tenant.id).await?;
    let report = work(turn, move || {
        mapping::check(&app.runtime, Some((&app.pool, &tenant)), &text)
    })
    .await?;
    Ok(Json(report).into_response())
}

pub async fn preview(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let keep = number::<usize>(&params, "limit", "a number")?.unwrap_or(KEEP);
    let body = text(body).await?;
    let choice = if flag(&params, "default")? {
        Choice::Default
    } else if body.trim().is_empty() {
        Choice::Installed
    } else {
        Choice::Document(body)
    };
    if prefers_async(&headers) {
        // A preview of what an install would put in force can confirm it.
        let target = match &choice {
            Choice::Document(d) => Some(target(Some(d))),
            Choice::Default => Some(target(None)),
            _ => None,
        };
        let basis = match target {
            Some(t) => Some(http_jobs::basis(&t, http_jobs::in_force(&app, &tenant)?)),
            None => None,
        };
        let turn = mapping_turn(&app, tenant.id).await?;
        let t = tenant.clone();
        return http_jobs::start(
            app,
            &tenant,
            Kind::MappingPreview,
            turn,
            basis,
            move |app, job| {
                let report =
                    mapping::preview(&app.runtime, &app.pool, &t, &choice, keep, &mut |n| {
                        job.hear(n)
                    })?;
                as_json(report)
            },
        )
        .await;
    }
    let turn = mapping_turn(&app, tenant.id).await?;
    let report = work(turn, move || {
        mapping::preview(
            &app.runtime,
            &app.pool,
            &tenant,
            &choice,
            keep,
            &mut mapping::heard(|_| {}),
        )
    })
    .await?;
    Ok(Json(report).into_response())
}

pub async fn explain(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    explain_with(app, tenant, Choice::Installed, id).await
}

/// Explains one user under candidate rules (the body), applying nothing.
pub async fn explain_candidate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let choice = Choice::Document(document(body).await?);
    explain_with(app, tenant, choice, id).await
}

async fn explain_with(app: Arc<App>, tenant: Tenant, choice: Choice, id: String) -> Reply {
    let turn = mapping_turn(&app, tenant.id).await?;
    let v = work(turn, move || {
        mapping::explain(&app.runtime, &app.pool, &tenant, &choice, &id)
    })
    .await?;
    Ok(Json(v).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work that panics on the blocking pool is a 500 in the admin API's
    /// error shape, not a "database unavailable".
    #[tokio::test]
    async fn a_panic_in_blocking_work_is_a_500() {
        let e = blocking(|| -> Result<(), Refusal> { panic!("boom") })
            .await
            .unwrap_err();
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], 500, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("nothing was changed")),
            "{body}"
        );
    }
}
