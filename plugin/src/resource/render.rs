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
    let (location, version) = (location(base_url, rt, &doc.id), etag(doc.version));
    let relation = match rt.relation {
        // A group's members are written from the store's rows straight to
        // the response: a tree of ten thousand members was most of a
        // large group's GET.
        Relation::Members => {
            let entries = store.members_all(rt.name, &doc.id)?;
            if !entries.is_empty() && verbatim::relation_keys_whole(rt, &member_keys(&entries)) {
                let json = members_json(base_url, &entries)?;
                let copied =
                    verbatim::default_view_json(&doc.body, rt, Some(&json), &location, &version);
                if let Some(body) = copied {
                    return Ok(body);
                }
            }
            entries
                .iter()
                .map(|e| member_json(base_url, e, &e.kind))
                .collect()
        }
        Relation::Groups => groups(store, base_url, &doc.id)?,
    };
    let copied = verbatim::default_view(&doc.body, rt, &relation, &location, &version);
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

/// The keys [`member_json`] gives some of `entries`.
fn member_keys(entries: &[MemberEntry]) -> Vec<&'static str> {
    let mut keys = vec!["value", "type"];
    if entries.iter().any(|e| type_of_kind(&e.kind).is_some()) {
        keys.push("$ref");
    }
    if entries.iter().any(|e| e.label.is_some()) {
        keys.push("display");
    }
    keys
}

/// `entries` as the JSON array of [`member_json`] values, written
/// directly: the same bytes, without a tree per member.
fn members_json(base_url: &str, entries: &[MemberEntry]) -> ScimResult<Vec<u8>> {
    let mut out = Vec::with_capacity(entries.len() * (base_url.len() + 160));
    // Each `$ref` is a location, `{base}{endpoint}/{id}`; its prefix per
    // resource type is escaped once (JSON escapes each character alone).
    let mut prefixes: Vec<(&str, Vec<u8>)> = Vec::new();
    let quoted = |out: &mut Vec<u8>, s: &str| -> ScimResult<()> {
        out.push(b'"');
        json_escaped(out, s)?;
        out.push(b'"');
        Ok(())
    };
    out.push(b'[');
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"value\":");
        quoted(&mut out, &e.id)?;
        if let Some(rt) = type_of_kind(&e.kind) {
            let p = match prefixes.iter().position(|(k, _)| *k == rt.name) {
                Some(p) => p,
                None => {
                    let mut prefix = Vec::new();
                    json_escaped(&mut prefix, &location(base_url, rt, ""))?;
                    prefixes.push((rt.name, prefix));
                    prefixes.len() - 1
                }
            };
            out.extend_from_slice(b",\"$ref\":\"");
            out.extend_from_slice(&prefixes[p].1);
            json_escaped(&mut out, &e.id)?;
            out.push(b'"');
        }
        if let Some(l) = &e.label {
            out.extend_from_slice(b",\"display\":");
            quoted(&mut out, l)?;
        }
        out.extend_from_slice(b",\"type\":");
        quoted(&mut out, &e.kind)?;
        out.push(b'}');
    }
    out.push(b']');
    Ok(out)
}

/// `s` escaped as inside a JSON string, as `serde_json` writes it: copied
/// as it is when nothing in it needs escaping (ids, most names).
fn json_escaped(out: &mut Vec<u8>, s: &str) -> ScimResult<()> {
    if !needs_escape(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return Ok(());
    }
    let text = serde_json::to_string(s).map_err(|e| ScimError::internal(e.to_string()))?;
    out.extend_from_slice(&text.as_bytes()[1..text.len() - 1]);
    Ok(())
}

/// Whether JSON escapes any byte of `s` (a control character, `"` or
/// `\\`), eight bytes at a time: member ids and names are most of a large
/// group's response.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `x` below `n` (for `n` up to 0x80) or zero.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let zero = |x: u64| below(x, 1);
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let x = u64::from_le_bytes(b);
        if below(x, 0x20) | zero(x ^ (ONES * u64::from(b'"'))) | zero(x ^ (ONES * u64::from(b'\\')))
            != 0
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_written_as_their_values_would_be() {
        let entry = |id: &str, kind: &str, label: Option<&str>| MemberEntry {
            id: id.into(),
            kind: kind.into(),
            label: label.map(str::to_string),
            seq: 1,
        };
        let entries = [
            entry("u1", "User", Some("Ann \"A\" \u{e9}\n")),
            entry("g1", "Group", None),
            entry("x\\1", "Other", Some("X")),
            entry("u\"2", "User", Some("\u{1}\u{7f}")),
            entry("g2", "Group", Some("G")),
        ];
        let base = "https://h.example/scim/v2";
        let values: Vec<Value> = entries
            .iter()
            .map(|e| member_json(base, e, &e.kind))
            .collect();
        assert_eq!(
            members_json(base, &entries).unwrap(),
            serde_json::to_vec(&values).unwrap()
        );
        assert_eq!(member_keys(&entries[1..2]), ["value", "type", "$ref"]);
    }

    #[test]
    fn escapes_are_found_at_every_position() {
        for len in 0..20 {
            let plain = "a\u{7f}\u{e9}Zz09-_ ~".repeat(2);
            let plain = &plain.as_bytes()[..len.min(plain.len())];
            assert!(!needs_escape(plain), "{plain:?}");
            for at in 0..len {
                for bad in [0u8, 0x1f, b'"', b'\\'] {
                    let mut s = plain.to_vec();
                    s[at] = bad;
                    assert!(needs_escape(&s), "{s:?}");
                }
            }
        }
    }
}
