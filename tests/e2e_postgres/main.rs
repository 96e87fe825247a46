//! The end-to-end suite with every server on PostgreSQL: each test's
//! server gets a database of its own in a throwaway cluster that this test
//! process starts under the target directory and stops when it exits
//! (`tests/support/postgres.rs`). The same modules as `tests/e2e` run here
//! with [`POSTGRES`] set, plus what only several replicas can show
//! ([`replicas`]).

#[path = "../e2e/support.rs"]
mod support;

/// Read by `support::postgres_backend`: every server here is on PostgreSQL.
pub const POSTGRES: bool = true;

#[path = "../e2e/alerts.rs"]
mod alerts;
#[path = "../e2e/console_api.rs"]
mod console_api;
#[path = "../e2e/dialects.rs"]
mod dialects;
#[path = "../e2e/discovery.rs"]
mod discovery;
#[path = "../e2e/faults.rs"]
mod faults;
#[path = "../e2e/groups.rs"]
mod groups;
#[path = "../e2e/jobs.rs"]
mod jobs;
#[path = "../e2e/lms.rs"]
mod lms;
#[path = "../e2e/mapper.rs"]
mod mapper;
#[path = "../e2e/mapper_python.rs"]
mod mapper_python;
#[path = "../e2e/mapper_wasi.rs"]
mod mapper_wasi;
#[path = "../e2e/mapping.rs"]
mod mapping;
#[path = "../e2e/neighbours.rs"]
mod neighbours;
#[path = "../e2e/operations.rs"]
mod operations;
#[path = "../e2e/protocol.rs"]
mod protocol;
#[path = "../e2e/query.rs"]
mod query;
#[path = "../e2e/users.rs"]
mod users;
#[path = "../e2e/writes.rs"]
mod writes;

mod outage;
mod replicas;
mod schema;
