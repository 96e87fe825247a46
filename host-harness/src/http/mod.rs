//! HTTP routing: SCIM under `/scim/v2`, the admin API under `/admin/v1`,
//! `/metrics` and `/healthz`; the test API under `/test/v1` when asked for.

pub mod admin;
mod api;
pub mod mapper;
pub mod mapping;
pub mod scim;
pub mod test_api;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::app::{App, bearer};

pub use scim::BASE_PATH;

/// Serves until Ctrl-C or SIGTERM; with `test_api`, also the test API
/// under `/test/v1` (for the host test suite, never in production).
pub async fn serve(app: Arc<App>, listener: TcpListener, test_api: bool) -> anyhow::Result<()> {
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .nest("/admin/v1", admin::router());
    if test_api {
        router = router.nest("/test/v1", test_api::router());
    }
    let router = router.fallback(scim::handle).with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
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
