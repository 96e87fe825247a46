//! SCIM over HTTP: body limits, the request's context, and the hand-off to
//! [`App::execute`] (authentication, one transaction, the engine).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::app::{App, Incoming, is_read_only, log_value, panic_message};
use crate::bindings::lms::scim::types::{HttpResponse, RequestContext};

/// Where SCIM is served.
pub const BASE_PATH: &str = "/scim/v2";

/// Any request under the SCIM base: hands it to the engine.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = crate::events::new_id();
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let full_path = parts.uri.path().to_string();

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
    let finish = |outcome: crate::app::Outcome| {
        app.metrics.request(
            outcome.tenant.as_deref().unwrap_or("-"),
            &method,
            log_value(&outcome.response.log, "resource").unwrap_or("-"),
            outcome.response.status,
            started.elapsed().as_secs_f64(),
        );
        to_http(outcome.response, &request_id)
    };
    if path.is_empty() {
        let detail = format!("Not found: SCIM is served under {BASE_PATH}");
        return finish(app.error(None, &context, 404, &detail));
    }
    // Who is asking comes first: nothing is read, queued or run for a
    // request without a valid token, and a tenant past its share of the
    // server waits its turn (off the worker threads) or gets 429.
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok());
    let tenant = match app.authenticate(authorization, &context) {
        Ok(t) => t,
        Err(outcome) => return finish(outcome),
    };
    let _share = match app.gates.admit(tenant.id, tenant.share).await {
        Ok(admitted) => admitted,
        Err(refused) => return finish(app.too_many(&tenant.name, &context, &refused)),
    };

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
            Err(e) => match too_slow(&*e) {
                Some(slow) => (Vec::new(), Some((408, slow.to_string()))),
                None => (
                    Vec::new(),
                    Some((400, format!("Could not read the request body: {e}"))),
                ),
            },
        }
    };
    let query = parts.uri.query().unwrap_or("").to_string();
    let incoming = Incoming {
        method: method.clone(),
        path: path.clone(),
        query,
        headers,
        body,
        context,
        tenant,
        reject,
        started,
    };
    let Ok(_permit) = app.permits.clone().acquire_owned().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    // Held until the transaction has committed or rolled back.
    let _write_turn = if is_read_only(&method) || app.dialect == crate::db::Dialect::Postgres {
        None
    } else {
        Some(app.writers.lock().await)
    };
    // The engine runs right here on the runtime's worker thread: a request
    // is CPU work bounded by the engine's deadline, and handing it to a
    // blocking pool would cost two thread switches per request (`--workers`
    // sets how many requests run at once).
    //
    // A panic in it (in the host, or in a host import the engine called)
    // is caught here and answered with a 500: unwinding dropped the
    // request's connection, and the pool closes a connection that comes
    // back inside a transaction, so nothing of the request stays and no
    // later request inherits its `BEGIN`. Nothing the request shares with
    // others is left half-changed by unwinding (the write turn above is
    // released when this handler returns), hence `AssertUnwindSafe`.
    let (context, tenant) = (incoming.context.clone(), incoming.tenant.clone());
    let outcome =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.execute(incoming))) {
            Ok(outcome) => outcome,
            Err(panic) => app.panicked(context, tenant, &method, panic_message(&*panic), started),
        };
    if tracing::enabled!(tracing::Level::INFO) {
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
    }
    finish(outcome)
}

/// The connection's body deadline, if that is why reading the body failed
/// (it arrives wrapped in the body layers' errors).
fn too_slow<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> Option<&'e super::connections::BodyTooSlow> {
    std::iter::successors(Some(e), |e| e.source()).find_map(|e| e.downcast_ref())
}

/// The headers the engine sees: all but credentials, which the host has
/// already checked and the sandbox has no use for.
fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "authorization" | "proxy-authorization" | "cookie"
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_out_of_the_sandbox() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("cookie", HeaderValue::from_static("s=1"));
        h.insert("if-match", HeaderValue::from_static("W/\"1\""));
        assert_eq!(
            header_list(&h),
            vec![("if-match".to_string(), "W/\"1\"".to_string())]
        );
    }
}
