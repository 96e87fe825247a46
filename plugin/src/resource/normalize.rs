//! Turns a client's JSON into the canonical stored form, checking it against
//! the schema on the way.
//!
//! Attribute names are matched case-insensitively and written with the
//! schema's spelling; values are kept exactly as sent, except that JSON `null`
//! and empty lists mean "unassigned" and the strings "True"/"False" are read as
//! booleans (Entra ID sends them). A custom extension named the RFC's way
//! (`urn:ietf:params:scim:schemas:extension:<name>:<version>:User`, Entra
//! ID's custom extension attributes) is kept as sent; other unknown schema
//! URIs and their objects are ignored. An unknown attribute with a value is
//! rejected, because silently dropping data the client meant to store is
//! worse.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::filter::parse_datetime;
use crate::message::field;
use crate::schema::{
    AttrType, Attribute, Mutability, Relation, ResourceType, Schema, looks_like_urn,
};

/// A member named in a Group's `members` on input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInput {
    pub value: String,
    /// `User` or `Group` when the client said so.
    pub kind: Option<String>,
}

/// A normalised resource body from a client.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// Canonical attributes: core ones at top level, extension attributes
    /// under their schema URI. No readOnly attributes, no `members`.
    pub attrs: Map<String, Value>,
    /// `members`, when the body carried the attribute (even empty).
    pub members: Option<Vec<MemberInput>>,
}

/// Normalises a POST or PUT body.
pub fn normalize_resource(rt: &ResourceType, body: Map<String, Value>) -> ScimResult<Input> {
    let mut input = Input::default();
    for (key, value) in body {
        if key.eq_ignore_ascii_case("schemas") {
            check_schemas(&value)?;
            continue;
        }
        if looks_like_urn(&key) {
            match rt.split_urn(&key) {
                // An extension object: `"urn:…:enterprise:2.0:User": {…}`.
                Some((schema, "")) if !std::ptr::eq(schema, rt.schema) => {
                    set_extension(&mut input.attrs, schema, value)?;
                }
                // A URN-qualified attribute: `"urn:…:User:userName": "x"`.
                Some((schema, rest)) if !rest.is_empty() => {
                    set_qualified(rt, &mut input, schema, rest, value)?;
                }
                // The core URI itself, or an unknown schema: ignored, unless
                // it is a custom extension of this type, kept as sent.
                _ => set_custom(rt, &mut input.attrs, &key, value)?,
            }
            continue;
        }
        set_core(rt, &mut input, &key, value)?;
    }
    Ok(input)
}

fn check_schemas(value: &Value) -> ScimResult<()> {
    match value {
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(()),
        Value::Null => Ok(()),
        _ => Err(ScimError::invalid_syntax(
            "'schemas' must be an array of schema URIs",
        )),
    }
}

fn set_core(rt: &ResourceType, input: &mut Input, key: &str, value: Value) -> ScimResult<()> {
    let attr = match rt.bare_attribute(key) {
        Ok(Some((schema, _))) if !std::ptr::eq(schema, rt.schema) => {
            // An extension attribute sent without its URN (`"department"`).
            return set_qualified(rt, input, schema, key, value);
        }
        Ok(Some((_, attr))) => attr,
        Ok(None) => return unknown(key, &value),
        Err(urns) => {
            return Err(ScimError::invalid_syntax(format!(
                "Attribute '{key}' is defined by more than one extension ({}); qualify it with its schema URN",
                urns.join(", ")
            )));
        }
    };
    if rt.relation == Relation::Members && attr.name == "members" {
        input.members = Some(member_inputs(attr, value)?);
        return Ok(());
    }
    if !writable(attr) {
        return Ok(());
    }
    set(&mut input.attrs, attr, value, attr.name)
}

fn set_qualified(
    rt: &ResourceType,
    input: &mut Input,
    schema: &'static Schema,
    rest: &str,
    value: Value,
) -> ScimResult<()> {
    if std::ptr::eq(schema, rt.schema) {
        return set_core(rt, input, rest, value);
    }
    let Some(attr) = schema.attribute(rest) else {
        return unknown(&format!("{}:{rest}", schema.id), &value);
    };
    if !writable(attr) {
        return Ok(());
    }
    let ext = input
        .attrs
        .entry(schema.id)
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(ext) = ext else {
        unreachable!("extension entries are objects")
    };
    set(ext, attr, value, attr.name)
}

