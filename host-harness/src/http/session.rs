//! The admin console's sessions: the admin token is exchanged once, at
//! sign-in, for an HttpOnly cookie, so the token never sits in the page.
//! `/admin/v1/session` signs in, reads and ends a session; [`guard`] is the
//! one place that protects the cookie's writes against cross-site requests
//! (CSRF token and `Origin`), for every `/admin/v1` endpoint at once.
//!
//! Sessions are rows of `admin_sessions` (the hash of the cookie's value),
//! so every replica honours them; the sign-in throttle is in memory, per
//! replica.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::api::{ApiError, COOKIE, Reply, cookie, db_error, error};
use crate::app::{App, bearer, is_read_only};
use crate::db::{self, Session, TokenKind};

/// The header a session's writes echo its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Failed sign-ins one address may make per [`THROTTLE_WINDOW`].
const MAX_FAILED_SIGN_INS: u32 = 10;
const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses the throttle remembers before it forgets stale ones.
const THROTTLE_ADDRESSES: usize = 4096;

/// What the session endpoints share across requests: whether the server
/// speaks TLS (the cookie is then `Secure`) and the sign-in throttle.
pub struct Sessions {
    secure: bool,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Sessions {
    pub fn new(secure: bool) -> Self {
        Sessions {
            secure,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `addr` may try again, when it failed too often.
    fn blocked(&self, addr: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (since, n) = failures.get(&addr)?;
        let left = THROTTLE_WINDOW.checked_sub(since.elapsed())?;
        (*n >= MAX_FAILED_SIGN_INS).then(|| left.as_secs().max(1))
    }

    fn failed(&self, addr: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= THROTTLE_ADDRESSES && !failures.contains_key(&addr) {
            failures.retain(|_, (since, _)| since.elapsed() < THROTTLE_WINDOW);
            // Still full (many addresses failing at once): the oldest goes,
            // so the map stays bounded.
            if failures.len() >= THROTTLE_ADDRESSES
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (since, _))| *since)
                    .map(|(a, _)| *a)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(addr).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= THROTTLE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    /// The `Set-Cookie` of a new session, or of its end (`None`).
    pub(crate) fn cookie(&self, value: Option<&str>) -> HeaderValue {
        let (value, age) = match value {
            Some(v) => (v, db::SESSION_SECONDS),
            None => ("", 0),
        };
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age={age}{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("scim_admin=; Path=/admin; Max-Age=0"))
    }
}

fn has_bearer(headers: &HeaderMap) -> bool {
    bearer(headers.get("authorization").and_then(|h| h.to_str().ok())).is_some()
}

/// Protects the session cookie's writes, on every `/admin/v1` route.
///
/// A request with a bearer token passes untouched: a cross-site page cannot
/// set `Authorization`. Any other write must, when it carries an `Origin`,
/// come from this server's own origin (this covers sign-in too), and a
/// write that carries a live session's cookie must echo the session's CSRF
/// token in `X-CSRF-Token`. A refused request reaches no handler, so
/// nothing happens. A cookie that names no live session passes: the
/// handler answers 401 (or, for sign-out, ends nothing).
pub async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if is_read_only(req.method().as_str()) || has_bearer(headers) {
        return next.run(req).await;
    }
    if let Some(origin) = headers.get("origin")
        && !same_origin(&app, origin, headers.get("host"))
    {
        return error(
            StatusCode::FORBIDDEN,
            "Cross-origin write refused: the request's Origin is not this server's",
        )
        .into_response();
    }
    let sign_in = req.method() == axum::http::Method::POST
        && matches!(req.uri().path(), "/session" | "/admin/v1/session");
    if let Some(value) = cookie(headers)
        && !sign_in
    {
        let session = match app.pool.get() {
            Ok(conn) => db::session(&conn, value),
            Err(e) => return db_error(e).into_response(),
        };
        match session {
            Ok(Some(session)) => {
                let given = headers
                    .get(CSRF_HEADER)
                    .map(|h| h.as_bytes())
                    .unwrap_or_default();
                if !bool::from(given.ct_eq(session.csrf.as_bytes())) {
                    return error(
                        StatusCode::FORBIDDEN,
                        "A write with the session cookie must carry the session's CSRF token in \
                         'X-CSRF-Token' (GET /admin/v1/session answers it)",
                    )
                    .into_response();
                }
            }
            Ok(None) => {}
            Err(e) => return db_error(e).into_response(),
        }
    }
    next.run(req).await
}

/// Whether `Origin` names the server the request was sent to: its `Host`,
/// or the configured public URL's origin.
fn same_origin(app: &App, origin: &HeaderValue, host: Option<&HeaderValue>) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // `null`, from a sandboxed frame or a file
    };
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let matches = |candidate: &str| {
        let candidate = candidate.trim().to_ascii_lowercase();
        candidate == authority || candidate == format!("{authority}:{default_port}")
    };
    if host.and_then(|h| h.to_str().ok()).is_some_and(matches) {
        return true;
    }
    app.public_url.as_deref().is_some_and(|url| {
        let url = url.to_ascii_lowercase();
        url.split_once("://").is_some_and(|(s, rest)| {
            s == scheme && matches(rest.split('/').next().unwrap_or_default())
        })
    })
}

