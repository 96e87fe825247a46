//! End-to-end tests that measure the server's own resources (the size of
//! its write-ahead log): they run in a binary of their own, after the other
//! end-to-end tests, so that dozens of servers starting and stopping beside
//! them do not starve the background checkpointer they observe.

/// Read by `support::postgres_backend`: servers here use SQLite unless
/// `SCIM_TEST_BACKEND=postgres`.
pub const POSTGRES: bool = false;

// Shared with the main end-to-end suite, of which this binary uses a part.
#[allow(dead_code)]
#[path = "../e2e/support.rs"]
mod support;

mod wal;

#[path = "../mappers/hostile.rs"]
mod hostile;

mod uploads;

mod pg_cluster;

mod storage;