/// A custom extension object or one of its attributes, kept as sent
/// (nulls are unassigned). Other unknown URNs are ignored.
pub fn set_custom(
    rt: &ResourceType,
    attrs: &mut Map<String, Value>,
    key: &str,
    value: Value,
) -> ScimResult<()> {
    let Some((urn, attr)) = rt.split_custom(key) else {
        return Ok(());
    };
    let entry = attrs
        .entry(urn.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let obj = entry.as_object_mut().expect("an object");
    match (attr, value) {
        (None, Value::Object(o)) => {
            for (k, v) in o {
                if k.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                if v.is_null() {
                    obj.remove(&k);
                } else {
                    obj.insert(k, v);
                }
            }
        }
        (None, Value::Null) => obj.clear(),
        (None, _) => {
            return Err(ScimError::invalid_syntax(format!(
                "'{urn}' must be a JSON object of its attributes"
            )));
        }
        (Some(a), Value::Null) => {
            obj.remove(a);
        }
        (Some(a), v) => {
            obj.insert(a.to_string(), v);
        }
    }
    if obj.is_empty() {
        attrs.remove(urn);
    }
    Ok(())
}

fn set_extension(
    attrs: &mut Map<String, Value>,
    schema: &'static Schema,
    value: Value,
) -> ScimResult<()> {
    let obj = match value {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        _ => {
            return Err(ScimError::invalid_syntax(format!(
                "'{}' must be a JSON object",
                schema.id
            )));
        }
    };
    let mut out = Map::new();
    for (k, v) in obj {
        let Some(attr) = schema.attribute(&k) else {
            unknown(&format!("{}:{k}", schema.id), &v)?;
            continue;
        };
        if writable(attr) {
            set(&mut out, attr, v, attr.name)?;
        }
    }
    if !out.is_empty() {
        attrs.insert(schema.id.to_string(), Value::Object(out));
    }
    Ok(())
}

/// Unknown attributes are ignored when null and rejected otherwise.
fn unknown(name: &str, value: &Value) -> ScimResult<()> {
    if value.is_null() {
        Ok(())
    } else {
        Err(ScimError::invalid_syntax(format!(
            "Unknown attribute '{name}'; it is not defined by the resource's schemas"
        )))
    }
}

/// Whether clients may set the attribute (readOnly ones are ignored on input;
/// writeOnly ones such as `password` are accepted but not stored).
fn writable(attr: &Attribute) -> bool {
    matches!(
        attr.mutability,
        Mutability::ReadWrite | Mutability::Immutable
    )
}

/// Normalises and stores one attribute; unassigned values remove it.
fn set(
    target: &mut Map<String, Value>,
    attr: &Attribute,
    value: Value,
    name: &str,
) -> ScimResult<()> {
    match normalize_value(attr, value, name)? {
        Some(v) => {
            target.insert(attr.name.to_string(), v);
        }
        None => {
            target.remove(attr.name);
        }
    }
    Ok(())
}

/// Checks a value against its attribute definition and returns the canonical
/// value, or `None` when the value means "unassigned".
pub fn normalize_value(attr: &Attribute, value: Value, name: &str) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi_valued {
        let items = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = normalize_single(attr, item, name)? {
                out.push(v);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        check_one_primary(&out, name)?;
        return Ok(Some(Value::Array(out)));
    }
    let value = match value {
        // A singular attribute sent as a one-element list (Entra does this
        // with `manager`).
        Value::Array(mut items) if items.len() == 1 => items.pop().expect("one item"),
        Value::Array(items) if items.is_empty() => return Ok(None),
        Value::Array(_) => {
            return Err(ScimError::invalid_value(format!(
                "Attribute '{name}' is single-valued; a list was given"
            )));
        }
        v => v,
    };
    normalize_single(attr, value, name)
}

/// Checks one value (one element of a multi-valued attribute).
pub fn normalize_single(attr: &Attribute, value: Value, name: &str) -> ScimResult<Option<Value>> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.is_complex() {
        return normalize_complex(attr, value, name);
    }
    normalize_simple(attr.ty, value, name).map(Some)
}

fn normalize_complex(attr: &Attribute, value: Value, name: &str) -> ScimResult<Option<Value>> {
    let obj = match value {
        Value::Object(o) => o,
        // A bare value for a complex attribute that has a `value`
        // sub-attribute: `"manager": "id"` means `{"value": "id"}`.
        v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))
            if attr.sub("value").is_some() =>
        {
            let mut o = Map::new();
            o.insert("value".into(), v);
            o
        }
        _ => {
            return Err(ScimError::invalid_value(format!(
                "Attribute '{name}' must be a JSON object"
            )));
        }
    };
    let mut out = Map::new();
    for (k, v) in obj {
        let Some(sub) = attr.sub(&k) else {
            unknown(&format!("{name}.{k}"), &v)?;
            continue;
        };
        if !writable(sub) {
            continue;
        }
        if let Some(v) = normalize_single(sub, v, &format!("{name}.{}", sub.name))? {
            out.insert(sub.name.to_string(), v);
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// Checks a simple value's JSON type; booleans also accept "true"/"false"
/// strings in any case.
pub fn normalize_simple(ty: AttrType, value: Value, name: &str) -> ScimResult<Value> {
    let bad = |want: &str| {
        Err(ScimError::invalid_value(format!(
            "Attribute '{name}' must be {want}"
        )))
    };
    match ty {
        AttrType::Boolean => match value {
            Value::Bool(_) => Ok(value),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => bad("a boolean (true or false)"),
        },
        AttrType::Integer => match &value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value),
            _ => bad("an integer"),
        },
        AttrType::Decimal => match value {
            Value::Number(_) => Ok(value),
            _ => bad("a number"),
        },
        AttrType::DateTime => match &value {
            Value::String(s) if parse_datetime(s).is_some() => Ok(value),
            _ => bad("a dateTime string (RFC 3339, e.g. 2024-01-31T12:00:00Z)"),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            Value::String(_) => Ok(value),
            _ => bad("a string"),
        },
        AttrType::Complex => bad("a JSON object"),
    }
}

