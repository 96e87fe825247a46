//! The admin API's jobs: `GET /admin/v1/jobs`, `GET|DELETE
//! /admin/v1/jobs/{id}`, and how the mapping and mapper endpoints run as a
//! job when the request says `Prefer: respond-async` (RFC 7240): they
//! answer `202 Accepted` at once with the job, whose `Location` the client
//! polls. Each tenant sees its own jobs only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::api::{ApiError, Reply, authenticate, db_error, error, limit_param};
use super::refusals::refusal_parts;
use crate::app::App;
use crate::db::Tenant;
use crate::gate::MappingTurn;
use crate::jobs::{self, Cancel, Job, Kind, Running, Watcher};
use crate::mapping::{InForce, PreviewReport, Previewed, Refusal};

/// Whether the request prefers an answer at once and the work in the
/// background (`Prefer: respond-async`, among other preferences).
pub(super) fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .filter_map(|p| p.split(';').next())
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// The tenant's job's URL.
fn location(id: &str) -> String {
    format!("/admin/v1/jobs/{id}")
}

/// What a confirmation resting on a preview must still find: the same
/// target (`rules:<sha256>`, `plugin:<sha256>`…) and the same mapping in
/// force.
pub(super) fn basis(target: &str, in_force: InForce) -> Value {
    json!({"target": target, "inForce": in_force})
}

/// Starts `work` as a job of the tenant's, holding its mapping turn until
/// the work ends, and answers 202 with the job. `basis`: what a later
/// confirmation resting on its preview must still find (read before the
/// preview begins, so that a change in between shows).
pub(super) async fn start(
    app: Arc<App>,
    tenant: &Tenant,
    kind: Kind,
    turn: MappingTurn,
    basis: Option<Value>,
    work: impl FnOnce(&App, &mut Running) -> Result<Value, Refusal> + Send + 'static,
) -> Reply {
    let total = {
        let conn = app.pool.get().map_err(db_error)?;
        crate::mapping::users(&conn, tenant.id).map_err(|_| db_error("users"))?
    };
    // No connection held while waiting for the write turn: its holder may
    // need one from the pool.
    let job = {
        let _turn = app.writers.lock().await;
        let conn = app.pool.get().map_err(db_error)?;
        jobs::create(&conn, tenant.id, kind, total, basis.as_ref()).map_err(db_error)?
    };
    let id = job.id.clone();
    // Writes its progress and heartbeat beside the work.
    let watcher = {
        let (app, id) = (app.clone(), id.clone());
        let mut w = Watcher::new(&id);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Watcher::every());
            loop {
                every.tick().await;
                if w.due() {
                    let _turn = app.writers.lock().await;
                    w.write(&app.pool);
                }
            }
        })
    };
    let ran = app.clone();
    tokio::spawn(async move {
        let id2 = id.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            crate::sandbox::threads::inline(|| {
                let mut running = Running::new(&id2);
                let r = running.test_delay().and_then(|()| work(&ran, &mut running));
                (r, running.heard())
            })
        })
        .await;
        watcher.abort();
        record(&app, &id, kind, outcome).await;
    });
    Ok(accepted(&job))
}

/// How the job ended, as its row says it.
async fn record(
    app: &App,
    id: &str,
    kind: Kind,
    outcome: Result<(Result<Value, Refusal>, u64), tokio::task::JoinError>,
) {
    let (state, done, result, error) = match outcome {
        Ok((Ok(v), done)) => ("done", done, Some(v), None),
        Ok((Err(Refusal::Cancelled), done)) => ("cancelled", done, None, None),
        Ok((Err(r), done)) => {
            let state = match r {
                Refusal::NeedsConfirmation { .. } => "needs-confirmation",
                _ => "failed",
            };
            let (status, detail, extra) = refusal_parts(r);
            let mut e = json!({"status": status.as_u16(), "detail": detail});
            if let (Some(Value::Object(extra)), Some(obj)) = (extra, e.as_object_mut()) {
                obj.extend(extra);
            }
            (state, done, None, Some(e))
        }
        Err(e) => {
            let why = if e.is_panic() {
                crate::app::panic_message(&*e.into_panic()).to_string()
            } else {
                e.to_string()
            };
            tracing::error!(
                job = id,
                panic = why,
                "an admin job failed inside the server"
            );
            let e = json!({"status": 500, "detail": "The job failed inside the server; nothing was changed"});
            ("failed", 0, None, Some(e))
        }
    };
    let _turn = app.writers.lock().await;
    let written = app.pool.get().map_err(anyhow::Error::from).and_then(|c| {
        Ok(jobs::finish(
            &c,
            id,
            state,
            done,
            result.as_ref(),
            error.as_ref(),
        )?)
    });
    match written {
        Ok(_) => {}
        Err(e) => tracing::error!(job = id, error = %e, "could not record how a job ended"),
    }
    if state == "done" && !Kind::previews(kind.name()) {
        app.outbox.notify_one();
    }
}

