//! The SCIM 2.0 engine core (RFC 7643, RFC 7644) as a plain Rust library.
//!
//! [`handle`] takes one HTTP request and a [`store::Store`] scoped to the
//! request's tenant and transaction, and returns the SCIM response. The
//! component glue in `plugin/component` exports it through WIT; tests and
//! benchmarks call it natively with [`memstore::MemStore`].

pub mod error;
pub mod filter;
pub mod handlers;
pub mod http;
pub mod memstore;
pub mod message;
pub mod patch;
pub mod path;
pub mod projection;
pub mod provision;
pub mod query;
pub mod resource;
pub mod schema;
pub mod store;
#[cfg(test)]
mod testkit;

pub use error::{ScimError, ScimResult, ScimType};
pub use http::{Context, Request, Response};
pub use provision::{DefaultMapper, LmsHost};
pub use store::Store;

/// Handles one SCIM request against the tenant's store, then provisions
/// the LMS from what it changed (see [`provision`]).
pub fn handle(req: &Request, store: &mut dyn Store, lms: &mut dyn LmsHost) -> Response {
    if matches!(req.method.as_str(), "GET" | "HEAD") {
        return handlers::handle(req, store);
    }
    let mut rec = provision::record::Recorder::new(store);
    let resp = handlers::handle(req, &mut rec);
    if resp.status >= 400 {
        return resp;
    }
    let writes = rec.into_writes();
    if writes.is_empty() {
        return resp;
    }
    let set = provision::changes::ChangeSet::fold(writes);
    match provision::sync::after_writes(&set, store, lms, &DefaultMapper) {
        Ok(()) => resp,
        Err(e) => Response::from(e),
    }
}

/// Runs one batch of a background re-mapping task; the cursor to continue
/// from, or `None` when the task is done.
pub fn drain(
    task: &provision::host::Task,
    batch: u32,
    store: &mut dyn Store,
    lms: &mut dyn LmsHost,
) -> ScimResult<Option<String>> {
    provision::sync::drain(task, batch, store, lms, &DefaultMapper)
}

/// A SCIM Error response for a failure detected outside [`handle`] (bad
/// credentials, oversized body, a trapped or timed-out request).
pub fn error_response(status: u16, detail: &str) -> Response {
    Response::from(ScimError::new(status, None, detail))
}
