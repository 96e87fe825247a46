//! The default view of a stored resource, written by copying the stored
//! JSON instead of rebuilding it.
//!
//! A `GET` without `attributes` or `excludedAttributes` shows a stored body
//! as it is, plus the membership relation and `meta.location` /
//! `meta.version`. Parsing it into a tree, projecting and writing it out
//! again was most of the engine's work for a `GET`, so this module reads only
//! the body's structure (keys, borrowed from the text) and copies each value
//! through. It answers only when that gives exactly what
//! [`super::render::render`] gives with [`Projection::all`]: anything the
//! projection would trim (an unknown sub-attribute, an empty value, a
//! `returned: never` attribute), an escaped key, a stored relation or
//! computed `meta` field, or `meta` anywhere but last makes it decline, and
//! the caller takes the general path.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::schema::{Attribute, ResourceType, Returned, Schema};

/// The response body for a stored body under the default projection, or
/// `None` when the general path must render it. `relation` is the
/// membership relation's values (a user's `groups`, a group's `members`).
pub fn default_view(
    stored: &str,
    rt: &ResourceType,
    relation: &[Value],
    location: &str,
    version: &str,
) -> Option<Vec<u8>> {
    view(stored, rt, Relation::Values(relation), location, version)
}

/// Like [`default_view`], with the relation already written as a JSON
/// array (`None` when empty) by a caller that checked it with
/// [`relation_keys_whole`]: a large group's members are written straight
/// from the store's rows, not built as a tree and written again.
pub fn default_view_json(
    stored: &str,
    rt: &ResourceType,
    relation: Option<&[u8]>,
    location: &str,
    version: &str,
) -> Option<Vec<u8>> {
    match relation {
        Some(json) => view(stored, rt, Relation::Json(json), location, version),
        None => view(stored, rt, Relation::Values(&[]), location, version),
    }
}

/// Whether the default projection keeps relation values whose objects
/// have (some of) these keys as they are, as [`relation_whole`] decides
/// for each value.
pub fn relation_keys_whole(rt: &ResourceType, keys: &[&str]) -> bool {
    let attr = rt.relation_attribute();
    shown(attr) && (attr.returned == Returned::Always || object_whole(attr, keys.iter().copied()))
}

