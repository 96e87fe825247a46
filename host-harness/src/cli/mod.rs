//! Command groups of `scim-host` that have grown their own module.

pub mod alerts;
pub mod backup;
pub mod catalogue;
pub mod mapper;
pub mod mapping;