fn session_json(s: &Session) -> Value {
    json!({"tenant": s.tenant.name, "csrf": s.csrf, "expires": s.expires})
}

fn signed_out() -> ApiError {
    error(
        StatusCode::UNAUTHORIZED,
        "No session: sign in with POST /admin/v1/session {\"token\": \"<admin token>\"}",
    )
}

/// `POST /admin/v1/session {"token": "<admin token>"}`: signs in.
pub async fn sign_in(
    State(app): State<Arc<App>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<Value>, JsonRejection>,
) -> Reply {
    let addr = peer.ip();
    if let Some(secs) = sessions.blocked(addr) {
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many failed sign-ins from this address; retry in {secs} s"),
        )
        .retry_after(secs));
    }
    let token = body
        .ok()
        .and_then(|Json(b)| b.get("token").and_then(Value::as_str).map(str::to_string))
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "Send the admin token as JSON: {\"token\": \"<admin token>\"}",
            )
        })?;
    let conn = app.pool.get().map_err(db_error)?;
    let Some(tenant) = db::authenticate(&conn, TokenKind::Admin, token.trim()).map_err(db_error)?
    else {
        sessions.failed(addr);
        tracing::warn!(%addr, "console sign-in refused: not an admin token");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "That is not an admin token (the identity provider's SCIM token does not open the \
             console); see `scim-host tenant rotate-token --admin`",
        ));
    };
    let (value, session) = {
        let _turn = app.writers.lock().await;
        db::start_session(&conn, &tenant).map_err(db_error)?
    };
    tracing::info!(%addr, tenant = %tenant.name, "console sign-in");
    let mut r = (StatusCode::CREATED, Json(session_json(&session))).into_response();
    r.headers_mut()
        .insert("set-cookie", sessions.cookie(Some(&value)));
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /admin/v1/session`: the session the cookie names, with its CSRF
/// token (the console reads it after a reload).
pub async fn current(State(app): State<Arc<App>>, headers: HeaderMap) -> Reply {
    let value = cookie(&headers).ok_or_else(signed_out)?;
    let conn = app.pool.get().map_err(db_error)?;
    let session = db::session(&conn, value)
        .map_err(db_error)?
        .ok_or_else(signed_out)?;
    let mut r = Json(session_json(&session)).into_response();
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `DELETE /admin/v1/session`: signs out (the row goes, the cookie
/// expires). Signing out of an ended session is not an error.
pub async fn sign_out(
    State(app): State<Arc<App>>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
) -> Reply {
    if let Some(value) = cookie(&headers) {
        let conn = app.pool.get().map_err(db_error)?;
        let _turn = app.writers.lock().await;
        db::end_session(&conn, value).map_err(db_error)?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert("set-cookie", sessions.cookie(None));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_static("a=1; scim_admin=abc ; b=2"),
        );
        assert_eq!(cookie(&h), Some("abc"));
        h.insert("cookie", HeaderValue::from_static("scim_admin="));
        assert_eq!(cookie(&h), None);
    }

    #[test]
    fn an_address_is_throttled_after_ten_failures_only() {
        let s = Sessions::new(false);
        let a = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..MAX_FAILED_SIGN_INS - 1 {
            s.failed(a);
        }
        assert_eq!(s.blocked(a), None);
        s.failed(a);
        assert!(s.blocked(a).is_some_and(|secs| (1..=60).contains(&secs)));
        assert_eq!(s.blocked(IpAddr::from([10, 0, 0, 2])), None);
    }

    #[test]
    fn the_throttle_remembers_a_bounded_number_of_addresses() {
        let s = Sessions::new(false);
        for i in 0..(THROTTLE_ADDRESSES as u32 + 100) {
            s.failed(IpAddr::from(i.to_be_bytes()));
        }
        let remembered = s.failures.lock().unwrap().len();
        assert_eq!(remembered, THROTTLE_ADDRESSES);
        // An address that keeps failing is still counted.
        let a = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..MAX_FAILED_SIGN_INS {
            s.failed(a);
        }
        assert!(s.blocked(a).is_some());
    }

    #[test]
    fn the_cookie_is_secure_over_tls_only() {
        let plain = Sessions::new(false).cookie(Some("v"));
        assert_eq!(
            plain,
            "scim_admin=v; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=28800"
        );
        let tls = Sessions::new(true).cookie(None);
        assert_eq!(
            tls,
            "scim_admin=; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=0; Secure"
        );
    }
}
