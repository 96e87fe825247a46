//! The admin API's mapping plugins: `GET|PUT|DELETE /admin/v1/mapper`,
//! `POST /admin/v1/mapper/preview`, `/mapper/rollback` and `/mapper/replay`.
//! The body of PUT, preview and replay is the component itself; its options
//! are query parameters: `settings` (URL-encoded JSON object), `fuel`,
//! `memoryMib`, `maxFailures` and `confirm`. The body is read only after
//! the admin token is checked. Preview, PUT, DELETE and rollback run as a
//! job with `Prefer: respond-async` (see `jobs`); `?preview=<job id>`
//! rests a change on that job's preview instead of previewing again.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::api::{ApiError, Reply, authenticate, db_error, error};
use super::jobs::{self as http_jobs, prefers_async};
use super::mapping::{as_json, changed, flag, mapping_turn, number, work};
use crate::app::App;
use crate::db::Tenant;
use crate::jobs::Kind;
use crate::mapper::{self, Upload};
use crate::mapping::{self, Change, Previewed};
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
    /// What installing the plugin with these options puts in force, for a
    /// confirmation to match against the preview it rests on (the failure
    /// limit does not change a preview).
    fn target(&self, bytes: &[u8]) -> String {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(bytes);
        h.update(
            format!(
                "\n{}\n{:?}\n{:?}",
                self.settings.as_deref().unwrap_or("{}").trim(),
                self.fuel,
                self.memory_mib
            )
            .as_bytes(),
        );
        format!("plugin:{}", hex::encode(h.finalize()))
    }

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

/// Which change of the tenant's plugin.
#[derive(Clone, Copy)]
enum Which {
    Install,
    Remove,
    Rollback,
}

/// Runs a change of the tenant's plugin: in the request, or as a job with
/// `Prefer: respond-async`; resting on the preview of `?preview=<job id>`
/// when given.
async fn change(
    app: Arc<App>,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    tenant: Tenant,
    which: Which,
    upload: Option<(Options, Vec<u8>)>,
) -> Reply {
    let confirm = flag(params, "confirm")?;
    let (kind, target) = match (which, &upload) {
        (Which::Install, Some((opts, bytes))) => (Kind::MapperInstall, opts.target(bytes)),
        (Which::Remove, _) => (Kind::MapperRemove, "plugin:none".into()),
        // What it installs follows from what is in force, which a
        // confirmation checks anyway.
        _ => (Kind::MapperRollback, "plugin:rollback".into()),
    };
    let previewed = params
        .get("preview")
        .map(|id| http_jobs::previewed(&app, &tenant, id, &target))
        .transpose()?;
    let run = move |app: &App,
                    tenant: &Tenant,
                    progress: mapping::Progress,
                    previewed: Option<Previewed>,
                    claim: Option<mapping::Claim>| {
        let change = Change {
            confirm,
            by: "admin-api",
            keep: KEEP,
            progress,
            writers: Some(&app.writers),
            previewed,
            claim,
        };
        match (which, &upload) {
            (Which::Install, Some((opts, bytes))) => {
                mapper::install(&app.runtime, &app.pool, tenant, &opts.upload(bytes), change)
            }
            (Which::Remove, _) => mapper::remove(&app.runtime, &app.pool, tenant, change),
            _ => mapper::rollback(&app.runtime, &app.pool, tenant, change),
        }
    };
    changed(
        app,
        tenant,
        prefers_async(headers),
        kind,
        &target,
        previewed,
        run,
    )
    .await
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
    change(
        app,
        &headers,
        &params,
        tenant,
        Which::Install,
        Some((opts, bytes)),
    )
    .await
}

pub async fn delete_mapper(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    change(app, &headers, &params, tenant, Which::Remove, None).await
}

pub async fn rollback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Reply {
    let tenant = tenant_of(&app, &headers)?;
    change(app, &headers, &params, tenant, Which::Rollback, None).await
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
    if prefers_async(&headers) {
        // A preview of a plugin can confirm its install.
        let basis = http_jobs::basis(&opts.target(&bytes), http_jobs::in_force(&app, &tenant)?);
        let turn = mapping_turn(&app, tenant.id).await?;
        let t = tenant.clone();
        return http_jobs::start(
            app,
            &tenant,
            Kind::MapperPreview,
            turn,
            Some(basis),
            move |app, job| {
                let c = mapper::candidate(&app.runtime, &opts.upload(&bytes))?;
                as_json(mapper::preview(
                    &app.runtime,
                    &app.pool,
                    &t,
                    &c,
                    keep,
                    &mut |n| job.hear(n),
                )?)
            },
        )
        .await;
    }
    let turn = mapping_turn(&app, tenant.id).await?;
    let report = work(turn, move || {
        let c = mapper::candidate(&app.runtime, &opts.upload(&bytes))?;
        mapper::preview(
            &app.runtime,
            &app.pool,
            &tenant,
            &c,
            keep,
            &mut mapping::heard(|_| {}),
        )
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
