//! The LMS side of the contract: a native mirror of the WIT `lms`, `outbox`
//! and `sync-log` interfaces, so provisioning stays plain Rust. The component
//! glue forwards each call to the host; tests use `super::memlms::MemLms`
//! (feature `testing`).

/// What a grant gives, and one assignment with its provenance: the LMS
/// holds what mappers answer.
pub use crate::mapper::{Grant, GrantKind};

/// The source of grants made by hand in the LMS; mapping never revokes them.
pub const MANUAL: &str = "manual";

/// Whether a learner can sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerStatus {
    Active,
    Suspended,
    Removed,
}

/// A learner as the LMS holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnerState {
    pub scim_id: String,
    pub status: LearnerStatus,
    pub grants: Vec<Grant>,
    /// Mapped grants removed by hand in the LMS since mapping made them.
    pub withdrawn: Vec<Grant>,
}

/// The ids a learner is known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnerRef {
    pub scim_id: String,
    pub user_name: String,
    pub external_id: Option<String>,
}

/// The learner's profile, from the SCIM user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub locale: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub manager: Option<String>,
}

/// One idempotent change to a learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Upsert(Profile),
    Suspend,
    Reactivate,
    Remove,
    Grant(Grant),
    Revoke(Grant),
}

/// The effects for one learner, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub learner: LearnerRef,
    pub effects: Vec<Effect>,
}

/// What `DELETE /Users/{id}` does to the learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDelete {
    #[default]
    Suspend,
    Remove,
}

/// What mapping does with a mapped grant removed by hand in the LMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Drift {
    /// Grant it again and record the drift (the default).
    #[default]
    Restore,
    /// Record the drift and leave it removed.
    Report,
}

/// The tenant's provisioning policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub on_delete: OnDelete,
    pub drift: Drift,
    /// Roles a mapping plugin may not grant.
    pub plugin_denied_roles: Vec<String>,
}

/// Background work (see the WIT `outbox`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Every learner holding a grant from this source (queued before 0.6.0
    /// for a renamed group; still drained).
    Source(String),
    /// These users.
    Users(Vec<String>),
    /// Every user (a rules change).
    Everyone,
    /// The members of this group (a renamed group under rules that test
    /// group names).
    Members(String),
    /// The team this group produces, renamed to the group's current name
    /// (a renamed group under a mapping that reads no group names).
    Renamed(String),
}

/// A queued unit of background work and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub work: Work,
    pub cursor: Option<String>,
}

/// Outcome of a recorded action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Success,
    Failure,
    Skipped,
}

/// An attribute before and after, as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeChange {
    pub name: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// One sync-log entry (see the WIT `sync-log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_name: Option<String>,
    pub status: EventStatus,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub changes: Vec<AttributeChange>,
}

pub use crate::mapper::plugin::{PluginInfo, PluginRunner};

/// The LMS could not serve a call; the request rolls back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the LMS is unavailable: {0}")]
pub struct LmsError(pub String);

pub type LmsResult<T> = Result<T, LmsError>;

impl From<LmsError> for crate::error::ScimError {
    /// The LMS could not take the effects: the whole request rolls back.
    fn from(e: LmsError) -> Self {
        crate::error::ScimError::new(503, None, format!("{e}; nothing was changed, retry later"))
    }
}

/// The host's LMS, outbox and sync log, scoped to one tenant and one
/// transaction. Method contracts are documented on the WIT interfaces.
pub trait LmsHost {
    fn learners(&mut self, ids: &[String]) -> LmsResult<Vec<LearnerState>>;
    fn apply(&mut self, changes: Vec<Change>) -> LmsResult<()>;
    fn known(&mut self, kind: GrantKind, names: &[String]) -> LmsResult<Vec<String>>;
    fn policy(&mut self) -> LmsResult<Policy>;
    fn mapping(&mut self) -> LmsResult<Option<String>>;
    fn holders(&mut self, source: &str, after: Option<&str>, limit: u32) -> LmsResult<Vec<String>>;
    fn rename_grants(
        &mut self,
        kind: GrantKind,
        source: &str,
        to: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> LmsResult<Vec<String>>;
    fn enqueue(&mut self, task: Task);
    fn append(&mut self, events: Vec<Event>);
    /// The plugin in force for this call, and a way to run it.
    fn plugin(&mut self) -> Option<(PluginInfo, Box<dyn PluginRunner>)>;
}