/// The relation's values, as values or as a JSON array checked already.
enum Relation<'a> {
    Values(&'a [Value]),
    Json(&'a [u8]),
}

fn view(
    stored: &str,
    rt: &ResourceType,
    relation: Relation<'_>,
    location: &str,
    version: &str,
) -> Option<Vec<u8>> {
    let Members(members) = serde_json::from_str(stored).ok()?;
    let relation_attr = rt.relation_attribute();
    let (meta, rest) = match members.split_last() {
        Some((("meta", meta), rest)) => (Some(*meta), rest),
        _ => (None, members.as_slice()),
    };
    let mut out = Vec::with_capacity(stored.len() + location.len() + 256);
    out.push(b'{');
    for (i, (key, raw)) in rest.iter().enumerate() {
        if *key == "meta"
            || key.eq_ignore_ascii_case(relation_attr.name)
            || rest[..i].iter().any(|(k, _)| k == key)
            || !shown_whole(rt, key, raw)
        {
            return None;
        }
        push_member(&mut out, key, raw.get());
    }
    match relation {
        Relation::Values(values) if !values.is_empty() => {
            if !relation_whole(relation_attr, values) {
                return None;
            }
            separate(&mut out);
            push_key(&mut out, relation_attr.name);
            serde_json::to_writer(&mut out, values).ok()?;
        }
        Relation::Values(_) => {}
        Relation::Json(json) => {
            out.reserve(json.len() + 64);
            separate(&mut out);
            push_key(&mut out, relation_attr.name);
            out.extend_from_slice(json);
        }
    }
    separate(&mut out);
    push_key(&mut out, "meta");
    let meta_attr = rt.core_attribute("meta")?;
    match meta {
        Some(raw) => {
            let Keys(Some(keys)) = serde_json::from_str(raw.get()).ok()? else {
                return None;
            };
            let computed =
                |k: &&str| k.eq_ignore_ascii_case("location") || k.eq_ignore_ascii_case("version");
            if keys.iter().any(computed) || !subs_shown(meta_attr, keys.iter().copied()) {
                return None;
            }
            let body = raw.get().trim_end();
            out.extend_from_slice(body.strip_suffix('}')?.as_bytes());
            if !keys.is_empty() {
                out.push(b',');
            }
        }
        None => out.push(b'{'),
    }
    push_key(&mut out, "location");
    serde_json::to_writer(&mut out, location).ok()?;
    out.push(b',');
    push_key(&mut out, "version");
    serde_json::to_writer(&mut out, version).ok()?;
    out.extend_from_slice(b"}}");
    Some(out)
}

/// Writes `"key":`.
fn separate(out: &mut Vec<u8>) {
    if out.len() > 1 {
        out.push(b',');
    }
}

fn push_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Writes a top-level `"key":value`, after a comma unless it is the first.
fn push_member(out: &mut Vec<u8>, key: &str, raw: &str) {
    separate(out);
    push_key(out, key);
    out.extend_from_slice(raw.as_bytes());
}

/// Whether the default projection keeps the relation's values as they are.
fn relation_whole(attr: &Attribute, values: &[Value]) -> bool {
    shown(attr)
        && (attr.returned == Returned::Always
            || values.iter().all(|v| {
                v.as_object()
                    .is_none_or(|o| object_whole(attr, o.keys().map(String::as_str)))
            }))
}

/// Whether the default projection keeps a top-level member exactly as
/// stored.
fn shown_whole(rt: &ResourceType, key: &str, raw: &RawValue) -> bool {
    if key == "schemas" {
        return true;
    }
    if let Some(attr) = rt.core_attribute(key) {
        return attr_whole(attr, raw);
    }
    let Some(schema) = rt.extension(key) else {
        // A custom extension, shown as stored.
        return true;
    };
    extension_whole(schema, raw)
}

fn extension_whole(schema: &Schema, raw: &RawValue) -> bool {
    let Ok(Members(members)) = serde_json::from_str(raw.get()) else {
        return false;
    };
    !members.is_empty()
        && members
            .iter()
            .all(|(k, v)| schema.attribute(k).is_some_and(|attr| attr_whole(attr, v)))
}

/// Mirrors `Projection::keep` for the default projection: the attribute is
/// shown, and none of its sub-attributes or values is trimmed.
fn attr_whole(attr: &Attribute, raw: &RawValue) -> bool {
    if !shown(attr) {
        return false;
    }
    if !attr.is_complex() || attr.returned == Returned::Always {
        return true;
    }
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<Keys>(text) {
            Ok(Keys(Some(keys))) => object_whole(attr, keys.into_iter()),
            _ => false,
        },
        Some(b'[') => match serde_json::from_str::<Vec<Keys>>(text) {
            Ok(items) => {
                !items.is_empty()
                    && items
                        .into_iter()
                        .all(|Keys(keys)| keys.is_none_or(|k| object_whole(attr, k.into_iter())))
            }
            Err(_) => false,
        },
        _ => true,
    }
}

/// Whether the default projection shows the attribute at all.
fn shown(attr: &Attribute) -> bool {
    !matches!(attr.returned, Returned::Never | Returned::Request)
}

/// Whether an object value of a complex attribute is kept as it is: not
/// empty, and every key a sub-attribute that is shown.
fn object_whole<'k>(attr: &Attribute, keys: impl ExactSizeIterator<Item = &'k str>) -> bool {
    keys.len() > 0 && subs_shown(attr, keys)
}

fn subs_shown<'k>(attr: &Attribute, mut keys: impl Iterator<Item = &'k str>) -> bool {
    keys.all(|k| {
        attr.sub(k)
            .is_some_and(|sub| sub.returned != Returned::Never)
    })
}

/// A JSON object's members in order, borrowed from the text; an escaped key
/// fails to borrow, and the caller declines.
struct Members<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members<'de>, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some(entry) = m.next_entry::<&'de str, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// An object's keys (values skipped), or `None` for any other JSON value.
struct Keys<'a>(Option<Vec<&'a str>>);

impl<'de> Deserialize<'de> for Keys<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Keys<'de>, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<&'de str>()? {
                    m.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(Some(keys)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Keys<'de>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Keys(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Keys<'de>, E> {
                Ok(Keys(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Keys<'de>, E> {
                Ok(Keys(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Keys<'de>, E> {
                Ok(Keys(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Keys<'de>, E> {
                Ok(Keys(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Keys<'de>, E> {
                Ok(Keys(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Keys<'de>, E> {
                Ok(Keys(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
