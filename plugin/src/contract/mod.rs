//! Contract suites for the native mirrors of the WIT interfaces the engine
//! imports: one suite per interface, written once against the native trait
//! and run on every implementation the project has, so the in-memory
//! doubles and the host's databases cannot drift apart. The engine's unit
//! tests run them on the doubles; `scim-host`'s tests run them on SQLite and
//! PostgreSQL (through the `contract` feature).
//!
//! A check panics, as a test assertion does, naming what differs.

pub mod lms;
pub mod store;

#[cfg(test)]
mod tests;
