//! Provisioning the LMS: after a request's SCIM writes succeed, the users
//! they affected are mapped to learners, roles, teams and learning paths,
//! and the difference is applied through the host's LMS.
//!
//! [`record::Recorder`] is the one write path that notes what changed;
//! [`changes`] folds the note and describes it for the sync log;
//! a [`crate::mapper`] says what each user should hold; [`sync`] diffs that against
//! the LMS and applies it, suspensions first, and queues large re-mappings
//! in the outbox.

pub mod changes;
pub mod host;
#[cfg(any(test, feature = "testing"))]
pub mod memlms;
pub mod record;
pub mod sync;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use host::LmsHost;
