//! HTTP: authentication, body limits, one transaction per request, and the
//! hand-off of the raw request to the engine component.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::bindings::lms::scim::types::{HttpRequest, HttpResponse, RequestContext};
use crate::db::{self, Pool, Tenant};
use crate::runtime::{RequestState, Runtime};
use crate::storage::SqlStore;

/// Where SCIM is served.
pub const BASE_PATH: &str = "/scim/v2";

/// Everything a request needs.
pub struct App {
    pub runtime: Runtime,
    pub pool: Pool,
    pub max_body_bytes: usize,
    /// Absolute SCIM base URL; derived from the `Host` header when unset.
    pub public_url: Option<String>,
    pub permits: Arc<Semaphore>,
    /// The queue for SQLite's one write lock. Writers wait here in arrival
    /// order (tokio's mutex is fair) instead of in SQLite's busy handler,
    /// whose growing sleeps make latency explode under concurrent writers.
    pub writers: tokio::sync::Mutex<()>,
    pub request_timeout_ms: u128,
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> anyhow::Result<()> {
    let router = Router::new().fallback(handle).with_state(app);
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

/// What the blocking part of a request produced.
struct Outcome {
    response: HttpResponse,
    tenant: Option<String>,
}

/// What the engine needs to know about a request, before auth.
struct Incoming {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    context: RequestContext,
    authorization: Option<String>,
    /// Set when the host already knows the answer (413).
    reject: Option<(u16, String)>,
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = format!("{:016x}", rand::random::<u64>());
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let full_path = parts.uri.path().to_string();

    if full_path == "/healthz" {
        return Response::new(Body::from("ok"));
    }
    let path = match full_path.strip_prefix(BASE_PATH) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => String::new(),
    };
    let headers = header_list(&parts.headers);
    let base_url = app.public_url.clone().unwrap_or_else(|| {
        let host = parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}{BASE_PATH}")
    });
    let context = RequestContext {
        tenant: String::new(),
        base_url,
        request_id: request_id.clone(),
        subject: None,
        max_payload_bytes: app.max_body_bytes as u64,
        signing_key: Vec::new(),
    };
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);

    let declared = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = (
        413,
        format!(
            "The request body is larger than the limit of {} bytes",
            app.max_body_bytes
        ),
    );
    let (body, reject) = if declared.is_some_and(|n| n > app.max_body_bytes) {
        (Vec::new(), Some(too_large))
    } else {
        match Limited::new(body, app.max_body_bytes).collect().await {
            Ok(b) => (b.to_bytes().to_vec(), None),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                (Vec::new(), Some(too_large))
            }
            Err(e) => (
                Vec::new(),
                Some((400, format!("Could not read the request body: {e}"))),
            ),
        }
    };
    let query = parts.uri.query().unwrap_or("").to_string();
    let mut incoming = Incoming {
        method: method.clone(),
        path: path.clone(),
        query,
        headers,
        body,
        context,
        authorization,
        reject,
    };

    if path.is_empty() {
        incoming.reject = Some((404, format!("Not found: SCIM is served under {BASE_PATH}")));
    }
    let Ok(_permit) = app.permits.clone().acquire_owned().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    // Held until the transaction has committed or rolled back.
    let _write_turn = if is_read_only(&method) {
        None
    } else {
        Some(app.writers.lock().await)
    };
    // The engine runs right here on the runtime's worker thread: a request
    // is CPU work bounded by the engine's deadline, and handing it to a
    // blocking pool would cost two thread switches per request (`--workers`
    // sets how many requests run at once).
    let outcome = app.execute(incoming);
    let engine_log: Vec<String> = outcome
        .response
        .log
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    tracing::info!(
        method,
        path = full_path,
        status = outcome.response.status,
        duration_us = started.elapsed().as_micros() as u64,
        tenant = outcome.tenant.as_deref().unwrap_or("-"),
        request_id,
        engine = engine_log.join(" "),
        "request"
    );
    to_http(outcome.response, &request_id)
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r
}

fn to_http(resp: HttpResponse, request_id: &str) -> Response {
    let mut out = Response::new(Body::from(resp.body));
    *out.status_mut() =
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    for (name, value) in resp.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    out
}

