//! A refusal of mapping work (`mapping::Refusal`) as the admin API answers
//! it: in the response of the request, or in the record of its job.

use axum::http::StatusCode;
use serde_json::json;

use super::api::{ApiError, error};
use crate::mapping::Refusal;

/// A refusal's status, detail and further members, as the admin API
/// answers it (and a job records it).
pub(super) fn refusal_parts(r: Refusal) -> (StatusCode, String, Option<serde_json::Value>) {
    let detail = r.to_string();
    match r {
        Refusal::Invalid(report) => (
            StatusCode::BAD_REQUEST,
            detail,
            Some(json!({"check": report})),
        ),
        Refusal::NeedsConfirmation { preview, threshold } => (
            StatusCode::CONFLICT,
            detail,
            Some(json!({"threshold": threshold, "preview": preview})),
        ),
        Refusal::Engine { status, .. } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            detail,
            None,
        ),
        Refusal::Cancelled => (StatusCode::CONFLICT, detail, None),
        Refusal::Internal(e) => {
            tracing::error!(error = %e, "admin mapping work failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable; retry later".into(),
                None,
            )
        }
    }
}

pub(super) fn refusal(r: Refusal) -> ApiError {
    let (status, detail, extra) = refusal_parts(r);
    let e = error(status, detail);
    match extra {
        Some(extra) => e.with(extra),
        None => e,
    }
}
