//! Group membership through the host's relation: resolving member values to
//! documents, and changing only the rows that change. Every membership write
//! of the engine (POST, PUT, PATCH, Bulk) goes through this module.

use std::collections::HashSet;

use crate::error::{ScimError, ScimResult};
use crate::resource::normalize::MemberInput;
use crate::resource::{assemble, client_attrs, created, now, render::parse_body, to_new_document};
use crate::schema::{GROUP_TYPE, ResourceType, USER_TYPE};
use crate::store::{MemberRef, Store, StoreError};

/// Resolves member inputs to stored documents of the tenant. A `type` given
/// by the client is trusted and checked by the host; without one the value
/// is looked up as a User, then as a Group.
pub fn resolve(
    store: &mut dyn Store,
    group_id: &str,
    inputs: &[MemberInput],
) -> ScimResult<Vec<MemberRef>> {
    if let Some(m) = inputs.iter().find(|m| m.value == group_id) {
        return Err(ScimError::invalid_value(format!(
            "A group cannot be a member of itself ('{}')",
            m.value
        )));
    }
    let mut refs: Vec<MemberRef> = Vec::with_capacity(inputs.len());
    let mut untyped: Vec<String> = Vec::new();
    for m in inputs {
        match &m.kind {
            Some(kind) => refs.push(MemberRef {
                id: m.value.clone(),
                kind: kind.clone(),
            }),
            None => untyped.push(m.value.clone()),
        }
    }
    for rt in [&USER_TYPE, &GROUP_TYPE] {
        if untyped.is_empty() {
            break;
        }
        let found: HashSet<String> = store
            .get_many(rt.name, &untyped)?
            .into_iter()
            .map(|d| d.id)
            .collect();
        untyped.retain(|id| {
            let hit = found.contains(id);
            if hit {
                refs.push(MemberRef {
                    id: id.clone(),
                    kind: rt.name.to_string(),
                });
            }
            !hit
        });
    }
    if !untyped.is_empty() {
        return Err(missing(&untyped));
    }
    Ok(refs)
}

/// How many unknown member ids an error names; the rest are counted.
const NAMED_MISSING: usize = 20;

fn missing(ids: &[String]) -> ScimError {
    let named = ids[..ids.len().min(NAMED_MISSING)].join(", ");
    let more = match ids.len().saturating_sub(NAMED_MISSING) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    ScimError::invalid_value(format!(
        "Members must be existing Users or Groups of this tenant; not found: {named}{more}"
    ))
}

/// Maps the host's `missing` to the SCIM error clients understand.
pub fn store_err(e: StoreError) -> ScimError {
    match e {
        StoreError::Missing(ids) => missing(&ids),
        other => other.into(),
    }
}

/// Adds members; returns the ids newly added.
pub fn add(store: &mut dyn Store, group: &str, refs: &[MemberRef]) -> ScimResult<Vec<String>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    store
        .members_add(GROUP_TYPE.name, group, refs)
        .map_err(store_err)
}

/// Removes members by id; absent ids are ignored. Returns the ids removed.
pub fn remove(store: &mut dyn Store, group: &str, ids: &[String]) -> ScimResult<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store.members_remove(GROUP_TYPE.name, group, ids)?)
}

/// Removes every member.
pub fn clear(store: &mut dyn Store, group: &str) -> ScimResult<bool> {
    Ok(store.members_clear(GROUP_TYPE.name, group)? > 0)
}

/// Makes the membership exactly `refs`: reads the current members once and
/// writes only the difference.
pub fn replace_all(store: &mut dyn Store, group: &str, refs: &[MemberRef]) -> ScimResult<bool> {
    if refs.is_empty() {
        return clear(store, group);
    }
    let wanted: HashSet<&str> = refs.iter().map(|r| r.id.as_str()).collect();
    let current: HashSet<String> = store
        .members_all(GROUP_TYPE.name, group)?
        .into_iter()
        .map(|e| e.id)
        .collect();
    let remove: Vec<String> = current
        .iter()
        .filter(|id| !wanted.contains(id.as_str()))
        .cloned()
        .collect();
    let add_refs: Vec<MemberRef> = refs
        .iter()
        .filter(|r| !current.contains(&r.id))
        .cloned()
        .collect();
    self::remove(store, group, &remove)?;
    add(store, group, &add_refs)?;
    Ok(!remove.is_empty() || !add_refs.is_empty())
}

/// Bumps `meta.lastModified` and the version of every group that directly
/// contains `member` (its membership is about to change).
pub fn touch_parents(store: &mut dyn Store, member: &str) -> ScimResult<()> {
    for g in store.groups_of_one(GROUP_TYPE.name, member)? {
        touch(store, &GROUP_TYPE, &g.id)?;
    }
    Ok(())
}

/// Rewrites a resource with a new `meta.lastModified`, bumping its version.
pub fn touch(store: &mut dyn Store, rt: &ResourceType, id: &str) -> ScimResult<()> {
    let Some(doc) = store.get(rt.name, id)? else {
        return Ok(());
    };
    let body = parse_body(&doc)?;
    let fresh = assemble(rt, id, client_attrs(&body), &created(&body), &now());
    store.replace(rt.name, to_new_document(rt, id, &fresh), None)?;
    Ok(())
}
