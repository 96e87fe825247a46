//! The SCIM 2.0 engine core (RFC 7643, RFC 7644) as a plain Rust library.
//!
//! [`handle`] takes one HTTP request and a [`store::Store`] scoped to the
//! request's tenant and transaction, and returns the SCIM response. The
//! component glue in `plugin/component` exports it through WIT; tests and
//! benchmarks call it natively with the in-memory `memstore::MemStore`
//! (feature `testing`).

pub mod ambient;
#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod error;
pub mod filter;
pub mod handlers;
pub mod http;
pub mod mapper;
pub mod mapping;
#[cfg(any(test, feature = "testing"))]
pub mod memstore;
pub mod message;
pub mod patch;
pub mod path;
pub mod projection;
pub mod provision;
pub mod query;
pub mod resource;
pub mod rules;
pub mod schema;
pub mod store;
#[cfg(test)]
mod strategies;
#[cfg(test)]
mod testkit;

pub use error::{ScimError, ScimResult, ScimType};
pub use http::{Context, Request, Response};
pub use mapper::DefaultMapper;
pub use provision::LmsHost;
pub use store::Store;

/// Handles one SCIM request against the tenant's store, then provisions
/// the LMS from what it changed (see [`provision`]).
pub fn handle(req: &Request, store: &mut dyn Store, lms: &mut dyn LmsHost) -> Response {
    if matches!(req.method.as_str(), "GET" | "HEAD") || cfg!(feature = "bench-skip-provisioning") {
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
    let done = mapping::installed(lms)
        .and_then(|mapper| provision::sync::after_writes(&set, store, lms, mapper.as_ref()));
    match done {
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
    let mapper = mapping::installed(lms)?;
    provision::sync::drain(task, batch, store, lms, mapper.as_ref())
}

/// What checking a rules document found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Rules in the document (0 when it does not parse).
    pub rules: u32,
    /// Errors (the document is refused) and warnings, in document order.
    pub diagnostics: Vec<rules::Diagnostic>,
    /// The document as compact JSON, for the host to store and hand back
    /// through `lms.mapping` (quicker to read); `None` when invalid.
    pub normalized: Option<String>,
}

impl CheckReport {
    /// Whether the document can be installed.
    pub fn valid(&self) -> bool {
        self.diagnostics
            .iter()
            .all(|d| d.severity != rules::Severity::Error)
    }
}

/// Checks a rules document; with an LMS, also that the roles and learning
/// paths it names exist in the catalogue (warnings: such grants are skipped).
pub fn check_mapping(text: &str, lms: Option<&mut dyn LmsHost>) -> ScimResult<CheckReport> {
    let parsed = match rules::parse(text) {
        Ok(r) => r,
        Err(diagnostics) => {
            return Ok(CheckReport {
                rules: 0,
                diagnostics,
                normalized: None,
            });
        }
    };
    let mut diagnostics = Vec::new();
    if let Some(lms) = lms {
        use mapper::GrantKind;
        for kind in [GrantKind::Role, GrantKind::LearningPath] {
            let names: Vec<String> = parsed.named(kind).into_iter().map(|(n, _)| n).collect();
            if names.is_empty() {
                continue;
            }
            let known = lms.known(kind, &names)?;
            diagnostics.extend(parsed.catalogue_warnings(text, kind, &known));
        }
    }
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Ok(CheckReport {
        rules: parsed.len() as u32,
        diagnostics,
        normalized: rules::normalized(text),
    })
}

/// One page of a preview of `choice` over the tenant's users.
pub fn preview_mapping(
    choice: &mapping::Choice,
    after: Option<&str>,
    limit: u32,
    store: &mut dyn Store,
    lms: &mut dyn LmsHost,
) -> ScimResult<mapping::PreviewPage> {
    let mapper = mapping::chosen(choice, lms)?;
    mapping::preview(mapper.as_ref(), after, limit, store, lms)
}

/// Explains one user's mapping under `choice` (JSON; see the README).
pub fn explain_mapping(
    choice: &mapping::Choice,
    user_id: &str,
    store: &mut dyn Store,
    lms: &mut dyn LmsHost,
) -> ScimResult<serde_json::Value> {
    let mapper = mapping::chosen(choice, lms)?;
    mapping::explain(mapper.as_ref(), user_id, store, lms)
}

/// A SCIM Error response for a failure detected outside [`handle`] (bad
/// credentials, oversized body, a trapped or timed-out request).
pub fn error_response(status: u16, detail: &str) -> Response {
    Response::from(ScimError::new(status, None, detail))
}