/// Runs a transaction statement, prepared once per connection.
fn run(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Requests that only read run in a deferred (snapshot) transaction and
/// never queue for the write lock.
fn is_read_only(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// The bearer token of an `Authorization` header.
fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl App {
    /// The blocking part of a request: authenticate, open the transaction, run
    /// the engine, commit or roll back.
    fn execute(&self, mut inc: Incoming) -> Outcome {
        if inc.path.is_empty() {
            let (status, detail) = inc.reject.take().unwrap_or((404, "Not found".into()));
            return self.error(None, &inc.context, status, &detail);
        }
        let conn = match self.pool.get() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no database connection");
                return self.error(
                    None,
                    &inc.context,
                    503,
                    "The database is unavailable; retry later",
                );
            }
        };
        let tenant = match bearer(inc.authorization.as_deref()) {
            None => None,
            Some(token) => match db::authenticate(&conn, token) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "authentication lookup failed");
                    return self.error(
                        None,
                        &inc.context,
                        503,
                        "The database is unavailable; retry later",
                    );
                }
            },
        };
        let Some(Tenant {
            id,
            name,
            signing_key,
        }) = tenant
        else {
            let detail = if inc.authorization.is_none() {
                "Authentication required: send 'Authorization: Bearer <token>'"
            } else {
                "The bearer token is not valid"
            };
            let mut o = self.error(None, &inc.context, 401, detail);
            o.response
                .headers
                .push(("www-authenticate".into(), "Bearer realm=\"scim\"".into()));
            return o;
        };
        inc.context.tenant = name.clone();
        inc.context.subject = Some(name.clone());
        inc.context.signing_key = signing_key;
        if let Some((status, detail)) = inc.reject.take() {
            return self.error(Some(name), &inc.context, status, &detail);
        }

        let begin = if is_read_only(&inc.method) {
            "BEGIN DEFERRED"
        } else {
            "BEGIN IMMEDIATE"
        };
        if let Err(e) = run(&conn, begin) {
            tracing::error!(error = %e, "could not begin a transaction");
            return self.error(
                Some(name),
                &inc.context,
                503,
                "The database is busy; retry later",
            );
        }
        let state = RequestState::new(SqlStore::new(conn, id), self.runtime.limits());
        let request = HttpRequest {
            method: inc.method,
            path: inc.path,
            query: inc.query,
            headers: inc.headers,
            body: inc.body,
            context: inc.context.clone(),
        };
        let (result, state) = self.runtime.handle(state, &request);
        let stats = state.store.stats;
        let conn = state.store.into_conn();
        let Some(conn) = conn else {
            return self.error(
                Some(name),
                &inc.context,
                500,
                "The database connection was lost",
            );
        };
        match result {
            Ok(mut response) if response.status < 400 => {
                if let Err(e) = run(&conn, "COMMIT") {
                    tracing::error!(error = %e, "commit failed");
                    let _ = run(&conn, "ROLLBACK");
                    return self.error(
                        Some(name),
                        &inc.context,
                        503,
                        "The change could not be saved; nothing was changed, retry later",
                    );
                }
                response
                    .log
                    .push(("store_calls".into(), stats.calls.to_string()));
                response.log.push(("rows".into(), stats.rows.to_string()));
                Outcome {
                    response,
                    tenant: Some(name),
                }
            }
            Ok(mut response) => {
                let _ = run(&conn, "ROLLBACK");
                response
                    .log
                    .push(("store_calls".into(), stats.calls.to_string()));
                Outcome {
                    response,
                    tenant: Some(name),
                }
            }
            Err(e) => {
                let _ = run(&conn, "ROLLBACK");
                let timed_out = e
                    .downcast_ref::<wasmtime::Trap>()
                    .is_some_and(|t| *t == wasmtime::Trap::Interrupt);
                tracing::error!(request_id = %inc.context.request_id, error = ?e, timed_out, "engine trapped; rolled back");
                let detail = if timed_out {
                    format!(
                        "The request took longer than {} ms and was cancelled; nothing was changed (request id {})",
                        self.request_timeout_ms, inc.context.request_id
                    )
                } else {
                    format!(
                        "The request failed inside the engine; nothing was changed (request id {})",
                        inc.context.request_id
                    )
                };
                let mut o = self.error(Some(name), &inc.context, 500, &detail);
                o.response.log.push((
                    "trap".into(),
                    if timed_out { "timeout" } else { "trap" }.into(),
                ));
                o
            }
        }
    }

    /// A SCIM Error rendered by a fresh engine instance, with a plain JSON
    /// fallback should even that fail.
    fn error(
        &self,
        tenant: Option<String>,
        context: &RequestContext,
        status: u16,
        detail: &str,
    ) -> Outcome {
        let state = RequestState::new(SqlStore::detached(), self.runtime.limits());
        let (result, _) = self.runtime.error_response(state, context, status, detail);
        let response = result.unwrap_or_else(|e| {
            tracing::error!(error = ?e, "engine could not render an error");
            let body = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": status.to_string(),
                "detail": detail,
            });
            HttpResponse {
                status,
                headers: vec![("content-type".into(), "application/scim+json".into())],
                body: body.to_string().into_bytes(),
                log: Vec::new(),
            }
        });
        Outcome { response, tenant }
    }
}