/// `202 Accepted` with the job, where to poll it, and that the preference
/// was honoured.
fn accepted(job: &Job) -> axum::response::Response {
    let mut r = (StatusCode::ACCEPTED, Json(job)).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location(&job.id)) {
        h.insert("location", v);
    }
    h.insert(
        "preference-applied",
        HeaderValue::from_static("respond-async"),
    );
    r
}

fn unknown(id: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        format!("No job '{id}' in this tenant (finished jobs are kept for a week, 50 at most)"),
    )
}

/// The preview a confirmation (`?preview=<job id>`) rests on: the job's,
/// if it previewed this same `target` to its end.
pub(super) fn previewed(
    app: &App,
    tenant: &Tenant,
    id: &str,
    target: &str,
) -> Result<Previewed, ApiError> {
    let conn = app.pool.get().map_err(db_error)?;
    let job = jobs::get(&conn, tenant.id, id)
        .map_err(db_error)?
        .ok_or_else(|| unknown(id))?;
    let report = match job.state.as_str() {
        "needs-confirmation" => job.error.as_ref().map(|e| e["preview"].clone()),
        "done" if Kind::previews(&job.kind) => job.result.clone(),
        _ => None,
    };
    let basis = job.basis.as_ref();
    let (Some(report), Some(basis)) = (report, basis) else {
        return Err(error(
            StatusCode::CONFLICT,
            format!(
                "Job '{id}' ({}, {}) holds no complete preview to confirm; run the preview or the change again",
                job.kind, job.state
            ),
        ));
    };
    if basis["target"].as_str() != Some(target) {
        return Err(error(
            StatusCode::CONFLICT,
            format!(
                "Job '{id}' previewed something else than this request would put in force; preview this one, then confirm that preview"
            ),
        ));
    }
    let report: PreviewReport = serde_json::from_value(report)
        .map_err(|e| db_error(format!("job {id}: unreadable preview: {e}")))?;
    let in_force: InForce = serde_json::from_value(basis["inForce"].clone())
        .map_err(|e| db_error(format!("job {id}: unreadable basis: {e}")))?;
    Ok(Previewed {
        report,
        in_force,
        source: format!("job '{id}'"),
    })
}

/// What maps the tenant now, for a job's basis.
pub(super) fn in_force(app: &App, tenant: &Tenant) -> Result<InForce, ApiError> {
    let conn = app.pool.get().map_err(db_error)?;
    InForce::read(&conn, tenant.id).map_err(|_| db_error("in force"))
}

pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let limit = limit_param(&params, 20, 100).map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    let jobs = jobs::list(&conn, tenant.id, limit).map_err(db_error)?;
    Ok(Json(json!({"jobs": jobs})).into_response())
}

pub async fn get_job(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    match jobs::get(&conn, tenant.id, &id).map_err(db_error)? {
        Some(job) => Ok(Json(job).into_response()),
        None => Err(unknown(&id)),
    }
}

/// Cancels a running job: nothing of it is applied. A job that ended, or
/// whose change is being recorded, is answered as it is with 409.
pub async fn cancel(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let (tenant, conn) = authenticate(&app, &headers)?;
    let found = {
        let _turn = app.writers.lock().await;
        jobs::cancel(&conn, tenant.id, &id).map_err(db_error)?
    };
    match found {
        Cancel::Cancelled(job) => Ok(Json(job).into_response()),
        Cancel::Ended(job) => Err(error(
            StatusCode::CONFLICT,
            format!(
                "Job '{id}' is {}: only a running job can be cancelled, and not while its change is being recorded",
                job.state
            ),
        )
        .with(json!({"job": job}))),
        Cancel::Unknown => Err(unknown(&id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respond_async_is_found_among_other_preferences() {
        let prefer = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append("prefer", HeaderValue::from_str(v).unwrap());
            }
            prefers_async(&h)
        };
        assert!(prefer(&["respond-async"]));
        assert!(prefer(&["return=minimal, Respond-Async; wait=10"]));
        assert!(prefer(&["return=minimal", "respond-async"]));
        assert!(!prefer(&[]));
        assert!(!prefer(&["return=representation", "wait=5"]));
        assert!(!prefer(&["respond-asynchronously"]));
    }
}
