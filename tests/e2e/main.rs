//! End-to-end tests: the real `scim-host` binary with the real engine
//! component, driven over HTTP on a loopback port with a temporary database.

// Shared with `e2e_postgres` and `alone`, which use parts this suite does
// not (replicas, for one).
#[allow(dead_code)]
mod support;

/// Whether every server of this suite runs on PostgreSQL (the
/// `e2e_postgres` target includes these modules with `true`); otherwise
/// `SCIM_TEST_BACKEND=postgres` chooses it.
pub const POSTGRES: bool = false;

mod alerts;
mod console_api;
mod crashes;
mod dialects;
mod discovery;
mod faults;
mod groups;
mod hostile;
mod jobs;
mod lms;
mod mapper;
mod mapper_python;
mod mapper_wasi;
mod mapping;
mod neighbours;
mod operations;
mod protocol;
mod query;
mod users;
mod writes;
