//! The WIT interfaces the host provides to the engine, one module each, all
//! implemented on [`SqlStore`]: one tenant, one transaction.

mod lms;
mod outbox;
pub mod plugin;
pub mod store;
mod sync_log;

pub use store::{Journal, SqlStore};
