//! `If-Match` / `If-None-Match` (RFC 7644 §3.14, RFC 9110 §13) against the
//! stored version.

use crate::error::{ScimError, ScimResult};
use crate::http::Request;
use crate::resource::{etag, parse_etag};

/// Checks `If-Match` for a write. Returns the version the store must still
/// hold when the write happens, so a concurrent writer cannot slip in between.
pub fn if_match(req: &Request, current: u64) -> ScimResult<Option<u64>> {
    let Some(header) = req.header("if-match") else {
        return Ok(None);
    };
    if header.trim() == "*" {
        return Ok(Some(current));
    }
    if header
        .split(',')
        .filter_map(parse_etag)
        .any(|v| v == current)
    {
        Ok(Some(current))
    } else {
        Err(ScimError::precondition_failed(format!(
            "If-Match {} does not match the current version {}",
            header.trim(),
            etag(current)
        )))
    }
}

/// Whether `If-None-Match` names the current version (answer 304).
pub fn not_modified(req: &Request, current: u64) -> bool {
    req.header("if-none-match").is_some_and(|h| {
        h.trim() == "*" || h.split(',').filter_map(parse_etag).any(|v| v == current)
    })
}
