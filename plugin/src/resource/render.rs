//! Rendering a stored resource as a SCIM response body: `meta.location` and
//! `meta.version`, the membership relation as `members` or `groups` when the
//! projection asks for it, then the projection itself.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::error::{ScimError, ScimResult};
use crate::projection::Projection;
use crate::schema::{GROUP_TYPE, Relation, ResourceType};
use crate::store::{Document, MemberEntry, Store};

use super::{etag, location, type_of_kind, verbatim};

/// Parses a stored body.
pub fn parse_body(doc: &Document) -> ScimResult<Value> {
    serde_json::from_str(&doc.body).map_err(|e| {
        ScimError::internal(format!("Stored resource {} is not valid JSON: {e}", doc.id))
    })
}

/// The response body for a stored resource.
pub fn render(
    store: &mut dyn Store,
    base_url: &str,
    rt: &ResourceType,
    doc: &Document,
    projection: &Projection,
) -> ScimResult<Value> {
    let mut body = parse_body(doc)?;
    render_value(store, base_url, rt, doc, &mut body, projection)?;
    Ok(body)
}

/// The response body under the default projection (no `attributes` or
/// `excludedAttributes`): copied from the stored JSON when
/// [`verbatim::default_view`] can, rendered as [`render`] does otherwise.
pub fn render_default(
    store: &mut dyn Store,
    base_url: &str,
    rt: &ResourceType,
    doc: &Document,
) -> ScimResult<Vec<u8>> {
    let relation = relation_values(store, base_url, rt, &doc.id)?;
    let copied = verbatim::default_view(
        &doc.body,
        rt,
        &relation,
        &location(base_url, rt, &doc.id),
        &etag(doc.version),
    );
    if let Some(body) = copied {
        return Ok(body);
    }
    let mut body = parse_body(doc)?;
    if let Value::Object(map) = &mut body {
        let name = rt.relation_attribute().name;
        if !map.contains_key(name) {
            map.insert(name.into(), Value::Array(relation));
        }
    }
    render_value(store, base_url, rt, doc, &mut body, &Projection::all())?;
    serde_json::to_vec(&body).map_err(|e| ScimError::internal(e.to_string()))
}

/// Like [`render`], for a body the caller already parsed.
pub fn render_value(
    store: &mut dyn Store,
    base_url: &str,
    rt: &ResourceType,
    doc: &Document,
    body: &mut Value,
    projection: &Projection,
) -> ScimResult<()> {
    let Value::Object(map) = body else {
        return Err(ScimError::internal("Stored resource is not an object"));
    };
    let meta = map.remove("meta").unwrap_or_else(|| json!({}));
    let relation = rt.relation_attribute();
    if projection.wants(rt.schema, relation) && !map.contains_key(relation.name) {
        let values = relation_values(store, base_url, rt, &doc.id)?;
        map.insert(relation.name.into(), Value::Array(values));
    }
    // An empty relation (also one a caller prefetched) is not shown.
    if map
        .get(relation.name)
        .is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
    {
        map.remove(relation.name);
    }
    map.insert("meta".into(), meta);
    complete_meta(base_url, rt, doc, body);
    projection.apply(rt, body);
    Ok(())
}

/// Adds the computed `meta.location` and `meta.version`.
pub fn complete_meta(base_url: &str, rt: &ResourceType, doc: &Document, body: &mut Value) {
    let Value::Object(map) = body else { return };
    let meta = map.entry("meta").or_insert_with(|| json!({}));
    if let Value::Object(meta) = meta {
        meta.insert("location".into(), json!(location(base_url, rt, &doc.id)));
        meta.insert("version".into(), json!(etag(doc.version)));
    }
}

/// The relation as attribute values: a group's `members` or a user's `groups`.
pub fn relation_values(
    store: &mut dyn Store,
    base_url: &str,
    rt: &ResourceType,
    id: &str,
) -> ScimResult<Vec<Value>> {
    match rt.relation {
        Relation::Members => members(store, base_url, rt, id),
        Relation::Groups => groups(store, base_url, id),
    }
}

fn member_json(base_url: &str, e: &MemberEntry, kind_field: &str) -> Value {
    let mut m = Map::new();
    m.insert("value".into(), json!(e.id));
    if let Some(rt) = type_of_kind(&e.kind) {
        m.insert("$ref".into(), json!(location(base_url, rt, &e.id)));
    }
    if let Some(l) = &e.label {
        m.insert("display".into(), json!(l));
    }
    m.insert("type".into(), json!(kind_field));
    Value::Object(m)
}

/// A group's `members`, read from the relation.
fn members(
    store: &mut dyn Store,
    base_url: &str,
    rt: &ResourceType,
    id: &str,
) -> ScimResult<Vec<Value>> {
    Ok(store
        .members_all(rt.name, id)?
        .iter()
        .map(|e| member_json(base_url, e, &e.kind))
        .collect())
}

/// A user's `groups`: direct memberships, then groups reached through nested
/// groups as `indirect` (RFC 7643 §4.1.2).
fn groups(store: &mut dyn Store, base_url: &str, id: &str) -> ScimResult<Vec<Value>> {
    Ok(groups_many(store, base_url, &[id.to_string()])?
        .remove(id)
        .unwrap_or_default())
}

/// `groups` of many users at once: one store call for the direct
/// memberships of all of them, then one per level of group nesting, none
/// when the store says no group reached is itself in a group.
pub fn groups_many(
    store: &mut dyn Store,
    base_url: &str,
    ids: &[String],
) -> ScimResult<HashMap<String, Vec<Value>>> {
    let direct = store.groups_of_nested(GROUP_TYPE.name, ids)?;
    let mut parents: HashMap<String, Vec<MemberEntry>> = HashMap::new();
    let nested = |rows: &[(String, MemberEntry, bool)]| -> Vec<String> {
        rows.iter()
            .filter(|(_, _, nested)| *nested)
            .map(|(_, g, _)| g.id.clone())
            .collect()
    };
    let mut frontier = nested(&direct);
    loop {
        frontier.retain(|g| !parents.contains_key(g));
        frontier.sort();
        frontier.dedup();
        if frontier.is_empty() {
            break;
        }
        for g in &frontier {
            parents.insert(g.clone(), Vec::new());
        }
        let rows = store.groups_of_nested(GROUP_TYPE.name, &frontier)?;
        frontier = nested(&rows);
        for (child, parent, _) in rows {
            parents.entry(child).or_default().push(parent);
        }
    }
    let mut by_user: HashMap<String, Vec<MemberEntry>> = HashMap::new();
    for (user, group, _) in direct {
        by_user.entry(user).or_default().push(group);
    }
    let mut out = HashMap::with_capacity(ids.len());
    for id in ids {
        let direct = by_user.remove(id).unwrap_or_default();
        let mut seen: HashSet<&str> = direct.iter().map(|g| g.id.as_str()).collect();
        let mut values: Vec<Value> = direct
            .iter()
            .map(|g| member_json(base_url, g, "direct"))
            .collect();
        let mut queue: Vec<&MemberEntry> = direct.iter().collect();
        while let Some(g) = queue.pop() {
            for p in parents.get(&g.id).map(Vec::as_slice).unwrap_or_default() {
                if seen.insert(p.id.as_str()) {
                    values.push(member_json(base_url, p, "indirect"));
                    queue.push(p);
                }
            }
        }
        out.insert(id.clone(), values);
    }
    Ok(out)
}
