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
pub mod query;
pub mod resource;
pub mod schema;
pub mod store;
#[cfg(test)]
mod testkit;

pub use error::{ScimError, ScimResult, ScimType};
pub use http::{Context, Request, Response};
pub use store::Store;

/// Handles one SCIM request against the tenant's store.
pub fn handle(req: &Request, store: &mut dyn Store) -> Response {
    handlers::handle(req, store)
}

/// A SCIM Error response for a failure detected outside [`handle`] (bad
/// credentials, oversized body, a trapped or timed-out request).
pub fn error_response(status: u16, detail: &str) -> Response {
    Response::from(ScimError::new(status, None, detail))
}
