//! Resources: normalising input, building the stored document, deriving its
//! index terms and rendering it back out.

pub mod membership;
pub mod normalize;
pub mod partial;
pub mod render;
pub mod terms;
pub mod verbatim;

use serde_json::{Map, Value, json};

use crate::schema::{RESOURCE_TYPES, ResourceType};
use crate::store::NewDocument;

/// A fresh resource id.
pub fn new_id() -> String {
    uuid::Builder::from_random_bytes(crate::ambient::random_bytes())
        .into_uuid()
        .to_string()
}

/// The current time as an RFC 3339 UTC timestamp with milliseconds.
pub fn now() -> String {
    let t = crate::ambient::now();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The weak entity tag of a stored version (also `meta.version`).
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// Reads a version back from an entity tag (`W/"3"` or `"3"`); `*` is `None`.
pub fn parse_etag(tag: &str) -> Option<u64> {
    let t = tag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    t.trim_matches('"').parse().ok()
}

/// The resource type whose storage kind is `kind`.
pub fn type_of_kind(kind: &str) -> Option<&'static ResourceType> {
    RESOURCE_TYPES.iter().copied().find(|rt| rt.name == kind)
}

/// `{base}/{endpoint}/{id}`.
pub fn location(base_url: &str, rt: &ResourceType, id: &str) -> String {
    format!("{base_url}{}/{id}", rt.endpoint)
}

/// The stored JSON of a resource: `schemas`, `id`, the client's attributes
/// (with `externalId` first), then `meta`.
pub fn assemble(
    rt: &ResourceType,
    id: &str,
    mut attrs: Map<String, Value>,
    created: &str,
    modified: &str,
) -> Value {
    let mut doc = Map::new();
    let mut schemas: Vec<&str> = rt
        .schema_ids()
        .filter(|s| *s == rt.schema.id || attrs.contains_key(*s))
        .collect();
    schemas.extend(
        attrs
            .keys()
            .map(String::as_str)
            .filter(|k| rt.is_custom_extension(k)),
    );
    doc.insert("schemas".into(), json!(schemas));
    doc.insert("id".into(), json!(id));
    if let Some(ext) = attrs.remove("externalId") {
        doc.insert("externalId".into(), ext);
    }
    doc.extend(attrs);
    doc.insert(
        "meta".into(),
        json!({"resourceType": rt.name, "created": created, "lastModified": modified}),
    );
    Value::Object(doc)
}

/// The short name shown for the resource in member listings.
pub fn label(rt: &ResourceType, doc: &Value) -> Option<String> {
    rt.label
        .iter()
        .find_map(|a| doc.get(*a).and_then(Value::as_str))
        .map(str::to_string)
}

/// What the store needs to write a resource.
pub fn to_new_document(rt: &ResourceType, id: &str, doc: &Value) -> NewDocument {
    NewDocument {
        id: id.to_string(),
        body: doc.to_string(),
        label: label(rt, doc),
        terms: terms::derive(rt, doc),
    }
}

/// The client's attributes of a stored resource: everything but `schemas`,
/// `id` and `meta`.
pub fn client_attrs(doc: &Value) -> Map<String, Value> {
    let mut m = doc.as_object().cloned().unwrap_or_default();
    for k in ["schemas", "id", "meta"] {
        m.remove(k);
    }
    m
}

/// `meta.created` of a stored resource.
pub fn created(doc: &Value) -> String {
    doc.pointer("/meta/created")
        .and_then(Value::as_str)
        .map_or_else(now, str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip() {
        assert_eq!(parse_etag(&etag(7)), Some(7));
        assert_eq!(parse_etag("\"7\""), Some(7));
        assert_eq!(parse_etag("*"), None);
    }
}
