//! What the service provider supports (RFC 7643 §5): one set of figures
//! that `/ServiceProviderConfig` advertises and the request parsers and
//! handlers enforce, kept beside the schema so that both read it from
//! below rather than from each other.

/// What the engine supports, advertised in `/ServiceProviderConfig` and
/// enforced by the handlers.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    pub patch: bool,
    pub bulk: bool,
    pub bulk_max_operations: u64,
    pub sort: bool,
    pub etag: bool,
    pub max_results: u64,
    pub default_page_size: u64,
}

pub const CAPABILITIES: Capabilities = Capabilities {
    patch: true,
    bulk: true,
    bulk_max_operations: 1000,
    sort: true,
    etag: true,
    max_results: 1000,
    default_page_size: 100,
};
