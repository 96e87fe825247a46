//! HTTP routing: SCIM under `/scim/v2`, the admin API under `/admin/v1` and
//! its console at `/admin`, `/metrics`, `/healthz` and `/readyz`; the test
//! API under `/test/v1` when asked for. The connections themselves are
//! `connections`' (timeouts, limits, graceful shutdown) and `tls`' (HTTPS).

pub mod admin;
mod alerts;
mod api;
pub mod connections;
mod console;
mod jobs;
pub mod mapper;
pub mod mapping;
mod overview;
mod refusals;
pub mod scim;
pub mod session;
pub mod test_api;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::app::{App, bearer};

pub use scim::BASE_PATH;

/// How the server is reached.
pub struct Options {
    /// The test API under `/test/v1` (for the host test suite, never in
    /// production).
    pub test_api: bool,
    /// HTTPS with this certificate; plain HTTP without.
    pub tls: Option<Arc<tls::Tls>>,
    pub limits: connections::Limits,
}

/// Serves until `shutdown` completes, then lets requests in flight finish
/// (see `connections`). Returns whether they all did in time.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin", get(console::page))
        .route("/admin/", get(console::page))
        .route("/admin/assets/{*file}", get(console::asset))
        .nest(
            "/admin/v1",
            admin::router()
                .layer(axum::middleware::from_fn_with_state(
                    app.clone(),
                    session::guard,
                ))
                .layer(Extension(Arc::new(session::Sessions::new(
                    options.tls.is_some(),
                )))),
        );
    if options.test_api {
        router = router.nest("/test/v1", test_api::router());
    }
    let router = router.fallback(scim::handle).with_state(app);
    connections::serve(listener, router, options.tls, options.limits, shutdown).await
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C). The handlers are
/// installed by this call, so a signal that arrives once it returned is
/// never the default (immediate) exit.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            let signal = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal, "shutting down");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// How long `/readyz` waits for the database.
const READY_WAIT: Duration = Duration::from_secs(2);

/// `/readyz`: whether this server can serve requests now, for a load
/// balancer (`/healthz` only says the process is alive). The engine is
/// compiled before the server listens; the database must answer a trivial
/// query within [`READY_WAIT`]. 503 with the reason when not.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let check = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let conn = app
            .pool
            .get_timeout(READY_WAIT)
            .map_err(|e| format!("no database connection: {e}"))?;
        // Reads a table, so SQLite touches the file (`SELECT 1` would not).
        conn.query_row("SELECT count(*) FROM tenants", (), |r| r.get::<_, i64>(0))
            .map_err(|e| format!("the database does not answer: {e}"))?;
        Ok(())
    });
    let outcome = match tokio::time::timeout(READY_WAIT * 2, check).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Err(format!("the database check failed: {e}")),
        Err(_) => Err(format!(
            "the database did not answer within {} s",
            (READY_WAIT * 2).as_secs()
        )),
    };
    match outcome {
        Ok(()) => axum::Json(serde_json::json!({
            "ready": true, "database": "ok", "engine": "compiled"
        }))
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "ready": false, "database": "unavailable", "engine": "compiled", "reason": reason
            })),
        )
            .into_response(),
    }
}

/// `/metrics` in Prometheus text format, for the bearer of the metrics
/// token (`serve --metrics-token`); it spans every tenant.
async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(expected) = app.metrics_token else {
        return (
            StatusCode::NOT_FOUND,
            "Metrics are off: start `scim-host serve` with --metrics-token (or SCIM_METRICS_TOKEN)\n",
        )
            .into_response();
    };
    let header = headers.get("authorization").and_then(|h| h.to_str().ok());
    let given = bearer(header).map(crate::db::hash_token);
    if !given.is_some_and(|g| bool::from(g.ct_eq(&expected))) {
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer realm=\"metrics\"")],
            "Send 'Authorization: Bearer <metrics token>'\n",
        )
            .into_response();
    }
    let backlog = app
        .pool
        .get()
        .ok()
        .and_then(|c| crate::outbox::backlog(&c).ok())
        .unwrap_or((0, None));
    (
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(backlog.0, backlog.1),
    )
        .into_response()
}
