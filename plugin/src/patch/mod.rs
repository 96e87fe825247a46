//! PATCH (RFC 7644 §3.5.2) with the dialects identity providers send.
//!
//! Accepted beyond the letter of the RFC, because Entra ID and Okta send it:
//! `op` in any case; unknown keys ignored; booleans as strings; path-less
//! values whose keys are attribute paths (`"name.givenName"`, URN-qualified);
//! an `id` equal to the resource's own in a value; value-filter paths that
//! match nothing create the element they describe; `remove` with a `value`
//! list removes only those values (never the whole attribute); `manager` as
//! a bare id or a one-element list; extension attributes without their URN;
//! a `schemas` member inside an extension's value. Every operation applies in order to one working copy; the
//! resource is written once at the end, and any failure fails the request
//! as a whole so the host rolls it back.

mod apply;
mod target;

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::message::{check_schema, field};
use crate::resource::client_attrs;
use crate::schema::ResourceType;
use crate::store::Store;

pub use target::Target;

pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A PATCH operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// One entry of `Operations`.
#[derive(Debug, Clone)]
pub struct Operation {
    pub op: Op,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// Reads a PatchOp message.
pub fn parse_operations(body: &Map<String, Value>) -> ScimResult<Vec<Operation>> {
    check_schema(body, PATCH_OP)?;
    let ops = match field(body, "Operations") {
        Some(Value::Array(ops)) if !ops.is_empty() => ops,
        _ => {
            return Err(ScimError::invalid_syntax(
                "A PATCH request needs a non-empty 'Operations' list",
            ));
        }
    };
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let n = i + 1;
            let Value::Object(op) = op else {
                return Err(ScimError::invalid_syntax(format!(
                    "Operation {n} must be a JSON object"
                )));
            };
            let kind = match field(op, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
            {
                Some(k) if k == "add" => Op::Add,
                Some(k) if k == "replace" => Op::Replace,
                Some(k) if k == "remove" => Op::Remove,
                other => {
                    return Err(ScimError::invalid_syntax(format!(
                        "Operation {n}: 'op' must be add, replace or remove, got {}",
                        other.map_or("nothing".to_string(), |o| format!("'{o}'"))
                    )));
                }
            };
            let path = match field(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(_) => {
                    return Err(ScimError::invalid_path(format!(
                        "Operation {n}: 'path' must be a string"
                    )));
                }
            };
            let value = field(op, "value").cloned();
            if kind != Op::Remove && value.is_none() {
                return Err(ScimError::invalid_value(format!(
                    "Operation {n} ({}) needs a 'value'",
                    if kind == Op::Add { "add" } else { "replace" }
                )));
            }
            if kind == Op::Remove && path.is_none() {
                return Err(ScimError::no_target(format!(
                    "Operation {n}: remove needs a 'path' naming what to remove"
                )));
            }
            Ok(Operation {
                op: kind,
                path,
                value,
            })
        })
        .collect()
}

/// Applies `ops` in order to a working copy of the resource `id` of type
/// `rt` whose stored body is `old`, changing its group's membership rows
/// through `store` as they come; answers the attributes to store. A failing
/// operation fails them all, its detail naming it, and the caller's
/// transaction undoes the membership rows already written.
pub fn apply_all(
    store: &mut dyn Store,
    rt: &'static ResourceType,
    id: &str,
    old: &Value,
    ops: &[Operation],
) -> ScimResult<Map<String, Value>> {
    let mut work = apply::Patch::new(rt, id, client_attrs(old));
    for (i, op) in ops.iter().enumerate() {
        work.apply(store, op).map_err(|mut e| {
            if ops.len() > 1 {
                e.detail = format!("Operation {}: {}", i + 1, e.detail);
            }
            e
        })?;
    }
    work.into_attrs()
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
