//! Index terms: the strings the host indexes a resource by.
//!
//! For each attribute path a resource type lists in `indexed`, every value
//! becomes one term named by the path. Values are normalised so that byte-wise
//! comparison in the host agrees with SCIM comparison in the engine:
//! case-insensitive strings are lower-cased, dateTimes become fixed-width UTC
//! text, booleans `true`/`false`. Attributes with `uniqueness: server` give
//! unique terms, which the host enforces atomically.

use serde_json::Value;
use time::OffsetDateTime;

use crate::filter::parse_datetime;
use crate::path::Path;
use crate::schema::{AttrType, Attribute, ResourceType, Uniqueness};
use crate::store::Term;

/// The index terms of a stored resource.
pub fn derive(rt: &ResourceType, resource: &Value) -> Vec<Term> {
    let mut terms = Vec::new();
    for raw in rt.indexed {
        let path = indexed_path(rt, raw);
        let leaf = path.leaf();
        let unique = leaf.uniqueness != Uniqueness::None && path.sub.is_none();
        let name = path.display();
        for v in path.values(resource) {
            if let Some(value) = term_value(leaf, v) {
                let term = Term {
                    name: name.clone(),
                    value,
                    unique,
                };
                if !terms.contains(&term) {
                    terms.push(term);
                }
            }
        }
    }
    terms
}

/// Resolves an entry of `indexed`; these are static and covered by tests.
pub fn indexed_path(rt: &ResourceType, raw: &str) -> Path {
    Path::resolve(rt, raw).unwrap_or_else(|e| panic!("bad indexed path {raw}: {e}"))
}

/// The term for one value, normalised for the attribute's comparison rules.
pub fn term_value(attr: &Attribute, v: &Value) -> Option<String> {
    match (attr.ty, v) {
        (AttrType::DateTime, Value::String(s)) => parse_datetime(s).map(instant_key),
        (AttrType::Boolean, Value::Bool(b)) => Some(b.to_string()),
        (_, Value::String(s)) => Some(fold(attr, s)),
        _ => None,
    }
}

/// A string as compared for this attribute: lower case unless `caseExact`.
pub fn fold(attr: &Attribute, s: &str) -> String {
    if attr.case_exact {
        s.to_string()
    } else {
        s.to_lowercase()
    }
}

/// Fixed-width UTC text that sorts like the instant it names.
pub fn instant_key(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{GROUP_TYPE, USER_TYPE};
    use serde_json::json;

    #[test]
    fn every_indexed_path_resolves() {
        for rt in crate::schema::RESOURCE_TYPES {
            for raw in rt.indexed {
                let _ = indexed_path(rt, raw);
            }
        }
    }

    #[test]
    fn terms_are_normalised() {
        let doc = json!({
            "userName": "BJensen", "externalId": "AbC", "active": true,
            "emails": [{"value": "B@X.com"}, {"value": "b@x.COM"}],
            "meta": {"lastModified": "2011-05-13T06:42:34+02:00"}
        });
        let terms = derive(&USER_TYPE, &doc);
        let find = |n: &str| {
            terms
                .iter()
                .filter(|t| t.name == n)
                .map(|t| (t.value.as_str(), t.unique))
                .collect::<Vec<_>>()
        };
        assert_eq!(find("userName"), vec![("bjensen", true)]);
        assert_eq!(find("externalId"), vec![("AbC", false)]);
        assert_eq!(find("emails.value"), vec![("b@x.com", false)]);
        assert_eq!(find("active"), vec![("true", false)]);
        assert_eq!(
            find("meta.lastModified"),
            vec![("2011-05-13T04:42:34.000000000Z", false)]
        );
        let g = derive(&GROUP_TYPE, &json!({"displayName": "Admins"}));
        assert_eq!(g[0].name, "displayName");
        assert!(g[0].unique);
    }
}