/// RFC 7643 §2.4: `primary: true` may appear at most once.
fn check_one_primary(items: &[Value], name: &str) -> ScimResult<()> {
    let primaries = items
        .iter()
        .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!(
            "Attribute '{name}' has {primaries} values marked primary; at most one may be"
        )));
    }
    Ok(())
}

/// Reads `members` input: each entry needs a `value` (a bare id string is
/// accepted too); `type` is optional; other sub-attributes are server-set.
pub fn member_inputs(attr: &Attribute, value: Value) -> ScimResult<Vec<MemberInput>> {
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        single => vec![single],
    };
    let mut out: Vec<MemberInput> = Vec::with_capacity(items.len());
    // A set, not a scan of `out`: a body's worth of members (tens of
    // thousands) would otherwise cost quadratic time.
    let mut seen: HashSet<String> = HashSet::with_capacity(items.len());
    for item in items {
        let (value, kind) = match item {
            Value::Null => continue,
            Value::String(s) => (Some(Value::String(s)), None),
            Value::Object(m) => (field(&m, "value").cloned(), field(&m, "type").cloned()),
            _ => (None, None),
        };
        let value = match value {
            Some(Value::String(v)) if !v.is_empty() => v,
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "Each of '{}' needs a non-empty string 'value' (the member's id)",
                    attr.name
                )));
            }
        };
        let kind = match kind {
            Some(Value::String(t)) if t.eq_ignore_ascii_case("user") => Some("User".to_string()),
            Some(Value::String(t)) if t.eq_ignore_ascii_case("group") => Some("Group".to_string()),
            None | Some(Value::Null) => None,
            Some(t) => {
                return Err(ScimError::invalid_value(format!(
                    "Member type {t} is not \"User\" or \"Group\""
                )));
            }
        };
        if seen.insert(value.clone()) {
            out.push(MemberInput { value, kind });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP_TYPE, USER_TYPE};
    use serde_json::json;

    fn norm(rt: &ResourceType, v: Value) -> ScimResult<Input> {
        let Value::Object(m) = v else { panic!() };
        normalize_resource(rt, m)
    }

    #[test]
    fn canonicalises_names_and_booleans() {
        let input = norm(
            &USER_TYPE,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "USERNAME": "Bob", "Active": "True",
                "emails": [{"Value": "b@x", "Primary": "false", "TYPE": "work"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"Department": "R&D", "manager": "m1"},
                "id": "ignored", "meta": {"created": "x"}, "groups": [{"value": "g"}],
                "password": "secret", "nickName": null, "madeUp": null,
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group": {"x": 1}
            }),
        )
        .unwrap();
        assert_eq!(
            Value::Object(input.attrs),
            json!({
                "userName": "Bob", "active": true,
                "emails": [{"value": "b@x", "primary": false, "type": "work"}],
                ENTERPRISE_USER_SCHEMA: {"department": "R&D", "manager": {"value": "m1"}}
            })
        );
    }

    #[test]
    fn rejects_unknown_attribute_with_value() {
        let err = norm(&USER_TYPE, json!({"userName": "a", "madeUp": 1})).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.scim_type, Some(crate::error::ScimType::InvalidSyntax));
        assert!(err.detail.contains("madeUp"));
        let err = norm(&USER_TYPE, json!({"userName": "a", "name": {"nick": "x"}})).unwrap_err();
        assert!(err.detail.contains("name.nick"));
    }

    #[test]
    fn rejects_wrong_types_and_two_primaries() {
        assert!(norm(&USER_TYPE, json!({"userName": 5})).is_err());
        assert!(norm(&USER_TYPE, json!({"userName": "a", "active": "yes"})).is_err());
        let err = norm(
            &USER_TYPE,
            json!({"userName": "a", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
        )
        .unwrap_err();
        assert!(err.detail.contains("primary"));
    }

    #[test]
    fn group_members_are_split_out() {
        let input = norm(
            &GROUP_TYPE,
            json!({"displayName": "G", "members": [{"value": "u1", "type": "User"}, {"value": "u1"}, {"value": "g2", "display": "x"}]}),
        )
        .unwrap();
        assert_eq!(
            input.attrs,
            json!({"displayName": "G"}).as_object().unwrap().clone()
        );
        let members = input.members.unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].kind.as_deref(), Some("User"));
        assert_eq!(members[1].kind, None);
        let none = norm(&GROUP_TYPE, json!({"displayName": "G"})).unwrap();
        assert!(none.members.is_none());
    }
}
