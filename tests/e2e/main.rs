//! End-to-end tests: the real `scim-host` binary with the real engine
//! component, driven over HTTP on a loopback port with a temporary database.

mod support;

mod dialects;
mod discovery;
mod faults;
mod groups;
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
