//! What every admin API handler shares, whichever module routes it: the
//! refusal it answers with (`ApiError`) and the check of the admin token or
//! console session.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::{App, bearer};
use crate::db::{self, Conn, Tenant, TokenKind};

/// The 500 of an admin request that failed inside the server.
pub(crate) fn internal_error() -> ApiError {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The request failed inside the server; nothing was changed",
    )
}

/// A refused admin request: its status and a detail for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    /// More members of the error body (diagnostics, a preview).
    extra: Option<Value>,
    /// Seconds for `Retry-After` (429, 503).
    retry_after: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"status": self.status.as_u16(), "detail": self.detail});
        if let (Some(Value::Object(extra)), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.extend(extra);
        }
        let mut r = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer realm=\"admin\""),
            );
        }
        r
    }
}

/// The `limit` query parameter of a listing: `default` when absent,
/// otherwise a number from 1 to `max`, or a detail saying so.
pub(crate) fn limit_param(
    params: &std::collections::HashMap<String, String>,
    default: u32,
    max: u32,
) -> Result<u32, String> {
    match params.get("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| format!("'limit' must be a number from 1 to {max}, not '{l}'")),
    }
}

pub(crate) fn error(status: StatusCode, detail: impl Into<String>) -> ApiError {
    ApiError {
        status,
        detail: detail.into(),
        extra: None,
        retry_after: None,
    }
}

impl ApiError {
    pub(crate) fn with(mut self, extra: Value) -> Self {
        self.extra = Some(extra);
        self
    }

    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

pub(crate) type Reply = Result<Response, ApiError>;

/// The session cookie's name.
pub const COOKIE: &str = "scim_admin";

/// The value of the session cookie a request carries.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The tenant whose admin token the request carries, or whose console
/// session its cookie names, and a connection. A bearer token wins over a
/// cookie. The cookie's writes were checked for CSRF before any handler ran
/// (`session::guard`).
pub(crate) fn authenticate(app: &App, headers: &HeaderMap) -> Result<(Tenant, Conn), ApiError> {
    let header = headers.get("authorization").and_then(|h| h.to_str().ok());
    let token = bearer(header);
    let cookie = cookie(headers);
    if token.is_none() && cookie.is_none() {
        return Err(unauthorized(
            "Authentication required: send 'Authorization: Bearer <admin token>', \
             or sign in to the console at /admin",
        ));
    }
    let conn = app.pool.get().map_err(|_| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable; retry later",
        )
    })?;
    let found = match (token, cookie) {
        (Some(token), _) => db::authenticate(&conn, TokenKind::Admin, token),
        (None, Some(cookie)) => db::session(&conn, cookie).map(|s| s.map(|s| s.tenant)),
        (None, None) => Ok(None),
    };
    match found {
        Ok(Some(t)) => Ok((t, conn)),
        Ok(None) if token.is_none() => Err(unauthorized(
            "The console session has ended or expired; sign in again",
        )),
        Ok(None) => Err(unauthorized(
            "The token is not an admin token (the identity provider's SCIM token does not open the admin API); \
             see `scim-host tenant rotate-token --admin`",
        )),
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable; retry later",
        )),
    }
}

fn unauthorized(detail: &str) -> ApiError {
    error(StatusCode::UNAUTHORIZED, detail)
}

pub(crate) fn db_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "admin API database error");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The database is unavailable; retry later",
    )
}
