//! The admin API's mapping plugins: `GET|PUT|DELETE /admin/v1/mapper`,
//! `POST /admin/v1/mapper/preview`, `/mapper/rollback` and `/mapper/replay`.
//! The body of PUT, preview and replay is the component itself; its options
//! are query parameters: `settings` (URL-encoded JSON object), `fuel`,
//! `memoryMib`, `maxFailures` and `confirm`. The body is read only after
//! the admin token is checked.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::api::{ApiError, Reply, authenticate, db_error, error};
use super::mapping::{flag, mapping_turn, number, work};
use crate::app::App;
use crate::db::Tenant;
use crate::mapper::{self, Upload};
use crate::mapping::Change;
use crate::sandbox::plugin::MAX_COMPONENT_BYTES;

/// Per-learner differences a preview answers unless `limit` says otherwise.
const KEEP: usize = 1000;

fn tenant_of(app: &App, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    authenticate(app, headers).map(|(t, _)| t)
}

/// The component in the body, read after authentication.
async fn component(body: Body) -> Result<Vec<u8>, ApiError> {
    let bytes = match Limited::new(body, MAX_COMPONENT_BYTES).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("A plugin may be at most {MAX_COMPONENT_BYTES} bytes"),
            ));
        }
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("Could not read the request body: {e}"),
            ));
        }
    };
    if bytes.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Send the plugin (a WebAssembly component) as the request body",
        ));
    }
    Ok(bytes)
}

/// The plugin's options from the query.
struct Options {
    settings: Option<String>,
    fuel: Option<u64>,
    memory_mib: Option<u64>,
    max_failures: Option<u32>,
}

fn options(params: &HashMap<String, String>) -> Result<Options, ApiError> {
    Ok(Options {
        settings: params.get("settings").cloned(),
        fuel: number(params, "fuel", "a number")?,
        memory_mib: number(params, "memoryMib", "a number of MiB")?,
        max_failures: number(params, "maxFailures", "a number")?,
    })
}

impl Options {
    fn upload<'a>(&'a self, bytes: &'a [u8]) -> Upload<'a> {
        Upload {
            component: bytes,
            settings: self.settings.as_deref(),
            fuel: self.fuel,
            memory_mib: self.memory_mib,
            max_failures: self.max_failures,
        }
    }
}

pub async fn get_mapper(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let shown = mapper::show(&app.pool, &tenant).map_err(|e| db_error(e.to_string()))?;
    Ok(Json(shown).into_response())
}

pub async fn put_mapper(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let bytes = component(body).await?;
    let opts = options(&params)?;
    let confirm = flag(&params, "confirm")?;
    let app2 = app.clone();
    let turn = mapping_turn(&app, tenant.id).await?;
    let outcome = work(turn, move || {
        mapper::install(
            &app2.runtime,
            &app2.pool,
            &tenant,
            &opts.upload(&bytes),
            Change {
                confirm,
                by: "admin-api",
                keep: KEEP,
                progress: &mut |_| {},
                writers: Some(&app2.writers),
            },
        )
    })
    .await?;
    app.outbox.notify_one();
    Ok(Json(outcome).into_response())
}

pub async fn delete_mapper(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let confirm = flag(&params, "confirm")?;
    let app2 = app.clone();
    let turn = mapping_turn(&app, tenant.id).await?;
    let outcome = work(turn, move || {
        mapper::remove(
            &app2.runtime,
            &app2.pool,
            &tenant,
            Change {
                confirm,
                by: "admin-api",
                keep: KEEP,
                progress: &mut |_| {},
                writers: Some(&app2.writers),
            },
        )
    })
    .await?;
    app.outbox.notify_one();
    Ok(Json(outcome).into_response())
}

pub async fn rollback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let confirm = flag(&params, "confirm")?;
    let app2 = app.clone();
    let turn = mapping_turn(&app, tenant.id).await?;
    let outcome = work(turn, move || {
        mapper::rollback(
            &app2.runtime,
            &app2.pool,
            &tenant,
            Change {
                confirm,
                by: "admin-api",
                keep: KEEP,
                progress: &mut |_| {},
                writers: Some(&app2.writers),
            },
        )
    })
    .await?;
    app.outbox.notify_one();
    Ok(Json(outcome).into_response())
}

pub async fn preview(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let bytes = component(body).await?;
    let opts = options(&params)?;
    let keep = number::<usize>(&params, "limit", "a number")?.unwrap_or(KEEP);
    let turn = mapping_turn(&app, tenant.id).await?;
    let report = work(turn, move || {
        let c = mapper::candidate(&app.runtime, &opts.upload(&bytes))?;
        mapper::preview(&app.runtime, &app.pool, &tenant, &c, keep, &mut |_| {})
    })
    .await?;
    Ok(Json(report).into_response())
}

pub async fn replay(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    body: Body,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    let bytes = component(body).await?;
    let opts = options(&params)?;
    let own = opts.settings.is_some();
    let turn = mapping_turn(&app, tenant.id).await?;
    let runs = work(turn, move || {
        let c = mapper::candidate(&app.runtime, &opts.upload(&bytes))?;
        mapper::replay(&app.runtime, &app.pool, &tenant, &c, own)
    })
    .await?;
    Ok(Json(runs).into_response())
}
