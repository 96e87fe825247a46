//! One sync-log event as the host records it: the row an import or the
//! host writes, and the stamp every event of a request or batch shares.
//! Below both `events` (which stores and reads them) and `alerts` (which
//! raises alerts from them).

/// The resource type of learner events.
pub const LEARNER: &str = "Learner";

/// One event before the host stamps it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: Option<String>,
    /// `success`, `failure` or `skipped`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// Attribute name, old and new value, each as JSON text.
    pub changes: Vec<(String, Option<String>, Option<String>)>,
}

/// What every event of one request or batch shares.
#[derive(Debug, Clone, Default)]
pub struct Stamp {
    pub request_id: String,
    pub change_id: String,
    pub duration_us: u64,
}

/// A new request or change id: the time in milliseconds, then 32 random
/// bits, in hex. Later ids sort later, so the sync log's indexes on them
/// grow at their end as the log does, not at random places.
pub fn new_id() -> String {
    let ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    format!(
        "{:012x}{:08x}",
        (ms as u64) & 0xffff_ffff_ffff,
        rand::random::<u32>()
    )
}
